"""Hook implementation: a description only, so listing plugins never imports dwave."""

from qsimcells.plugins import IsingSamplerSpec, hookimpl


@hookimpl
def qsimcells_ising_samplers() -> list[IsingSamplerSpec]:
    return [
        IsingSamplerSpec(
            name="neal",
            factory="qsimcells_neal.sampler:NealSampler",
            description="dwave-samplers simulated annealing that anneals to the requested beta "
            "and holds there (Boltzmann samples, not ground states); warm starts",
            max_variables=None,
            warm_start=True,
        )
    ]
