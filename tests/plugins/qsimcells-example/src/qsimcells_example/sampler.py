"""A dense statevector sampler in plain numpy: an independent check of the builtins."""

import numpy as np


class DenseSampler:
    def __init__(self, max_qubits: int = 16):
        self.max_qubits = max_qubits

    def supports(self, circuit):
        if circuit.num_qubits > self.max_qubits:
            return f"more than {self.max_qubits} qubits"
        measured = set()
        for instruction in circuit.data:
            name = instruction.operation.name
            qubits = {circuit.find_bit(q).index for q in instruction.qubits}
            if name == "reset":
                return "reset is not supported"
            if name == "measure":
                measured |= qubits
            elif name != "barrier" and qubits & measured:
                return "mid-circuit measurement is not supported (unitary circuits only)"
        return None

    def sample(self, circuit, shots, *, rng):
        n = circuit.num_qubits
        # axis k of the tensor is qubit n-1-k, so a C-order flat index has qubit i in bit i
        state = np.zeros((2,) * n, dtype=complex)
        state[(0,) * n] = 1.0
        for instruction in circuit.data:
            op = instruction.operation
            if op.name in {"measure", "barrier"}:
                continue
            qubits = [circuit.find_bit(q).index for q in instruction.qubits]
            k = len(qubits)
            # qiskit's matrix for qargs (q0, q1, ...) has q0 as the least significant bit
            matrix = np.asarray(op.to_matrix()).reshape((2,) * (2 * k))
            axes = [n - 1 - q for q in reversed(qubits)]
            state = np.tensordot(matrix, state, axes=(list(range(k, 2 * k)), axes))
            state = np.moveaxis(state, list(range(k)), axes)
        probs = np.abs(state.reshape(-1)) ** 2
        index = rng.choice(probs.size, size=shots, p=probs / probs.sum())
        return ((index[:, None] >> np.arange(n)) & 1).astype(np.uint8)
