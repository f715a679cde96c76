"""qs.nn: the batched torch statevector and QuantumLayer against Qiskit, finite differences and
shots."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp, Statevector
from scipy import stats

import qsimcells as qs
from conftest import run_python
from qsimcells.nn import QuantumLayer


def pauli_expectations(circuit: QuantumCircuit, bases: str = "XYZ") -> np.ndarray:
    """``<P_q>`` of every qubit from Qiskit's statevector, ordered basis-major (X_0.., Y_0..)."""
    state = Statevector(circuit)
    n = circuit.num_qubits
    return np.array(
        [
            state.expectation_value(SparsePauliOp.from_sparse_list([(p, [q], 1.0)], n)).real
            for p in bases
            for q in range(n)
        ]
    )


def layer_reference(layer: QuantumLayer, x: torch.Tensor) -> np.ndarray:
    bases = "XYZ" if layer.readout == "xyz" else "Z"
    return np.stack([pauli_expectations(layer.to_qiskit(row), bases) for row in x])


# ---------------------------------------------------------------- the layer against Qiskit


@pytest.mark.parametrize(
    ("n", "layers", "readout", "entanglement", "reupload"),
    [
        (8, 3, "xyz", "ring", True),  # the paper's layer
        (4, 2, "xyz", "linear", True),
        (3, 3, "z", "ring", False),
        (2, 2, "xyz", "ring", True),  # ring of two: (0, 1), (1, 0)
        (1, 2, "xyz", "ring", True),  # one qubit: no CNOTs
        (5, 1, "z", "none", True),
        (4, 3, "xyz", "none", True),
    ],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layer_equals_qiskit_statevector(n, layers, readout, entanglement, reupload, dtype):
    layer = QuantumLayer(n, layers, readout, entanglement, reupload, dtype=dtype, rng=n + layers)
    x = torch.as_tensor(np.random.default_rng(7).uniform(-np.pi, np.pi, (3, n)))
    out = layer(x)
    assert out.shape == (3, layer.n_outputs)
    assert out.dtype == (torch.float32 if dtype == "float32" else torch.float64)
    expected = layer_reference(layer, x)
    tol = 1e-5 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=tol, rtol=0)


def test_layer_circuit_is_the_documented_one():
    layer = QuantumLayer(3, 2, reupload=True, entanglement="ring", rng=0)
    circuit = layer.to_qiskit(np.zeros(3))
    ops = [
        (inst.operation.name, [circuit.find_bit(q).index for q in inst.qubits])
        for inst in circuit.data
    ]
    per_layer = (
        [("rx", [q]) for q in range(3)]
        + [(g, [q]) for q in range(3) for g in ("rx", "ry", "rz")]
        + [("cx", [0, 1]), ("cx", [1, 2]), ("cx", [2, 0])]
    )
    assert ops == per_layer * 2
    no_reupload = QuantumLayer(3, 2, reupload=False, entanglement="linear", rng=0)
    names = [inst.operation.name for inst in no_reupload.to_qiskit(np.zeros(3)).data]
    assert names.count("rx") == 3 + 2 * 3 and names.count("cx") == 2 * 2
    # reupload matters: with it, the second layer sees the inputs again
    x = torch.full((1, 3), 0.9)
    assert not torch.allclose(layer(x), no_reupload(x))


def test_layer_api_and_reproducibility():
    layer = QuantumLayer(rng=3)
    assert layer.weights.shape == (3, 8, 3) and layer.n_parameters == 72
    assert layer.pairs == [(q, (q + 1) % 8) for q in range(8)]
    assert torch.equal(layer.weights, QuantumLayer(rng=3).weights)
    assert not torch.equal(layer.weights, QuantumLayer(rng=4).weights)
    assert list(layer.state_dict()) == ["weights"]  # the CNOT permutation is derived, not saved
    assert QuantumLayer(8, 3, "z").n_outputs == 8
    assert qs.nn.entangling_pairs(4, "linear") == [(0, 1), (1, 2), (2, 3)]
    assert qs.nn.entangling_pairs(4, "none") == [] and qs.nn.entangling_pairs(1, "ring") == []
    # .double() switches the precision of the whole computation
    x = torch.rand(2, 8, dtype=torch.float64)
    assert layer.double()(x).dtype == torch.float64
    assert layer(torch.zeros(0, 8)).shape == (0, 24)  # an empty batch is an empty output
    assert "readout='xyz'" in repr(layer)


def test_parametrized_circuit_binds_to_to_qiskit():
    layer = QuantumLayer(3, 2, rng=5, dtype="float64")
    circuit, x, w = layer.parametrized_circuit()
    assert len(x) == 3 and len(w) == layer.n_parameters
    row = np.array([0.3, -1.2, 2.0])
    bound = circuit.assign_parameters(
        dict(zip(x, row, strict=True))
        | dict(zip(w, layer.weights.detach().flatten().tolist(), strict=True))
    )
    np.testing.assert_allclose(
        Statevector(bound).data, Statevector(layer.to_qiskit(row)).data, atol=1e-12
    )


def test_layer_trains():
    """Used for real: a few gradient steps fit a target readout."""
    torch.manual_seed(0)
    layer = QuantumLayer(3, 2, rng=0)
    x = torch.rand(16, 3) * np.pi
    target = torch.sin(x).repeat(1, 3) * 0.5
    losses = []
    for _ in range(40):  # plain gradient descent (a torch optimizer would import torch._dynamo)
        layer.zero_grad()
        loss = ((layer(x) - target) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            layer.weights -= 0.5 * layer.weights.grad
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ---------------------------------------------------------------- engine gates against Qiskit


def _random_program(rng: np.random.Generator, n: int, batch: int, n_gates: int):
    """Random gate list; rotation angles are per sample ((B,)), shared floats or 0-d tensors."""
    program = []
    for _ in range(n_gates):
        kind = rng.choice(
            ["rx", "ry", "rz", "cnot", "cz", "matrix"] if n > 1 else ["rx", "ry", "rz", "matrix"]
        )
        if kind in ("cnot", "cz"):
            a, b = rng.choice(n, size=2, replace=False)
            program.append((kind, (int(a), int(b)), None))
        elif kind == "matrix":
            from scipy.stats import unitary_group

            program.append(
                (
                    kind,
                    (int(rng.integers(n)),),
                    unitary_group.rvs(2, random_state=int(rng.integers(1 << 30))),
                )
            )
        else:
            style = rng.integers(3)
            angles = rng.uniform(-2 * np.pi, 2 * np.pi, batch)
            angle = (
                torch.as_tensor(angles)
                if style == 0
                else float(angles[0])
                if style == 1
                else torch.tensor(angles[0])
            )
            program.append((kind, (int(rng.integers(n)),), angle))
    return program


def _run_engine(program, n, batch, dtype):
    state = qs.nn.zero_state(batch, n, dtype=dtype)
    for kind, qubits, arg in program:
        if kind == "cnot":
            state = qs.nn.cnot(state, *qubits)
        elif kind == "cz":
            state = qs.nn.cz(state, *qubits)
        elif kind == "matrix":
            state = qs.nn.apply_matrix(state, qubits[0], torch.as_tensor(arg))
        else:
            state = getattr(qs.nn, kind)(state, qubits[0], arg)
    return state


def _run_qiskit(program, n, sample):
    qc = QuantumCircuit(n)
    for kind, qubits, arg in program:
        if kind == "cnot":
            qc.cx(*qubits)
        elif kind == "cz":
            qc.cz(*qubits)
        elif kind == "matrix":
            qc.unitary(arg, [qubits[0]])
        else:
            angle = (
                float(arg[sample]) if isinstance(arg, torch.Tensor) and arg.dim() else float(arg)
            )
            getattr(qc, kind)(angle, qubits[0])
    return qc


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_engine_gates_equal_qiskit(n, dtype):
    rng = np.random.default_rng(100 + n)
    batch = 3
    program = _random_program(rng, n, batch, n_gates=12 * n)
    state = _run_engine(program, n, batch, dtype)
    tol = 2e-6 if dtype == "float32" else 1e-12
    amplitudes = qs.nn.to_amplitudes(state).numpy()
    probs, ones = qs.nn.probabilities(state).numpy(), qs.nn.marginal_ones(state).numpy()
    xyz = qs.nn.expectations_xyz(state).numpy()
    for b in range(batch):
        qc = _run_qiskit(program, n, b)
        ref = Statevector(qc)
        np.testing.assert_allclose(amplitudes[b], ref.data, atol=tol)
        np.testing.assert_allclose(probs[b], ref.probabilities(), atol=tol)
        np.testing.assert_allclose(ones[b], [ref.probabilities([q])[1] for q in range(n)], atol=tol)
        paulis = pauli_expectations(qc)
        np.testing.assert_allclose(xyz[b], paulis, atol=2 * tol)
        for i, p in enumerate("XYZ"):
            np.testing.assert_allclose(
                qs.nn.expectation(state, p)[b].numpy(), paulis[i * n : (i + 1) * n], atol=2 * tol
            )


def test_bit_order_is_qiskit_little_endian():
    state = qs.nn.rx(qs.nn.zero_state(2, 3, dtype="float64"), 0, np.pi)  # |001>: qubit 0 set
    probs = qs.nn.probabilities(state)
    assert probs.shape == (2, 8) and torch.allclose(probs[:, 1], torch.ones(2, dtype=probs.dtype))
    np.testing.assert_allclose(qs.nn.marginal_ones(state).numpy(), [[1, 0, 0]] * 2, atol=1e-12)
    state = qs.nn.cnot(state, 0, 2)  # now |101> = index 5
    assert torch.allclose(qs.nn.probabilities(state)[:, 5], torch.ones(2, dtype=torch.float64))
    np.testing.assert_allclose(qs.nn.expectation(state, "Z").numpy(), [[-1, 1, -1]] * 2)
    signs = qs.nn.z_signs(3)
    assert signs.shape == (8, 3) and signs[5].tolist() == [-1.0, 1.0, -1.0]  # index 5 = |101>
    # per-sample angles: sample 0 unrotated, sample 1 flipped
    state = qs.nn.ry(qs.nn.zero_state(2, 2), 1, torch.tensor([0.0, np.pi]))
    np.testing.assert_allclose(qs.nn.marginal_ones(state).numpy(), [[0, 0], [0, 1]], atol=1e-6)


def test_cnot_block_permutation_and_product_equal_gate_by_gate():
    rng = np.random.default_rng(3)
    n, batch = 4, 2
    state = qs.nn.apply_matrix(
        qs.nn.zero_state(batch, n, dtype="float64"),
        0,
        torch.as_tensor(stats.unitary_group.rvs(2, random_state=1)),
    )
    for q in range(1, n):
        state = qs.nn.ry(state, q, torch.as_tensor(rng.uniform(0, 3, batch)))
    pairs = [(0, 1), (1, 2), (3, 0), (2, 3)]
    one_by_one = state
    for c, t in pairs:
        one_by_one = qs.nn.cnot(one_by_one, c, t)
    perm = torch.as_tensor(qs.nn.permutation_of_cnots(n, pairs))
    assert torch.allclose(qs.nn.apply_permutation(state, perm), one_by_one)
    # one matrix per qubit, per sample, at once == one gate per qubit
    mats = torch.as_tensor(
        np.stack(
            [
                [stats.unitary_group.rvs(2, random_state=10 * q + b) for b in range(batch)]
                for q in range(n)
            ]
        )
    )
    gate_by_gate = state
    for q in range(n):
        gate_by_gate = qs.nn.apply_matrix(gate_by_gate, q, mats[q])
    assert torch.allclose(qs.nn.apply_product(state, mats), gate_by_gate, atol=1e-12)
    shared = qs.nn.apply_product(state, mats[:, 0])
    for q in range(n):
        state = qs.nn.apply_matrix(state, q, mats[q, 0])
    assert torch.allclose(shared, state, atol=1e-12)


# ---------------------------------------------------------------- gradients


def test_layer_gradients_equal_finite_differences():
    layer = QuantumLayer(3, 2, "xyz", "ring", dtype="float64", rng=11)
    x = torch.tensor(np.random.default_rng(1).uniform(-2, 2, (2, 3)), requires_grad=True)
    w = layer.weights.detach().clone().requires_grad_(True)

    def f(x_, w_):
        return torch.func.functional_call(layer, {"weights": w_}, (x_,))

    assert torch.autograd.gradcheck(f, (x, w), eps=1e-6, atol=1e-7)
    no_reupload = QuantumLayer(3, 2, "z", "linear", reupload=False, dtype="float64", rng=2)
    assert torch.autograd.gradcheck(
        lambda x_, w_: torch.func.functional_call(no_reupload, {"weights": w_}, (x_,)),
        (x, no_reupload.weights.detach().clone().requires_grad_(True)),
        eps=1e-6,
        atol=1e-7,
    )


def test_full_layer_gradient_along_a_direction():
    """The paper's layer: the autograd directional derivative equals a central difference."""
    layer = QuantumLayer(dtype="float64", rng=0)
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.uniform(-2, 2, (4, 8)), requires_grad=True)
    dx, dw = torch.as_tensor(rng.normal(size=(4, 8))), torch.as_tensor(rng.normal(size=(3, 8, 3)))
    layer(x).sum().backward()
    analytic = float((x.grad * dx).sum() + (layer.weights.grad * dw).sum())
    h = 1e-5
    with torch.no_grad():
        w0 = layer.weights.clone()
        layer.weights.copy_(w0 + h * dw)
        up = layer(x + h * dx).sum()
        layer.weights.copy_(w0 - h * dw)
        down = layer(x - h * dx).sum()
    assert abs(analytic - float(up - down) / (2 * h)) < 1e-7 * max(1.0, abs(analytic))


def test_engine_gradients_equal_finite_differences():
    def circuit(angles, theta):
        state = qs.nn.zero_state(angles.shape[0], 3, dtype="float64")
        state = qs.nn.rx(state, 0, angles[:, 0])
        state = qs.nn.ry(state, 1, angles[:, 1])
        state = qs.nn.cnot(state, 0, 2)
        state = qs.nn.rz(state, 2, theta)
        state = qs.nn.ry(state, 2, angles[:, 2])
        state = qs.nn.cz(state, 1, 2)
        state = qs.nn.rx(state, 1, theta * 0.7)
        return torch.cat([qs.nn.expectations_xyz(state), qs.nn.marginal_ones(state)], dim=1)

    angles = torch.tensor(np.random.default_rng(4).uniform(-3, 3, (2, 3)), requires_grad=True)
    theta = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(circuit, (angles, theta), eps=1e-6, atol=1e-7)


# ---------------------------------------------------------------- shots on registered samplers

ALPHA = 1e-6


def assert_within_shot_noise(estimate: np.ndarray, exact: np.ndarray, shots: int) -> None:
    """Each estimate is ``1 - 2 k / shots`` with ``k ~ Binomial(shots, (1 - exact) / 2)``: exact
    two-sided binomial test of every ``k`` at level ``ALPHA``, Bonferroni-corrected over the
    outputs, so a correct evaluation fails with probability below ``ALPHA``."""
    k = np.rint((1 - estimate) / 2 * shots).astype(int)
    p = np.clip((1 - exact) / 2, 0.0, 1.0)
    tail = np.minimum(stats.binom.cdf(k, shots, p), stats.binom.sf(k - 1, shots, p))
    p_value = np.minimum(1.0, 2 * tail * len(k))
    worst = int(np.argmin(p_value))
    assert p_value[worst] >= ALPHA, (
        f"output {worst}: {estimate[worst]:.4f} from {shots} shots, "
        f"exact {exact[worst]:.4f} (Bonferroni p = "
        f"{p_value[worst]:.1e})"
    )


def test_shots_on_statevector_sampler_agree_with_torch():
    shots = 4000
    layer = QuantumLayer(4, 2, "xyz", "ring", rng=21)
    row = np.random.default_rng(5).uniform(-np.pi, np.pi, 4)
    exact = layer(torch.as_tensor(row[None])).detach().numpy()[0].astype(np.float64)
    estimate, stderr = qs.nn.expectations_from_sampler(
        layer, row, shots=shots, sampler="statevector", rng=0, return_stderr=True
    )
    assert estimate.shape == (12,) and stderr.shape == (12,)
    assert_within_shot_noise(estimate, exact, shots)
    # the check has power: a readout with X and Y swapped, or an offset of 0.15, is rejected
    swapped = np.concatenate([exact[4:8], exact[:4], exact[8:]])
    assert np.abs(swapped - exact).max() > 0.2  # (this seed's X and Y differ)
    with pytest.raises(AssertionError):
        assert_within_shot_noise(estimate, swapped, shots)
    with pytest.raises(AssertionError):
        assert_within_shot_noise(estimate, np.clip(exact + 0.15, -1, 1), shots)
    again = qs.nn.expectations_from_sampler(layer, row, shots=shots, sampler="statevector", rng=0)
    np.testing.assert_array_equal(again, estimate)  # same seed, same shots


def test_shots_on_exact_sampler_agree_with_torch():
    """One layer with Z readout is exactly sampleable (rotations before any CNOT)."""
    shots = 4000
    layer = QuantumLayer(5, 1, "z", "ring", rng=8)
    x = torch.as_tensor(np.random.default_rng(6).uniform(-np.pi, np.pi, (2, 5)))
    exact = layer(x).detach().numpy().astype(np.float64)
    for b in range(2):
        estimate = qs.nn.expectations_from_sampler(layer, x[b], shots=shots, sampler="exact", rng=b)
        assert_within_shot_noise(estimate, exact[b], shots)
    # the full re-uploading layer rotates qubits after they controlled a CNOT: exact refuses
    with pytest.raises(ValueError, match="cannot sample"):
        qs.nn.expectations_from_sampler(
            QuantumLayer(3, 2, rng=0), np.zeros(3), shots=10, sampler="exact"
        )


def test_measure_basis_rotations():
    layer = QuantumLayer(2, 1, rng=0)
    names = [i.operation.name for i in layer.to_qiskit(np.zeros(2), measure_basis="XY").data]
    assert names[-6:] == ["h", "sdg", "h", "barrier", "measure", "measure"]
    assert "measure" not in [i.operation.name for i in layer.to_qiskit(np.zeros(2)).data]
    z_circuit = layer.to_qiskit(torch.zeros(1, 2), measure_basis="Z")
    assert z_circuit.count_ops()["measure"] == 2 and "h" not in z_circuit.count_ops()


# ---------------------------------------------------------------- devices and bad inputs


def test_cuda_request_is_clear():
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA device"):
            qs.nn.zero_state(1, 2, device=f"cuda:{torch.cuda.device_count()}")
        layer = QuantumLayer(3, 2, rng=0, device="cuda")
        x = torch.rand(4, 3)
        assert torch.allclose(layer(x.cuda()).cpu(), layer.cpu()(x), atol=1e-5)
    else:
        with pytest.raises(ValueError, match="device: 'cuda' requested but CUDA is not available"):
            qs.nn.zero_state(1, 2, device="cuda")
        with pytest.raises(ValueError, match="CUDA is not available"):
            QuantumLayer(device="cuda")
    with pytest.raises(ValueError, match="device: 'gpu0' is not a torch device"):
        qs.nn.zero_state(1, 2, device="gpu0")


def test_bad_engine_inputs_raise_clear_errors():
    state = qs.nn.zero_state(2, 3)
    with pytest.raises(ValueError, match=r"qubit: qubit 3 is out of range for 3 qubits"):
        qs.nn.rx(state, 3, 0.1)
    with pytest.raises(ValueError, match="out of range"):
        qs.nn.rz(state, -1, 0.1)
    with pytest.raises(TypeError, match="integer qubit index"):
        qs.nn.ry(state, 1.5, 0.1)
    with pytest.raises(ValueError, match="control and target must be different qubits"):
        qs.nn.cnot(state, 1, 1)
    with pytest.raises(ValueError, match="target: qubit 7 is out of range"):
        qs.nn.cnot(state, 0, 7)
    with pytest.raises(ValueError, match="a and b must be different"):
        qs.nn.cz(state, 2, 2)
    with pytest.raises(ValueError, match=r"angle: expected .* \(2,\) tensor"):
        qs.nn.rx(state, 0, torch.zeros(3))
    with pytest.raises(ValueError, match="angle: must be finite"):
        qs.nn.rx(state, 0, float("nan"))
    with pytest.raises(ValueError, match="pauli: 'W' is not allowed"):
        qs.nn.expectation(state, "W")
    with pytest.raises(ValueError, match="dtype: 'float16' is not allowed"):
        qs.nn.zero_state(1, 2, dtype="float16")
    with pytest.raises(ValueError, match="n_qubits: must be a positive integer"):
        qs.nn.zero_state(1, 0)
    with pytest.raises(ValueError, match="exceeds the engine's limit"):
        qs.nn.zero_state(1, 40)
    with pytest.raises(TypeError, match=r"state: expected a torch\.Tensor"):
        qs.nn.rx(np.zeros((1, 2)), 0, 0.1)
    with pytest.raises(TypeError, match="complex64/complex128"):
        qs.nn.probabilities(torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match=r"matrix: expected shape \(2, 2\) or \(2, 2, 2\)"):
        qs.nn.apply_matrix(state, 0, torch.eye(4))
    with pytest.raises(ValueError, match="matrices: expected shape"):
        qs.nn.apply_product(state, torch.eye(2).expand(2, 2, 2))
    with pytest.raises(ValueError, match="perm: expected shape"):
        qs.nn.apply_permutation(state, torch.arange(4))


def test_bad_layer_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="readout: 'xy' is not allowed; choose one of"):
        QuantumLayer(readout="xy")
    with pytest.raises(ValueError, match="entanglement: 'full' is not allowed"):
        QuantumLayer(entanglement="full")
    with pytest.raises(ValueError, match="n_layers: must be a positive integer"):
        QuantumLayer(n_layers=0)
    with pytest.raises(TypeError, match="reupload: expected True or False"):
        QuantumLayer(reupload="yes")
    layer = QuantumLayer(4, 2, rng=0)
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, 4\).*got \(2, 3\)"):
        layer(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, 4\)"):
        layer(torch.zeros(4))
    with pytest.raises(ValueError, match="x: input angles must be finite"):
        layer(torch.tensor([[0.0, float("inf"), 0.0, 0.0]]))
    with pytest.raises(TypeError, match="x: expected real input angles"):
        layer(torch.zeros(1, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"x_row: expected shape \(4,\)"):
        layer.to_qiskit(np.zeros(5))
    with pytest.raises(ValueError, match="x_row: input angles must be finite"):
        layer.to_qiskit([0.0, np.nan, 0.0, 0.0])
    with pytest.raises(ValueError, match="measure_basis: 'Q' is not allowed"):
        layer.to_qiskit(np.zeros(4), measure_basis="Q")
    with pytest.raises(ValueError, match="measure_basis: 'XY' is not allowed"):
        layer.to_qiskit(np.zeros(4), measure_basis="XY")
    with pytest.raises(ValueError, match="shots: must be a positive integer"):
        qs.nn.expectations_from_sampler(layer, np.zeros(4), shots=0)
    with pytest.raises(TypeError, match=r"layer: expected a qs\.nn\.QuantumLayer"):
        qs.nn.expectations_from_sampler(torch.nn.Linear(4, 4), np.zeros(4))
    with pytest.raises(qs.plugins.PluginError, match="unknown circuit sampler 'nope'; available"):
        qs.nn.expectations_from_sampler(layer, np.zeros(4), shots=10, sampler="nope")


def test_import_qsimcells_nn_does_not_import_torch():
    code = """
import json, sys
import qsimcells.nn as nn
before = "torch" in sys.modules
names = dir(nn)
nn.QuantumLayer
print(json.dumps({"before": before, "names": names, "after": "torch" in sys.modules}))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["before"] is False and out["after"] is True
    assert {"zero_state", "rx", "cnot", "expectation", "QuantumLayer"} <= set(out["names"])
    with pytest.raises(AttributeError, match=r"qsimcells\.nn' has no attribute 'nope'"):
        qs.nn.nope  # noqa: B018
