"""Negative-binomial count draws: the alias tables follow NB(mu, r) exactly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from qsimcells.sim import counts
from qsimcells.sim.counts import NBTable

N = 400_000


def assert_nb(draws: np.ndarray, mu: float, r: float, alpha: float = 1e-6) -> None:
    """Every value's count passes an exact binomial tail test (Bonferroni over the values),
    and the upper tail as a whole matches NB's survival function."""
    p = r / (r + mu)
    top = int(stats.nbinom.isf(1e-4, r, p))
    observed = np.bincount(np.minimum(draws, top + 1), minlength=top + 2)
    expected = np.r_[stats.nbinom.pmf(np.arange(top + 1), r, p), stats.nbinom.sf(top, r, p)]
    tail = np.minimum(
        stats.binom.cdf(observed, draws.size, expected),
        stats.binom.sf(observed - 1, draws.size, expected),
    )
    p_values = np.minimum(1, 2 * tail * expected.size)
    worst = int(np.argmin(p_values))
    assert p_values[worst] >= alpha, (mu, r, worst, observed[worst], expected[worst] * draws.size)
    assert draws.min() >= 0


@pytest.mark.parametrize(("mu", "r"), [(5.0, 1.0), (80.0, 6.0), (0.3, 0.5), (200.0, 0.2)])
def test_alias_draws_follow_nb(mu: float, r: float) -> None:
    table = NBTable(np.array([mu, 1.0]), np.array([r, 1.0]))
    draws = table.draw(np.zeros(N, dtype=np.int64), np.random.default_rng(0))
    assert_nb(np.asarray(draws, dtype=np.int64), mu, r)


def test_mixed_genes_in_one_call_and_zero_mean() -> None:
    mu, r = np.array([5.0, 80.0, 0.0, 5.0]), np.array([1.0, 6.0, 1.0, 1.0])
    table = NBTable(mu, r)
    assert len(table.pairs) == 3  # genes 0 and 3 share a table
    genes = np.tile(np.arange(4), N // 4)
    draws = np.asarray(table.draw(genes, np.random.default_rng(1)), dtype=np.int64)
    assert (draws[genes == 2] == 0).all()
    for g in (0, 1, 3):
        assert_nb(draws[genes == g], mu[g], r[g])


def test_tail_beyond_the_table_is_drawn_exactly(monkeypatch) -> None:
    """With a table cut short, most draws of a long-tailed NB land in the tail slot and are
    completed by inverting the survival function; the result is still NB."""
    monkeypatch.setattr(counts, "MAX_WIDTH", 8)
    counts._nb_slots.cache_clear()
    table = NBTable(np.array([20.0]), np.array([2.0]))
    counts._nb_slots.cache_clear()  # forget the short table
    assert table.k[0] == 7 and table.tail[0] > 0.5
    draws = np.asarray(table.draw(np.zeros(N // 4, dtype=np.int64), np.random.default_rng(2)))
    assert draws.max() > 8
    assert_nb(draws, 20.0, 2.0)


def test_same_seed_same_draws() -> None:
    table = NBTable(np.array([5.0, 9.0]), np.array([1.0, 3.0]))
    genes = np.arange(1000) % 2
    a = table.draw(genes, np.random.default_rng(5))
    b = table.draw(genes, np.random.default_rng(5))
    assert np.array_equal(a, b)


def test_per_entry_means_with_effects() -> None:
    mu = np.repeat([2.0, 50.0], N // 2)
    draws = counts.nb_with_effects(mu, np.full(N, 3.0), np.random.default_rng(3))
    assert_nb(draws[: N // 2], 2.0, 3.0)
    assert_nb(draws[N // 2 :], 50.0, 3.0)
