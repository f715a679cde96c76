"""qs.tl.spike_statistics and its plots against values computed exactly here."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

import qsimcells as qs
from qsimcells.samplers import boltzmann_probabilities
from qsimcells.samplers._bits import indices_to_bits


def test_js_divergence_against_scipy() -> None:
    gen = np.random.default_rng(0)
    for _ in range(5):
        p, q = gen.dirichlet(np.ones(8)), gen.dirichlet(np.ones(8))
        q[3] = 0.0  # a zero on one side only
        assert qs.tl.js_divergence(p, q) == pytest.approx(
            jensenshannon(p, q, base=2) ** 2, rel=1e-10
        )
    assert qs.tl.js_divergence([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert qs.tl.js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint: 1 bit
    assert qs.tl.js_divergence([2, 2], [1, 3]) == pytest.approx(
        jensenshannon([0.5, 0.5], [0.25, 0.75], base=2) ** 2
    )  # counts are normalised
    with pytest.raises(ValueError, match="p, q: expected two 1-D vectors of one length"):
        qs.tl.js_divergence([0.5, 0.5], [1.0])
    with pytest.raises(ValueError, match="non-negative"):
        qs.tl.js_divergence([-0.5, 1.5], [0.5, 0.5])


def _population(n_units=3, n_timesteps=2, n=40_000, rng=0):
    adata = qs.datasets.ising_population(
        n_units,
        n,
        n_timesteps=n_timesteps,
        coupling=2.5,
        coupling_mean=0.5,
        temporal_coupling=1.0,
        rng=rng,
    )
    ising = adata.uns["qsimcells"]["ising"]
    probs = boltzmann_probabilities(ising["h"], ising["W"])
    states = indices_to_bits(np.arange(probs.size), n_units * n_timesteps).astype(float)
    return adata, probs, states


def test_statistics_match_the_exact_model() -> None:
    n_units, n_timesteps, n = 3, 2, 40_000
    both, probs, states = _population(n_units, n_timesteps, 2 * n)
    adata, other = both[:n].copy(), both[n:].copy()  # two independent halves of one model
    out = qs.tl.spike_statistics(adata, other)  # layout read from the AnnData
    assert (out["n_units"], out["n_timesteps"], out["js_scope"]) == (3, 2, "sample")
    # exact statistics by enumeration of the 64 window states; bins pooled over timesteps
    trains = states.reshape(-1, n_timesteps, n_units)
    rate = np.einsum("s,stu->u", probs, trains) / n_timesteps
    pair = np.einsum("s,sti,stj->ij", probs, trains, trains) / n_timesteps
    cov = (pair - np.outer(rate, rate))[np.triu_indices(n_units, 1)]
    k = trains.sum(-1).astype(int)
    k_prob = np.array([(probs[:, None] * (k == j)).sum() for j in range(n_units + 1)]) / n_timesteps
    lag1 = np.einsum("s,su->", probs, trains[:, 0] * trains[:, 1]) / n_units
    # tolerances from the sample size: 6 standard errors of a mean of 0/1 values, taking the
    # n samples (not the 2n correlated bins) as the effective size
    tol = 6 * np.sqrt(0.25 / n)
    real = out["firing_rate"]["real"]
    np.testing.assert_allclose(real, rate, atol=tol)
    np.testing.assert_allclose(out["covariance"]["real"], cov, atol=2 * tol)
    np.testing.assert_array_equal(out["covariance"]["pairs"], [[0, 1], [0, 2], [1, 2]])
    np.testing.assert_allclose(out["k_probability"]["real"], k_prob, atol=tol)
    assert out["k_probability"]["real"].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(out["autocorrelogram"]["lag"], [0, 1])
    assert out["autocorrelogram"]["real"][0] == pytest.approx(real.mean())
    assert out["autocorrelogram"]["real"][1] == pytest.approx(lag1, abs=tol)
    np.testing.assert_allclose(out["states"]["real"], probs, atol=tol)
    # two independent samples of one model: JS near its sampling floor, errors near zero
    assert out["js"] < 64 / (2 * n)
    summary = out["summary"]
    assert summary["firing_rate_mae"] < tol and summary["k_probability_tvd"] < 4 * tol
    # the statistics are those of the matrices, computed directly
    x = adata.X.toarray()
    np.testing.assert_allclose(real, x.reshape(-1, n_units).mean(0))
    np.testing.assert_allclose(
        out["covariance"]["real"],
        np.cov(x.reshape(-1, n_units).T, bias=True)[np.triu_indices(3, 1)],
    )


def test_the_independent_baseline_keeps_rates_and_loses_correlations() -> None:
    adata, probs, states = _population(3, 2, 40_000, rng=1)
    x = adata.X.toarray()
    ind = qs.tl.independent_surrogate(adata, rng=2)
    assert ind.shape == x.shape and ind.dtype == np.uint8
    out = qs.tl.spike_statistics(x, ind, n_units=3, n_timesteps=2)
    tol = 6 * np.sqrt(0.25 / x.shape[0])
    np.testing.assert_allclose(
        out["firing_rate"]["generated"], out["firing_rate"]["real"], atol=tol
    )
    np.testing.assert_allclose(out["covariance"]["generated"], 0.0, atol=tol)
    assert np.abs(out["covariance"]["real"]).max() > tol  # the population is correlated
    # JS of the product of the columns' marginals, computed exactly, within sampling noise
    rates = x.mean(0)
    product = np.prod(np.where(states == 1, rates, 1 - rates), axis=1)
    exact = qs.tl.js_divergence(probs, product)
    assert out["js"] == pytest.approx(exact, abs=0.01)
    floor = qs.tl.spike_statistics(x[::2], x[1::2], n_units=3, n_timesteps=2)["js"]
    assert out["js"] > 10 * floor  # far above what two samples of one model differ by
    assert qs.tl.independent_surrogate(x, 10, rng=0).shape == (10, 6)


def test_js_scope_switches_to_single_timesteps() -> None:
    gen = np.random.default_rng(3)
    a = (gen.random((5000, 12)) < 0.3).astype(np.uint8)
    b = (gen.random((4000, 12)) < 0.35).astype(np.uint8)
    full = qs.tl.spike_statistics(a, b, n_units=3, n_timesteps=4)  # 4096 states
    assert full["js_scope"] == "sample" and full["states"]["real"].size == 4096
    per = qs.tl.spike_statistics(a, b, n_units=3, n_timesteps=4, max_states=64)
    assert per["js_scope"] == "timestep" and per["states"]["real"].size == 8
    by_hand = np.mean(
        [
            qs.tl.js_divergence(
                qs.tl.spikes.state_distribution(a[:, 3 * t : 3 * t + 3]),
                qs.tl.spikes.state_distribution(b[:, 3 * t : 3 * t + 3]),
            )
            for t in range(4)
        ]
    )
    assert per["js"] == pytest.approx(by_hand)
    none = qs.tl.spike_statistics(a, b, n_units=3, n_timesteps=4, max_states=4)
    assert none["js_scope"] == "none" and np.isnan(none["js"])
    assert np.isnan(none["summary"]["js"])
    hz = qs.tl.spike_statistics(a, b, n_units=3, n_timesteps=4, bin_size=0.02)
    np.testing.assert_allclose(hz["firing_rate"]["real"], full["firing_rate"]["real"] / 0.02)
    short = qs.tl.spike_statistics(a, b, n_units=3, n_timesteps=4, max_lag=1)
    assert short["autocorrelogram"]["real"].size == 2
    # a state's index has column c in bit c (the order of boltzmann_probabilities)
    dist = qs.tl.spikes.state_distribution(np.array([[1, 0, 0], [0, 0, 1], [0, 0, 1]]))
    np.testing.assert_allclose(dist[[1, 4]], [1 / 3, 2 / 3])


def test_spike_statistics_bad_input() -> None:
    x = np.zeros((10, 6), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"real: values must be 0 or 1 \(found 2\); binarise"):
        qs.tl.spike_statistics(x + 2, x, n_units=3, n_timesteps=2)
    with pytest.raises(
        ValueError, match="real: has 6 columns, but n_units \\* n_timesteps = 4 \\* 2 = 8"
    ):
        qs.tl.spike_statistics(x, x, n_units=4, n_timesteps=2)
    with pytest.raises(ValueError, match="real: width 6 is not a multiple of n_units=4"):
        qs.tl.spike_statistics(x, x, n_units=4)
    with pytest.raises(ValueError, match="n_units: give n_units"):
        qs.tl.spike_statistics(x, x)
    with pytest.raises(ValueError, match="generated: has 4 columns, real has 6"):
        qs.tl.spike_statistics(x, x[:, :4], n_units=3)
    with pytest.raises(ValueError, match="max_lag: must lie in"):
        qs.tl.spike_statistics(x, x, n_units=3, max_lag=2)
    with pytest.raises(ValueError, match="generated: contains NaN"):
        qs.tl.spike_statistics(x, np.full((3, 6), np.nan), n_units=3)
    with pytest.raises(ValueError, match="expected a 2-D"):
        qs.tl.spike_statistics(x[0], x, n_units=3)
    with pytest.raises(ValueError, match="layer: only used when real is an AnnData"):
        qs.tl.spike_statistics(x, x, n_units=3, layer="binary")
    adata = qs.datasets.ising_population(3, 20, n_timesteps=2, rng=0)
    with pytest.raises(KeyError, match=r"layer: 'binary' is not in real\.layers"):
        qs.tl.spike_statistics(adata, adata, layer="binary")


def test_plots(tmp_path) -> None:
    import matplotlib.pyplot as plt

    adata, _, _ = _population(3, 2, 2000, rng=4)
    ind = qs.tl.independent_surrogate(adata, rng=0)
    stats = qs.tl.spike_statistics(adata, ind)
    axes = qs.pl.spike_statistics(stats, save=tmp_path / "fig3.png", show=False)
    assert len(axes) == 4 and (tmp_path / "fig3.png").stat().st_size > 0
    assert axes[1].get_yscale() == "log"
    # several labelled results overlay in one colour each; all five panels into given axes
    other = qs.tl.spike_statistics(adata, adata)
    _fig, given = plt.subplots(1, 5)
    out = qs.pl.spike_statistics(
        {"independent": stats, "itself": other},
        panels=["covariance", "k_probability", "firing_rate", "autocorrelogram", "states"],
        ax=list(given),
        show=False,
    )
    assert out == list(given)
    assert len(given[0].collections) == 2  # one scatter per label
    assert len(given[1].lines) == 3  # two generated curves, one shared real curve
    assert "JS" in given[4].get_title()
    ax = qs.pl.raster(adata, samples=5, save=tmp_path / "raster.png", show=False, title="real")
    assert len(ax.collections) == 3  # one event collection per unit
    assert len(ax.lines) == 4  # separators between the five samples of two bins
    ax2 = qs.pl.raster(ind, n_units=3, n_timesteps=2, samples=[0, 7], show=False)
    assert ax2.get_xlim() == (-0.5, 3.5)
    with pytest.raises(ValueError, match="panels: 'fig9' is not allowed"):
        qs.pl.spike_statistics(stats, panels=["fig9"], show=False)
    with pytest.raises(ValueError, match="ax: expected 4 axes"):
        qs.pl.spike_statistics(stats, ax=given[0], show=False)
    with pytest.raises(TypeError, match="stats: expected the dict"):
        qs.pl.spike_statistics({"a": 1}, show=False)
    with pytest.raises(ValueError, match="samples: row indices must lie in"):
        qs.pl.raster(adata, samples=[5000], show=False)
    plt.close("all")
