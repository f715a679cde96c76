"""Hook implementation: a description only, so listing plugins never imports qiskit-aer."""

from qsimcells.plugins import CircuitSamplerSpec, hookimpl


@hookimpl
def qsimcells_circuit_samplers() -> list[CircuitSamplerSpec]:
    return [
        CircuitSamplerSpec(
            name="aer",
            factory="qsimcells_aer.sampler:AerSampler",
            description="Qiskit Aer SamplerV2 on AerSimulator (statevector, matrix_product_state, "
            "...; optional noise model or a fake IBM device's noise)",
            max_qubits=None,
            # noise-free unless noise_model= is given; auto never passes options
            noisy=False,
            exact=True,
            # below the builtin statevector (10), so auto only reaches Aer beyond 24 qubits
            priority=5,
        )
    ]
