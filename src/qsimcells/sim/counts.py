"""Counts from bits: negative-binomial expression of ON genes, housekeeping and background genes.

``NB(mu, r)`` has mean ``mu`` and variance ``mu + mu^2 / r`` (numpy's
``negative_binomial(r, p)`` with ``p = r / (r + mu)``).

Without cell-level effects every gene has one fixed (mu, r), so its counts are drawn exactly from a
tabulated distribution with Walker's alias method: one uniform number and one 8-byte table look-up
per count (cheaper than numpy's gamma-Poisson draw: ``benchmarks/simulate.py`` shows all of
``simulate`` taking less time than numpy's draws alone), for entries of many different genes at
once, in the row-major order the CSR output needs. Each table slot packs its threshold (float32, so
slot probabilities are exact to ~6e-8 / width) with its two outcomes. The table holds the
probabilities of ``0 .. K-1`` plus one slot for the tail ``X >= K`` (``K`` puts less than 1e-13 of
the mass in the tail); a draw that lands in the tail slot is completed by exact inversion of the
survival function, so the draws follow NB up to the float32 rounding of the thresholds. With
library-size or batch effects the mean differs per entry and numpy's sampler is used.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import stats

TAIL_MASS = 1e-13
MAX_WIDTH = 4096


def _nb_p(mu: np.ndarray | float, r: np.ndarray | float) -> np.ndarray:
    return np.asarray(r) / (np.asarray(r) + np.asarray(mu))


def _alias(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias table of a discrete distribution over ``0 .. len(probs)-1``."""
    n = probs.size
    scaled = (probs / probs.sum() * n).tolist()
    threshold = [1.0] * n
    alias = list(range(n))
    small = [i for i, p in enumerate(scaled) if p < 1.0]
    large = [i for i, p in enumerate(scaled) if p >= 1.0]
    while small and large:
        s, big = small.pop(), large.pop()
        threshold[s], alias[s] = scaled[s], big
        scaled[big] += scaled[s] - 1.0
        (small if scaled[big] < 1.0 else large).append(big)
    return np.asarray(threshold), np.asarray(alias, dtype=np.int32)


_SLOT = np.dtype([("threshold", "<f4"), ("own", "<i2"), ("alias", "<i2")])


@lru_cache(maxsize=4096)
def _nb_slots(mu: float, r: float) -> tuple[np.ndarray, float]:
    """Alias slots of NB(mu, r) over ``0 .. K-1`` plus the tail slot (outcome -1), and the tail
    mass. Cached: simulations of related designs (perturbation screens) share their genes."""
    p = r / (r + mu)
    # K: first value whose upper tail is below TAIL_MASS (capped); slot K is the tail
    k = int(max(1, min(np.ceil(stats.nbinom.isf(TAIL_MASS, r, p)), MAX_WIDTH - 1)))
    tail = float(stats.nbinom.sf(k - 1, r, p))
    probs = np.r_[stats.nbinom.pmf(np.arange(k), r, p), tail]
    threshold, alias = _alias(probs)
    outcome = np.arange(k + 1, dtype=np.int16)
    outcome[k] = -1
    slots = np.empty(k + 1, dtype=_SLOT)
    slots["threshold"], slots["own"], slots["alias"] = threshold, outcome, outcome[alias]
    return slots, tail


class NBTable:
    """NB draws for a fixed set of (mu, r) parameters, by alias tables.

    Parameters
    ----------
    mu, r
        Per-gene mean (``>= 0``) and dispersion (``> 0``); genes sharing parameters share a table.
    """

    def __init__(self, mu: np.ndarray, r: np.ndarray) -> None:
        mu = np.asarray(mu, dtype=np.float64)
        r = np.asarray(r, dtype=np.float64)
        self.pairs, table_of_gene = np.unique(np.c_[mu, r], axis=0, return_inverse=True)
        self.p = _nb_p(self.pairs[:, 0], self.pairs[:, 1])
        tables = [_nb_slots(float(m), float(d)) for m, d in self.pairs]
        self.tail = np.array([tail for _, tail in tables])
        widths = np.array([slots.size for slots, _ in tables])
        self.k = widths - 1
        self._flat = np.concatenate([slots for slots, _ in tables])
        offsets = np.r_[0, np.cumsum(widths)[:-1]]
        table_of_gene = table_of_gene.ravel()
        self._table = table_of_gene.astype(np.int64)
        self._base = offsets[table_of_gene].astype(np.int64)
        self._width = widths[table_of_gene].astype(np.float64)

    def draw(self, genes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One NB count per entry of ``genes`` (indices into ``mu``/``r``)."""
        scaled = rng.random(genes.size) * self._width[genes]
        slot = scaled.astype(np.int64)
        entry = self._flat[self._base[genes] + slot]
        out = np.where(scaled - slot < entry["threshold"], entry["own"], entry["alias"])
        if out.size and out.min() < 0:  # beyond K: exact inversion of the survival function
            in_tail = np.flatnonzero(out < 0)
            out = out.astype(np.int64)
            t = self._table[genes[in_tail]]
            u = (1.0 - rng.random(in_tail.size)) * self.tail[t]  # in (0, tail]
            out[in_tail] = stats.nbinom.isf(u, self.pairs[t, 1], self.p[t])
        return out


def nb_with_effects(mu: np.ndarray, r: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """NB counts with a different mean per entry (library size and batch effects)."""
    return rng.negative_binomial(r, _nb_p(mu, r))
