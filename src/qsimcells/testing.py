"""Statistical checks for sampler tests, public so that plugin authors test the same way.

``assert_distribution_matches`` compares sampled rows with exact probabilities at a tolerance
derived from the sample size; the core tests and the project's plugins all use it.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["assert_distribution_matches"]

def assert_distribution_matches(bits: np.ndarray, probs: np.ndarray, *, alpha: float = 1e-6,
                                sigmas: float = 5.0) -> float:
    """Check sampled bit rows against exact probabilities (qubit ``i`` = bit ``i`` of the index).

    1. Every outcome's count passes an exact two-sided binomial tail test at level ``alpha``,
       Bonferroni-corrected over the outcomes (so a correct sampler fails with probability below
       ``alpha``; rare outcomes are judged by the binomial, not a normal approximation).
    2. The total variation distance is within its expectation bound
       ``0.5 * sum sqrt(p (1 - p) / N)`` plus ``sigmas / sqrt(N)``.

    Returns the total variation distance.
    """
    n_shots, n = bits.shape
    index = bits.astype(np.int64) @ (1 << np.arange(n, dtype=np.int64))
    counts = np.bincount(index, minlength=probs.size)
    assert counts.size == probs.size, "samples outside the outcome space"
    tail = np.minimum(stats.binom.cdf(counts, n_shots, probs),
                      stats.binom.sf(counts - 1, n_shots, probs))
    p_value = np.minimum(1.0, 2 * tail * probs.size)
    worst = int(np.argmin(p_value))
    assert p_value[worst] >= alpha, (
        f"outcome {worst}: {counts[worst]} of {n_shots} samples, expected "
        f"{probs[worst] * n_shots:.2f} (Bonferroni p = {p_value[worst]:.1e})")
    freq = counts / n_shots
    tv = 0.5 * np.abs(freq - probs).sum()
    bound = 0.5 * np.sqrt(probs * (1 - probs) / n_shots).sum() + sigmas / np.sqrt(n_shots)
    assert tv <= bound, f"total variation {tv:.4f} exceeds {bound:.4f}"
    return tv
