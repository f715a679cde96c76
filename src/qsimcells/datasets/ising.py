"""A synthetic correlated neural population: a pairwise maximum-entropy (Ising) model in space
and time, for tests, demos and benchmarks of SpiQGAN and the spike statistics.

Over a window of ``n_timesteps`` bins the state ``s_{t,i} in {0, 1}`` (unit ``i`` at bin ``t``)
has probability ``p(s) ~ exp(sum_t [b.s_t + sum_{i<j} J_ij s_ti s_tj] + sum_t sum_i K_i s_ti
s_{t+1,i})``: biases ``b_i = logit(rate_i)``, the same spatial couplings ``J`` in every bin, and
temporal couplings ``K_i`` between a unit's consecutive bins (which give the spike trains an
autocorrelation). In the energy convention of :func:`qsimcells.samplers.sample_ising`
(``p ~ exp(-E)``, ``E = h.z + sum_{l<m} W_lm z_l z_m`` over the ``n_units * n_timesteps``
columns, timestep-major) it is ``h = -b`` and ``W = -J`` / ``-K``; both are stored in ``uns``, so
the exact probabilities are :func:`qsimcells.samplers.boltzmann_probabilities` for small
windows.

Sampling is exact: by enumeration through :func:`~qsimcells.samplers.sample_ising` when the
window has at most 20 columns, otherwise by the transfer matrix over bins (the couplings link
only neighbouring bins, so the window is a Markov chain over the ``2**n_units`` states of a bin:
forward messages, then backward draws), for ``n_units <= 12``. Any registered Ising sampler
(``"gibbs"``, ...) can be asked for instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import logit, logsumexp

from .._utils import RngLike, as_generator, check_finite, check_positive_int, seed_sequence
from ._activity import activity_anndata, seed_record

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

__all__ = ["ising_population"]

#: Largest window (columns) sampled by enumeration; the largest bin (units) for the chain.
MAX_ENUMERATED_COLUMNS = 20
MAX_CHAIN_UNITS = 12


def _population_model(
    n_units: int, n_timesteps: int, rates: np.ndarray, J: np.ndarray, K: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(h, W)`` of the whole window in the energy convention of ``sample_ising``."""
    n = n_units * n_timesteps
    h = -np.tile(logit(rates), n_timesteps)
    W = np.zeros((n, n))
    for t in range(n_timesteps):
        block = slice(t * n_units, (t + 1) * n_units)
        W[block, block] = -J
        if t + 1 < n_timesteps:
            nxt = np.arange((t + 1) * n_units, (t + 2) * n_units)
            W[np.arange(t * n_units, (t + 1) * n_units), nxt] = -K
            W[nxt, np.arange(t * n_units, (t + 1) * n_units)] = -K
    return h, W


def _chain_sample(
    rates: np.ndarray,
    J: np.ndarray,
    K: np.ndarray,
    n_timesteps: int,
    n_samples: int,
    gen: np.random.Generator,
) -> np.ndarray:
    """Exact draws of the window by forward messages and backward sampling over bins."""
    from ..samplers._bits import indices_to_bits

    n_units = rates.size
    states = indices_to_bits(np.arange(2**n_units), n_units).astype(np.float64)
    node = states @ logit(rates) + 0.5 * np.einsum("si,ij,sj->s", states, J, states)
    edge = (states * K) @ states.T  # edge[s, s'] = sum_i K_i s_i s'_i
    log_alpha = [node]
    for _ in range(1, n_timesteps):
        log_alpha.append(node + logsumexp(log_alpha[-1][:, None] + edge, axis=0))

    def draw(logp: np.ndarray, size: int) -> np.ndarray:
        p = np.exp(logp - logp.max())
        cdf = np.cumsum(p)
        index = np.searchsorted(cdf, gen.random(size) * cdf[-1], side="right")
        return np.minimum(index, cdf.size - 1)

    index = np.empty((n_samples, n_timesteps), dtype=np.int64)
    index[:, -1] = draw(log_alpha[-1], n_samples)
    for t in range(n_timesteps - 2, -1, -1):
        nxt = index[:, t + 1]
        for value in np.unique(nxt):  # rows sharing the next bin's state share the conditional
            rows = np.flatnonzero(nxt == value)
            index[rows, t] = draw(log_alpha[t] + edge[:, value], rows.size)
    return states[index].reshape(n_samples, n_timesteps * n_units).astype(np.uint8)


def _as_rates(rate: Any, n_units: int) -> np.ndarray:
    try:
        rates = np.asarray(rate, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"rate: expected a number or an array of numbers, got {rate!r}") from None
    if rates.ndim == 0:
        rates = np.full(n_units, float(rates))
    if rates.shape != (n_units,):
        raise ValueError(f"rate: expected a number or {n_units} rates, got shape {rates.shape}")
    if not (np.isfinite(rates).all() and (rates > 0).all() and (rates < 1).all()):
        raise ValueError(f"rate: every rate must lie in (0, 1), got {rates.tolist()}")
    return rates


def ising_population(
    n_units: int,
    n_samples: int,
    *,
    n_timesteps: int = 1,
    rate: float | Any = 0.1,
    coupling: float = 1.5,
    coupling_mean: float = 0.0,
    temporal_coupling: float = 1.0,
    sampler: str = "auto",
    rng: RngLike = None,
    **sampler_options: Any,
) -> AnnData:
    """Binary activity of a correlated population from a pairwise maximum-entropy model.

    Parameters
    ----------
    n_units
        Number of units (neurons, genes).
    n_samples
        Number of windows (rows), drawn independently.
    n_timesteps
        Bins per window.
    rate
        Firing probability per bin of each unit *without* couplings (``b_i = logit(rate_i)``);
        a number or one per unit. Couplings shift the actual rates.
    coupling, coupling_mean
        Spatial couplings ``J_ij ~ N(coupling_mean, coupling^2) / sqrt(n_units - 1)``
        (symmetric; positive values make two units fire together), drawn from ``rng``. The
        scaling keeps the spread of the summed input of a unit at ``coupling`` for any size.
    temporal_coupling
        ``K``: coupling of each unit to itself in the next bin.
    sampler
        ``"auto"`` (exact: enumeration up to 20 columns, else the transfer-matrix chain up to
        12 units, else ``"gibbs"``), ``"chain"`` (the exact transfer-matrix sampler), or a
        registered Ising sampler name for :func:`qsimcells.samplers.sample_ising`.
    rng
        Seed or generator (couplings and samples).
    **sampler_options
        Passed to :func:`~qsimcells.samplers.sample_ising` (e.g. ``num_sweeps``).

    Returns
    -------
    anndata.AnnData
        ``X``: CSR ``uint8`` ``(n_samples, n_units * n_timesteps)``, timestep-major; ``var``
        ``unit``, ``timestep``; ``uns["qsimcells"]``: ``ising`` with ``h``, ``W`` (the energy
        of the whole window), ``J``, ``K``, ``rates``, the sampler that ran, the parameters and
        the seed.
    """
    from ..samplers import sample_ising

    n_units = check_positive_int("n_units", n_units)
    n_samples = check_positive_int("n_samples", n_samples)
    n_timesteps = check_positive_int("n_timesteps", n_timesteps)
    rates = _as_rates(rate, n_units)
    coupling = check_finite("coupling", coupling, low=0.0)
    coupling_mean = check_finite("coupling_mean", coupling_mean)
    temporal_coupling = check_finite("temporal_coupling", temporal_coupling)
    if not isinstance(sampler, str):
        raise TypeError(f"sampler: expected a sampler name, got {type(sampler).__name__}")
    n_columns = n_units * n_timesteps
    if sampler == "auto":
        if sampler_options:
            raise ValueError(
                f"sampler options {sorted(sampler_options)} need a named sampler, not 'auto'"
            )
        sampler = (
            "exact"
            if n_columns <= MAX_ENUMERATED_COLUMNS
            else "chain"
            if n_units <= MAX_CHAIN_UNITS
            else "gibbs"
        )
    if sampler == "chain" and n_units > MAX_CHAIN_UNITS:
        raise ValueError(
            f"sampler: 'chain' enumerates the 2**n_units states of a bin, so it "
            f"takes at most {MAX_CHAIN_UNITS} units; got {n_units}"
        )

    root = seed_sequence(rng)
    coupling_seq, sample_seq = np.random.SeedSequence(root.entropy, spawn_key=root.spawn_key).spawn(
        2
    )
    # scaled by 1 / sqrt(n_units - 1) (Sherrington-Kirkpatrick): the summed input a unit gets
    # has standard deviation `coupling` however many units there are
    scale = 1 / np.sqrt(max(n_units - 1, 1))
    J = (
        np.triu(as_generator(coupling_seq).normal(coupling_mean, coupling, (n_units, n_units)), 1)
        * scale
    )
    J = J + J.T
    K = np.full(n_units, temporal_coupling)
    h, W = _population_model(n_units, n_timesteps, rates, J, K)
    gen = as_generator(sample_seq)
    if sampler == "chain":
        if sampler_options:
            raise ValueError(
                f"sampler options {sorted(sampler_options)}: the 'chain' sampler takes none"
            )
        bits = _chain_sample(rates, J, K, n_timesteps, n_samples, gen)
    else:
        bits = sample_ising(h, W, n_samples, sampler=sampler, rng=gen, **sampler_options)
    record = {
        "generator": "ising_population",
        "seed": seed_record(root),
        "sampler": sampler,
        "exact": sampler in ("exact", "chain"),
        "params": {
            "rate": rates,
            "coupling": coupling,
            "coupling_mean": coupling_mean,
            "temporal_coupling": temporal_coupling,
        },
        "ising": {"h": h, "W": W, "J": J, "K": K, "rates": rates},
    }
    return activity_anndata(bits, n_units, n_timesteps, record=record)
