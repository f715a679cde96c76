"""Typing protocols of the sampler objects a plugin's factory returns.

Plugin authors can check their classes against them with a static type checker (mypy,
pyright)::

    from qsimcells.plugins import CircuitSampler

    def make() -> CircuitSampler:
        return MySampler()  # the checker verifies sample()'s signature

They are ``runtime_checkable``, so ``isinstance(obj, CircuitSampler)`` tells whether ``obj``
has the method, but not whether its signature is right (that is the type checker's job).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover - qiskit is imported on first use only
    import numpy as np
    from qiskit import QuantumCircuit

__all__ = ["CircuitSampler", "IsingSampler"]


@runtime_checkable
class CircuitSampler(Protocol):
    """What a circuit sampler's factory returns.

    It may also define ``supports(circuit) -> str | None``: the reason it cannot take a
    circuit, or ``None``. It is asked before every run, by ``sampler="auto"`` to skip the
    sampler and for a sampler named by the user to refuse the circuit with that reason.
    """

    def sample(
        self, circuit: QuantumCircuit, shots: int, *, rng: np.random.Generator
    ) -> np.ndarray:
        """``(shots, circuit.num_qubits)`` uint8 bits, column ``i`` = qubit ``i``, one row per
        shot in shot order, every random draw taken from ``rng``."""
        ...


@runtime_checkable
class IsingSampler(Protocol):
    """What an Ising sampler's factory returns."""

    def sample(
        self,
        h: np.ndarray,
        W: np.ndarray,
        num_reads: int,
        *,
        beta: float,
        rng: np.random.Generator,
        initial_states: np.ndarray | None = None,
    ) -> np.ndarray:
        """``(num_reads, n)`` states in ``{0, 1}`` drawn from
        ``p(z) ~ exp(-beta (h.z + sum_{l<m} W_lm z_l z_m))``; ``initial_states`` (when given)
        are the previous call's states to continue persistent chains from."""
        ...
