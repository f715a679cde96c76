"""The builtin plugin: registered before any entry point."""

from __future__ import annotations

from .hookspecs import hookimpl
from .specs import CircuitSamplerSpec, GeneratorSpec


@hookimpl
def qsimcells_circuit_samplers() -> list[CircuitSamplerSpec]:
    return [
        CircuitSamplerSpec(
            name="exact",
            factory="qsimcells.samplers.exact:ExactSampler",
            description="Classical exact sampler for circuits whose qubits are only rotated "
            "before they act as controls (RY, X, CX, CCX, CRY, SWAP, ...); any number of qubits",
            max_qubits=None,
            exact=True,
            priority=100,
        ),
        CircuitSamplerSpec(
            name="statevector",
            factory="qsimcells.samplers.statevector:StatevectorSampler",
            description="qiskit.quantum_info.Statevector reference (any unitary circuit)",
            max_qubits=24,
            exact=True,
            priority=10,
        ),
    ]


@hookimpl
def qsimcells_generators() -> list[GeneratorSpec]:
    return [
        GeneratorSpec(
            name="qsimcells",
            factory="qsimcells.sim.generators:qsimcells_generator",
            description="qSimCells: cells from a quantum circuit design (Romero et al.)",
            tags=("quantum", "grn", "communication"),
        ),
        GeneratorSpec(
            name="independent",
            factory="qsimcells.sim.generators:independent_generator",
            description="Classical control: the same design without entangling gates",
            tags=("classical", "control"),
        ),
    ]
