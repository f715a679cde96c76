"""Identity of a circuit for the per-sampler caches (``simulate`` samples one circuit in many
chunks, so compiling it or computing its statevector once is enough)."""

from __future__ import annotations

from qiskit import QuantumCircuit


def circuit_key(circuit: QuantumCircuit) -> tuple:
    """The same circuit object holding the same operation objects gives the same key; replacing
    an instruction changes it."""
    return id(circuit), tuple(id(ins.operation) for ins in circuit.data)
