"""The ``statevector`` sampler: Qiskit's exact statevector, sampled with our own generator."""

from __future__ import annotations

import numpy as np
from qiskit import QuantumCircuit

from ._bits import indices_to_bits
from ._cache import circuit_key


class StatevectorSampler:
    """Sample the Z-basis outcome of every qubit from :class:`qiskit.quantum_info.Statevector`.

    Parameters
    ----------
    max_qubits
        Refuse larger circuits (memory grows as ``16 * 2**n`` bytes).
    """

    name = "statevector"

    def __init__(self, max_qubits: int = 24) -> None:
        self.max_qubits = int(max_qubits)
        self._cached: tuple[tuple, np.ndarray] | None = None

    def supports(self, circuit: QuantumCircuit) -> str | None:
        if circuit.num_qubits > self.max_qubits:
            return (
                f"{circuit.num_qubits} qubits exceed max_qubits={self.max_qubits} of the "
                "statevector sampler"
            )
        unitary = circuit.remove_final_measurements(inplace=False)
        for instruction in unitary.data:
            if instruction.operation.name in {"measure", "reset"}:
                return "mid-circuit measurement or reset (statevector needs a unitary circuit)"
            if (
                instruction.operation.name not in {"barrier", "delay"}
                and instruction.operation.num_clbits
            ):
                return f"classical control flow ({instruction.operation.name})"
        return None

    def probabilities(self, circuit: QuantumCircuit) -> np.ndarray:
        """Probabilities of all ``2**n`` basis states, qubit ``i`` in bit ``i`` of the index."""
        from qiskit.quantum_info import Statevector

        key = circuit_key(circuit)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]  # simulate samples one circuit in many chunks
        reason = self.supports(circuit)
        if reason:
            raise ValueError(f"statevector sampler cannot take this circuit: {reason}")
        unitary = circuit.remove_final_measurements(inplace=False)
        probs = np.asarray(Statevector(unitary).probabilities(), dtype=np.float64)
        probs /= probs.sum()
        self._cached = (key, probs)
        return probs

    def sample(
        self, circuit: QuantumCircuit, shots: int, *, rng: np.random.Generator
    ) -> np.ndarray:
        probs = self.probabilities(circuit)
        indices = rng.choice(probs.size, size=shots, p=probs)
        return indices_to_bits(indices, circuit.num_qubits)
