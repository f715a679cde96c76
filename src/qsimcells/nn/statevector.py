"""A batched torch statevector: the training engine of the hybrid quantum layers.

The state of ``n`` qubits for a batch of ``B`` samples is one complex tensor of shape
``(B, 2, ..., 2)`` (``n`` twos). Axis ``1 + (n - 1 - q)`` belongs to qubit ``q``, so that
flattening the trailing axes in C order gives Qiskit's little-endian index (qubit ``q`` is bit
``q`` of a basis-state index) without any copy: :func:`to_amplitudes` is a reshape.

Every gate returns a new tensor (no in-place writes), so autograd flows through angles, inputs
and states. A one-qubit gate is a 2x2 contraction on the view ``(B, 2**(n-1-q), 2, 2**q)``;
CNOT is a slice flip, CZ a sign, a block of CNOTs one basis permutation
(:func:`permutation_of_cnots`), and a one-qubit matrix on every qubit (:func:`apply_product`) a
few products with 16x16 blocks; no ``2**n x 2**n`` matrix is ever built. Angles may be a float,
a 0-d tensor (one angle for the batch) or a ``(B,)`` tensor (one angle per sample). The readouts
(:func:`expectation`, :func:`expectations_xyz`, :func:`probabilities`, :func:`marginal_ones`,
:func:`to_amplitudes`) use Qiskit's index order.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .._utils import check_choice, check_positive_int

__all__ = [
    "apply_matrix",
    "apply_permutation",
    "apply_product",
    "cnot",
    "cz",
    "expectation",
    "expectations_xyz",
    "marginal_ones",
    "n_qubits_of",
    "permutation_of_cnots",
    "probabilities",
    "resolve_device",
    "resolve_dtype",
    "rx",
    "ry",
    "rz",
    "to_amplitudes",
    "z_signs",
    "zero_state",
]

_REAL = {"float32": torch.float32, "float64": torch.float64}
_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}
_REAL_OF = {torch.complex64: torch.float32, torch.complex128: torch.float64}
#: the statevector has 2**n amplitudes per sample; beyond this the engine refuses (memory)
MAX_QUBITS = 30


def resolve_dtype(dtype: Any) -> torch.dtype:
    """The real torch dtype for ``dtype`` (``"float32"``, ``"float64"`` or the torch dtypes).

    Parameters
    ----------
    dtype
        Real precision of the engine; the state is complex64 / complex128.

    Returns
    -------
    torch.dtype
        ``torch.float32`` or ``torch.float64``.
    """
    if isinstance(dtype, torch.dtype):
        if dtype in _COMPLEX:
            return dtype
        raise ValueError(f"dtype: {dtype} is not allowed; choose one of ['float32', 'float64']")
    check_choice("dtype", dtype, list(_REAL))
    return _REAL[dtype]


def resolve_device(device: Any) -> torch.device:
    """The torch device for ``device``, with a clear error when it is not usable here.

    Parameters
    ----------
    device
        ``None`` (CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a :class:`torch.device`.

    Returns
    -------
    torch.device
        The device.
    """
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device: {device!r} is not a torch device ({err})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device: {device!r} requested but CUDA is not available in this "
                f"torch build ({torch.__version__}); use device='cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device: {device!r} requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device: {device!r} requested but MPS is not available; use device='cpu'")
    return dev


def zero_state(
    batch_size: int, n_qubits: int, *, dtype: Any = "float32", device: Any = "cpu"
) -> torch.Tensor:
    """``|0...0>`` for every sample of a batch.

    Parameters
    ----------
    batch_size
        Number of samples ``B``.
    n_qubits
        Number of qubits ``n`` (at most 30).
    dtype
        Real precision, ``"float32"`` (state complex64) or ``"float64"`` (complex128).
    device
        Torch device (``"cpu"``, ``"cuda"``, ...).

    Returns
    -------
    torch.Tensor
        Complex tensor of shape ``(B, 2, ..., 2)``; qubit ``q`` on axis ``1 + n - 1 - q``.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    n_qubits = check_positive_int("n_qubits", n_qubits)
    if n_qubits > MAX_QUBITS:
        raise ValueError(
            f"n_qubits: {n_qubits} exceeds the engine's limit of {MAX_QUBITS} "
            f"(the state holds 2**n_qubits amplitudes per sample)"
        )
    real = resolve_dtype(dtype)
    state = torch.zeros(
        (batch_size, 2**n_qubits), dtype=_COMPLEX[real], device=resolve_device(device)
    )
    state[:, 0] = 1.0
    return state.reshape((batch_size,) + (2,) * n_qubits)


def n_qubits_of(state: torch.Tensor) -> int:
    """Number of qubits of an engine state (checks that it is one).

    Parameters
    ----------
    state
        An engine state (see :func:`zero_state`).

    Returns
    -------
    int
        ``n``.
    """
    if not isinstance(state, torch.Tensor):
        raise TypeError(
            f"state: expected a torch.Tensor from qs.nn.zero_state, got {type(state).__name__}"
        )
    if state.dtype not in _REAL_OF:
        raise TypeError(f"state: expected a complex64/complex128 tensor, got {state.dtype}")
    if state.dim() < 2 or any(d != 2 for d in state.shape[1:]):
        raise ValueError(f"state: expected shape (batch, 2, ..., 2), got {tuple(state.shape)}")
    return state.dim() - 1


def _check_qubit(field: str, qubit: Any, n: int) -> int:
    if isinstance(qubit, bool) or not isinstance(qubit, (int, np.integer)):
        raise TypeError(f"{field}: expected an integer qubit index, got {qubit!r}")
    if not 0 <= qubit < n:
        raise ValueError(
            f"{field}: qubit {qubit} is out of range for {n} qubits (allowed 0..{n - 1})"
        )
    return int(qubit)


def _split(state: torch.Tensor, qubit: int) -> tuple[torch.Tensor, int]:
    """View ``state`` as ``(B, 2**(n-1-q), 2, 2**q)``: axis 2 is the qubit's value."""
    n = state.dim() - 1
    return state.reshape(state.shape[0], 2 ** (n - 1 - qubit), 2, 2**qubit), n


def _angle(state: torch.Tensor, angle: Any) -> torch.Tensor:
    """The angle as a real tensor broadcastable to ``(B, 1, 1)`` on the state's device."""
    real = _REAL_OF[state.dtype]
    if isinstance(angle, torch.Tensor):
        if angle.is_complex():
            raise TypeError("angle: expected a real angle, got a complex tensor")
        theta = angle.to(device=state.device, dtype=real)
    else:
        try:
            theta = torch.tensor(float(angle), dtype=real, device=state.device)
        except (TypeError, ValueError):
            raise TypeError(f"angle: expected a float or a tensor, got {angle!r}") from None
        if not math.isfinite(float(angle)):
            raise ValueError(f"angle: must be finite, got {angle!r}")
        return theta
    if theta.dim() == 0:
        return theta
    if theta.dim() == 1 and theta.shape[0] == state.shape[0]:
        return theta.reshape(-1, 1, 1)
    raise ValueError(
        f"angle: expected a float, a 0-d tensor or a ({state.shape[0]},) tensor of "
        f"per-sample angles, got shape {tuple(theta.shape)}"
    )


def _combine(
    state: torch.Tensor, qubit: int, m00: Any, m01: Any, m10: Any, m11: Any
) -> torch.Tensor:
    """Apply ``[[m00, m01], [m10, m11]]`` to ``qubit``; entries are scalars or ``(B, 1, 1)``."""
    view, _ = _split(state, qubit)
    a, b = view[:, :, 0], view[:, :, 1]
    return torch.stack((m00 * a + m01 * b, m10 * a + m11 * b), dim=2).reshape(state.shape)


def rx(state: torch.Tensor, qubit: int, angle: Any) -> torch.Tensor:
    """``RX(angle) = exp(-i angle X / 2)`` on ``qubit``.

    Parameters
    ----------
    state
        Engine state.
    qubit
        Target qubit.
    angle
        Float, 0-d tensor or ``(B,)`` tensor of per-sample angles.

    Returns
    -------
    torch.Tensor
        The new state.
    """
    q = _check_qubit("qubit", qubit, n_qubits_of(state))
    theta = _angle(state, angle)
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    ms = torch.complex(torch.zeros_like(s), -s)  # -i sin
    return _combine(state, q, c, ms, ms, c)


def ry(state: torch.Tensor, qubit: int, angle: Any) -> torch.Tensor:
    """``RY(angle) = exp(-i angle Y / 2)`` on ``qubit``.

    Parameters
    ----------
    state
        Engine state.
    qubit
        Target qubit.
    angle
        Float, 0-d tensor or ``(B,)`` tensor of per-sample angles.

    Returns
    -------
    torch.Tensor
        The new state.
    """
    q = _check_qubit("qubit", qubit, n_qubits_of(state))
    theta = _angle(state, angle)
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    return _combine(state, q, c, -s, s, c)


def rz(state: torch.Tensor, qubit: int, angle: Any) -> torch.Tensor:
    """``RZ(angle) = exp(-i angle Z / 2)`` on ``qubit`` (Qiskit's convention, global phase
    included).

    Parameters
    ----------
    state
        Engine state.
    qubit
        Target qubit.
    angle
        Float, 0-d tensor or ``(B,)`` tensor of per-sample angles.

    Returns
    -------
    torch.Tensor
        The new state.
    """
    q = _check_qubit("qubit", qubit, n_qubits_of(state))
    theta = _angle(state, angle)
    phase = torch.polar(torch.ones_like(theta), theta / 2)  # exp(i angle / 2)
    view, _ = _split(state, q)
    return torch.stack((view[:, :, 0] * phase.conj(), view[:, :, 1] * phase), dim=2).reshape(
        state.shape
    )


def apply_matrix(state: torch.Tensor, qubit: int, matrix: torch.Tensor) -> torch.Tensor:
    """Apply a one-qubit matrix, shared ``(2, 2)`` or per sample ``(B, 2, 2)``, to ``qubit``.

    Parameters
    ----------
    state
        Engine state.
    qubit
        Target qubit.
    matrix
        Complex ``(2, 2)`` or ``(B, 2, 2)`` tensor (unitarity is not checked).

    Returns
    -------
    torch.Tensor
        The new state.
    """
    q = _check_qubit("qubit", qubit, n_qubits_of(state))
    if not isinstance(matrix, torch.Tensor):
        matrix = torch.as_tensor(np.asarray(matrix))
    matrix = matrix.to(device=state.device, dtype=state.dtype)
    if matrix.shape == (2, 2):
        m = matrix
    elif matrix.shape == (state.shape[0], 2, 2):
        m = matrix.permute(1, 2, 0).reshape(
            2, 2, state.shape[0], 1, 1
        )  # entries of shape (B, 1, 1)
    else:
        raise ValueError(
            f"matrix: expected shape (2, 2) or ({state.shape[0]}, 2, 2), got {tuple(matrix.shape)}"
        )
    return _combine(state, q, m[0, 0], m[0, 1], m[1, 0], m[1, 1])


#: qubits whose 2x2 matrices are merged (Kronecker product) into one block for
#: :func:`apply_product`: 4 gives 16x16 blocks, few kernels per layer and no large matrices
GROUP = 4


def _kron(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Kronecker product of ``(..., d, d)`` and ``(..., 2, 2)`` over the last two axes (batched
    over the rest); ``a`` acts on the more significant bits."""
    d = a.shape[-1] * b.shape[-1]
    return torch.einsum("...ij,...kl->...ikjl", a, b).reshape(*a.shape[:-2], d, d)


def _blocks(matrices: torch.Tensor) -> list[torch.Tensor]:
    """Merge ``matrices`` ``(n, ..., 2, 2)`` (``matrices[q]`` for qubit ``q``) into blocks of up
    to :data:`GROUP` neighbouring qubits, least significant group first: ``(..., d, d)`` each."""
    n = matrices.shape[0]
    blocks = []
    low = 0
    while low < n:
        high = min(low + GROUP, n) - 1
        block = matrices[high]
        for q in range(high - 1, low - 1, -1):
            block = _kron(block, matrices[q])
        blocks.append(block)
        low = high + 1
    return blocks


def _apply_blocks(psi: torch.Tensor, blocks: list[torch.Tensor]) -> torch.Tensor:
    """Apply :func:`_blocks` output to a flat ``(B, 2**n)`` state: a shared ``(d, d)`` block is
    one matrix product for the whole batch, a per-sample ``(B, d, d)`` block a batched one."""
    batch, size = psi.shape
    for block in blocks:
        d = block.shape[-1]
        if block.dim() == 2:
            out = psi.reshape(batch * (size // d), d) @ block.T
        else:
            out = torch.bmm(psi.reshape(batch, size // d, d), block.transpose(1, 2))
        # the block acted on the trailing (least significant) qubits; move them to the front
        # so that the next group trails; after the last block the qubit order is back
        psi = out.reshape(batch, size // d, d).transpose(1, 2).reshape(batch, size)
    return psi


def z_signs(n_qubits: int, *, dtype: Any = "float64", device: Any = "cpu") -> torch.Tensor:
    """The ``(2**n, n)`` table of ``Z`` eigenvalues ``1 - 2 bit_q(i)`` (Qiskit index order).

    Parameters
    ----------
    n_qubits
        Number of qubits.
    dtype
        Real precision.
    device
        Torch device.

    Returns
    -------
    torch.Tensor
        Row ``i`` holds ``+1`` / ``-1`` for each qubit of basis state ``i``; ``probs @ table``
        gives ``<Z_q>``, and ``exp(-i/2 angles @ table.T)`` the diagonal of a product of RZs.
    """
    n_qubits = check_positive_int("n_qubits", n_qubits)
    return _readout_tables(n_qubits, resolve_device(device))[2].to(resolve_dtype(dtype))


def apply_product(state: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Apply one one-qubit matrix to every qubit at once, ``matrices[q]`` on qubit ``q``.

    The matrices of up to :data:`GROUP` neighbouring qubits are merged into one block (their
    Kronecker product, at most 16x16); each block is one matrix product on the trailing qubits
    of the state, which then moves those qubits to the front, so after all blocks the qubit
    order is back. Shared matrices make each block a single matrix product for the whole batch.

    Parameters
    ----------
    state
        Engine state.
    matrices
        Complex ``(n, 2, 2)`` (shared by the batch) or ``(n, B, 2, 2)`` (per sample).

    Returns
    -------
    torch.Tensor
        The new state.
    """
    n = n_qubits_of(state)
    batch = state.shape[0]
    if not isinstance(matrices, torch.Tensor):
        matrices = torch.as_tensor(np.asarray(matrices))
    matrices = matrices.to(device=state.device, dtype=state.dtype)
    if matrices.shape not in ((n, 2, 2), (n, batch, 2, 2)):
        raise ValueError(
            f"matrices: expected shape ({n}, 2, 2) or ({n}, {batch}, 2, 2), got "
            f"{tuple(matrices.shape)}"
        )
    return _apply_blocks(state.reshape(batch, 2**n), _blocks(matrices)).reshape(state.shape)


def _check_pair(state: torch.Tensor, a: Any, b: Any, names: tuple[str, str]) -> tuple[int, int]:
    n = n_qubits_of(state)
    a = _check_qubit(names[0], a, n)
    b = _check_qubit(names[1], b, n)
    if a == b:
        raise ValueError(f"{names[0]} and {names[1]} must be different qubits, both are {a}")
    return a, b


def cnot(state: torch.Tensor, control: int, target: int) -> torch.Tensor:
    """CNOT (CX): flip ``target`` where ``control`` is 1.

    Parameters
    ----------
    state
        Engine state.
    control, target
        Two different qubits.

    Returns
    -------
    torch.Tensor
        The new state.
    """
    control, target = _check_pair(state, control, target, ("control", "target"))
    n = state.dim() - 1
    ax_c, ax_t = 1 + n - 1 - control, 1 + n - 1 - target
    # the control=1 half with its target axis reversed; the target axis shifts down by one
    # when it lies after the control axis that select() removes
    flipped = state.select(ax_c, 1).flip(ax_t - (ax_t > ax_c))
    return torch.stack((state.select(ax_c, 0), flipped), dim=ax_c)


def cz(state: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """CZ: a sign of -1 where both qubits are 1 (symmetric in ``a`` and ``b``).

    Parameters
    ----------
    state
        Engine state.
    a, b
        Two different qubits.

    Returns
    -------
    torch.Tensor
        The new state.
    """
    a, b = _check_pair(state, a, b, ("a", "b"))
    n = state.dim() - 1
    shape = [1] * (n + 1)
    shape[1 + n - 1 - a] = shape[1 + n - 1 - b] = 2
    sign = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=state.dtype, device=state.device)
    return state * sign.reshape(shape)


def permutation_of_cnots(n_qubits: int, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """The basis permutation of a sequence of CNOTs, for :func:`apply_permutation`.

    Parameters
    ----------
    n_qubits
        Number of qubits.
    pairs
        ``(control, target)`` pairs, applied in order.

    Returns
    -------
    numpy.ndarray
        ``perm`` of length ``2**n`` with ``new[:, i] = old[:, perm[i]]`` (Qiskit index order).
    """
    n_qubits = check_positive_int("n_qubits", n_qubits)
    index = np.arange(2**n_qubits, dtype=np.int64)
    perm = index.copy()
    for control, target in pairs:
        control = _check_qubit("control", control, n_qubits)
        target = _check_qubit("target", target, n_qubits)
        if control == target:
            raise ValueError(f"control and target must be different qubits, both are {control}")
        # CNOT maps amplitude i to i ^ (bit_c(i) << t); it is its own inverse
        step = index ^ (((index >> control) & 1) << target)
        perm = perm[step]
    return perm


def apply_permutation(state: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Permute basis states: ``new[:, i] = old[:, perm[i]]`` (e.g. a block of CNOTs at once).

    Parameters
    ----------
    state
        Engine state.
    perm
        Integer tensor of length ``2**n`` (see :func:`permutation_of_cnots`).

    Returns
    -------
    torch.Tensor
        The new state.
    """
    n = n_qubits_of(state)
    if perm.shape != (2**n,):
        raise ValueError(f"perm: expected shape ({2**n},), got {tuple(perm.shape)}")
    flat = state.reshape(state.shape[0], 2**n)
    return flat.index_select(1, perm.to(state.device)).reshape(state.shape)


def to_amplitudes(state: torch.Tensor) -> torch.Tensor:
    """Amplitudes as ``(B, 2**n)`` in Qiskit's index order (qubit ``q`` = bit ``q``).

    Parameters
    ----------
    state
        Engine state.

    Returns
    -------
    torch.Tensor
        Complex ``(B, 2**n)``; row ``b`` compares with ``qiskit.quantum_info.Statevector.data``.
    """
    n = n_qubits_of(state)
    return state.reshape(state.shape[0], 2**n)


def probabilities(state: torch.Tensor) -> torch.Tensor:
    """Born probabilities ``(B, 2**n)`` in Qiskit's index order (qubit ``q`` = bit ``q``).

    Parameters
    ----------
    state
        Engine state.

    Returns
    -------
    torch.Tensor
        Real ``(B, 2**n)``.
    """
    amplitudes = to_amplitudes(state)
    return amplitudes.real**2 + amplitudes.imag**2


def marginal_ones(state: torch.Tensor) -> torch.Tensor:
    """Probability that each qubit reads 1 in the Z basis.

    Parameters
    ----------
    state
        Engine state.

    Returns
    -------
    torch.Tensor
        Real ``(B, n)``; column ``q`` is qubit ``q``.
    """
    n = n_qubits_of(state)
    ones = (1.0 - _readout_tables(n, state.device)[2].to(_REAL_OF[state.dtype])) / 2
    return probabilities(state) @ ones


@functools.lru_cache(maxsize=32)
def _readout_tables(
    n: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Index tables for the per-qubit readout: for each qubit ``q`` the ``2**(n-1)`` indices with
    bit ``q`` = 0 and their partners with bit ``q`` = 1 (flattened, ``(n * 2**(n-1),)``), and the
    ``(2**n, n)`` table of ``Z`` eigenvalues ``1 - 2 bit_q(i)``."""
    index = np.arange(2**n, dtype=np.int64)
    zeros = np.stack([index[((index >> q) & 1) == 0] for q in range(n)])
    ones = zeros + (1 << np.arange(n, dtype=np.int64))[:, None]
    signs = 1.0 - 2.0 * ((index[:, None] >> np.arange(n)) & 1)
    return (
        torch.as_tensor(zeros.ravel(), device=device),
        torch.as_tensor(ones.ravel(), device=device),
        torch.as_tensor(signs, dtype=torch.float64, device=device),
    )


def _coherences(state: torch.Tensor) -> torch.Tensor:
    """Per qubit ``sum conj(a0) a1`` over the amplitude pairs that differ only in that qubit
    (two gathers, no loop over qubits). ``(B, n)`` complex."""
    n, batch = state.dim() - 1, state.shape[0]
    zeros, ones, _ = _readout_tables(n, state.device)
    flat = state.reshape(batch, 2**n)
    a = flat.index_select(1, zeros).reshape(batch, n, 2 ** (n - 1))
    b = flat.index_select(1, ones).reshape(batch, n, 2 ** (n - 1))
    return (a.conj() * b).sum(-1)


def _z_expectations(state: torch.Tensor) -> torch.Tensor:
    """``<Z_q> = sum_i p_i (1 - 2 bit_q(i))``: one matrix product. ``(B, n)`` real."""
    n = state.dim() - 1
    signs = _readout_tables(n, state.device)[2].to(_REAL_OF[state.dtype])
    return probabilities(state) @ signs


def expectations_xyz(state: torch.Tensor) -> torch.Tensor:
    """``<X_q>``, ``<Y_q>``, ``<Z_q>`` of every qubit in one pass.

    Parameters
    ----------
    state
        Engine state.

    Returns
    -------
    torch.Tensor
        Real ``(B, 3 n)`` ordered ``X_0..X_{n-1}, Y_0..Y_{n-1}, Z_0..Z_{n-1}``.
    """
    n_qubits_of(state)
    coherence = _coherences(state)
    # <X> = 2 Re(conj(a0) a1), <Y> = 2 Im(conj(a0) a1)
    return torch.cat((2 * coherence.real, 2 * coherence.imag, _z_expectations(state)), dim=1)


def expectation(state: torch.Tensor, pauli: str) -> torch.Tensor:
    """Per-qubit single-Pauli expectation ``<P_q>`` for ``pauli`` in ``"X"``, ``"Y"``, ``"Z"``.

    Parameters
    ----------
    state
        Engine state.
    pauli
        ``"X"``, ``"Y"`` or ``"Z"``.

    Returns
    -------
    torch.Tensor
        Real ``(B, n)``; column ``q`` is ``<P>`` on qubit ``q``.
    """
    check_choice("pauli", pauli, ["X", "Y", "Z"])
    n_qubits_of(state)
    if pauli == "Z":
        return _z_expectations(state)
    coherence = _coherences(state)
    return 2 * (coherence.real if pauli == "X" else coherence.imag)
