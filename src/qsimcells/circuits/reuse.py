"""Qubit reuse: run a wide circuit on a narrow device by measuring and resetting qubits.

A design's qubit is *live* only from its first to its last multi-qubit gate: its single-qubit
gates before that commute with everything on other qubits, so they can wait until it is first
needed, and once it has seen its last multi-qubit gate (and its remaining single-qubit gates) no
later gate touches it, so measuring it then gives the same joint distribution as measuring it at
the end (deferred measurement). Its wire is then reset and handed to the next qubit. The paper's
10-gene designs need 2 wires this way (the cascade g3 -> g5 -> g7 -> g0 is a chain), so they
run on a 5-qubit device such as ``fake_manila``.

Wires are handed out greedily in gate order, which is optimal for the live ranges that order
defines: the width is the largest number of qubits live at one time. The wire freed longest ago
goes first, so qubits that never meet another one spread over all wires instead of queueing on
one (a shallower circuit on hardware).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from qiskit import QuantumCircuit

__all__ = ["QUBIT_REUSE", "check_qubit_reuse", "fit_to_device", "reuse_qubits", "reused_width"]

#: Allowed values of a sampler's ``qubit_reuse`` option.
QUBIT_REUSE = ("auto", True, False)


def check_qubit_reuse(value: Any) -> bool | str:
    """Validate a sampler's ``qubit_reuse`` option (``"auto"``, ``True`` or ``False``)."""
    if isinstance(value, np.bool_):
        value = bool(value)
    if not isinstance(value, (bool, str)) or value not in QUBIT_REUSE:
        raise ValueError(
            f"qubit_reuse: {value!r} is not allowed; choose one of {list(QUBIT_REUSE)}"
        )
    return value


def _unitary_body(circuit: QuantumCircuit) -> tuple[list[Any], list[list[int]]]:
    """The gates of ``circuit`` without final measurements and barriers, with their qubit
    indices; anything that is not a unitary gate is refused (its position would matter)."""
    from qiskit.circuit import Gate

    # the circuit's own gate order, which sets the live ranges (remove_final_measurements
    # would go through a DAG and may hand back a worse topological order)
    operations = [
        (ins.operation, [circuit.find_bit(q).index for q in ins.qubits], ins.clbits)
        for ins in circuit.data
        if ins.operation.name != "barrier"
    ]
    last_gate = [-1] * circuit.num_qubits
    for k, (operation, wires, _) in enumerate(operations):
        if operation.name != "measure":
            for q in wires:
                last_gate[q] = k
    gates, qubits = [], []
    for k, (operation, wires, clbits) in enumerate(operations):
        if operation.name == "measure" and k > last_gate[wires[0]]:
            continue  # a final measurement: replaced by the reused circuit's own
        if not isinstance(operation, Gate) or clbits:
            raise ValueError(
                f"circuit: qubit reuse needs a circuit of unitary gates before its "
                f"final measurements; found {operation.name!r}"
            )
        gates.append(operation)
        qubits.append(wires)
    return gates, qubits


def _schedule(circuit: QuantumCircuit) -> tuple[list[tuple[str, Any, list[int]]], int]:
    """The reused circuit as steps ``("gate", op, wires)``, ``("reset", None, [wire])`` and
    ``("measure", qubit, [wire])``, and its number of wires."""
    from collections import deque

    gates, qubits = _unitary_body(circuit)
    n = circuit.num_qubits
    touches: list[list[int]] = [[] for _ in range(n)]
    first_multi: list[int | None] = [None] * n
    last_multi: list[int | None] = [None] * n
    for k, wires in enumerate(qubits):
        for q in wires:
            touches[q].append(k)
            if len(wires) > 1:
                first_multi[q] = k if first_multi[q] is None else first_multi[q]
                last_multi[q] = k

    steps: list[tuple[str, Any, list[int]]] = []
    wire_of: dict[int, int] = {}
    free: deque[int] = deque()
    used: set[int] = set()
    width = 0

    def allocate(q: int, before: int) -> None:
        nonlocal width
        if free:
            wire = free.popleft()
        else:
            wire, width = width, width + 1
        if wire in used:
            steps.append(("reset", None, [wire]))
        used.add(wire)
        wire_of[q] = wire
        steps.extend(("gate", gates[k], [wire]) for k in touches[q] if k < before)

    def release(q: int, after: int) -> None:
        wire = wire_of.pop(q)
        steps.extend(("gate", gates[k], [wire]) for k in touches[q] if k > after)
        steps.append(("measure", q, [wire]))
        free.append(wire)

    for k, wires in enumerate(qubits):
        if len(wires) == 1:
            q = wires[0]
            first, last = first_multi[q], last_multi[q]
            live = first is not None and last is not None and first < k < last
            if live:
                steps.append(("gate", gates[k], [wire_of[q]]))
            continue  # otherwise emitted when the qubit is allocated or released
        for q in wires:
            if q not in wire_of:
                allocate(q, before=k)
        steps.append(("gate", gates[k], [wire_of[q] for q in wires]))
        for q in wires:
            if last_multi[q] == k:
                release(q, after=k)
    for q in range(n):  # qubits that never meet another one: one wire each, in turn
        if first_multi[q] is None:
            allocate(q, before=len(gates))
            release(q, after=len(gates))
    return steps, width


def reused_width(circuit: QuantumCircuit) -> int:
    """Number of qubits ``circuit`` needs with qubit reuse (see :func:`reuse_qubits`).

    Raises
    ------
    ValueError
        When the circuit has non-unitary operations before its final measurements.
    """
    return _schedule(circuit)[1]


def reuse_qubits(circuit: QuantumCircuit) -> QuantumCircuit:
    """An equivalent circuit on fewer qubits, measuring each qubit as soon as it is done.

    Parameters
    ----------
    circuit
        Unitary gates, optionally followed by final measurements (which are replaced).

    Returns
    -------
    qiskit.QuantumCircuit
        :func:`reused_width` qubits and one classical register
        :data:`~qsimcells.circuits.FINAL_REGISTER` whose clbit ``i`` holds qubit ``i`` of
        ``circuit``, measured once, so the bits have the joint distribution of measuring
        ``circuit`` at the end.
    """
    from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister

    from . import FINAL_REGISTER

    if any(creg.name == FINAL_REGISTER for creg in circuit.cregs):
        raise ValueError(f"circuit: already has a classical register named {FINAL_REGISTER!r}")
    steps, width = _schedule(circuit)
    final = ClassicalRegister(circuit.num_qubits, FINAL_REGISTER)
    reused = QuantumCircuit(
        QuantumRegister(width, "wire"),
        final,
        name=f"{circuit.name}_reused",
        global_phase=circuit.global_phase,
    )
    for kind, item, wires in steps:
        if kind == "gate":
            reused.append(item, [reused.qubits[w] for w in wires])
        elif kind == "reset":
            reused.reset(wires[0])
        else:
            reused.measure(wires[0], final[item])
    return reused


def fit_to_device(
    circuit: QuantumCircuit,
    device_qubits: int,
    device_name: str,
    *,
    qubit_reuse: bool | str = "auto",
) -> QuantumCircuit:
    """The measured circuit a device sampler runs: every qubit measured into
    :data:`~qsimcells.circuits.FINAL_REGISTER`, with qubit reuse when asked or needed.

    Parameters
    ----------
    circuit
        The design's circuit.
    device_qubits
        Qubits on the device.
    device_name
        Named in the error.
    qubit_reuse
        ``"auto"``: reuse qubits only when the circuit is wider than the device; ``True``:
        always; ``False``: never.

    Raises
    ------
    ValueError
        When the circuit does not fit, naming both widths.
    """
    from . import measure_every_qubit

    check_qubit_reuse(qubit_reuse)
    n = circuit.num_qubits
    if qubit_reuse is False or (qubit_reuse == "auto" and n <= device_qubits):
        if n > device_qubits:
            raise ValueError(
                f"the circuit has {n} qubits but {device_name} has {device_qubits} "
                "(qubit_reuse=False)"
            )
        return measure_every_qubit(circuit)
    try:
        reused = reuse_qubits(circuit)
    except ValueError as err:
        if n <= device_qubits:  # it fits; only the explicit request cannot be met
            raise ValueError(f"qubit_reuse=True: {err}") from None
        raise ValueError(
            f"the circuit has {n} qubits but {device_name} has {device_qubits}, "
            f"and qubit reuse cannot help: {err}"
        ) from None
    if reused.num_qubits > device_qubits:
        raise ValueError(
            f"the circuit has {n} qubits but {device_name} has {device_qubits}; "
            f"even with qubit reuse it needs {reused.num_qubits}"
        )
    return reused
