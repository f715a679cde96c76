"""Registers "twin" (also registered by qsimcells-twin-a) and "ghost", whose factory module
does not exist."""

import numpy as np

from qsimcells.plugins import CircuitSamplerSpec, hookimpl


class OneSampler:
    def sample(self, circuit, shots, *, rng):
        return np.ones((shots, circuit.num_qubits), np.uint8)


@hookimpl
def qsimcells_circuit_samplers():
    return [
        CircuitSamplerSpec("twin", factory="qsimcells_twin_b.plugin:OneSampler", exact=False),
        CircuitSamplerSpec("ghost", factory="qsimcells_twin_b.missing:Sampler", exact=False),
    ]
