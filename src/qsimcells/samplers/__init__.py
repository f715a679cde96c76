"""Samplers, by name from the plugin registry: circuit samplers turn a Qiskit circuit into
per-shot bits (:func:`sample_bits`); Ising samplers draw Boltzmann states (:func:`sample_ising`).

The builtins are ``exact`` (a classical path, any number of qubits, for circuits that allow it)
and ``statevector`` (Qiskit reference, up to 24 qubits). ``sampler="auto"`` takes ``exact``
whenever it is exact and otherwise the best registered sampler that accepts the circuit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._utils import RngLike, as_generator, check_positive_int
from ._bits import bitarray_to_bits, validate_bits
from .ising import (
    boltzmann_probabilities,
    ising_energy,
    log_partition,
    make_ising_sampler,
    sample_ising,
)

if TYPE_CHECKING:  # pragma: no cover
    from qiskit import QuantumCircuit

__all__ = [
    "NotExactError",
    "SamplerInfo",
    "bitarray_to_bits",
    "boltzmann_probabilities",
    "ising_energy",
    "log_partition",
    "make_ising_sampler",
    "make_sampler",
    "resolve_sampler",
    "sample_bits",
    "sample_ising",
]

logger = logging.getLogger(__name__)


def __getattr__(name: str) -> Any:
    if name == "NotExactError":  # lives with the exact sampler, which imports qiskit
        from .exact import NotExactError

        return NotExactError
    raise AttributeError(name)


@dataclass(frozen=True)
class SamplerInfo:
    """Which sampler ran, why, and which distribution (and version) provided it: stored by
    ``qs.sim.simulate`` in ``uns["qsimcells"]["sampler"]``."""

    name: str
    requested: str
    reason: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    distribution: str = ""
    version: str = ""

    def as_dict(self) -> dict[str, Any]:
        from ..plugins.registry import plain_options

        return {
            "name": self.name,
            "requested": self.requested,
            "reason": self.reason,
            "options": plain_options(self.options),
            "distribution": self.distribution,
            "version": self.version,
        }


def make_sampler(name: str, **options: Any) -> Any:
    """Instantiate the registered circuit sampler ``name``.

    Parameters
    ----------
    name
        A registered circuit sampler.
    **options
        Passed to its factory.

    Returns
    -------
    object
        The sampler, with ``sample(circuit, shots, *, rng)``.
    """
    from ..plugins import get_circuit_sampler

    return get_circuit_sampler(name).create(**options)


def _check_circuit(circuit: Any) -> None:
    from qiskit import QuantumCircuit

    if not isinstance(circuit, QuantumCircuit):
        raise TypeError(f"circuit: expected a qiskit QuantumCircuit, got {type(circuit).__name__}")
    if circuit.num_qubits == 0:
        raise ValueError("circuit: has no qubits")
    if circuit.parameters:
        names = sorted(p.name for p in circuit.parameters)
        raise ValueError(
            f"circuit: unbound parameters {names}; bind them first (circuit.assign_parameters)"
        )


def resolve_sampler(
    circuit: QuantumCircuit, *, sampler: str = "auto", **options: Any
) -> tuple[Any, SamplerInfo]:
    """Pick and instantiate the sampler that will run ``circuit``.

    Parameters
    ----------
    circuit
        The circuit to sample.
    sampler
        A registered sampler name or ``"auto"`` (see :func:`sample_bits`).
    **options
        Options for a named sampler's factory.

    Returns
    -------
    sampler : object
        The sampler object.
    info : SamplerInfo
        Which sampler runs and why.
    """
    from ..plugins import get_circuit_sampler, get_registry

    _check_circuit(circuit)
    if not isinstance(sampler, str):
        raise TypeError(f"sampler: expected a sampler name, got {type(sampler).__name__}")
    if sampler != "auto":
        registered = get_circuit_sampler(sampler)
        spec = registered.spec
        if spec.max_qubits is not None and circuit.num_qubits > spec.max_qubits:
            raise ValueError(
                f"sampler {sampler!r} takes at most {spec.max_qubits} qubits; the "
                f"circuit has {circuit.num_qubits}"
            )
        obj = make_sampler(sampler, **options)
        reason = getattr(obj, "supports", lambda c: None)(circuit)
        if reason:
            raise ValueError(f"sampler: {sampler!r} cannot sample this circuit: {reason}")
        return obj, SamplerInfo(
            sampler,
            sampler,
            "requested",
            dict(options),
            registered.distribution,
            registered.version,
        )

    if options:
        raise ValueError(f"sampler options {sorted(options)} need a named sampler, not 'auto'")
    refusals: list[str] = []
    # the exact classical path first whenever it applies, then the others by priority
    candidates = sorted(
        (
            r
            for r in get_registry().entries("circuit_sampler")
            if not r.spec.noisy and not r.spec.needs_credentials and r.spec.exact
        ),
        key=lambda r: (r.spec.name != "exact", -r.spec.priority),
    )
    for registered in candidates:
        spec = registered.spec
        if spec.max_qubits is not None and circuit.num_qubits > spec.max_qubits:
            refusals.append(f"{spec.name}: more than {spec.max_qubits} qubits")
            continue
        try:  # a broken plugin must not stop auto from trying the next sampler
            obj = make_sampler(spec.name)
            reason = getattr(obj, "supports", lambda c: None)(circuit)
        except Exception as err:
            reason = f"failed: {type(err).__name__}: {err}"
        if reason is None:
            why = (
                "exact classical path"
                if spec.name == "exact"
                else f"fallback ({'; '.join(refusals)})"
            )
            return obj, SamplerInfo(
                spec.name, "auto", why, {}, registered.distribution, registered.version
            )
        refusals.append(f"{spec.name}: {reason}")
    raise ValueError(
        "sampler='auto': no registered sampler can take this circuit; " + "; ".join(refusals)
    )


def sample_bits(
    circuit: QuantumCircuit,
    shots: int,
    *,
    sampler: str = "auto",
    rng: RngLike = None,
    return_info: bool = False,
    **options: Any,
) -> np.ndarray | tuple[np.ndarray, SamplerInfo]:
    """Sample the final Z-basis value of every qubit of ``circuit``.

    Parameters
    ----------
    circuit
        A Qiskit circuit with bound parameters. Final measurements are optional.
    shots
        Number of samples (rows).
    sampler
        A registered circuit sampler name (see ``qs.plugins.available("circuit_sampler")``) or
        ``"auto"``: the exact classical path when it applies, else the best registered sampler
        that accepts the circuit (noise-free, no credentials, highest priority).
    rng
        Seed or generator; the same seed gives the same bits.
    return_info
        Also return a :class:`SamplerInfo` saying which sampler ran and why.
    **options
        Passed to the sampler's factory (e.g. ``method=`` for ``aer``).

    Returns
    -------
    numpy.ndarray
        ``(shots, circuit.num_qubits)`` uint8; column ``i`` is qubit ``i`` (logical order).
    """
    shots = check_positive_int("shots", shots)
    obj, info = resolve_sampler(circuit, sampler=sampler, **options)
    logger.info(
        "sampling %d shots of a %d-qubit circuit with %r (%s)",
        shots,
        circuit.num_qubits,
        info.name,
        info.reason,
    )
    bits = obj.sample(circuit, shots, rng=as_generator(rng))
    bits = validate_bits(bits, shots, circuit.num_qubits, info.name)
    return (bits, info) if return_info else bits
