"""Statistics of binary activity (spike trains): real against generated, as in SpiQGAN's Fig. 2
and Fig. 3 (Hernandes & Greplova 2025).

A sample is a row of ``n_units * n_timesteps`` values in ``{0, 1}``, timestep-major (column
``t * n_units + u`` is unit ``u`` at timestep ``t``). Statistics that live in one time bin
(firing rate, pairwise covariance, k-probability) pool all ``samples x timesteps`` bins; the
autocorrelogram compares bins of one sample ``tau`` apart; the state distribution is that of
whole samples when ``2**(n_units * n_timesteps)`` is small, else that of single bins.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._utils import RngLike, as_generator, check_finite, check_positive_int
from ..datasets._activity import binary_matrix, resolve_layout

__all__ = ["independent_surrogate", "js_divergence", "spike_statistics", "state_distribution"]


def js_divergence(p: Any, q: Any) -> float:
    """Jensen-Shannon divergence ``JS(P||Q) = KL(P||M) / 2 + KL(Q||M) / 2``, ``M = (P + Q) / 2``,
    in bits (so it lies in ``[0, 1]``).

    Parameters
    ----------
    p, q
        Two probability vectors (or counts; each is normalised) of the same length.

    Returns
    -------
    float
        The divergence.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(
            f"p, q: expected two 1-D vectors of one length, got {p.shape} and {q.shape}"
        )
    if (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("p, q: must be non-negative with a positive sum")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return max(0.0, 0.5 * kl(p) + 0.5 * kl(q))


def state_distribution(bits: np.ndarray) -> np.ndarray:
    """Empirical distribution of the rows of ``bits`` over all ``2**width`` states.

    Parameters
    ----------
    bits
        ``(samples, width)`` in ``{0, 1}``, ``width <= 24``.

    Returns
    -------
    numpy.ndarray
        ``(2**width,)`` frequencies; state ``k`` has column ``c`` in bit ``c`` of ``k`` (Qiskit's
        order, as :func:`qsimcells.samplers.boltzmann_probabilities`).
    """
    bits = np.asarray(bits)
    width = bits.shape[1]
    if width > 24:
        raise ValueError(f"bits: {width} columns means 2**{width} states; at most 24")
    index = bits.astype(np.int64) @ (np.int64(1) << np.arange(width, dtype=np.int64))
    return np.bincount(index, minlength=2**width) / bits.shape[0]


def _per_bin(bits: np.ndarray, n_units: int, n_timesteps: int) -> np.ndarray:
    """``(samples * timesteps, n_units)``: every time bin of every sample."""
    return bits.reshape(bits.shape[0] * n_timesteps, n_units)


def _firing_rate(bins: np.ndarray) -> np.ndarray:
    return bins.mean(axis=0)


def _covariance(bins: np.ndarray) -> np.ndarray:
    """Population covariance of every unit pair ``i < j`` in one bin."""
    x = bins.astype(np.float64)
    centred = x - x.mean(axis=0)
    cov = centred.T @ centred / x.shape[0]
    return cov[np.triu_indices(bins.shape[1], 1)]


def _k_probability(bins: np.ndarray) -> np.ndarray:
    return (
        np.bincount(bins.sum(axis=1).astype(np.int64), minlength=bins.shape[1] + 1) / bins.shape[0]
    )


def _autocorrelogram(bits: np.ndarray, n_units: int, n_timesteps: int, max_lag: int) -> np.ndarray:
    """``P(x_t = 1 and x_{t + tau} = 1)`` of one unit, averaged over units and bin pairs."""
    trains = bits.reshape(bits.shape[0], n_timesteps, n_units).astype(np.float64)
    return np.array(
        [(trains[:, : n_timesteps - lag] * trains[:, lag:]).mean() for lag in range(max_lag + 1)]
    )


def spike_statistics(
    real: Any,
    generated: Any,
    *,
    n_units: int | None = None,
    n_timesteps: int | None = None,
    layer: str | None = None,
    max_states: int = 4096,
    max_lag: int | None = None,
    bin_size: float | None = None,
) -> dict[str, Any]:
    """Compare generated binary activity with real activity (SpiQGAN's Fig. 2 and Fig. 3).

    Parameters
    ----------
    real, generated
        ``(samples, n_units * n_timesteps)`` arrays in ``{0, 1}`` or activity AnnData
        (timestep-major columns; the two may have different numbers of samples).
    n_units, n_timesteps
        The layout; either can be inferred from the other, and both from an AnnData of
        :mod:`qsimcells.datasets` or :meth:`qsimcells.model.SpiQGAN.sample`.
    layer
        AnnData layer holding the activity (``None``: ``X``), for both inputs.
    max_states
        The state distribution is that of whole samples when ``2**(n_units * n_timesteps) <=
        max_states``, else that of single bins (``2**n_units`` states, pooled over timesteps;
        the JS divergence is then the mean over timesteps of each timestep's JS). Beyond
        ``2**n_units > max_states`` no JS is computed (``nan``).
    max_lag
        Largest autocorrelogram lag in bins (default ``n_timesteps - 1``).
    bin_size
        Bin width in seconds: firing rates in Hz. ``None``: spikes per bin.

    Returns
    -------
    dict
        - ``js``: Jensen-Shannon divergence (bits, in ``[0, 1]``) of the state distributions;
          ``js_scope``: ``"sample"``, ``"timestep"`` or ``"none"``.
        - ``states``: ``{"real", "generated"}`` state frequencies (state ``k``: column ``c`` in
          bit ``c``; for ``js_scope="timestep"`` over the ``2**n_units`` states of one bin);
        - ``firing_rate``: ``{"real", "generated"}`` ``(n_units,)`` mean rate of each unit;
        - ``covariance``: ``{"pairs", "real", "generated"}``, the covariance of each unit pair
          ``(i, j), i < j`` in one bin;
        - ``k_probability``: ``{"k", "real", "generated"}``, the probability that ``k`` units are
          active in one bin;
        - ``autocorrelogram``: ``{"lag", "real", "generated"}``, the probability that a unit
          spikes in two bins ``lag`` apart, averaged over units (lag 0: the mean rate per bin);
        - ``summary``: one number per statistic for side-by-side tables: ``js``,
          ``firing_rate_mae``, ``covariance_mae``, ``k_probability_tvd`` (total variation),
          ``autocorrelogram_mae`` (mean absolute errors);
        - ``n_units``, ``n_timesteps``, ``n_real``, ``n_generated``.
    """
    a = binary_matrix(real, layer=layer, field="real")
    b = binary_matrix(generated, layer=layer, field="generated")
    n_units, n_timesteps = resolve_layout(a.shape[1], n_units, n_timesteps, real, field="real")
    if b.shape[1] != a.shape[1]:
        raise ValueError(f"generated: has {b.shape[1]} columns, real has {a.shape[1]}")
    max_states = check_positive_int("max_states", max_states)
    max_lag = n_timesteps - 1 if max_lag is None else int(max_lag)
    if not 0 <= max_lag < n_timesteps:
        raise ValueError(
            f"max_lag: must lie in [0, n_timesteps - 1] = [0, {n_timesteps - 1}], got {max_lag}"
        )
    scale = (
        1.0
        if bin_size is None
        else 1.0 / check_finite("bin_size", bin_size, low=0.0, low_open=True)
    )

    if n_units * n_timesteps <= 24 and 2 ** (n_units * n_timesteps) <= max_states:
        scope = "sample"
        p, q = state_distribution(a), state_distribution(b)
        js = js_divergence(p, q)
    elif n_units <= 24 and 2**n_units <= max_states:
        scope = "timestep"
        steps = [slice(t * n_units, (t + 1) * n_units) for t in range(n_timesteps)]
        js = float(
            np.mean(
                [
                    js_divergence(state_distribution(a[:, s]), state_distribution(b[:, s]))
                    for s in steps
                ]
            )
        )
        p = state_distribution(_per_bin(a, n_units, n_timesteps))
        q = state_distribution(_per_bin(b, n_units, n_timesteps))
    else:
        scope, js, p, q = "none", float("nan"), np.zeros(0), np.zeros(0)

    bins_a, bins_b = _per_bin(a, n_units, n_timesteps), _per_bin(b, n_units, n_timesteps)
    out: dict[str, Any] = {
        "n_units": n_units,
        "n_timesteps": n_timesteps,
        "n_real": a.shape[0],
        "n_generated": b.shape[0],
        "js": js,
        "js_scope": scope,
        "states": {"real": p, "generated": q},
        "firing_rate": {
            "real": scale * _firing_rate(bins_a),
            "generated": scale * _firing_rate(bins_b),
        },
        "covariance": {
            "pairs": np.stack(np.triu_indices(n_units, 1), axis=1),
            "real": _covariance(bins_a),
            "generated": _covariance(bins_b),
        },
        "k_probability": {
            "k": np.arange(n_units + 1),
            "real": _k_probability(bins_a),
            "generated": _k_probability(bins_b),
        },
        "autocorrelogram": {
            "lag": np.arange(max_lag + 1),
            "real": _autocorrelogram(a, n_units, n_timesteps, max_lag),
            "generated": _autocorrelogram(b, n_units, n_timesteps, max_lag),
        },
    }

    def mae(key: str) -> float:
        x, y = out[key]["real"], out[key]["generated"]
        return float(np.abs(x - y).mean()) if x.size else 0.0

    out["summary"] = {
        "js": js,
        "firing_rate_mae": mae("firing_rate"),
        "covariance_mae": mae("covariance"),
        "k_probability_tvd": 0.5
        * float(np.abs(out["k_probability"]["real"] - out["k_probability"]["generated"]).sum()),
        "autocorrelogram_mae": mae("autocorrelogram"),
    }
    return out


def independent_surrogate(
    data: Any, n_samples: int | None = None, *, layer: str | None = None, rng: RngLike = None
) -> np.ndarray:
    """The independent-units baseline: every column an independent Bernoulli with the data's
    rate in that column (same firing rates, no correlations in space or time).

    Parameters
    ----------
    data
        Binary activity ``(samples, columns)`` (array or AnnData).
    n_samples
        Rows to draw (default: as many as ``data`` has).
    layer
        AnnData layer (``None``: ``X``).
    rng
        Seed or generator.

    Returns
    -------
    numpy.ndarray
        ``(n_samples, columns)`` uint8.
    """
    bits = binary_matrix(data, layer=layer)
    n = bits.shape[0] if n_samples is None else check_positive_int("n_samples", n_samples)
    rate = bits.mean(axis=0)
    return (as_generator(rng).random((n, bits.shape[1])) < rate).astype(np.uint8)
