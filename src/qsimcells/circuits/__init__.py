"""Circuit-level helpers: gate-set analysis of Qiskit circuits."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from qiskit import QuantumCircuit

__all__ = ["exact_sampling_obstacle", "is_exactly_sampleable"]


def exact_sampling_obstacle(circuit: QuantumCircuit) -> str | None:
    """Why ``circuit`` has no exact classical sampling path, or ``None`` when it has one.

    See :mod:`qsimcells.samplers.exact` for the rule: a qubit may be rotated freely until it is
    first used as a control; after that only bit flips and phases may touch it.
    """
    from ..samplers.exact import ExactSampler

    return ExactSampler().supports(circuit)


def is_exactly_sampleable(circuit: QuantumCircuit) -> bool:
    """Whether the builtin ``exact`` sampler can sample ``circuit`` (see
    :func:`exact_sampling_obstacle`)."""
    return exact_sampling_obstacle(circuit) is None
