"""The exact classical sampling path against Qiskit's statevector."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import assert_distribution_matches
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import Statevector

import qsimcells as qs
from qsimcells.samplers.exact import ExactSampler, NotExactError, compile_exact

SHOTS = 40_000


def exact_probs(circuit: QuantumCircuit) -> np.ndarray:
    probs = Statevector(circuit.remove_final_measurements(inplace=False)).probabilities()
    return np.asarray(probs) / np.sum(probs)


def random_exact_circuit(
    rng: np.random.Generator, n: int, n_gates: int, gates: tuple[str, ...]
) -> QuantumCircuit:
    """Random circuit of ``gates`` that keeps the exact rule: rotations only on qubits that
    have not yet acted as a control (X, flips and phases anywhere)."""
    qc = QuantumCircuit(n)
    for q in range(n):
        qc.ry(rng.uniform(0, np.pi), q)
    used_as_control: set[int] = set()
    for _ in range(n_gates):
        gate = gates[rng.integers(len(gates))]
        free = [q for q in range(n) if q not in used_as_control]
        if gate in {"ry", "rx", "h", "u"}:
            if not free:
                continue
            q = int(rng.choice(free))
            angle = rng.uniform(0, 2 * np.pi)
            {
                "ry": lambda angle=angle, q=q: qc.ry(angle, q),
                "rx": lambda angle=angle, q=q: qc.rx(angle, q),
                "h": lambda q=q: qc.h(q),
                "u": lambda angle=angle, q=q: qc.u(angle, angle / 2, angle / 3, q),
            }[gate]()
        elif gate in {"x", "z", "s", "rz"}:
            q = int(rng.integers(n))
            {
                "x": lambda q=q: qc.x(q),
                "z": lambda q=q: qc.z(q),
                "s": lambda q=q: qc.s(q),
                "rz": lambda q=q: qc.rz(rng.uniform(0, 6), q),
            }[gate]()
        elif gate == "swap":
            a, b = rng.choice(n, size=2, replace=False)
            qc.swap(int(a), int(b))
            used_as_control = {({a: b, b: a}.get(q, q)) for q in used_as_control}
        else:
            k = 2 if gate == "ccx" else 1
            if n < k + 1:
                continue
            *controls, target = (int(q) for q in rng.choice(n, size=k + 1, replace=False))
            if gate in {"cry", "crx"} and target in used_as_control:
                continue  # a rotation of a former control is not exact (tested elsewhere)
            state = int(rng.integers(2**k))
            angle = rng.uniform(0, 2 * np.pi)
            if gate == "cx":
                qc.cx(controls[0], target, ctrl_state=state)
            elif gate == "ccx":
                qc.ccx(*controls, target, ctrl_state=state)
            elif gate == "cry":
                qc.cry(angle, controls[0], target, ctrl_state=state)
            elif gate == "crx":
                qc.crx(angle, controls[0], target)
            elif gate == "cz":
                qc.cz(controls[0], target)
            used_as_control.update(controls)
    return qc


@pytest.mark.parametrize("seed", range(12))
def test_design_gate_set_matches_statevector(seed: int) -> None:
    """RY, X, CX, CCX, CRY, SWAP circuits (the design gate set) are sampled exactly."""
    rng = np.random.default_rng(seed)
    qc = random_exact_circuit(
        rng, int(rng.integers(3, 8)), 14, ("ry", "x", "cx", "ccx", "cry", "swap")
    )
    assert ExactSampler().supports(qc) is None
    bits = qs.samplers.sample_bits(qc, SHOTS, sampler="exact", rng=seed)
    assert_distribution_matches(bits, exact_probs(qc))


@pytest.mark.parametrize("seed", range(8))
def test_general_single_qubit_and_controlled_gates_match(seed: int) -> None:
    """The general form: any one-qubit gate on a pending qubit, controlled gates with phases."""
    rng = np.random.default_rng(100 + seed)
    qc = random_exact_circuit(
        rng,
        int(rng.integers(3, 7)),
        16,
        ("ry", "rx", "h", "u", "x", "z", "s", "rz", "cx", "cry", "crx", "cz", "ccx", "swap"),
    )
    qc.measure_all()
    assert ExactSampler().supports(qc) is None
    bits = qs.samplers.sample_bits(qc, SHOTS, sampler="exact", rng=seed)
    assert_distribution_matches(bits, exact_probs(qc))


@pytest.mark.parametrize("seed", range(8))
def test_auto_matches_statevector_on_any_circuit(seed: int) -> None:
    """Unrestricted random circuits: auto takes exact when it is valid and a statevector
    otherwise, and either way matches the exact distribution."""
    rng = np.random.default_rng(200 + seed)
    n = int(rng.integers(2, 6))
    qc = QuantumCircuit(n)
    for _ in range(12):
        kind = rng.integers(4)
        a, b = (int(q) for q in rng.choice(n, size=2, replace=False))
        if kind == 0:
            qc.h(a)
        elif kind == 1:
            qc.ry(rng.uniform(0, np.pi), a)
        elif kind == 2:
            qc.cx(a, b)
        else:
            qc.rzz(rng.uniform(0, np.pi), a, b)
    bits, info = qs.samplers.sample_bits(qc, SHOTS, rng=seed, return_info=True)
    expected = "exact" if ExactSampler().supports(qc) is None else "statevector"
    assert info.name == expected and info.requested == "auto"
    assert_distribution_matches(bits, exact_probs(qc))


def test_rotation_after_control_is_refused_and_auto_falls_back() -> None:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.h(0)  # interference on a qubit that already acted as a control
    with pytest.raises(NotExactError, match="after it was used as a control"):
        compile_exact(qc)
    with pytest.raises(ValueError, match="cannot sample this circuit"):
        qs.samplers.sample_bits(qc, 10, sampler="exact")
    bits, info = qs.samplers.sample_bits(qc, SHOTS, rng=1, return_info=True)
    assert info.name == "statevector" and "exact" in info.reason
    assert_distribution_matches(bits, exact_probs(qc))


def test_mid_circuit_measurement_and_reset_are_exact() -> None:
    """A real measurement collapses the qubit, so rotating it afterwards is allowed."""
    qc = QuantumCircuit(2, 2)
    qc.ry(1.1, 0)
    qc.cx(0, 1)
    qc.measure(0, 0)
    qc.ry(0.7, 0)
    qc.cry(0.9, 1, 0)
    qc.reset(1)
    qc.rx(0.4, 1)
    assert ExactSampler().supports(qc) is None
    # reference: enumerate the measurement branch of qubit 0 (p1 = sin^2(0.55))
    p1 = np.sin(0.55) ** 2
    ref = np.zeros(4)
    for outcome, weight in ((0, 1 - p1), (1, p1)):
        branch = QuantumCircuit(2)
        if outcome:
            branch.x(0)
            branch.x(1)
        branch.ry(0.7, 0)
        branch.cry(0.9, 1, 0)
        branch.reset(1)
        branch.rx(0.4, 1)
        ref += weight * np.asarray(Statevector(branch).probabilities())
    bits = qs.samplers.sample_bits(qc, SHOTS, sampler="exact", rng=3)
    assert_distribution_matches(bits, ref)


def test_bit_order_is_logical() -> None:
    qc = QuantumCircuit(3)
    qc.x(0)
    for name in ("exact", "statevector"):
        bits = qs.samplers.sample_bits(qc, 5, sampler=name, rng=0)
        assert bits.dtype == np.uint8 and bits.shape == (5, 3)
        assert (bits == [1, 0, 0]).all(), name


def test_sin_squared_half_angle() -> None:
    qc = QuantumCircuit(1)
    qc.ry(0.9 * np.pi, 0)
    bits = qs.samplers.sample_bits(qc, 200_000, sampler="exact", rng=0)
    p = np.sin(0.45 * np.pi) ** 2  # 0.976, not 0.9
    assert abs(bits.mean() - p) < 5 * np.sqrt(p * (1 - p) / 200_000)


def test_many_qubits_beyond_statevector() -> None:
    """The exact path has no qubit limit: 50 independent random 4-qubit blocks side by side
    (200 qubits); each block's joint distribution matches its own statevector."""
    rng = np.random.default_rng(9)
    blocks = [
        random_exact_circuit(rng, 4, 10, ("ry", "x", "cx", "ccx", "cry", "swap")) for _ in range(50)
    ]
    wide = QuantumCircuit(200)
    for k, block in enumerate(blocks):
        wide.compose(block, qubits=range(4 * k, 4 * k + 4), inplace=True)
    bits, info = qs.samplers.sample_bits(wide, 20_000, rng=0, return_info=True)
    assert info.name == "exact" and bits.shape == (20_000, 200)
    for k in (0, 17, 49):
        assert_distribution_matches(bits[:, 4 * k : 4 * k + 4], exact_probs(blocks[k]))
    with pytest.raises(ValueError, match="at most 24 qubits"):
        qs.samplers.sample_bits(wide, 10, sampler="statevector")


def test_same_seed_same_bits_and_generator_accepted() -> None:
    qc = qs.sim.presets.romero2025(True).to_qiskit()
    a = qs.samplers.sample_bits(qc, 500, rng=7)
    b = qs.samplers.sample_bits(qc, 500, rng=7)
    c = qs.samplers.sample_bits(qc, 500, rng=8)
    d = qs.samplers.sample_bits(qc, 500, rng=np.random.default_rng(7))
    assert np.array_equal(a, b) and not np.array_equal(a, c) and np.array_equal(a, d)


def test_bad_inputs() -> None:
    qc = QuantumCircuit(2)
    qc.ry(Parameter("t"), 0)
    with pytest.raises(ValueError, match="unbound parameters"):
        qs.samplers.sample_bits(qc, 10, sampler="exact")
    ok = QuantumCircuit(1)
    with pytest.raises(ValueError, match="shots"):
        qs.samplers.sample_bits(ok, 0)
    with pytest.raises(TypeError, match="shots"):
        qs.samplers.sample_bits(ok, 2.5)
    with pytest.raises(TypeError, match="QuantumCircuit"):
        qs.samplers.sample_bits("not a circuit", 10)
    with pytest.raises(qs.plugins.PluginError, match=r"unknown circuit sampler 'nope'.*exact"):
        qs.samplers.sample_bits(ok, 10, sampler="nope")
    with pytest.raises(ValueError, match="need a named sampler"):
        qs.samplers.sample_bits(ok, 10, max_qubits=3)
    with pytest.raises(TypeError, match="options for sampler 'exact'"):
        qs.samplers.sample_bits(ok, 10, sampler="exact", method="mps")
    with pytest.raises(TypeError, match="rng"):
        qs.samplers.sample_bits(ok, 10, rng="seed")


def test_bitstring_helpers_undo_little_endian_once() -> None:
    """Qiskit prints qubit 0 on the right and puts it in bit 0 of a state index; both helpers
    return column i = qubit i (registers separated by spaces are joined)."""
    from qsimcells.samplers._bits import bitstrings_to_bits, indices_to_bits

    assert bitstrings_to_bits(["001", "110"], 3).tolist() == [[1, 0, 0], [0, 1, 1]]
    assert bitstrings_to_bits(["01 001"], 5).tolist() == [[1, 0, 0, 1, 0]]
    assert indices_to_bits(np.array([1, 6]), 3).tolist() == [[1, 0, 0], [0, 1, 1]]
    with pytest.raises(ValueError, match="bit strings have 2 bits, expected 3"):
        bitstrings_to_bits(["01"], 3)
    qc = QuantumCircuit(3)
    qc.x(0)
    label = Statevector(qc).sample_memory(1)[0]  # qiskit's own label of the state
    assert bitstrings_to_bits([label], 3).tolist() == [[1, 0, 0]]


def test_measured_qubit_flipped_by_a_former_control_is_no_longer_classical() -> None:
    """After a real measurement a qubit is a classical bit and may be rotated again, but once a
    qubit that was only sampled early flips it, it is entangled with that qubit: rotating it
    must be refused (found by fuzzing: the exact path used to give P(q1=1) = 0.5, truth 0)."""
    qc = QuantumCircuit(2, 1)
    qc.h(1)
    qc.measure(1, 0)
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 0)
    qc.h(1)
    with pytest.raises(NotExactError, match="instruction #5"):
        compile_exact(qc)
    # flipped by a qubit that was really measured, it stays a classical bit
    ok = QuantumCircuit(2, 2)
    ok.h(1)
    ok.measure(1, 0)
    ok.ry(1.0, 0)
    ok.measure(0, 1)
    ok.cx(0, 1)
    ok.ry(0.6, 1)
    assert ExactSampler().supports(ok) is None
    ref = np.zeros(4)
    p0 = np.sin(0.5) ** 2
    for m1, w1 in ((0, 0.5), (1, 0.5)):
        for m0, w0 in ((0, 1 - p0), (1, p0)):
            branch = QuantumCircuit(2)
            if m0:
                branch.x(0)
            if m1 ^ m0:
                branch.x(1)
            branch.ry(0.6, 1)
            ref += w1 * w0 * np.asarray(Statevector(branch).probabilities())
    bits = qs.samplers.sample_bits(ok, SHOTS, sampler="exact", rng=4)
    assert_distribution_matches(bits, ref)


def _density_reference(qc: QuantumCircuit) -> np.ndarray:
    """Exact outcome probabilities with measurement as dephasing and reset as reset."""
    from qiskit.quantum_info import DensityMatrix, Kraus, Operator

    dephase = Kraus([np.diag([1, 0]).astype(complex), np.diag([0, 1]).astype(complex)])
    rho = DensityMatrix.from_label("0" * qc.num_qubits)
    for ins in qc.data:
        qubits = [qc.find_bit(q).index for q in ins.qubits]
        name = ins.operation.name
        if name == "barrier":
            continue
        if name == "measure":
            rho = rho.evolve(dephase, qargs=qubits)
        elif name == "reset":
            rho = rho.reset(qubits)
        else:
            rho = rho.evolve(Operator(ins.operation), qargs=qubits)
    probs = np.clip(np.real(np.diag(rho.data)), 0, None)
    return probs / probs.sum()


def test_fuzz_wide_gate_set_with_measurements() -> None:
    """Random circuits from a wide gate set with mid-circuit measurement, reset and composite
    gates: whatever the exact path accepts must match a density-matrix reference."""
    rng = np.random.default_rng(2024)
    one = ["h", "x", "y", "z", "s", "t", "sx", "rx", "ry", "rz", "u", "measure", "reset", "sub"]
    two = ["cx", "cz", "cy", "ch", "cry", "crx", "cp", "swap", "rzz", "cx_o0"]
    accepted = tried = 0
    while accepted < 40:
        tried += 1
        n = int(rng.integers(2, 5))
        qc = QuantumCircuit(n, n)
        for _ in range(int(rng.integers(4, 14))):
            angle = float(rng.choice([0, np.pi / 2, np.pi, rng.uniform(0, 2 * np.pi)]))
            if rng.random() < 0.55:
                q = int(rng.integers(n))
                gate = one[rng.integers(len(one))]
                if gate == "measure":
                    qc.measure(q, q)
                elif gate == "reset":
                    qc.reset(q)
                elif gate == "sub":
                    sub = QuantumCircuit(1)
                    sub.ry(angle, 0)
                    sub.rz(angle / 2, 0)
                    qc.append(sub.to_gate(), [q])
                elif gate in {"rx", "ry", "rz"}:
                    getattr(qc, gate)(angle, q)
                elif gate == "u":
                    qc.u(angle, angle / 3, -angle, q)
                else:
                    getattr(qc, gate)(q)
            else:
                a, b = (int(q) for q in rng.choice(n, size=2, replace=False))
                gate = two[rng.integers(len(two))]
                if gate in {"cry", "crx", "cp", "rzz"}:
                    getattr(qc, gate)(angle, a, b)
                elif gate == "cx_o0":
                    qc.cx(a, b, ctrl_state=0)
                else:
                    getattr(qc, gate)(a, b)
        if ExactSampler().supports(qc) is not None:
            continue
        accepted += 1
        bits = qs.samplers.sample_bits(qc, 20_000, sampler="exact", rng=tried)
        assert_distribution_matches(bits, _density_reference(qc))
    assert tried > accepted  # some circuits were refused, so the rule was exercised


def test_composite_single_qubit_gates_are_exact() -> None:
    sub = QuantumCircuit(1)
    sub.ry(0.8, 0)
    sub.rz(0.4, 0)
    qc = QuantumCircuit(2)
    qc.append(sub.to_gate(), [0])
    qc.cx(0, 1)
    qc.append(sub.to_gate().control(1), [0, 1])
    bits, info = qs.samplers.sample_bits(qc, SHOTS, rng=6, return_info=True)
    assert info.name == "exact"
    assert_distribution_matches(bits, exact_probs(qc))
