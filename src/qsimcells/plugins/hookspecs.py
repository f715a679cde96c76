"""Hook specifications of qsimcells (pluggy project name ``"qsimcells"``).

A plugin is any module or object with functions of these names decorated with :data:`hookimpl`,
exposed through an entry point of the group ``qsimcells``::

    # pyproject.toml of the plugin distribution
    [project.entry-points.qsimcells]
    mysampler = "my_package.plugin"

Each hook returns a list of descriptions. A description names a *factory* as an import path
(``"my_package.sampler:MySampler"``) so that the registry can list plugins without importing
their heavy dependencies; the factory is imported only when the sampler or generator is used.
"""

from __future__ import annotations

import pluggy

from .specs import CircuitSamplerSpec, GeneratorSpec, IsingSamplerSpec

PROJECT = "qsimcells"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorator for hook implementations in plugins, e.g.
#: ``@hookimpl def qsimcells_circuit_samplers(): ...``
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def qsimcells_circuit_samplers() -> list[CircuitSamplerSpec]:
    """Return the circuit samplers this plugin provides.

    The factory of each :class:`~qsimcells.plugins.CircuitSamplerSpec` is called with the
    user's sampler options (``factory(**options)``) and must return an object with a method
    ``sample(circuit, shots, *, rng) -> numpy.ndarray`` of shape ``(shots, circuit.num_qubits)``
    and dtype ``uint8``, in *logical* qubit order (column ``i`` is qubit ``i``; Qiskit's
    little-endian bit strings must be undone). The object may also define
    ``supports(circuit) -> str | None`` returning the reason it cannot take a circuit (or
    ``None`` when it can); ``sampler="auto"`` uses it.

    Returns
    -------
    list of CircuitSamplerSpec
    """
    return []  # a specification: pluggy never calls this body


@hookspec
def qsimcells_ising_samplers() -> list[IsingSamplerSpec]:
    """Return the Ising (Boltzmann) samplers this plugin provides.

    The factory of each :class:`~qsimcells.plugins.IsingSamplerSpec` is called with the user's
    options and must return an object with a method ``sample(h, W, num_reads, *, beta, rng,
    initial_states)`` returning ``num_reads`` states in ``{0, 1}^n`` drawn from ``p(z) ~ exp(-beta *
    (h.z + sum_{l<m} W_lm z_l z_m))`` (``W`` symmetric, zero diagonal).

    Returns
    -------
    list of IsingSamplerSpec
    """
    return []  # a specification: pluggy never calls this body


@hookspec
def qsimcells_generators() -> list[GeneratorSpec]:
    """Return the named data generators this plugin provides.

    The factory of each :class:`~qsimcells.plugins.GeneratorSpec` is the generating function itself:
    called with keyword parameters it returns an :class:`anndata.AnnData` (used by
    ``qs.sim.generate``).

    Returns
    -------
    list of GeneratorSpec
    """
    return []  # a specification: pluggy never calls this body
