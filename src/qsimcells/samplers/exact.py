"""The ``exact`` sampler: a classical path that samples many circuits exactly (DESIGN §5).

Idea. Measuring a qubit early changes nothing as long as every later operation on it is diagonal
in the Z basis or a bit flip (X, or the target of a CX whose controls are already bits). So a qubit
is kept as a *pending* single-qubit state until it is first used as a control, and only then turned
into a sampled bit. Conditional on the bits sampled so far, a pending qubit is a pure state of two
amplitudes per shot; single-qubit gates act on those amplitudes and controlled single-qubit gates
(CX, CCX, CRY, CZ, CRX, open controls, ...) act on them where their control bits are set. A CX
on a pending target is stored as a per-shot flip mask, so the common RY + CX circuit never needs
per-shot amplitudes. The cost is O(shots x gates) for any number of qubits.

What breaks the rule: a non-diagonal, non-flip gate on a qubit after it served as a control (the
early measurement would destroy the coherence that the gate could still use), and multi-qubit
gates that are not controlled single-qubit gates, SWAP, or built from those. Such circuits are
refused with :class:`NotExactError`; ``sampler="auto"`` then falls back to a statevector.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ControlledGate, Gate

from ._cache import circuit_key

_ATOL = 1e-12
_IGNORED = {"barrier", "delay", "id", "global_phase"}
SUPPORTED = (
    "any single-qubit gate on a qubit not yet used as a control (RY, RX, RZ, H, U, X, ...), "
    "X/Z-type gates (X, Y, Z, S, T, RZ, P) on any qubit, controlled single-qubit gates "
    "(CX, CCX, MCX, CRY, CRX, CRZ, CZ, CP, CU, open controls), SWAP, measure, reset, barrier, "
    "and gates whose definition uses only these"
)


class NotExactError(ValueError):
    """The circuit has no exact classical sampling path."""


@dataclass(frozen=True)
class _Op:
    kind: str  # unitary, flip, sample, xor, expand, swap, reset
    target: int
    matrix: np.ndarray | None = None
    controls: tuple[tuple[int, int], ...] = ()  # (qubit, required bit)
    other: int = -1  # second qubit of a swap


def _shape(matrix: np.ndarray) -> str:
    """'diag' (phases only), 'x' (a bit flip up to global phase), 'flip' (anti-diagonal) or
    'general'."""
    off = abs(matrix[0, 1]) + abs(matrix[1, 0])
    on = abs(matrix[0, 0]) + abs(matrix[1, 1])
    if off < _ATOL:
        return "diag"
    if on < _ATOL:
        return "x" if abs(matrix[0, 1] - matrix[1, 0]) < _ATOL else "flip"
    return "general"


def _matrix(op: Gate, where: str) -> np.ndarray:
    if op.is_parameterized():
        raise ValueError(
            f"{where}: gate {op.name!r} has unbound parameters; bind them first "
            "(circuit.assign_parameters)"
        )
    try:
        return np.asarray(op.to_matrix(), dtype=np.complex128)
    except Exception:  # composite gates (sub-circuits, custom controlled gates) have no __array__
        from qiskit.quantum_info import Operator

        return np.asarray(Operator(op).data, dtype=np.complex128)


class _Compiler:
    """Walks a circuit once, tracking only whether each qubit is pending, sampled because it
    became a control ("deferred"), or collapsed by a real measurement, and emits the operations
    to run per shot. Raises NotExactError where the rule breaks."""

    def __init__(self, n_qubits: int) -> None:
        self.status = ["pending"] * n_qubits
        self.ops: list[_Op] = []

    def run(self, circuit: QuantumCircuit, qubit_map: list[int], path: str = "") -> None:
        for position, instruction in enumerate(circuit.data):
            op = instruction.operation
            qubits = [qubit_map[circuit.find_bit(q).index] for q in instruction.qubits]
            where = f"instruction #{position}{path} ({op.name} on qubits {qubits})"
            name = op.name
            if name in _IGNORED:
                continue
            if getattr(op, "blocks", None):
                raise NotExactError(f"{where}: classical control flow has no exact path")
            if name == "measure":
                self._measure(qubits[0])
            elif name == "reset":
                self.ops.append(_Op("reset", qubits[0]))
                self.status[qubits[0]] = "pending"
            elif name == "swap" and not isinstance(op, ControlledGate):
                a, b = qubits
                self.ops.append(_Op("swap", a, other=b))
                self.status[a], self.status[b] = self.status[b], self.status[a]
            elif isinstance(op, ControlledGate) and op.base_gate.num_qubits == 1:
                k = op.num_ctrl_qubits
                states = tuple((op.ctrl_state >> i) & 1 for i in range(k))
                self._controlled(
                    tuple(zip(qubits[:k], states, strict=True)),
                    qubits[k],
                    _matrix(op.base_gate, where),
                    where,
                )
            elif isinstance(op, Gate) and op.num_qubits == 1:
                self._controlled((), qubits[0], _matrix(op, where), where)
            elif isinstance(op, Gate) and op.definition is not None and op.definition.data:
                self.run(op.definition, qubits, path=f"{path} in {where}")
            else:
                raise NotExactError(
                    f"{where}: no exact classical path for this gate; supported: {SUPPORTED}"
                )

    def _measure(self, q: int) -> None:
        if self.status[q] == "pending":
            self.ops.append(_Op("sample", q))
        self.status[q] = "collapsed"

    def _controlled(
        self, controls: tuple[tuple[int, int], ...], target: int, matrix: np.ndarray, where: str
    ) -> None:
        for control, _ in controls:
            if control == target:
                raise NotExactError(f"{where}: control and target are the same qubit")
            if self.status[control] == "pending":
                self.ops.append(_Op("sample", control))
                self.status[control] = "deferred"
        shape = _shape(matrix)
        if self.status[target] == "pending":
            kind = "flip" if shape == "x" else "unitary"
            self.ops.append(_Op(kind, target, matrix=matrix, controls=controls))
        elif shape == "diag":
            pass  # a phase on a basis state: no effect on any later Z-basis outcome
        elif shape in {"x", "flip"}:
            self.ops.append(_Op("xor", target, controls=controls))
            if self.status[target] == "collapsed" and any(
                self.status[c] == "deferred" for c, _ in controls
            ):
                # its value now depends on a qubit that was only sampled early, so it is no
                # longer a classical bit that may be rotated again
                self.status[target] = "deferred"
        elif self.status[target] == "collapsed":
            self.ops.append(_Op("expand", target, matrix=matrix, controls=controls))
            self.status[target] = "pending"
        else:
            raise NotExactError(
                f"{where}: a rotation of qubit {target} after it was used as a control (or "
                "flipped by a qubit that was) has no exact classical path (use a statevector "
                "or Aer sampler)"
            )


def compile_exact(circuit: QuantumCircuit) -> list[_Op]:
    """The per-shot program of ``circuit``; raises :class:`NotExactError` if there is none."""
    compiler = _Compiler(circuit.num_qubits)
    compiler.run(circuit, list(range(circuit.num_qubits)))
    return compiler.ops


class _Shots:
    """Per-shot state of all qubits while a program runs."""

    def __init__(self, n_qubits: int, shots: int, rng: np.random.Generator) -> None:
        self.shots, self.rng = shots, rng
        self.amps: list[np.ndarray | None] = [
            np.array([1.0, 0.0], dtype=np.complex128) for _ in range(n_qubits)
        ]
        self.flip: list[np.ndarray | None] = [None] * n_qubits
        self.bits: list[np.ndarray | None] = [None] * n_qubits

    # Each qubit is either pending (its amplitudes in ``amps``, maybe conditional flips in
    # ``flip``) or sampled (its bits in ``bits``); the op list only ever asks for the state a
    # qubit is in, which the asserts below state for the type checker.
    def _bits(self, q: int) -> np.ndarray:
        bits = self.bits[q]
        assert bits is not None, f"qubit {q} is not sampled yet"
        return bits

    def _amps(self, q: int) -> np.ndarray:
        amps = self.amps[q]
        assert amps is not None, f"qubit {q} is not pending"
        return amps

    def condition(self, controls: tuple[tuple[int, int], ...]) -> np.ndarray | None:
        cond: np.ndarray | None = None
        for qubit, state in controls:
            hit = self._bits(qubit) == state
            cond = hit if cond is None else cond & hit
        return cond

    def materialise(self, q: int) -> np.ndarray:
        """Per-shot amplitudes (2, shots) of pending qubit ``q`` with its flips applied."""
        amps = np.broadcast_to(self._amps(q).reshape(2, -1), (2, self.shots))
        flip = self.flip[q]
        if flip is not None:
            amps = np.where(flip, amps[::-1], amps)
            self.flip[q] = None
        return np.array(amps)

    def sample(self, q: int) -> None:
        weight = np.abs(self._amps(q)) ** 2
        p_one = weight[1] / (weight[0] + weight[1])
        if np.ndim(p_one) == 0 and p_one in (0.0, 1.0):  # a basis state: nothing to draw
            bits = np.full(self.shots, p_one == 1.0, dtype=bool)
        else:
            bits = self.rng.random(self.shots) < p_one
        flip = self.flip[q]
        if flip is not None:
            bits ^= flip
        self.bits[q] = bits.view(np.uint8)
        self.amps[q] = self.flip[q] = None

    def apply(self, op: _Op) -> None:
        q = op.target
        if op.kind == "sample":
            self.sample(q)
            return
        matrix = op.matrix  # unitary and expand ops carry one
        if op.kind == "unitary":
            assert matrix is not None
            cond = self.condition(op.controls)
            if cond is None:  # unconditional: stays O(1) while the amplitudes are shared
                amps = self.materialise(q) if self.flip[q] is not None else self._amps(q)
                self.amps[q] = matrix @ amps
            else:
                amps = self.materialise(q)
                self.amps[q] = np.where(cond, matrix @ amps, amps)
        elif op.kind == "flip":
            cond = self.condition(op.controls)
            flip = self.flip[q]
            if cond is None:
                self.amps[q] = self._amps(q)[::-1].copy()  # X on the state itself: O(1)
            else:
                self.flip[q] = cond.copy() if flip is None else flip ^ cond
        elif op.kind == "xor":
            cond = self.condition(op.controls)
            self.bits[q] = self._bits(q) ^ (np.uint8(1) if cond is None else cond.view(np.uint8))
        elif op.kind == "expand":
            assert matrix is not None
            basis = np.zeros((2, self.shots), dtype=np.complex128)
            basis[self._bits(q), np.arange(self.shots)] = 1.0
            cond = self.condition(op.controls)
            rotated = matrix @ basis
            self.amps[q] = rotated if cond is None else np.where(cond, rotated, basis)
            self.bits[q] = None
        elif op.kind == "swap":
            o = op.other
            for store in (self.amps, self.flip, self.bits):
                store[q], store[o] = store[o], store[q]
        elif op.kind == "reset":
            self.amps[q] = np.array([1.0, 0.0], dtype=np.complex128)
            self.flip[q] = self.bits[q] = None
        else:  # pragma: no cover - the compiler emits only the kinds above
            raise AssertionError(op.kind)


class ExactSampler:
    """Sample the final Z-basis value of every qubit exactly, without a statevector.

    Works for any number of qubits when the circuit follows the rule in the module docstring;
    :meth:`supports` says why a circuit does not. The compiled program of the last circuit is
    kept, so sampling one circuit in many chunks compiles it once.
    """

    name = "exact"

    def __init__(self) -> None:
        self._compiled: tuple[tuple, list[_Op]] | None = None

    def _program(self, circuit: QuantumCircuit) -> list[_Op]:
        # the same circuit object with the same operation objects: compile once per simulate
        key = circuit_key(circuit)
        if self._compiled is not None and self._compiled[0] == key:
            return self._compiled[1]
        program = compile_exact(circuit)
        self._compiled = (key, program)
        return program

    def supports(self, circuit: QuantumCircuit) -> str | None:
        """Why ``circuit`` cannot be sampled exactly, or ``None`` when it can."""
        try:
            self._program(circuit)
        except Exception as err:  # NotExactError, unbound parameters, qiskit errors
            return str(err)
        return None

    def sample(
        self,
        circuit: QuantumCircuit,
        shots: int,
        *,
        rng: np.random.Generator,
        given: Mapping[int, np.ndarray] | None = None,
    ) -> np.ndarray:
        """``(shots, n_qubits)`` uint8 bits. ``given`` fixes the bit of some qubits shot by
        shot (``{qubit: (shots,) bool}``): qubits that only ever serve as controls, such as the
        ``lr_switch`` register of ``CellCircuit.to_qiskit(switches=True)``; a gate on one of
        them is an error. A classical per-shot control costs no circuit per shot."""
        program = self._program(circuit)
        state = _Shots(circuit.num_qubits, shots, rng)
        for q, bits in (given or {}).items():
            if any(op.target == q or op.other == q for op in program if op.kind != "sample"):
                raise ValueError(
                    f"given: qubit {q} is acted on in the circuit; only qubits "
                    "used solely as controls can be given"
                )
            bits = np.asarray(bits, dtype=bool)
            if bits.shape != (shots,):
                raise ValueError(
                    f"given: qubit {q} needs {shots} bits (one per shot), got shape {bits.shape}"
                )
            state.bits[q] = bits.view(np.uint8)
            state.amps[q] = None
        program = [op for op in program if not (op.kind == "sample" and op.target in (given or {}))]
        for op in program:
            state.apply(op)
        by_qubit = np.empty((circuit.num_qubits, shots), dtype=np.uint8)
        for q in range(circuit.num_qubits):
            if state.bits[q] is None:
                state.sample(q)  # qubits still pending are measured at the end, in qubit order
            by_qubit[q] = state.bits[q]
            state.bits[q] = None
        return np.ascontiguousarray(by_qubit.T)  # one transpose instead of strided writes
