"""The one place where Qiskit's little-endian bit order is turned into logical qubit order.

Qiskit labels basis states so that qubit 0 is the *least* significant bit: the index ``k`` of a
statevector entry has qubit ``i`` in bit ``i`` of ``k``, and a printed bit string
``"b_{n-1} ... b_1 b_0"`` has qubit 0 on the right. Samplers return ``(shots, n_qubits)`` arrays
whose column ``i`` is qubit ``i``; they convert with these helpers and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def indices_to_bits(indices: np.ndarray, n_qubits: int) -> np.ndarray:
    """Basis-state indices (qubit ``i`` in bit ``i``) to a ``(shots, n_qubits)`` uint8 array."""
    indices = np.asarray(indices, dtype=np.int64)
    return ((indices[:, None] >> np.arange(n_qubits, dtype=np.int64)) & 1).astype(np.uint8)


def bitstrings_to_bits(bitstrings: Sequence[str], n_bits: int) -> np.ndarray:
    """Qiskit bit strings (``"b_{n-1}...b_0"``, spaces between registers allowed) to columns
    in logical order: column ``i`` holds bit ``i``."""
    if len(bitstrings) == 0:
        return np.zeros((0, n_bits), dtype=np.uint8)
    joined = "".join(s.replace(" ", "") for s in bitstrings).encode("ascii")
    raw = np.frombuffer(joined, dtype=np.uint8).reshape(len(bitstrings), -1)
    if raw.shape[1] != n_bits:
        raise ValueError(f"bit strings have {raw.shape[1]} bits, expected {n_bits}")
    return (raw[:, ::-1] - ord("0")).astype(np.uint8)


def bitarray_to_bits(bit_array: Any) -> np.ndarray:
    """A Qiskit ``BitArray`` (one classical register of a ``SamplerV2`` result) to a
    ``(shots, num_bits)`` uint8 array whose column ``i`` is clbit ``i`` of the register, shots in
    the order the primitive returned them (never aggregated into counts)."""
    to_bool = getattr(bit_array, "to_bool_array", None)
    if to_bool is None:
        raise TypeError(f"expected a qiskit BitArray, got {type(bit_array).__name__}")
    bits = np.asarray(to_bool(order="little"), dtype=np.uint8)
    return bits.reshape(-1, int(bit_array.num_bits))


def validate_bits(bits: object, shots: int, n_qubits: int, sampler: str) -> np.ndarray:
    """Check a sampler's output; a plugin returning the wrong thing gets a clear error."""
    arr = np.asarray(bits)
    if arr.shape != (shots, n_qubits):
        raise ValueError(
            f"sampler {sampler!r} returned shape {arr.shape}, expected {(shots, n_qubits)}"
        )
    if arr.dtype != np.uint8:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"sampler {sampler!r} returned values other than 0 and 1")
        arr = arr.astype(np.uint8)
    elif arr.size and arr.max() > 1:
        raise ValueError(f"sampler {sampler!r} returned values other than 0 and 1")
    return arr
