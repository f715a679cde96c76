"""Spike statistics and spike trains, real against generated (SpiQGAN, Hernandes & Greplova
2025, Fig. 2 and Fig. 3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._common import figure_of, finish, panel_axes

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

PANELS = ("covariance", "k_probability", "firing_rate", "autocorrelogram", "states")
_TITLES = {
    "covariance": "pairwise covariance",
    "k_probability": "k-probability",
    "firing_rate": "firing rate",
    "autocorrelogram": "autocorrelogram",
    "states": "state distribution",
}


def _labelled(stats: Any) -> dict[str, dict[str, Any]]:
    if isinstance(stats, Mapping) and "summary" in stats and "firing_rate" in stats:
        return {"generated": dict(stats)}
    if (
        isinstance(stats, Mapping)
        and stats
        and all(isinstance(v, Mapping) and "firing_rate" in v for v in stats.values())
    ):
        return {str(k): dict(v) for k, v in stats.items()}
    raise TypeError(
        "stats: expected the dict of qs.tl.spike_statistics, or a mapping of labels to such dicts"
    )


def _same_real(labelled: dict[str, dict[str, Any]]) -> bool:
    first = next(iter(labelled.values()))
    for s in labelled.values():
        for key in ("k_probability", "autocorrelogram"):
            this, that = s[key]["real"], first[key]["real"]
            if this.shape != that.shape or not np.array_equal(this, that):
                return False
    return True


def _positive(values: np.ndarray) -> np.ndarray:
    return np.where(values > 0, values, np.nan)


def _identity(a: Axes, values: list[np.ndarray]) -> None:
    both = np.concatenate([v for v in values if v.size]) if values else np.zeros(1)
    lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
    pad = 0.05 * (hi - lo or 1.0)
    a.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", lw=1, zorder=0)


def spike_statistics(
    stats: Any,
    *,
    panels: Sequence[str] = PANELS[:4],
    ax: Axes | Sequence[Axes] | None = None,
    save: str | Path | None = None,
    show: bool | None = None,
) -> list[Axes]:
    """The panels of SpiQGAN's Fig. 3 (and Fig. 2): generated against real statistics.

    Parameters
    ----------
    stats
        The dict returned by :func:`qsimcells.tl.spike_statistics`, or a mapping of labels to
        such dicts (e.g. one per number of timesteps, drawn in one colour each, as in the
        paper).
    panels
        Any of ``"covariance"`` (generated against real, per unit pair), ``"k_probability"``
        (probability of ``k`` active units in a bin; log scale), ``"firing_rate"`` (generated
        against real, per unit), ``"autocorrelogram"`` (against the lag) and ``"states"`` (the
        state distributions, Fig. 2; first dict only).
    ax
        One axes per panel; a new figure when ``None``.
    save
        File to write (format from the suffix).
    show
        Show the figure (``None``: only when not saving and interactive).

    Returns
    -------
    list of matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    from .._utils import check_choice

    labelled = _labelled(stats)
    panels = [panels] if isinstance(panels, str) else list(panels)
    if not panels:
        raise ValueError(f"panels: choose at least one of {list(PANELS)}")
    for p in panels:
        check_choice("panels", p, PANELS)
    fig, axes = panel_axes(ax, len(panels), what="panel", size=(3.6, 3.3))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    # one black "real" curve when every result compares with the same real data, else one
    # dashed curve per label in its colour
    multi = not _same_real(labelled)
    drawn_real: set[str] = set()
    for a, panel in zip(axes, panels, strict=True):
        for i, (label, s) in enumerate(labelled.items()):
            color = colors[i % len(colors)]
            if panel in ("covariance", "firing_rate"):
                a.scatter(
                    s[panel]["real"],
                    s[panel]["generated"],
                    s=14,
                    color=color,
                    label=label,
                    alpha=0.8,
                )
                a.set_xlabel("real")
                a.set_ylabel("generated")
            elif panel == "k_probability":
                k = s[panel]["k"]
                # zeros have no place on a log axis: leave gaps
                a.plot(k, _positive(s[panel]["generated"]), "o-", color=color, ms=3, label=label)
                if multi or panel not in drawn_real:
                    a.plot(
                        k,
                        _positive(s[panel]["real"]),
                        "--",
                        color=color if multi else "k",
                        lw=1,
                        label=None if multi else "real",
                    )
                    drawn_real.add(panel)
                a.set_yscale("log")
                a.set_xlabel("k (active units per bin)")
                a.set_ylabel("probability")
            elif panel == "autocorrelogram":
                lag = s[panel]["lag"]
                a.plot(lag, s[panel]["generated"], "o-", color=color, ms=3, label=label)
                if multi or panel not in drawn_real:
                    a.plot(
                        lag,
                        s[panel]["real"],
                        "--",
                        color=color if multi else "k",
                        lw=1,
                        label=None if multi else "real",
                    )
                    drawn_real.add(panel)
                a.set_xlabel("lag (bins)")
                a.set_ylabel("P(spike at t and t + lag)")
            elif panel == "states" and i == 0:
                real, gen = s["states"]["real"], s["states"]["generated"]
                x = np.arange(real.size)
                a.bar(x, gen, color=color, alpha=0.7, label=label)
                a.step(x, real, where="mid", color="k", lw=1, label="real")
                a.set_yscale("log")
                a.set_xlabel(
                    f"state ({'sample' if s['js_scope'] == 'sample' else 'one bin'}; "
                    "column c = bit c)"
                )
                a.set_ylabel("probability")
                a.set_title(f"states, JS = {s['js']:.3g} bits", fontsize=9)
        if panel in ("covariance", "firing_rate"):
            _identity(
                a, [s[panel][key] for s in labelled.values() for key in ("real", "generated")]
            )
        if panel != "states":
            a.set_title(_TITLES[panel], fontsize=9)
        a.legend(fontsize=7)
    fig.tight_layout()
    finish(fig, save, show)
    return axes


def raster(
    data: Any,
    *,
    n_units: int | None = None,
    n_timesteps: int | None = None,
    samples: int | Sequence[int] = 10,
    layer: str | None = None,
    color: str = "k",
    title: str | None = None,
    ax: Axes | None = None,
    save: str | Path | None = None,
    show: bool | None = None,
) -> Axes:
    """Spike trains as a raster (SpiQGAN's Fig. 3I-P): units on the y axis, bins on the x axis,
    consecutive samples side by side (dotted lines between samples).

    Parameters
    ----------
    data
        Binary activity ``(samples, n_units * n_timesteps)`` (array or activity AnnData,
        timestep-major).
    n_units, n_timesteps
        The layout (see :func:`qsimcells.tl.spike_statistics`).
    samples
        How many samples from the first, or the row indices to draw.
    layer
        AnnData layer (``None``: ``X``).
    color
        Colour of the spikes.
    title
        Axes title.
    ax
        Axes to draw into; a new figure when ``None``.
    save
        File to write (format from the suffix).
    show
        Show the figure (``None``: only when not saving and interactive).

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    from ..datasets._activity import binary_matrix, resolve_layout

    bits = binary_matrix(data, layer=layer)
    n_units, n_timesteps = resolve_layout(bits.shape[1], n_units, n_timesteps, data)
    if isinstance(samples, (int, np.integer)) and not isinstance(samples, bool):
        if samples < 1:
            raise ValueError(f"samples: must be at least 1, got {samples}")
        rows = np.arange(min(int(samples), bits.shape[0]))
    else:
        rows = np.asarray(samples, dtype=np.int64).ravel()
        if rows.size == 0 or rows.min() < -bits.shape[0] or rows.max() >= bits.shape[0]:
            raise ValueError(
                f"samples: row indices must lie in [0, {bits.shape[0]}), got {rows.tolist()[:10]}"
            )
    trains = bits[rows].reshape(rows.size * n_timesteps, n_units)  # (bins, units)
    if ax is None:
        width = min(12.0, 3.0 + 0.05 * trains.shape[0])
        fig, ax = plt.subplots(figsize=(width, 0.6 + 0.25 * n_units))
    else:
        fig = figure_of(ax)
    events = [np.flatnonzero(trains[:, u]) for u in range(n_units)]
    ax.eventplot(events, lineoffsets=list(range(n_units)), linelengths=0.8, colors=color)
    if n_timesteps > 1:
        for b in range(1, rows.size):
            ax.axvline(b * n_timesteps - 0.5, color="0.7", lw=0.6, ls=":")
    ax.set_xlim(-0.5, trains.shape[0] - 0.5)
    ax.set_ylim(-0.7, n_units - 0.3)
    ax.set_yticks(np.arange(n_units))
    ax.set_xlabel(f"bin ({rows.size} samples x {n_timesteps} bins)")
    ax.set_ylabel("unit")
    if title is not None:
        ax.set_title(title, fontsize=9)
    finish(fig, save, show)
    return ax
