"""qs.model.SpiQGAN: the patch quantum generator against the qs.nn engine and Qiskit, the
local-expectation gradient, training on a correlated population, persistence, bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import qsimcells as qs  # noqa: E402
from qsimcells.model.spiqgan import PAPER_SETTINGS, _poisson_binomial  # noqa: E402

N_UNITS = 5


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The models here are small: one thread is faster than two on a busy 2-core machine
    (OpenMP threads wait for each other), and the tests must stay quick there."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def population():
    """5 correlated units in one bin: 20,000 training and 20,000 held-out samples."""
    adata = qs.datasets.ising_population(
        N_UNITS, 40_000, coupling=4.0, coupling_mean=0.5, rate=0.15, rng=11
    )
    x = adata.X.toarray()
    return x[:20_000], x[20_000:]


@pytest.fixture(scope="module")
def trained(population):
    train, _ = population
    model = qs.model.SpiQGAN(train, N_UNITS, rng=0)
    model.train(300, 64, progress=False)
    return model


def _reference_probabilities(model, z: torch.Tensor) -> torch.Tensor:
    """The generator gate by gate on the qs.nn engine: ``(B, T, 2**n)``."""
    import qsimcells.nn as qnn

    g = model.generator
    n, out = model.n_units, []
    for t in range(model.n_timesteps):
        state = qnn.zero_state(z.shape[0], n, dtype="float64")
        for layer in range(model.n_layers):
            for q in range(n):
                state = qnn.rx(state, q, g.noise_weights[t, layer, q] * z[:, layer, q])
                state = qnn.ry(state, q, g.weights[t, layer, q, 0])
                state = qnn.rz(state, q, g.weights[t, layer, q, 1])
            for q in range(n - 1):
                state = qnn.cnot(state, q, q + 1)
        out.append(qnn.probabilities(state))
    return torch.stack(out, 1)


@pytest.mark.parametrize(("n_units", "n_timesteps"), [(1, 2), (2, 3), (3, 2), (4, 1), (5, 2)])
def test_generator_matches_the_engine_gate_by_gate(n_units, n_timesteps) -> None:
    data = np.zeros((4, n_units * n_timesteps), dtype=np.uint8)
    model = qs.model.SpiQGAN(data, n_units, n_timesteps, n_layers=3, dtype="float64", rng=1)
    with torch.no_grad():  # noise weights away from 1, so that they are tested too
        model.generator.noise_weights.uniform_(0.3, 2.0)
    z = model._noise(6, torch.Generator().manual_seed(0))
    fast = model.generator(z)
    assert fast.shape == (6, n_timesteps, 2**n_units)
    torch.testing.assert_close(fast, _reference_probabilities(model, z), atol=1e-12, rtol=0)
    torch.testing.assert_close(fast.sum(-1), torch.ones(6, n_timesteps, dtype=torch.float64))


def test_to_qiskit_gives_the_same_probabilities() -> None:
    from qiskit.quantum_info import Statevector

    model = qs.model.SpiQGAN(np.zeros((4, 6), dtype=np.uint8), 3, 2, dtype="float64", rng=2)
    with torch.no_grad():
        model.generator.noise_weights.uniform_(0.5, 1.5)
    z = model._noise(1, torch.Generator().manual_seed(3))
    probs = model.generator(z)[0].detach().numpy()
    bound = model.to_qiskit(z[0].numpy())
    free = model.to_qiskit()
    assert len(bound) == 2 and bound[0].num_qubits == 3
    assert len(free[0].parameters) == model.n_layers * 3  # z[l * n + q], shared by timesteps
    for t in range(2):
        np.testing.assert_allclose(Statevector(bound[t]).probabilities(), probs[t], atol=1e-12)
        values = dict(
            zip(
                sorted(free[t].parameters, key=lambda p: p.index), z[0].numpy().ravel(), strict=True
            )
        )
        rebound = free[t].assign_parameters(values)
        np.testing.assert_allclose(Statevector(rebound).probabilities(), probs[t], atol=1e-12)
    measured = model.to_qiskit(z[0].numpy(), measure=True)[0]
    assert measured.count_ops()["measure"] == 3
    with pytest.raises(ValueError, match=r"noise: expected shape \(n_layers, n_units\)"):
        model.to_qiskit(np.zeros(3))


@pytest.mark.parametrize("readout", ["born", "marginal"])
def test_local_expectation_gradient_is_the_exact_gradient(readout) -> None:
    """The surrogate's gradient, averaged over many draws, equals the gradient of the exact
    E[C(G(z))] (enumerated over all 2**(n t) samples) for fixed noise."""
    n, steps = 2, 2
    data = np.random.default_rng(0).integers(0, 2, (20, n * steps)).astype(np.uint8)
    model = qs.model.SpiQGAN(data, n, steps, n_layers=2, readout=readout, dtype="float64", rng=0)
    with torch.no_grad():
        for p in model.critic.parameters():
            p.normal_(0, 1, generator=torch.Generator().manual_seed(1))
    z = model._noise(2, torch.Generator().manual_seed(2))
    probs = model.generator(z)
    states = model._states
    if readout == "born":
        per = probs
    else:  # independent units: P(s) = prod_u p_u^s_u (1 - p_u)^(1 - s_u)
        p = model._marginals(probs).reshape(2, steps, 1, n)
        per = torch.where(states == 1, p, 1 - p).prod(-1)
    exact = 0
    for combo in itertools.product(range(2**n), repeat=steps):
        x = torch.cat([states[s] for s in combo]).expand(2, -1)
        weight = per[:, 0, combo[0]] * per[:, 1, combo[1]]
        exact = exact + (weight * model.critic(x)[:, 0]).mean()
    grad_exact = torch.autograd.grad(exact, model.generator.weights)[0]

    repeats = 20_000
    many = model.generator(z.repeat(repeats, 1, 1))
    uniform = torch.rand(
        model._uniform_shape(2 * repeats),
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(4),
    )
    bits = model._draw(many.detach(), uniform)
    with torch.no_grad():
        local = model._local_critic(bits)
    surrogate = (
        (many * local).sum((1, 2)) if readout == "born" else (model._marginals(many) * local).sum(1)
    ).mean()
    grad = torch.autograd.grad(surrogate, model.generator.weights)[0]
    scale = float(grad_exact.abs().max())
    assert scale > 0.05
    # Monte Carlo error of 40,000 draws: about 1 % of the gradient's scale
    assert float((grad - grad_exact).abs().max()) < 0.05 * scale


def test_k_loss_is_the_distance_between_count_distributions() -> None:
    p = torch.tensor([[0.2, 0.7, 0.5], [0.9, 0.1, 0.4]], dtype=torch.float64)
    dist = _poisson_binomial(p)
    for row in range(2):
        brute = np.zeros(4)
        for bits in itertools.product([0, 1], repeat=3):
            brute[sum(bits)] += np.prod(
                [pi if b else 1 - pi for pi, b in zip(p[row], bits, strict=True)]
            )
        np.testing.assert_allclose(dist[row].numpy(), brute, atol=1e-12)
    data = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 1, 1]], dtype=np.uint8)
    model = qs.model.SpiQGAN(data, 3, dtype="float64", rng=0)
    np.testing.assert_allclose(model._k_data.numpy(), [[0.25, 0.25, 0.25, 0.25]])
    probs = model.generator(model._noise(8, torch.Generator().manual_seed(0)))
    k_gen = (probs[:, 0] @ model._popcount).mean(0).detach().numpy()
    # W1 on 0..n: the summed gap between the cumulative distributions
    expected = np.abs(np.cumsum(k_gen - 0.25)[:-1]).sum()
    assert model._k_loss(probs).item() == pytest.approx(expected)

    # several timesteps: one W1 per timestep against that timestep's data, summed / sqrt(T)
    data = np.array(
        [[1, 0, 0, 0, 0, 0], [1, 1, 0, 1, 1, 1], [0, 0, 1, 1, 0, 0], [1, 1, 1, 0, 1, 0]],
        dtype=np.uint8,
    )  # 3 units x 2 timesteps
    model = qs.model.SpiQGAN(data, 3, 2, dtype="float64", rng=0)
    # active units per sample: 1, 2, 1, 3 at timestep 0 and 0, 3, 1, 1 at timestep 1
    k_data = np.stack(
        [np.bincount([1, 2, 1, 3], minlength=4) / 4, np.bincount([0, 3, 1, 1], minlength=4) / 4]
    )
    np.testing.assert_allclose(model._k_data.numpy(), k_data)
    probs = model.generator(model._noise(8, torch.Generator().manual_seed(0)))
    k_gen = (probs @ model._popcount).mean(0).detach().numpy()  # (T, n + 1)
    expected = sum(np.abs(np.cumsum(k_gen[t] - k_data[t])[:-1]).sum() for t in range(2))
    assert model._k_loss(probs).item() == pytest.approx(expected / math.sqrt(2))
    marginal = qs.model.SpiQGAN(data, 3, 2, readout="marginal", dtype="float64", rng=0)
    p = marginal._marginals(probs).reshape(8, 2, 3)
    k_gen = np.stack([_poisson_binomial(p[:, t]).mean(0).detach().numpy() for t in range(2)])
    expected = sum(np.abs(np.cumsum(k_gen[t] - k_data[t])[:-1]).sum() for t in range(2))
    assert marginal._k_loss(probs).item() == pytest.approx(expected / math.sqrt(2))


def test_training_beats_independent_units(population, trained) -> None:
    train, held_out = population
    assert trained.is_trained and len(trained.history) == 300
    fake = trained.sample(20_000, rng=5)
    gan = qs.tl.spike_statistics(held_out, fake, n_units=N_UNITS)
    independent = qs.tl.spike_statistics(
        held_out, qs.tl.independent_surrogate(train, 20_000, rng=6), n_units=N_UNITS
    )
    floor = qs.tl.spike_statistics(held_out, train, n_units=N_UNITS)["js"]
    assert independent["js"] > 0.08  # a strongly correlated population
    assert gan["js"] < 0.5 * independent["js"]
    assert floor < gan["js"]  # the sampling floor is below both
    # the fitted statistics are close to the held-out data's, computed here by hand
    rate = held_out.mean(0)
    assert np.abs(fake.mean(0) - rate).max() < 0.06
    cov = np.cov(held_out.T, bias=True)[np.triu_indices(N_UNITS, 1)]
    fake_cov = np.cov(fake.T, bias=True)[np.triu_indices(N_UNITS, 1)]
    assert np.corrcoef(cov, fake_cov)[0, 1] > 0.8  # the correlation structure is captured
    k_real = np.bincount(held_out.sum(1), minlength=N_UNITS + 1) / held_out.shape[0]
    k_fake = np.bincount(fake.sum(1), minlength=N_UNITS + 1) / fake.shape[0]
    assert 0.5 * np.abs(k_real - k_fake).sum() < 0.06
    np.testing.assert_allclose(gan["k_probability"]["generated"], k_fake)
    assert list(trained.history.columns) == [
        "critic_loss",
        "gradient_penalty",
        "wasserstein",
        "generator_loss",
        "k_loss",
    ]


def test_training_fits_correlations_across_timesteps() -> None:
    """3 units x 3 bins, correlated in space and time: the JS of whole samples (512 states,
    which sees the correlations between bins) and the autocorrelogram beat independent units.
    Seeds 0-2 gave JS 0.049-0.071 against 0.119 (sampling floor 0.017)."""
    x = qs.datasets.ising_population(
        3,
        30_000,
        n_timesteps=3,
        rate=0.15,
        coupling=4.0,
        coupling_mean=0.5,
        temporal_coupling=1.5,
        rng=12,
    ).X.toarray()
    train, held_out = x[:20_000], x[20_000:]
    model = qs.model.SpiQGAN(train, 3, 3, rng=0)
    model.train(300, 64, progress=False)
    gan = qs.tl.spike_statistics(held_out, model.sample(10_000, rng=5), n_units=3, n_timesteps=3)
    independent = qs.tl.spike_statistics(
        held_out, qs.tl.independent_surrogate(train, 10_000, rng=6), n_units=3, n_timesteps=3
    )
    assert gan["js_scope"] == "sample"
    assert gan["js"] < 0.7 * independent["js"]
    assert gan["summary"]["autocorrelogram_mae"] < independent["summary"]["autocorrelogram_mae"]


@pytest.mark.parametrize("k_weight", [0.0, 1.0])
def test_training_with_and_without_the_k_loss(population, k_weight) -> None:
    train, held_out = population
    model = qs.model.SpiQGAN(train, N_UNITS, n_layers=3, k_weight=k_weight, rng=3)
    before = qs.tl.spike_statistics(held_out, model.sample(10_000, rng=1), n_units=N_UNITS)
    history = model.train(150, 64, progress=False, js_every=50, js_samples=2000)
    after = qs.tl.spike_statistics(held_out, model.sample(10_000, rng=1), n_units=N_UNITS)
    assert after["js"] < 0.6 * before["js"]
    assert history["js"].notna().sum() == 3
    assert np.isfinite(history[["critic_loss", "generator_loss", "k_loss"]].to_numpy()).all()
    if k_weight:  # the K-loss itself falls: the count distribution is being fitted
        assert history["k_loss"].iloc[-30:].mean() < 0.5 * history["k_loss"].iloc[:10].mean()


def test_marginal_readout_and_weight_clipping_train(population) -> None:
    train, held_out = population
    model = qs.model.SpiQGAN(
        train, N_UNITS, n_layers=2, readout="marginal", lipschitz="clip", rng=4
    )
    before = qs.tl.spike_statistics(held_out, model.sample(5000, rng=1), n_units=N_UNITS)["js"]
    history = model.train(80, 64, progress=False)
    after = qs.tl.spike_statistics(held_out, model.sample(5000, rng=1), n_units=N_UNITS)["js"]
    assert after < before
    assert (history["gradient_penalty"] == 0).all()
    weights = torch.cat([p.detach().ravel() for p in model.critic.parameters()])
    assert float(weights.abs().max()) <= model.clip + 1e-7


def test_a_seed_fixes_model_training_and_samples() -> None:
    data = qs.datasets.ising_population(3, 500, n_timesteps=2, rng=0)
    runs = []
    for seed in (5, 5, 6):
        model = qs.model.SpiQGAN(data, 3, 2, n_layers=2, rng=seed)
        model.train(15, 16, progress=False)
        runs.append((model.history, model.sample(50, rng=1), model.sample(50)))
    a, b, c = runs
    assert a[0].equals(b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    assert not a[0].equals(c[0])
    model = qs.model.SpiQGAN(data, 3, 2, n_layers=2, rng=5)
    np.testing.assert_array_equal(model.sample(200, rng=9), model.sample(200, rng=9))
    assert not np.array_equal(model.sample(200, rng=9), model.sample(200, rng=10))


def test_samples_come_from_the_averaged_parameters() -> None:
    data = qs.datasets.ising_population(3, 400, rng=0)
    model = qs.model.SpiQGAN(data, 3, n_layers=2, ema_decay=0.9, rng=0)
    assert model.sampling_generator is model.generator  # untrained: nothing averaged yet
    trajectory = []
    for _ in range(6):
        model.train(1, 16, progress=False)
        trajectory.append(model.generator.weights.detach().clone())
    # the debiased moving average, by hand: sum_k 0.9^(6-k) 0.1 p_k / (1 - 0.9^6)
    expected = sum(0.9 ** (5 - k) * 0.1 * p for k, p in enumerate(trajectory)) / (1 - 0.9**6)
    averaged = model.sampling_generator
    torch.testing.assert_close(averaged.weights, expected)
    assert not torch.equal(averaged.weights, model.generator.weights)
    z = model._noise(4, torch.Generator().manual_seed(0))
    with torch.no_grad():
        probs = averaged(z)[:, 0].numpy()
    circuit = model.to_qiskit(z[0].numpy())[0]
    from qiskit.quantum_info import Statevector

    np.testing.assert_allclose(Statevector(circuit).probabilities(), probs[0], atol=1e-5)
    raw = qs.model.SpiQGAN(data, 3, n_layers=2, ema_decay=0.0, rng=0)
    raw.train(2, 16, progress=False)
    assert raw.sampling_generator is raw.generator
    with pytest.raises(ValueError, match=r"ema_decay: must lie in \[0, 1\)"):
        qs.model.SpiQGAN(data, 3, ema_decay=1.0)


def test_parameter_count_and_paper_settings() -> None:
    data = np.zeros((3, 12), dtype=np.uint8)
    model = qs.model.SpiQGAN(data, 4, 3, rng=0)
    assert model.n_parameters == 3 * 5 * 4 * 3  # RY, RZ and the noise weight
    paper = qs.model.SpiQGAN(data, 4, 3, n_layers=4, rng=0, **PAPER_SETTINGS)
    assert paper.n_parameters == 8 * 4 * 3  # "8 times the number of neurons per timestep"
    assert paper.lr_generator == 0.05 and paper.lr_critic == 0.002 and paper.ema_decay == 0
    assert model.n_critic_parameters == 12 * 64 + 64 + 64 + 1
    assert "n_parameters=180" in repr(model)
    probs = model.firing_probabilities(7, rng=0)
    assert probs.shape == (7, 12) and ((probs >= 0) & (probs <= 1)).all()
    states = model.state_probabilities(7, rng=0)
    np.testing.assert_allclose(states.sum(-1), 1.0, atol=1e-5)


def test_save_load_and_the_registered_generator(trained, tmp_path) -> None:
    path = trained.save(tmp_path / "gan")
    assert path == (tmp_path / "gan").absolute()
    assert sorted(p.name for p in path.iterdir()) == ["spiqgan.json", "spiqgan.pt"]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        trained.save(tmp_path / "gan")
    loaded = qs.model.SpiQGAN.load(tmp_path / "gan")
    np.testing.assert_array_equal(loaded.sample(300, rng=4), trained.sample(300, rng=4))
    assert loaded.history.equals(trained.history)
    np.testing.assert_array_equal(loaded.data, trained.data)
    loaded.train(2, 16, progress=False)  # continues, optimiser states included
    assert len(loaded.history) == 302

    assert "spiqgan" in set(qs.plugins.available("generator").name)
    cells = qs.sim.generate("spiqgan", model=trained, n_cells=100, rng=0)
    assert cells.shape == (100, N_UNITS) and cells.uns["qsimcells"]["generator"] == "spiqgan"
    np.testing.assert_array_equal(cells.X.toarray(), trained.sample(100, rng=0))
    from_path = qs.sim.generate("spiqgan", model=tmp_path / "gan", n_cells=100, rng=0)
    np.testing.assert_array_equal(from_path.X.toarray(), cells.X.toarray())
    stats = qs.tl.spike_statistics(cells, cells)  # the layout travels with the AnnData
    assert stats["n_units"] == N_UNITS and stats["js"] == 0.0
    with pytest.raises(ValueError, match="model: the 'spiqgan' generator needs"):
        qs.sim.generate("spiqgan", n_cells=10)
    with pytest.raises(ValueError, match="the SpiQGAN is not trained"):
        qs.sim.generate("spiqgan", model=qs.model.SpiQGAN(trained.data, N_UNITS, rng=0))
    with pytest.raises(TypeError, match="model: expected a trained SpiQGAN"):
        qs.sim.generate("spiqgan", model=3)
    with pytest.raises(FileNotFoundError, match="no saved SpiQGAN"):
        qs.model.SpiQGAN.load(tmp_path / "nothing")


def test_anndata_input_layers_and_thresholds() -> None:
    design = qs.sim.presets.romero2025(True)
    sim = qs.sim.simulate(design, 200, rng=0)
    cells = sim[sim.obs["cell_type"] == "CT1"]
    genes = [g for g in cells.var_names if cells.var.loc[g, "cell_type"] == "CT1"][:5]
    sub = cells[:, genes]
    from_layer = qs.model.SpiQGAN(sub, 5, layer="binary", rng=0)
    np.testing.assert_array_equal(from_layer.data, sub.layers["binary"].toarray())
    assert from_layer.unit_names == genes
    from_counts = qs.model.SpiQGAN(sub, 5, threshold=0, rng=0)
    np.testing.assert_array_equal(from_counts.data, (sub.X.toarray() > 0).astype(np.uint8))
    with pytest.raises(ValueError, match=r"data: values must be 0 or 1 .* threshold=0"):
        qs.model.SpiQGAN(sub, 5, rng=0)  # raw counts without a threshold


def test_bad_input_is_a_clear_error() -> None:
    ok = np.zeros((5, 6), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"data: values must be 0 or 1 \(found 0.5\)"):
        qs.model.SpiQGAN(ok + 0.5, 3, 2)
    with pytest.raises(
        ValueError,
        match=r"data: has 6 columns, but n_units \* n_timesteps = "
        r"4 \* 2 = 8 \(columns are timestep-major",
    ):
        qs.model.SpiQGAN(ok, 4, 2)
    with pytest.raises(ValueError, match="data: contains NaN"):
        qs.model.SpiQGAN(np.full((5, 6), np.nan), 3, 2)
    adata = qs.datasets.ising_population(3, 10, n_timesteps=2, rng=0)
    with pytest.raises(
        ValueError,
        match=r"the AnnData records \(n_units, n_timesteps\) = "
        r"\(3, 2\), got \(6, 1\)",
    ):
        qs.model.SpiQGAN(adata, 6, 1)
    with pytest.raises(ValueError, match="n_units: at most 12 qubits"):
        qs.model.SpiQGAN(np.zeros((2, 13), dtype=np.uint8), 13)
    with pytest.raises(ValueError, match="readout: 'shots' is not allowed; choose one of"):
        qs.model.SpiQGAN(ok, 3, 2, readout="shots")
    with pytest.raises(ValueError, match="lipschitz: 'none' is not allowed"):
        qs.model.SpiQGAN(ok, 3, 2, lipschitz="none")
    with pytest.raises(ValueError, match="noise_scale"):
        qs.model.SpiQGAN(ok, 3, 2, noise_scale=3 * math.pi)
    with pytest.raises(ValueError, match="noise_scale"):
        qs.model.SpiQGAN(ok, 3, 2, noise_scale=0.0)
    with pytest.raises(ValueError, match="k_weight"):
        qs.model.SpiQGAN(ok, 3, 2, k_weight=-1)
    with pytest.raises(ValueError, match="betas: expected"):
        qs.model.SpiQGAN(ok, 3, 2, betas=(0.5,))
    with pytest.raises(TypeError, match="n_layers"):
        qs.model.SpiQGAN(ok, 3, 2, n_layers=2.5)
    model = qs.model.SpiQGAN(ok, 3, 2, n_layers=1, rng=0)
    with pytest.raises(ValueError, match="n_steps"):
        model.train(0)
    with pytest.raises(ValueError, match="batch_size"):
        model.train(1, 0)
    with pytest.raises(ValueError, match="n: must be a positive integer"):
        model.sample(0)
