"""Hook implementations: descriptions only, so listing plugins imports nothing heavy."""

from qsimcells.plugins import CircuitSamplerSpec, IsingSamplerSpec, hookimpl


@hookimpl
def qsimcells_circuit_samplers():
    return [
        CircuitSamplerSpec(
            name="numpy-dense",
            factory="qsimcells_example.sampler:DenseSampler",
            description="Dense numpy statevector (gate matrices applied with einsum)",
            max_qubits=16,
            exact=True,
            priority=1,
        )
    ]


@hookimpl
def qsimcells_ising_samplers():
    return [
        IsingSamplerSpec(
            name="metropolis",
            factory="qsimcells_example.ising:MetropolisSampler",
            description="Random-scan single-spin Metropolis in numpy",
            warm_start=True,
        )
    ]
