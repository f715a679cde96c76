"""The ``ibm`` plugin: fake devices end to end through the runtime's SamplerV2 (local testing
mode, offline), and the credential handling of real devices without ever reaching IBM."""

from __future__ import annotations

import logging
import pickle
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit
from qiskit.quantum_info import Statevector

import qsimcells as qs
from qsimcells.testing import assert_distribution_matches, niche_bits

SECRET = "secret-0123456789abcdef-token"
ENV_VARS = (
    "QISKIT_IBM_TOKEN",
    "QISKIT_IBM_INSTANCE",
    "QISKIT_IBM_CHANNEL",
    "QISKIT_IBM_URL",
    "IAM_URL",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)


def ideal_probs(circuit: QuantumCircuit) -> np.ndarray:
    """Qiskit's index has qubit i in bit i, as our outcome index does."""
    return Statevector(circuit.remove_final_measurements(inplace=False)).probabilities()


def tvd(bits: np.ndarray, probs: np.ndarray) -> float:
    index = bits.astype(np.int64) @ (1 << np.arange(bits.shape[1]))
    return 0.5 * np.abs(np.bincount(index, minlength=probs.size) / len(bits) - probs).sum()


def star_circuit(seed: int = 3) -> QuantumCircuit:
    """RY/CX on 4 qubits where qubit 0 controls all others: a degree-3 interaction graph that
    does not fit manila's line 0-1-2-3-4, so routing must insert SWAPs."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(4)
    for q in range(4):
        qc.ry(rng.uniform(0.2, np.pi - 0.2), q)
    for q in range(1, 4):
        qc.cx(0, q)
    for q in range(4):
        qc.ry(rng.uniform(0, np.pi / 2), q)
    return qc


def deterministic_circuit() -> tuple[QuantumCircuit, list[int]]:
    """X and CX on non-adjacent pairs (qubit 0 touches 1, 2, 3): routed with SWAPs on manila."""
    qc = QuantumCircuit(5)
    qc.x([0, 4])
    qc.cx(0, 1)
    qc.cx(0, 2)
    qc.cx(0, 3)
    qc.cx(4, 2)
    return qc, [1, 1, 0, 1, 1]


def all_pairs_circuit(n: int) -> QuantumCircuit:
    """CX on every pair: all ``n`` qubits are live at once, so qubit reuse cannot narrow it."""
    qc = QuantumCircuit(n)
    for a in range(n):
        for b in range(a + 1, n):
            qc.cx(a, b)
    return qc


def sampler(**options):
    from qsimcells_ibm.sampler import IBMSampler

    return IBMSampler(**options)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No account anywhere (empty HOME, no QISKIT_IBM_* variables, no proxy) and no network:
    name resolution and direct connections fail at once, so nothing can reach IBM."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known (network disabled in tests)")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    return tmp_path


# --- registration -------------------------------------------------------------------------------


def test_registered_and_listing_imports_nothing_heavy() -> None:
    qs.plugins.reset_registry()
    table = qs.plugins.available("circuit_sampler").set_index("name")
    assert table.loc["ibm", "distribution"] == "qsimcells-ibm"
    caps = table.loc["ibm", "capabilities"]
    assert caps["noisy"] and caps["needs_credentials"] and not caps["exact"]
    assert caps["max_qubits"] is None
    code = (
        "import sys, qsimcells as qs\n"
        "qs.plugins.available('circuit_sampler')\n"
        "print(any(m in sys.modules for m in ('qiskit_ibm_runtime', 'qiskit_aer')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False"]


# --- fake devices, end to end through the runtime's SamplerV2 -----------------------------------


def test_noisy_fake_manila_is_close_to_the_exact_distribution() -> None:
    qc = star_circuit()
    probs = ideal_probs(qc)
    bits = qs.samplers.sample_bits(qc, 4000, sampler="ibm", backend="fake_manila", rng=3)
    assert bits.shape == (4000, 4) and bits.dtype == np.uint8
    # manila's readout error is ~2-4 % per qubit (about 10 % of 4-qubit shots get a flipped bit)
    # and its CX error ~1 % over ~6 CX after routing; with the pull towards uniform this gives a
    # TVD of about 0.1 (measured 0.06-0.14 over seeds), sampling adds ~0.02. A mapping mistake
    # is far worse: the same bits with the qubit order reversed or rotated are at 0.79 / 0.81.
    assert tvd(bits, probs) < 0.2
    assert tvd(bits[:, ::-1], probs) > 0.4 and tvd(np.roll(bits, 1, axis=1), probs) > 0.4


def test_ideal_local_mode_on_the_routed_isa_circuit_is_exact() -> None:
    """noise=False: the manila ISA circuit (layout, SWAPs, cx/rz/sx) on an ideal AerSimulator
    must give exactly the ideal distribution, so the strict test applies."""
    qc = star_circuit()
    bits = qs.samplers.sample_bits(
        qc, 20_000, sampler="ibm", backend="fake_manila", noise=False, rng=4
    )
    assert_distribution_matches(bits, ideal_probs(qc))


def test_deterministic_bits_survive_routing() -> None:
    qc, expected = deterministic_circuit()
    ideal = sampler(backend="fake_manila", noise=False)
    bits = ideal.sample(qc, 500, rng=np.random.default_rng(0))
    assert (bits == expected).all()
    compiled = ideal.last_circuit
    # routing happened: more two-qubit gates than the 4 CX of the logical circuit
    assert compiled.count_ops().get("cx", 0) + compiled.count_ops().get("ecr", 0) > 4
    assert ideal.last_layout == list(compiled.layout.final_index_layout())
    assert sorted(ideal.last_layout) == list(range(5))

    noisy = qs.samplers.sample_bits(qc, 2000, sampler="ibm", backend="fake_manila", rng=0)
    rows, counts = np.unique(noisy, axis=0, return_counts=True)
    assert rows[counts.argmax()].tolist() == expected
    assert (noisy != expected).any(1).mean() > 0.01  # noise is really on


def test_shots_split_into_jobs_in_order() -> None:
    from qiskit_aer import AerSimulator
    from qiskit_ibm_runtime import SamplerV2

    from qsimcells.samplers import bitarray_to_bits

    qc = star_circuit()
    ibm = sampler(backend="fake_manila", noise=False, max_shots_per_job=100, mode="job")
    bits = ibm.sample(qc, 250, rng=np.random.default_rng(5))
    assert bits.shape == (250, 4)
    assert len(ibm.last_job_ids) == 3 and len(set(ibm.last_seeds)) == 3
    assert not np.array_equal(bits[:100], bits[100:200])
    # each chunk is the job with its own seed, concatenated in submission order
    parts = []
    for seed, size in zip(ibm.last_seeds, (100, 100, 50), strict=True):
        with warnings.catch_warnings():  # SamplerV2 is deprecated since 0.50
            warnings.simplefilter("ignore", DeprecationWarning)
            rerun = SamplerV2(mode=AerSimulator())
        rerun.options.simulator.seed_simulator = seed
        result = rerun.run([ibm.last_circuit], shots=size).result()
        parts.append(bitarray_to_bits(result[0].data.qsimcells_final))
    assert np.array_equal(bits, np.concatenate(parts))


@pytest.mark.parametrize("mode", ["batch", "session"])
def test_same_seed_same_bits(mode: str) -> None:
    qc = star_circuit(1)
    opts = {"backend": "fake_manila", "mode": mode, "max_shots_per_job": 200}
    a = qs.samplers.sample_bits(qc, 300, sampler="ibm", rng=1, **opts)
    assert np.array_equal(a, qs.samplers.sample_bits(qc, 300, sampler="ibm", rng=1, **opts))
    assert not np.array_equal(a, qs.samplers.sample_bits(qc, 300, sampler="ibm", rng=2, **opts))


def test_simulate_paper_preset_on_a_fake_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QISKIT_IBM_TOKEN", SECRET)  # present, but unused by a fake device
    design = qs.sim.presets.romero2025(True)
    adata = qs.sim.simulate(
        design, 200, sampler="ibm", sampler_options={"backend": "fake_guadalupe"}, rng=0
    )
    info = adata.uns["qsimcells"]["sampler"]
    assert info["name"] == "ibm" and info["options"] == {"backend": "fake_guadalupe"}
    assert SECRET not in repr(adata.uns["qsimcells"])
    bits = niche_bits(adata)
    assert bits.shape == (200, 10)
    # per-qubit marginals (0.02-0.98 in this design): 200 shots give a sampling sd of at most
    # 0.035 and guadalupe's readout/gate noise shifts them by a few percent, so 0.2 is loose;
    # a qubit read from the wrong column would be off by up to 0.9
    probs = ideal_probs(design.to_qiskit())
    marginals = np.array([probs[(np.arange(probs.size) >> q) & 1 == 1].sum() for q in range(10)])
    assert np.abs(bits.mean(0) - marginals).max() < 0.2
    assert np.abs(bits[:, ::-1].mean(0) - marginals).max() > 0.5


@pytest.mark.parametrize("interacting", [True, False])
def test_both_paper_presets_through_the_device_isa_match_exactly(interacting: bool) -> None:
    """Transpiled to guadalupe's ISA (layout, routing, native gates) but simulated without
    noise, the niches of both presets follow the ideal distribution within sampling noise."""
    design = qs.sim.presets.romero2025(interacting)
    adata = qs.sim.simulate(
        design,
        4000,
        sampler="ibm",
        rng=1,
        sampler_options={"backend": "fake_guadalupe", "noise": False},
    )
    assert_distribution_matches(niche_bits(adata), ideal_probs(design.to_qiskit()))


@pytest.mark.parametrize("interacting", [True, False])
def test_paper_presets_on_fake_manila_through_qubit_reuse(interacting: bool) -> None:
    """The 10-gene designs on the 5-qubit manila: each gene is measured when its last gate has
    run and its wire reset for the next (2 wires suffice). Without noise the niches follow the
    ideal distribution within sampling noise; with manila's noise (readout, reset, gates) the
    ON fractions stay within a few percent and no column is swapped."""
    design = qs.sim.presets.romero2025(interacting)
    probs = ideal_probs(design.to_qiskit())
    ideal = qs.sim.simulate(design, 4000, sampler="ibm", backend="fake_manila", noise=False, rng=1)
    assert_distribution_matches(niche_bits(ideal), probs)

    adata = qs.sim.simulate(design, 2000, sampler="ibm", backend="fake_manila", rng=2)
    assert adata.uns["qsimcells"]["sampler"]["options"] == {"backend": "fake_manila"}
    marginals = np.array([probs[(np.arange(probs.size) >> q) & 1 == 1].sum() for q in range(10)])
    # 2,000 shots: sampling sd <= 0.011; the noise moves a marginal by a few percent, a wrong
    # column by up to 0.9
    assert np.abs(niche_bits(adata).mean(0) - marginals).max() < 0.1


def test_qubit_reuse_runs_on_two_physical_qubits_and_keeps_deterministic_bits() -> None:
    """A 10-qubit chain of CX (a deterministic pattern) fits manila only through reuse; each
    clbit is read from the wire its qubit ran on, so every shot is exactly the pattern."""
    qc = QuantumCircuit(10)
    qc.x([0, 3, 6])
    for q in range(9):
        qc.cx(q, q + 1)  # bit q+1 = bit q xor its own X
    expected = np.cumsum(np.isin(np.arange(10), [0, 3, 6])) % 2
    ibm = sampler(backend="fake_manila", noise=False)
    bits = ibm.sample(qc, 500, rng=np.random.default_rng(0))
    assert (bits == expected).all()
    assert ibm.last_circuit.count_ops()["reset"] > 0
    assert len(set(ibm.last_layout)) == 2  # ten clbits read from two physical qubits


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"qubit_reuse": False}, r"10 qubits but fake_manila has 5 \(qubit_reuse=False\)"),
        ({}, None),
    ],
)
def test_preset_too_large_for_the_device_is_a_clear_error(options: dict, match: str | None) -> None:
    if match is None:  # reuse cannot help when all qubits interact at once
        with pytest.raises(
            ValueError, match="6 qubits but fake_manila has 5; even with qubit reuse it needs 6"
        ):
            qs.samplers.sample_bits(all_pairs_circuit(6), 20, sampler="ibm", backend="fake_manila")
        return
    with pytest.raises(ValueError, match=match):
        qs.sim.simulate(
            qs.sim.presets.romero2025(True),
            20,
            sampler="ibm",
            sampler_options={"backend": "fake_manila", **options},
            rng=0,
        )


def test_every_final_clbit_must_be_measured_exactly_once() -> None:
    from qsimcells.circuits import final_measurement_map

    qc = QuantumCircuit(2)
    creg = ClassicalRegister(2, "qsimcells_final")
    qc.add_register(creg)
    qc.measure(0, creg[0])
    qc.measure(1, creg[0])
    with pytest.raises(RuntimeError, match=r"\{0: 2, 1: 0\}"):
        final_measurement_map(qc, 2)


# --- credentials of real devices, without reaching IBM --------------------------------------------


def test_constructing_a_real_backend_sampler_never_connects(offline: Path) -> None:
    ibm = sampler(backend="ibm_brisbane", mode="session", channel="ibm_quantum_platform")
    assert "ibm_brisbane" in repr(ibm) and ibm._backend is None
    assert pickle.loads(pickle.dumps(ibm)).backend_name == "ibm_brisbane"


def test_no_credentials_is_a_clear_error(offline: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="no IBM Quantum credentials found") as info:
        qs.samplers.sample_bits(QuantumCircuit(2), 10, sampler="ibm", backend="ibm_brisbane")
    assert "QISKIT_IBM_TOKEN" in str(info.value) and "save_account" in str(info.value)
    assert time.perf_counter() - start < 10


def assert_no_secret(
    err: BaseException, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    out = capsys.readouterr()
    for text in (str(err), repr(err), caplog.text, out.out, out.err):
        assert SECRET not in text
        assert SECRET[7:20] not in text
    # the original error (which may quote the token) is neither chained nor kept as context
    assert err.__cause__ is None and err.__context__ is None


def test_env_token_offline_fails_fast_without_the_secret(
    offline: Path, monkeypatch, caplog, capsys
) -> None:
    from qsimcells_ibm.sampler import IBMConnectionError

    monkeypatch.setenv("QISKIT_IBM_TOKEN", SECRET)
    caplog.set_level(logging.DEBUG)
    start = time.perf_counter()
    with pytest.raises(IBMConnectionError, match=r"cannot reach iam\.cloud\.ibm\.com:443") as info:
        qs.samplers.sample_bits(QuantumCircuit(2), 10, sampler="ibm", backend="ibm_brisbane")
    assert time.perf_counter() - start < 10
    assert_no_secret(info.value, caplog, capsys)


def test_runtime_connection_failure_is_scrubbed(offline: Path, monkeypatch, caplog, capsys) -> None:
    """Without the reachability probe the runtime itself tries (and fails at once here: name
    resolution is disabled); its error and the real cause come back without the token."""
    from qsimcells_ibm.sampler import IBMConnectionError

    monkeypatch.setenv("QISKIT_IBM_TOKEN", SECRET)
    caplog.set_level(logging.DEBUG)
    start = time.perf_counter()
    with pytest.raises(IBMConnectionError, match="connecting to IBM Quantum") as info:
        sampler(backend="ibm_brisbane", connect_timeout=None).supports(QuantumCircuit(2))
    assert time.perf_counter() - start < 20
    assert "network disabled in tests" in str(info.value)
    assert_no_secret(info.value, caplog, capsys)


@pytest.mark.parametrize("source", ["env", "saved"])
def test_a_token_echoed_by_the_runtime_is_scrubbed(
    source: str, offline: Path, monkeypatch, caplog, capsys
) -> None:
    import qiskit_ibm_runtime

    from qsimcells_ibm.sampler import IBMConnectionError

    if source == "env":
        monkeypatch.setenv("QISKIT_IBM_TOKEN", SECRET)
    else:
        qiskit_ibm_runtime.QiskitRuntimeService.save_account(
            channel="ibm_quantum_platform",
            token=SECRET,
            set_as_default=True,
            filename=str(offline / ".qiskit" / "qiskit-ibm.json"),
        )

    class EchoingService:
        def __init__(self, **kwargs):
            logging.getLogger("qiskit_ibm_runtime").debug("connecting")
            raise RuntimeError(f"token {SECRET} was rejected")

    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", EchoingService)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(IBMConnectionError, match=r"token \*\*\* was rejected") as info:
        sampler(backend="ibm_brisbane", connect_timeout=None).supports(QuantumCircuit(2))
    assert_no_secret(info.value, caplog, capsys)


def test_unknown_real_backend_is_a_clear_error(offline: Path, monkeypatch) -> None:
    import qiskit_ibm_runtime
    from qiskit.providers.exceptions import QiskitBackendNotFoundError

    from qsimcells_ibm.sampler import UnknownBackendError

    class Device:
        def __init__(self, name: str) -> None:
            self.name = name

    class Service:  # stands in for a connected account
        def __init__(self, **kwargs) -> None:
            pass

        def backend(self, name: str):
            raise QiskitBackendNotFoundError("No backend matches the criteria.")

        def backends(self):
            return [Device("ibm_torino"), Device("ibm_fez")]

    monkeypatch.setenv("QISKIT_IBM_TOKEN", SECRET)
    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", Service)
    with pytest.raises(
        UnknownBackendError,
        match=r"backend: 'ibm_nowhere' is not available.*'ibm_fez', 'ibm_torino'",
    ):
        sampler(backend="ibm_nowhere", connect_timeout=None).supports(QuantumCircuit(2))


def test_real_device_path_with_a_stand_in_service(offline: Path, monkeypatch) -> None:
    """The real-device path (account -> service -> backend -> ISA -> jobs), with the service
    replaced by one that hands out fake_manila: runs offline, never seeded."""
    import qiskit_ibm_runtime

    from qsimcells.samplers.fake_backends import fake_backend

    class Service:
        def __init__(self, **kwargs) -> None:
            assert "token" not in kwargs  # the runtime finds the account itself

        def backend(self, name: str):
            return fake_backend("fake_manila")

    monkeypatch.setenv("QISKIT_IBM_TOKEN", SECRET)
    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", Service)
    qc, expected = deterministic_circuit()
    ibm = sampler(backend="ibm_manila", connect_timeout=None, max_shots_per_job=150)
    assert ibm.supports(all_pairs_circuit(6)) == (
        "the circuit has 6 qubits but ibm_manila has 5; even with qubit reuse it needs 6"
    )
    assert ibm.supports(qs.sim.presets.romero2025(True).to_qiskit()) is None  # 2 wires
    bits = ibm.sample(qc, 300, rng=np.random.default_rng(0))
    assert bits.shape == (300, 5) and len(ibm.last_job_ids) == 2 and ibm.last_seeds == []
    rows, counts = np.unique(bits, axis=0, return_counts=True)
    assert rows[counts.argmax()].tolist() == expected
    assert pickle.loads(pickle.dumps(ibm))._backend is None  # no runtime client in a pickle


def test_env_token_never_reaches_the_data(offline: Path, monkeypatch) -> None:
    """simulate on a real backend name (a stand-in service hands out fake_manila) with the token
    in the environment: it appears nowhere in uns, in the h5ad written from it, or in the
    sampler's options and repr."""
    import qiskit_ibm_runtime

    from qsimcells.samplers.fake_backends import fake_backend

    class Service:
        def __init__(self, **kwargs) -> None:
            self.kwargs = kwargs

        def backend(self, name: str):
            return fake_backend("fake_manila")

    monkeypatch.setenv("QISKIT_IBM_TOKEN", SECRET)
    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", Service)
    adata = qs.sim.simulate(
        qs.sim.presets.romero2025(True),
        60,
        sampler="ibm",
        sampler_options={"backend": "ibm_manila", "connect_timeout": None},
        rng=0,
    )
    info = adata.uns["qsimcells"]["sampler"]
    assert info["name"] == "ibm" and info["options"]["backend"] == "ibm_manila"
    assert SECRET not in repr(dict(adata.uns)) and SECRET not in repr(adata)
    path = offline / "out.h5ad"
    adata.write_h5ad(path)
    assert SECRET.encode() not in path.read_bytes()
    ibm = sampler(backend="ibm_manila", connect_timeout=None)
    assert SECRET not in repr(ibm) and SECRET not in repr(vars(ibm))


# --- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        (
            {"backend": "fake_manila", "mode": "interactive"},
            ValueError,
            r"mode: 'interactive' is not allowed; choose one of \['batch', 'session', 'job'\]",
        ),
        ({"backend": "fake_manila", "optimization_level": 7}, ValueError, "optimization_level: 7"),
        ({"backend": "fake_manila", "max_shots_per_job": 0}, ValueError, "max_shots_per_job: "),
        (
            {"backend": "fake_manila", "max_shots_per_job": 10**9},
            ValueError,
            "max_shots_per_job: 1000000000 exceeds the maximum of 100000",
        ),
        ({"backend": "fake_manila", "noise": "yes"}, ValueError, "noise: expected True or False"),
        (
            {"backend": "fake_manila", "qubit_reuse": None},
            ValueError,
            "qubit_reuse: None is not allowed",
        ),
        (
            {"backend": "ibm_brisbane", "noise": False},
            ValueError,
            "noise: False .* only for fake backends",
        ),
        (
            {"backend": "ibm_brisbane", "channel": "ibm_quantum"},
            ValueError,
            "channel: 'ibm_quantum'",
        ),
        ({"backend": "ibm_brisbane", "connect_timeout": 0}, ValueError, "connect_timeout: "),
        (
            {"backend": "fake_manila", "instance": "my-instance"},
            ValueError,
            "instance: only for real backends",
        ),
        (
            {"backend": "fake_nowhere"},
            ValueError,
            r"backend: 'fake_nowhere' is not a fake backend; available: \[.*'fake_manila'",
        ),
        ({}, ValueError, "backend: expected a device name"),
        (
            {"backend": "ibm_brisbane", "token": SECRET},
            ValueError,
            "token: credentials are never sampler options",
        ),
        ({"backend": "ibm_brisbane", "seed": 5}, TypeError, r"unexpected option\(s\) \[.seed.\]"),
    ],
)
def test_bad_options_name_the_field(options: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match) as info:
        qs.samplers.sample_bits(QuantumCircuit(2), 5, sampler="ibm", **options)
    assert SECRET not in str(info.value)
