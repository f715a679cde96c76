"""``QuantumLayer``: the re-uploading PQC of the hybrid perturbation model as a torch module.

Circuit (per input row ``x`` of ``n`` angles, ``L`` layers, weights ``w`` of shape ``(L, n, 3)``)::

    for l in 0..L-1:
        if reupload or l == 0:  RX(x_q) on every qubit q        (angle embedding)
        RX(w[l, q, 0]) RY(w[l, q, 1]) RZ(w[l, q, 2]) on every qubit q
        CNOT(c, t) for (c, t) in the entangling pairs (ring: (0,1), (1,2), ..., (n-1,0))
    readout "xyz": <X_0..X_{n-1}>, <Y_0..Y_{n-1}>, <Z_0..Z_{n-1}>;  "z": <Z_0..Z_{n-1}>

Torch runs it on the batched statevector of :mod:`qsimcells.nn.statevector`, with exact
rewrites that keep every step a large tensor operation:

- the rotations of a qubit in one layer fuse (``RZ RY RX(w0) RX(x) = RZ RY RX(w0 + x)``);
- layer 0 acts on ``|0...0>``, so its state is the product of the qubits' first columns;
- in later layers ``RX(a) = H RZ(a) H``: the per-sample part, a product of RZs over all qubits,
  is one diagonal phase ``exp(-i/2 sum_q a_q z_q(i))``, and the rest (Hadamards, then
  ``RZ RY H``) is shared by the batch: one matrix product per group of 4 qubits (16x16 blocks);
- a layer's CNOT block is one precomputed basis permutation.

:meth:`QuantumLayer.to_qiskit` writes the same circuit gate by gate for Qiskit (export, Aer,
IBM), and :func:`expectations_from_sampler` evaluates it with
shots on any registered circuit sampler.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._utils import RngLike, as_generator, check_choice, check_positive_int, seed_sequence
from .statevector import (
    _COMPLEX,
    MAX_QUBITS,
    _apply_blocks,
    _blocks,
    expectation,
    expectations_xyz,
    permutation_of_cnots,
    resolve_device,
    resolve_dtype,
    z_signs,
)

if TYPE_CHECKING:  # pragma: no cover
    from qiskit import QuantumCircuit

__all__ = ["QuantumLayer", "entangling_pairs", "expectations_from_sampler"]

READOUTS = ("xyz", "z")
ENTANGLEMENTS = ("ring", "linear", "none")


def entangling_pairs(n_qubits: int, entanglement: str) -> list[tuple[int, int]]:
    """The ``(control, target)`` CNOTs of one layer, in order.

    Parameters
    ----------
    n_qubits
        Number of qubits.
    entanglement
        ``"ring"`` ((0,1), (1,2), ..., (n-1,0); for two qubits (0,1), (1,0)), ``"linear"``
        (the ring without the wrap) or ``"none"``. One qubit has no CNOTs.

    Returns
    -------
    list of tuple
        The pairs.
    """
    n_qubits = check_positive_int("n_qubits", n_qubits)
    check_choice("entanglement", entanglement, ENTANGLEMENTS)
    if entanglement == "none" or n_qubits == 1:
        return []
    pairs = [(q, q + 1) for q in range(n_qubits - 1)]
    return [*pairs, (n_qubits - 1, 0)] if entanglement == "ring" else pairs


def _rotation_matrices(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Entries of ``RZ(c) RY(b) RX(a)`` as a complex ``(2, 2, ...)`` tensor (broadcast shapes).

    ``RY(b) RX(a) = [[cb ca + i sb sa, -sb ca - i cb sa], [sb ca - i cb sa, cb ca - i sb sa]]``
    with ``ca = cos(a/2)`` etc.; ``RZ(c)`` multiplies row 0 by ``exp(-i c/2)``, row 1 by its
    conjugate.
    """
    ca, sa = torch.cos(a / 2), torch.sin(a / 2)
    cb, sb = torch.cos(b / 2), torch.sin(b / 2)
    m00 = torch.complex(cb * ca, sb * sa)
    m01 = torch.complex(-sb * ca, -cb * sa)
    m10 = torch.complex(sb * ca, -cb * sa)
    m11 = torch.complex(cb * ca, -sb * sa)
    phase = torch.polar(torch.ones_like(c), -c / 2)  # exp(-i c / 2), broadcast over the batch
    top, bottom = phase, phase.conj()
    return torch.stack(
        (torch.stack((top * m00, top * m01)), torch.stack((bottom * m10, bottom * m11)))
    )


def _hadamard(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The one-qubit Hadamard as a complex tensor."""
    return torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=dtype, device=device) / math.sqrt(2)


class QuantumLayer(torch.nn.Module):
    """Re-uploading parameterised quantum circuit with per-qubit Pauli readout.

    Inputs ``(B, n_qubits)`` are RX angles (radians), re-embedded before every variational layer
    when ``reupload`` (once, before the first layer, otherwise). Each variational layer applies a
    trainable RX, RY, RZ per qubit and then CNOTs on the chosen topology (see
    :func:`entangling_pairs`). The output is ``(B, 3 n_qubits)`` ordered
    ``X_0..X_{n-1}, Y_0..Y_{n-1}, Z_0..Z_{n-1}`` for ``readout="xyz"``, ``(B, n_qubits)`` of
    ``<Z_q>`` for ``"z"``. Gradients flow to the weights and to the inputs.

    Parameters
    ----------
    n_qubits
        Qubits (the input width).
    n_layers
        Variational layers.
    readout
        ``"xyz"`` or ``"z"``.
    entanglement
        ``"ring"``, ``"linear"`` or ``"none"``.
    reupload
        Re-embed the inputs before every layer (data re-uploading).
    dtype
        ``"float32"`` (state complex64) or ``"float64"`` (complex128); ``layer.double()`` also
        switches.
    device
        Torch device (``None`` = CPU); ``layer.to(device)`` also moves it.
    rng
        Seed or generator of the initial weights (uniform in ``[0, 2 pi)``).

    Attributes
    ----------
    weights
        ``torch.nn.Parameter`` of shape ``(n_layers, n_qubits, 3)``: the RX, RY, RZ angles.
    pairs
        The ``(control, target)`` CNOTs of one layer.
    """

    # registered buffers (torch.nn.Module's own attribute lookup hides their type)
    _perm: torch.Tensor
    _perm_h: torch.Tensor

    def __init__(
        self,
        n_qubits: int = 8,
        n_layers: int = 3,
        readout: str = "xyz",
        entanglement: str = "ring",
        reupload: bool = True,
        *,
        dtype: Any = "float32",
        device: Any = None,
        rng: RngLike = None,
    ) -> None:
        super().__init__()
        self.n_qubits = check_positive_int("n_qubits", n_qubits)
        if self.n_qubits > MAX_QUBITS:
            raise ValueError(f"n_qubits: {n_qubits} exceeds the engine's limit of {MAX_QUBITS}")
        self.n_layers = check_positive_int("n_layers", n_layers)
        check_choice("readout", readout, READOUTS)
        check_choice("entanglement", entanglement, ENTANGLEMENTS)
        if not isinstance(reupload, (bool, np.bool_)):
            raise TypeError(f"reupload: expected True or False, got {reupload!r}")
        self.readout, self.entanglement, self.reupload = readout, entanglement, bool(reupload)
        real, dev = resolve_dtype(dtype), resolve_device(device)
        init = as_generator(rng).uniform(0.0, 2 * math.pi, (self.n_layers, self.n_qubits, 3))
        self.weights = torch.nn.Parameter(torch.as_tensor(init, dtype=real, device=dev))
        self.pairs = entangling_pairs(self.n_qubits, entanglement)
        perm = permutation_of_cnots(self.n_qubits, self.pairs)
        # a buffer, so that .to(device) moves it; not saved: it follows from the settings
        self.register_buffer("_perm", torch.as_tensor(perm), persistent=False)
        # the same CNOTs seen through Hadamards on every qubit: control and target swap
        perm_h = permutation_of_cnots(self.n_qubits, [(t, c) for c, t in self.pairs])
        self.register_buffer("_perm_h", torch.as_tensor(perm_h), persistent=False)

    @property
    def n_parameters(self) -> int:
        """Number of trainable angles, ``3 n_layers n_qubits``."""
        return self.weights.numel()

    @property
    def n_outputs(self) -> int:
        """Output width: ``3 n_qubits`` for ``"xyz"``, ``n_qubits`` for ``"z"``."""
        return self.n_qubits * (3 if self.readout == "xyz" else 1)

    def extra_repr(self) -> str:
        return (
            f"n_qubits={self.n_qubits}, n_layers={self.n_layers}, readout={self.readout!r}, "
            f"entanglement={self.entanglement!r}, reupload={self.reupload}, "
            f"dtype={self.weights.dtype}, device={self.weights.device}"
        )

    def _check_input(self, x: Any) -> torch.Tensor:
        w = self.weights
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        if x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"x: expected real input angles, got dtype {x.dtype}")
        if x.dim() != 2 or x.shape[1] != self.n_qubits:
            raise ValueError(
                f"x: expected shape (batch, {self.n_qubits}) (one angle per qubit), "
                f"got {tuple(x.shape)}"
            )
        if x.device != w.device:
            raise ValueError(
                f"x: is on {x.device} but the layer is on {w.device}; move one "
                "(x.to(layer.weights.device) or layer.to(x.device))"
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x: input angles must be finite (found NaN or inf)")
        return x.to(w.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Expectations for a batch of input angles.

        Parameters
        ----------
        x
            ``(B, n_qubits)`` real angles.

        Returns
        -------
        torch.Tensor
            ``(B, 3 n_qubits)`` (``"xyz"``) or ``(B, n_qubits)`` (``"z"``).
        """
        x = self._check_input(x)
        w = self.weights
        batch, n = x.shape[0], self.n_qubits
        # Later layers need RX(w0 + x) per sample: RX(a) = H RZ(a) H, and the RZs of all qubits
        # are one diagonal phase exp(-i/2 sum_q a_q z_q(i)). The leading H of a layer is moved
        # back into the previous one, past its CNOTs (H H CNOT(c, t) H H = CNOT(t, c)), so each
        # layer is one phase, one pass of shared 16x16 blocks and one permutation.
        hadamard_frame = self.reupload and self.n_layers > 1
        h = _hadamard(_COMPLEX[w.dtype], w.device)
        # layer 0 acts on |0...0>: the product of the first columns of the per-sample
        # RZ RY RX(w0 + x) (then H), qubit n-1 leading, each lower qubit the new lowest bit
        first = _rotation_matrices(w[0, :, 0] + x, w[0, :, 1], w[0, :, 2])  # (2, 2, B, n)
        columns = first[:, 0].permute(2, 1, 0)  # (n, B, 2)
        if hadamard_frame:
            columns = columns @ h.T
        state = columns[n - 1]
        for q in range(n - 2, -1, -1):
            state = (state.unsqueeze(-1) * columns[q].unsqueeze(-2)).reshape(batch, 2 ** (n - q))
        if self.n_layers > 1:  # the shared blocks of every later layer, built at once
            b, c = w[1:, :, 1], w[1:, :, 2]  # (L - 1, n)
            a = torch.zeros_like(b) if self.reupload else w[1:, :, 0]
            shared = _rotation_matrices(a, b, c).permute(3, 2, 0, 1)  # (n, L - 1, 2, 2)
            if self.reupload:  # RZ RY H, and all but the last take the next layer's H
                shared = shared @ h
                shared = torch.cat((h @ shared[:, :-1], shared[:, -1:]), dim=1)
            blocks = _blocks(shared)  # each (L - 1, d, d)
        if hadamard_frame:  # (B, L - 1, 2**n): the per-sample phases of every later layer
            signs = z_signs(n, dtype=w.dtype, device=w.device)
            angles = (w[1:, :, 0] + x.unsqueeze(1)) @ signs.T * -0.5
            phases = torch.polar(torch.ones_like(angles), angles)
        for layer in range(self.n_layers):
            last = layer == self.n_layers - 1
            if layer > 0:
                if self.reupload:
                    state = state * phases[:, layer - 1]
                state = _apply_blocks(state, [block[layer - 1] for block in blocks])
            if self.pairs:  # the layer's CNOTs as one basis permutation
                perm = self._perm_h if hadamard_frame and not last else self._perm
                state = state.index_select(1, perm)
        state = state.reshape((batch,) + (2,) * n)
        if self.readout == "xyz":
            return expectations_xyz(state)
        return expectation(state, "Z")

    def _circuit(self, x: Any, w: Any) -> QuantumCircuit:
        """The circuit gate by gate, for bound values or Qiskit parameters."""
        from qiskit import QuantumCircuit

        n = self.n_qubits
        circuit = QuantumCircuit(n, name="qsimcells_pqc")
        for layer in range(self.n_layers):
            if self.reupload or layer == 0:
                for q in range(n):
                    circuit.rx(x[q], q)
            for q in range(n):
                circuit.rx(w[layer][q][0], q)
                circuit.ry(w[layer][q][1], q)
                circuit.rz(w[layer][q][2], q)
            for control, target in self.pairs:
                circuit.cx(control, target)
        return circuit

    def parametrized_circuit(self) -> tuple[QuantumCircuit, Any, Any]:
        """The circuit with free Qiskit parameters (for Qiskit's own QNNs and estimators).

        Returns
        -------
        circuit : qiskit.QuantumCircuit
            The unbound circuit.
        inputs : qiskit.circuit.ParameterVector
            ``x[q]``, the input angles.
        weights : qiskit.circuit.ParameterVector
            ``w[(l * n_qubits + q) * 3 + k]``, i.e. ``self.weights.flatten()`` order.
        """
        from qiskit.circuit import ParameterVector

        n, n_layers = self.n_qubits, self.n_layers
        x = ParameterVector("x", n)
        w = ParameterVector("w", n_layers * n * 3)
        nested = [
            [[w[(layer * n + q) * 3 + k] for k in range(3)] for q in range(n)]
            for layer in range(n_layers)
        ]
        return self._circuit(x, nested), x, w

    def to_qiskit(self, x_row: Any, *, measure_basis: str | None = None) -> QuantumCircuit:
        """The bound Qiskit circuit for one input row, the same gates that :meth:`forward` runs.

        Parameters
        ----------
        x_row
            ``(n_qubits,)`` input angles (a ``(1, n_qubits)`` row is accepted too).
        measure_basis
            ``None``: no measurements (for ``qiskit.quantum_info.Statevector``). ``"X"``, ``"Y"``
            or ``"Z"`` (or a string of ``n_qubits`` such letters, one per qubit): rotate each
            qubit into that basis (X: H; Y: S-dagger then H; Z: nothing) and measure every
            qubit, qubit ``q`` into clbit ``q``, so that bit ``b`` means eigenvalue
            ``1 - 2 b`` of that Pauli.

        Returns
        -------
        qiskit.QuantumCircuit
            The circuit.
        """
        row = x_row.detach().cpu().numpy() if isinstance(x_row, torch.Tensor) else x_row
        row = np.asarray(row, dtype=np.float64)
        if row.shape == (1, self.n_qubits):
            row = row[0]
        if row.shape != (self.n_qubits,):
            raise ValueError(
                f"x_row: expected shape ({self.n_qubits},) (one input row), got {row.shape}"
            )
        if not np.isfinite(row).all():
            raise ValueError("x_row: input angles must be finite (found NaN or inf)")
        bases = None
        if measure_basis is not None:
            bases = _check_basis(measure_basis, self.n_qubits)
        weights = self.weights.detach().cpu().double().numpy().tolist()
        circuit = self._circuit(row.tolist(), weights)
        if bases is not None:
            for q, basis in enumerate(bases):
                if basis == "X":
                    circuit.h(q)
                elif basis == "Y":
                    circuit.sdg(q)
                    circuit.h(q)
            circuit.measure_all()
        return circuit


def _check_basis(measure_basis: Any, n_qubits: int) -> str:
    if (
        not isinstance(measure_basis, str)
        or not measure_basis
        or set(measure_basis) - {"X", "Y", "Z"}
        or len(measure_basis) not in (1, n_qubits)
    ):
        raise ValueError(
            f"measure_basis: {measure_basis!r} is not allowed; choose None, 'X', "
            f"'Y', 'Z' or a string of {n_qubits} of these letters (one per qubit)"
        )
    return measure_basis * n_qubits if len(measure_basis) == 1 else measure_basis


def expectations_from_sampler(
    layer: QuantumLayer,
    x_row: Any,
    *,
    shots: int = 4096,
    sampler: str = "statevector",
    rng: RngLike = None,
    return_stderr: bool = False,
    **options: Any,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Estimate ``layer(x_row)`` from shots of :meth:`QuantumLayer.to_qiskit` on a registered
    circuit sampler (what running the layer on Aer or IBM hardware means).

    For each readout basis (X, Y, Z for ``"xyz"``; Z for ``"z"``) the circuit gets its basis
    rotations and is sampled ``shots`` times; ``<P_q> = 1 - 2 * mean(bit_q)``.

    Parameters
    ----------
    layer
        The layer (its current weights are bound).
    x_row
        ``(n_qubits,)`` input angles.
    shots
        Shots per basis.
    sampler
        A registered circuit sampler name (``"statevector"``, ``"aer"``, ``"ibm"``, ``"auto"``;
        ``"exact"`` takes only circuits it samples exactly, e.g. one layer with Z readout).
    rng
        Seed or generator; each basis gets its own independent stream.
    return_stderr
        Also return the standard error of each estimate, ``sqrt((1 - e**2) / shots)``.
    **options
        Passed to the sampler's factory.

    Returns
    -------
    numpy.ndarray
        ``(layer.n_outputs,)`` in the layer's output order (and the standard errors).
    """
    from ..samplers import sample_bits

    if not isinstance(layer, QuantumLayer):
        raise TypeError(f"layer: expected a qs.nn.QuantumLayer, got {type(layer).__name__}")
    shots = check_positive_int("shots", shots)
    bases = ["X", "Y", "Z"] if layer.readout == "xyz" else ["Z"]
    streams = seed_sequence(rng).spawn(len(bases))
    values = []
    for basis, stream in zip(bases, streams, strict=True):
        circuit = layer.to_qiskit(x_row, measure_basis=basis)
        bits = sample_bits(
            circuit, shots, sampler=sampler, rng=np.random.default_rng(stream), **options
        )
        assert isinstance(bits, np.ndarray)  # return_info=False: the bits alone
        values.append(1.0 - 2.0 * bits.mean(axis=0))
    estimate = np.concatenate(values)
    if return_stderr:
        return estimate, np.sqrt(np.clip(1.0 - estimate**2, 0.0, None) / shots)
    return estimate
