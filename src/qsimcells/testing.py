"""Statistical checks for sampler tests, public so that plugin authors test the same way.

``assert_distribution_matches`` compares sampled rows with exact probabilities at a tolerance
derived from the sample size; ``assert_moments_match`` compares first and second moments, for
models too large for a full histogram; ``niche_bits`` turns a simulated AnnData back into the
circuit's shots; ``random_ising`` and ``two_mode_ising`` make the Boltzmann models the Ising
tests use. The
core tests and the project's plugins all use them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from ._utils import RngLike, as_generator

__all__ = [
    "assert_distribution_matches",
    "assert_moments_match",
    "niche_bits",
    "random_ising",
    "two_mode_ising",
]


def assert_distribution_matches(
    bits: np.ndarray, probs: np.ndarray, *, alpha: float = 1e-6
) -> float:
    """Check sampled bit rows against exact probabilities (qubit ``i`` = bit ``i`` of the index).

    1. Every outcome's count passes an exact two-sided binomial tail test at level ``alpha / 2``,
       Bonferroni-corrected over the outcomes (rare outcomes are judged by the binomial, not a
       normal approximation).
    2. The total variation distance (TVD) is at most its expectation bound
       ``0.5 * sum sqrt(p (1 - p) / N)`` plus ``sqrt(log(2 / alpha) / (2 N))``: one sample moves
       the TVD by at most ``1 / N``, so by McDiarmid's inequality a correct sampler exceeds its
       expectation by that margin with probability below ``alpha / 2``.

    So a correct sampler fails with probability below ``alpha``. Both need independent rows
    (one chain per row for Markov-chain samplers).

    Returns the total variation distance.
    """
    n_shots, n = bits.shape
    index = bits.astype(np.int64) @ (1 << np.arange(n, dtype=np.int64))
    counts = np.bincount(index, minlength=probs.size)
    assert counts.size == probs.size, "samples outside the outcome space"
    tail = np.minimum(
        stats.binom.cdf(counts, n_shots, probs), stats.binom.sf(counts - 1, n_shots, probs)
    )
    p_value = np.minimum(1.0, 2 * tail * probs.size)
    worst = int(np.argmin(p_value))
    assert p_value[worst] >= alpha / 2, (
        f"outcome {worst}: {counts[worst]} of {n_shots} samples, expected "
        f"{probs[worst] * n_shots:.2f} (Bonferroni p = {p_value[worst]:.1e})"
    )
    tv = 0.5 * np.abs(counts / n_shots - probs).sum()
    bound = 0.5 * np.sqrt(probs * (1 - probs) / n_shots).sum() + np.sqrt(
        np.log(2 / alpha) / (2 * n_shots)
    )
    assert tv <= bound, f"total variation {tv:.4f} exceeds {bound:.4f}"
    return tv


def assert_moments_match(states: np.ndarray, probs: np.ndarray, *, alpha: float = 1e-6) -> float:
    """Check the means ``E[z_i]`` and pair moments ``E[z_i z_j]`` of sampled rows against
    exact probabilities (``z_i`` = bit ``i`` of the index).

    Each moment is the mean of a 0/1 variable, so ``N`` times it is binomial: every count must
    pass an exact two-sided binomial tail test at level ``alpha``, Bonferroni-corrected over
    the ``n + n (n - 1) / 2`` moments (exact also for rare moments, where a normal limit is
    not). For models whose ``2**n`` outcomes are too many for a histogram of ``N`` rows but few
    enough to enumerate (``n`` up to about 20). Needs independent rows.

    Returns the largest deviation in standard errors (for reporting).
    """
    from .samplers._bits import indices_to_bits

    n_reads, n = states.shape
    every = indices_to_bits(np.arange(probs.size), n).astype(np.float64)
    upper = np.triu_indices(n, 1)
    exact = np.concatenate([probs @ every, ((every * probs[:, None]).T @ every)[upper]])
    z = states.astype(np.float64)
    counts = np.concatenate([z.sum(0), (z.T @ z)[upper]]).round().astype(np.int64)
    exact = np.clip(exact, 0.0, 1.0)
    tail = np.minimum(
        stats.binom.cdf(counts, n_reads, exact), stats.binom.sf(counts - 1, n_reads, exact)
    )
    p_value = np.minimum(1.0, 2 * tail * exact.size)
    worst = int(np.argmin(p_value))
    name = f"E[z_{worst}]" if worst < n else f"E[z_{upper[0][worst - n]} z_{upper[1][worst - n]}]"
    se = np.sqrt(np.maximum(exact * (1 - exact), 1e-12) / n_reads)
    deviation = np.abs(counts / n_reads - exact) / se
    assert p_value[worst] >= alpha, (
        f"{name}: sampled {counts[worst] / n_reads:.4f}, exact {exact[worst]:.4f} "
        f"({deviation[worst]:.1f} standard errors; Bonferroni p = {p_value[worst]:.1e})"
    )
    return float(deviation.max())


def random_ising(
    n: int, rng: RngLike = None, coupling: float = 0.7
) -> tuple[np.ndarray, np.ndarray]:
    """A random Ising model: ``h ~ N(0, 1)``, ``W_lm ~ N(0, coupling^2)`` symmetric with a
    zero diagonal.

    Parameters
    ----------
    n
        Number of spins.
    rng
        Seed or generator.
    coupling
        Standard deviation of the couplings.

    Returns
    -------
    h, W
        Linear terms ``(n,)`` and couplings ``(n, n)``.
    """
    gen = as_generator(rng)
    W = np.triu(gen.normal(0, coupling, (n, n)), 1)
    return gen.normal(0, 1, n), W + W.T


def two_mode_ising(n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Two modes, all off (``E = 0``) and all on (``E = -1`` at ``n = 10``), behind a barrier
    that single-site moves cannot cross in one sweep: from all on, every site's field is
    ``5.3 - 1.2 (n - 1)`` and from all off ``5.3``, so each site flips with probability about
    0.005 and at ``n = 10`` a sweep at beta 1 leaves a chain in its mode with probability about
    0.95. Where a one-sweep chain ends shows where it started, which is what a warm-start test
    needs."""
    W = np.full((n, n), -1.2)
    np.fill_diagonal(W, 0)
    return np.full(n, 5.3), W


def niche_bits(adata: Any) -> np.ndarray:
    """Rebuild each shot's full bit string from the cells of its niche.

    Parameters
    ----------
    adata
        Output of :func:`qsimcells.sim.simulate`.

    Returns
    -------
    numpy.ndarray
        ``(n_cells, n_qubits)`` uint8, row ``k`` the shot of niche ``k`` in qubit order.
    """
    from .sim import CellCircuit

    design = CellCircuit.from_dict(adata.uns["qsimcells"]["design"])
    n = adata.uns["qsimcells"]["n_cells"]
    bits = np.zeros((n, design.n_qubits), dtype=np.uint8)
    binary = adata.layers["binary"]
    for cell_type, genes in design.cell_types.items():
        rows = np.flatnonzero(adata.obs["cell_type"] == cell_type)
        cols = [adata.var_names.get_loc(g) for g in genes]
        order = adata.obs["niche"].to_numpy()[rows]
        bits[np.ix_(order, design.genes.loc[genes, "qubit"].to_numpy())] = binary[rows][
            :, cols
        ].toarray()
    return bits
