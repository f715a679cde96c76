"""Hook implementation: a description only, so listing plugins never imports the runtime."""

from qsimcells.plugins import CircuitSamplerSpec, hookimpl


@hookimpl
def qsimcells_circuit_samplers() -> list[CircuitSamplerSpec]:
    return [
        CircuitSamplerSpec(
            name="ibm",
            factory="qsimcells_ibm.sampler:IBMSampler",
            description="IBM Quantum hardware through qiskit-ibm-runtime SamplerV2 (needs an "
            "account), or a fake backend ('fake_manila', ...) offline in local testing mode",
            # the limit is the chosen backend's size, checked by IBMSampler.supports
            max_qubits=None,
            noisy=True,
            needs_credentials=True,
            exact=False,
        )
    ]
