"""Qubit reuse: a narrowed circuit measures every design qubit once and keeps the joint
distribution exactly (checked by enumerating its measurement branches), on as few wires as its
qubits' live ranges allow."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import Operator, Statevector

import qsimcells as qs
from qsimcells.circuits import FINAL_REGISTER, fit_to_device, reuse_qubits, reused_width

PROJECT = (Operator(np.diag([1.0, 0.0])), Operator(np.diag([0.0, 1.0])))
FLIP = Operator(np.array([[0.0, 1.0], [1.0, 0.0]]))


def final_register_probabilities(qc: QuantumCircuit) -> np.ndarray:
    """Exact distribution of the final register (clbit ``i`` = bit ``i`` of the index), by
    following both outcomes of every mid-circuit measurement; a reset after a measurement is a
    flip when the wire was read as 1."""
    (register,) = [c for c in qc.cregs if c.name == FINAL_REGISTER]
    branches = [(1.0, Statevector.from_label("0" * qc.num_qubits), 0, {})]
    for instruction in qc.data:
        wires = [qc.find_bit(q).index for q in instruction.qubits]
        name = instruction.operation.name
        grown = []
        for weight, state, bits, last in branches:
            if name == "measure":
                clbit = register.index(instruction.clbits[0])
                for outcome in (0, 1):
                    p = float(state.probabilities([wires[0]])[outcome])
                    if p > 1e-14:
                        collapsed = state.evolve(PROJECT[outcome], [wires[0]]) / np.sqrt(p)
                        grown.append(
                            (
                                weight * p,
                                Statevector(collapsed.data),
                                bits | (outcome << clbit),
                                {**last, wires[0]: outcome},
                            )
                        )
            elif name == "reset":
                assert wires[0] in last, "reset of a wire that was not measured first"
                grown.append(
                    (weight, state.evolve(FLIP, wires) if last[wires[0]] else state, bits, last)
                )
            else:
                grown.append(
                    (weight, state.evolve(Operator(instruction.operation), wires), bits, last)
                )
        branches = grown
    probs = np.zeros(2**register.size)
    for weight, _, bits, _ in branches:
        probs[bits] += weight
    return probs


def ideal(qc: QuantumCircuit) -> np.ndarray:
    return Statevector(qc.remove_final_measurements(inplace=False)).probabilities()


def live_width(qc: QuantumCircuit) -> int:
    """Largest number of qubits between their first and last multi-qubit gate at one time (at
    least 1): the width reuse must reach, computed independently of the module."""
    spans: dict[int, list[int]] = {}
    multi = [
        [qc.find_bit(q).index for q in ins.qubits]
        for ins in qc.data
        if ins.operation.name != "barrier" and len(ins.qubits) > 1
    ]
    for k, qubits in enumerate(multi):
        for q in qubits:
            spans.setdefault(q, [k, k])[1] = k
    return max([1] + [sum(a <= k <= b for a, b in spans.values()) for k in range(len(multi))])


def random_circuit(rng: np.random.Generator, n: int, n_gates: int) -> QuantumCircuit:
    """Any gates, classical path or not: rotations after controls, entangling phases, CCX."""
    qc = QuantumCircuit(n)
    for _ in range(n_gates):
        angle = float(rng.uniform(0, 2 * np.pi))
        kind = rng.integers(3)
        if kind == 0:
            q = int(rng.integers(n))
            [
                qc.h,
                qc.s,
                lambda q, angle=angle: qc.rx(angle, q),
                lambda q, angle=angle: qc.ry(angle, q),
            ][int(rng.integers(4))](q)
        elif kind == 1 or n < 3:
            a, b = (int(q) for q in rng.choice(n, size=2, replace=False))
            [
                qc.cx,
                qc.cz,
                lambda a, b, angle=angle: qc.crx(angle, a, b),
                lambda a, b, angle=angle: qc.rzz(angle, a, b),
                qc.swap,
            ][int(rng.integers(5))](a, b)
        else:
            a, b, c = (int(q) for q in rng.choice(n, size=3, replace=False))
            qc.ccx(a, b, c)
    return qc


@pytest.mark.parametrize("interacting", [True, False])
def test_paper_presets_need_two_wires_and_keep_their_distribution(interacting: bool) -> None:
    circuit = qs.sim.presets.romero2025(interacting).to_qiskit()
    reused = reuse_qubits(circuit)
    assert reused.num_qubits == reused_width(circuit) == 2
    measured = [
        reused.find_bit(ins.clbits[0]).index
        for ins in reused.data
        if ins.operation.name == "measure"
    ]
    assert sorted(measured) == list(range(10))  # every gene read exactly once
    np.testing.assert_allclose(final_register_probabilities(reused), ideal(circuit), atol=1e-12)


def test_random_circuits_keep_their_distribution_on_the_fewest_wires() -> None:
    rng = np.random.default_rng(7)
    narrowed = 0
    for _ in range(40):
        n = int(rng.integers(2, 7))
        qc = random_circuit(rng, n, int(rng.integers(3, 14)))
        reused = reuse_qubits(qc)
        assert reused.num_qubits == live_width(qc) <= n
        narrowed += reused.num_qubits < n
        np.testing.assert_allclose(final_register_probabilities(reused), ideal(qc), atol=1e-10)
    assert narrowed > 10  # the check covered circuits that really got narrower


@pytest.mark.parametrize(
    ("edges", "width"),
    [
        ([(i, i + 1) for i in range(7)], 2),  # chain: each qubit is done after its CX
        ([(0, i) for i in range(1, 8)], 2),  # star: the hub stays, leaves come and go
        ([(i, (i + 1) % 8) for i in range(8)], 3),  # ring: qubit 0 is live to the end
        ([], 1),  # no entanglement: one wire for all
    ],
)
def test_known_widths(edges: list[tuple[int, int]], width: int) -> None:
    qc = QuantumCircuit(8)
    qc.ry(0.7, range(8))
    for a, b in edges:
        qc.cx(a, b)
    qc.measure_all()
    assert reused_width(qc) == width
    np.testing.assert_allclose(
        final_register_probabilities(reuse_qubits(qc)), ideal(qc), atol=1e-12
    )


def test_fit_to_device_reuses_only_when_needed() -> None:
    qc = qs.sim.presets.romero2025(True).to_qiskit()
    plain = fit_to_device(qc, 16, "fake_guadalupe")
    assert plain.num_qubits == 10 and "reset" not in plain.count_ops()
    assert fit_to_device(qc, 5, "fake_manila").num_qubits == 2
    assert fit_to_device(qc, 16, "fake_guadalupe", qubit_reuse=True).num_qubits == 2


@pytest.mark.parametrize(
    ("build", "device", "reuse", "match"),
    [
        ("preset", 5, False, r"the circuit has 10 qubits but dev has 5 \(qubit_reuse=False\)"),
        (
            "ring",
            2,
            "auto",
            "the circuit has 8 qubits but dev has 2; even with qubit reuse it needs 3",
        ),
        (
            "mid_measure",
            2,
            "auto",
            "qubit reuse cannot help: circuit: qubit reuse needs a circuit "
            "of unitary gates before its final measurements; found 'measure'",
        ),
        (
            "preset",
            5,
            "yes",
            r"qubit_reuse: 'yes' is not allowed; choose one of \['auto', True, "
            r"False\]",
        ),
        ("preset", 5, 1, r"qubit_reuse: 1 is not allowed"),
    ],
)
def test_fit_to_device_errors_name_the_problem(build: str, device: int, reuse, match: str) -> None:
    if build == "preset":
        qc = qs.sim.presets.romero2025(True).to_qiskit()
    elif build == "ring":
        qc = QuantumCircuit(8)
        for i in range(8):
            qc.cx(i, (i + 1) % 8)
    else:
        qc = QuantumCircuit(3, 1)
        qc.h(0)
        qc.measure(0, 0)
        qc.cx(0, 1)
    with pytest.raises(ValueError, match=match):
        fit_to_device(qc, device, "dev", qubit_reuse=reuse)


def test_reuse_requested_for_a_circuit_that_fits_names_the_request() -> None:
    qc = QuantumCircuit(2, 1)
    qc.h(0)
    qc.measure(0, 0)
    qc.cx(0, 1)
    assert fit_to_device(qc, 2, "dev").num_qubits == 2  # auto: fits, no reuse needed
    with pytest.raises(ValueError, match=r"^qubit_reuse=True: circuit: qubit reuse needs"):
        fit_to_device(qc, 2, "dev", qubit_reuse=True)
    assert (
        fit_to_device(
            qs.sim.presets.romero2025(True).to_qiskit(), 5, "dev", qubit_reuse=np.True_
        ).num_qubits
        == 2
    )


def test_circuit_with_a_final_register_already_is_refused() -> None:
    qc = qs.circuits.measure_every_qubit(QuantumCircuit(2))
    with pytest.raises(ValueError, match="already has a classical register"):
        reuse_qubits(qc)
