"""The ``aer`` plugin: Aer SamplerV2 bits in logical order, ideal and noisy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.quantum_info import Statevector

import qsimcells as qs
from qsimcells.testing import assert_distribution_matches, niche_bits


def ideal_probs(circuit: QuantumCircuit) -> np.ndarray:
    """Qiskit's index has qubit i in bit i, as our outcome index does."""
    return Statevector(circuit.remove_final_measurements(inplace=False)).probabilities()


def index_of(bits: np.ndarray) -> np.ndarray:
    return bits.astype(np.int64) @ (1 << np.arange(bits.shape[1]))


def random_circuit(
    n: int, seed: int, *, registers: int = 1, measure: bool = True
) -> QuantumCircuit:
    """Gates outside the exact path too (H and RZZ after controls), measured into several
    registers in a scrambled order, so that clbit order differs from qubit order."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(QuantumRegister(n, "q"))
    for _ in range(14):
        a, b = (int(q) for q in rng.choice(n, 2, replace=False))
        kind = rng.integers(4)
        if kind == 0:
            qc.h(a)
        elif kind == 1:
            qc.ry(rng.uniform(0, np.pi), a)
        elif kind == 2:
            qc.cx(a, b)
        else:
            qc.rzz(rng.uniform(0, np.pi), a, b)
    if measure:
        sizes = np.array_split(rng.permutation(n), registers)
        for k, qubits in enumerate(sizes):
            creg = ClassicalRegister(len(qubits), f"c{k}")
            qc.add_register(creg)
            qc.measure([int(q) for q in qubits], creg)
    return qc


def test_registered_and_listing_does_not_import_aer() -> None:
    code = (
        "import sys, qsimcells as qs\n"
        "t = qs.plugins.available('circuit_sampler').set_index('name')\n"
        "print(t.loc['aer', 'distribution'], 'qiskit_aer' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["qsimcells-aer", "False"]


@pytest.mark.parametrize(
    ("seed", "registers", "measure"), [(0, 1, True), (1, 3, True), (2, 1, False)]
)
def test_ideal_matches_the_statevector(seed: int, registers: int, measure: bool) -> None:
    qc = random_circuit(5, seed, registers=registers, measure=measure)
    bits = qs.samplers.sample_bits(qc, 20_000, sampler="aer", rng=seed)
    assert bits.shape == (20_000, 5) and bits.dtype == np.uint8
    assert_distribution_matches(bits, ideal_probs(qc))


def test_matrix_product_state_method_matches_too() -> None:
    qc = random_circuit(6, 7, registers=2)
    bits = qs.samplers.sample_bits(qc, 20_000, sampler="aer", rng=1, method="matrix_product_state")
    assert_distribution_matches(bits, ideal_probs(qc))


def test_bits_are_per_shot_not_expanded_counts() -> None:
    """Consecutive shots are independent: P(row t != row t+1) = 1 - sum p^2, which expanded
    (sorted) counts would violate badly."""
    qc = random_circuit(4, 3)
    bits = qs.samplers.sample_bits(qc, 20_000, sampler="aer", rng=2)
    probs = ideal_probs(qc)
    index = index_of(bits)
    changes = (index[1:] != index[:-1]).mean()
    expected = 1 - (probs**2).sum()
    # a stationary 0/1 sequence of 2e4 pairs: sd below sqrt(2 p (1-p) / N) ~ 0.005
    assert abs(changes - expected) < 5 * np.sqrt(2 * expected * (1 - expected) / 20_000)


def test_deterministic_bits_land_on_their_qubits() -> None:
    qc = QuantumCircuit(6)
    qc.x([0, 3])
    qc.cx(3, 5)
    bits = qs.samplers.sample_bits(qc, 100, sampler="aer", rng=0)
    assert (bits == [1, 0, 0, 1, 0, 1]).all()


def test_readout_noise_model_flips_bits_at_its_rate() -> None:
    from qiskit_aer.noise import NoiseModel, ReadoutError

    noise = NoiseModel()
    noise.add_all_qubit_readout_error(ReadoutError([[0.9, 0.1], [0.1, 0.9]]))
    qc = QuantumCircuit(4)
    qc.x([1, 2])
    bits = qs.samplers.sample_bits(qc, 20_000, sampler="aer", rng=3, noise_model=noise)
    flipped = (bits != [0, 1, 1, 0]).mean(0)
    assert np.all(np.abs(flipped - 0.1) < 5 * np.sqrt(0.1 * 0.9 / 20_000))


def test_fake_backend_noise_measurably_differs_from_ideal() -> None:
    pytest.importorskip("qiskit_ibm_runtime", reason="fake backends need the 'fake' extra")
    qc = QuantumCircuit(3)
    qc.x(0)
    qc.cx(0, 2)
    expected = [1, 0, 1]
    ideal = qs.samplers.sample_bits(qc, 10_000, sampler="aer", rng=4)
    noisy = qs.samplers.sample_bits(qc, 10_000, sampler="aer", rng=4, noise_model="fake_manila")
    assert (ideal == expected).all()
    wrong = (noisy != expected).any(1).mean()
    # manila's readout and gate errors are a few percent per qubit: far above zero, far below
    # a random outcome
    assert 0.01 < wrong < 0.5
    assert np.bincount(index_of(noisy)).argmax() == 0b101


def test_simulate_paper_presets_with_aer() -> None:
    for interacting in (True, False):
        design = qs.sim.presets.romero2025(interacting)
        adata = qs.sim.simulate(design, 20_000, sampler="aer", rng=5)
        assert adata.uns["qsimcells"]["sampler"]["name"] == "aer"
        assert_distribution_matches(niche_bits(adata), ideal_probs(design.to_qiskit()))


def test_too_large_for_the_borrowed_device_is_a_clear_error() -> None:
    pytest.importorskip("qiskit_ibm_runtime", reason="fake backends need the 'fake' extra")
    circuit = qs.sim.presets.romero2025(True).to_qiskit()  # 10 qubits
    with pytest.raises(ValueError, match=r"10 qubits but fake_manila has 5 \(qubit_reuse=False"):
        qs.samplers.sample_bits(
            circuit, 10, sampler="aer", noise_model="fake_manila", qubit_reuse=False
        )
    dense = QuantumCircuit(6)  # every pair interacts: all 6 qubits live at once
    for a in range(6):
        for b in range(a + 1, 6):
            dense.cx(a, b)
    with pytest.raises(
        ValueError, match="6 qubits but fake_manila has 5; even with qubit reuse it needs 6"
    ):
        qs.samplers.sample_bits(dense, 10, sampler="aer", noise_model="fake_manila")


def test_qubit_reuse_on_the_ideal_simulator_keeps_the_distribution() -> None:
    """qubit_reuse=True measures and resets mid-circuit; Aer runs that exactly, so the bits of
    a circuit outside the classical path still follow its statevector."""
    qc = random_circuit(5, 4, registers=2)
    bits = qs.samplers.sample_bits(qc, 20_000, sampler="aer", rng=3, qubit_reuse=True)
    assert_distribution_matches(bits, ideal_probs(qc))


def test_paper_presets_on_manila_noise_through_qubit_reuse() -> None:
    """The 10-gene designs run on 2 of manila's 5 qubits (each gene measured when done, its
    wire reset); with the device's noise the ON fractions stay near sin^2(theta/2)."""
    pytest.importorskip("qiskit_ibm_runtime", reason="fake backends need the 'fake' extra")
    for interacting in (True, False):
        design = qs.sim.presets.romero2025(interacting)
        adata = qs.sim.simulate(design, 2000, sampler="aer", noise_model="fake_manila", rng=2)
        probs = ideal_probs(design.to_qiskit())
        marginals = np.array(
            [probs[(np.arange(probs.size) >> q) & 1 == 1].sum() for q in range(10)]
        )
        # 2,000 shots: sampling sd <= 0.011; manila's readout, reset and gate errors move a
        # marginal by a few percent, a wrong column by up to 0.9
        assert np.abs(niche_bits(adata).mean(0) - marginals).max() < 0.1


def test_same_seed_same_bits() -> None:
    qc = random_circuit(5, 9)
    a = qs.samplers.sample_bits(qc, 500, sampler="aer", rng=1)
    assert np.array_equal(a, qs.samplers.sample_bits(qc, 500, sampler="aer", rng=1))
    assert not np.array_equal(a, qs.samplers.sample_bits(qc, 500, sampler="aer", rng=2))


def test_last_layout_names_the_device_qubit_of_every_gene() -> None:
    pytest.importorskip("qiskit_ibm_runtime", reason="fake backends need the 'fake' extra")
    from qsimcells_aer.sampler import AerSampler

    aer = AerSampler(noise_model="fake_manila")
    aer.sample(qs.sim.presets.romero2025(True).to_qiskit(), 10, rng=np.random.default_rng(0))
    assert len(aer.last_layout) == 10 and len(set(aer.last_layout)) == 2  # reuse: 2 qubits


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"method": "unitary"}, ValueError, "method: 'unitary' is not allowed"),
        ({"device": "TPU"}, ValueError, "device: 'TPU' is not allowed"),
        ({"optimization_level": 5}, ValueError, "optimization_level"),
        ({"noise_model": 0.1}, TypeError, "noise_model: expected None"),
        ({"noise_model": "fake_nowhere"}, ValueError, "noise_model: 'fake_nowhere' is not a fake"),
        ({"qubit_reuse": "always"}, ValueError, "qubit_reuse: 'always' is not allowed"),
        ({"seed": 3}, ValueError, "seed: not an option; pass rng= to sample_bits / simulate"),
        ({"seed_simulator": 3}, ValueError, "seed_simulator: not an option; pass rng="),
    ],
)
def test_bad_options_name_the_field(options: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        qs.samplers.sample_bits(QuantumCircuit(2), 5, sampler="aer", **options)
