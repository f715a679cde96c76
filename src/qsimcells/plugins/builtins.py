"""The builtin plugin: registered before any entry point."""

from __future__ import annotations

from .hookspecs import hookimpl
from .specs import CircuitSamplerSpec, GeneratorSpec, IsingSamplerSpec


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
def qsimcells_ising_samplers() -> list[IsingSamplerSpec]:
    return [
        IsingSamplerSpec(
            name="gibbs",
            factory="qsimcells.samplers.gibbs:GibbsSampler",
            description="Sequential single-site Gibbs sweeps in torch, vectorised over chains; "
            "persistent chains, optional parallel tempering",
            max_variables=None,
            warm_start=True,
        ),
        IsingSamplerSpec(
            name="exact",
            factory="qsimcells.samplers.ising_exact:ExactIsingSampler",
            description="Exact Boltzmann draws by enumerating all 2^n states (n <= 20)",
            max_variables=20,
            warm_start=False,
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
        GeneratorSpec(
            name="qbmvae",
            factory="qsimcells.model.qbmvae:qbmvae_generator",
            description="Cells from a trained QBM-VAE: Boltzmann-prior states decoded to counts "
            "(model=<QBMVAE or saved path>)",
            tags=("model", "boltzmann", "learned"),
        ),
        GeneratorSpec(
            name="spiqgan",
            factory="qsimcells.model.spiqgan:spiqgan_generator",
            description="Binary activity (spike trains) from a trained SpiQGAN patch quantum "
            "GAN (model=<SpiQGAN or saved path>)",
            tags=("model", "quantum", "gan", "learned"),
        ),
    ]
