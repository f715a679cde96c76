"""Statistical checks for sampler tests, public so that plugin authors test the same way.

``assert_distribution_matches`` compares sampled rows with exact probabilities at a tolerance
derived from the sample size; ``niche_bits`` turns a simulated AnnData back into the circuit's
shots. The core tests and the project's plugins all use them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

__all__ = ["assert_distribution_matches", "niche_bits"]

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
        bits[np.ix_(order, design.genes.loc[genes, "qubit"].to_numpy())] = \
            binary[rows][:, cols].toarray()
    return bits
