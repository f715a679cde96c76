"""A simulation against its real reference: the panel of
:func:`qsimcells.tl.compare_to_reference`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._common import finish, panel_axes

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

PANELS = ("mean", "zero_fraction", "library_size", "correlation")


def compare_to_reference(
    comparison: Any,
    *,
    panels: Sequence[str] = PANELS,
    ax: Axes | Sequence[Axes] | None = None,
    save: str | Path | None = None,
    show: bool | None = None,
) -> list[Axes]:
    """Simulated against real statistics: per-gene mean and zero fraction (one dot per gene),
    library sizes (histograms) and gene-gene correlations (one dot per gene pair).

    Parameters
    ----------
    comparison
        A :class:`~qsimcells.tl.ReferenceComparison`, or a mapping of labels to them (several
        simulations of one reference, one colour each, e.g. qsimcells against a copula).
    panels
        Any of ``"mean"``, ``"zero_fraction"``, ``"library_size"``, ``"correlation"``.
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
    from ..tl.reference import ReferenceComparison

    if isinstance(comparison, ReferenceComparison):
        labelled = {"simulated": comparison}
    elif (
        isinstance(comparison, Mapping)
        and comparison
        and all(isinstance(v, ReferenceComparison) for v in comparison.values())
    ):
        labelled = {str(k): v for k, v in comparison.items()}
    else:
        raise TypeError(
            "comparison: expected the result of qs.tl.compare_to_reference, or a "
            "mapping of labels to such results"
        )
    panels = list(panels)
    unknown = [p for p in panels if p not in PANELS]
    if unknown or not panels:
        raise ValueError(f"panels: {unknown or panels!r} not allowed; choose from {list(PANELS)}")
    fig, axes = panel_axes(ax, len(panels), what="panel", size=(3.6, 3.4))
    first = next(iter(labelled.values()))
    for a, panel in zip(axes, panels, strict=True):
        if panel == "library_size":
            real = np.log10(first.library["reference"] + 1)
            bins = np.histogram_bin_edges(
                np.concatenate(
                    [real] + [np.log10(c.library["simulated"] + 1) for c in labelled.values()]
                ),
                30,
            )
            a.hist(real, bins=bins, color="0.6", alpha=0.6, density=True, label="reference")
            for label, c in labelled.items():
                a.hist(
                    np.log10(c.library["simulated"] + 1),
                    bins=bins,
                    histtype="step",
                    density=True,
                    lw=1.5,
                    label=label,
                )
            a.set(xlabel="log10(total counts + 1)", ylabel="density", title="library size")
            a.legend(fontsize=7, frameon=False)
            continue
        values = []
        for label, c in labelled.items():
            if panel == "correlation":
                i, j = np.triu_indices(len(c.correlation["genes"]), 1)
                x, y = c.correlation["reference"][i, j], c.correlation["simulated"][i, j]
            else:
                x = c.per_gene[f"{panel}_reference"].to_numpy()
                y = c.per_gene[f"{panel}_simulated"].to_numpy()
            a.scatter(x, y, s=6, alpha=0.5, label=label, linewidths=0)
            values += [x[np.isfinite(x)], y[np.isfinite(y)]]
        if panel == "mean":
            a.set(xscale="log", yscale="log")
        both = np.concatenate(values) if values else np.zeros(1)
        both = both[both > 0] if panel == "mean" else both
        lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
        a.plot([lo, hi], [lo, hi], color="0.5", lw=1, zorder=0)
        a.set(
            xlabel="reference",
            ylabel="simulated",
            title={
                "mean": "mean per gene",
                "zero_fraction": "zero fraction per gene",
                "correlation": "gene-gene correlation",
            }[panel],
        )
        if len(labelled) > 1:
            a.legend(fontsize=7, frameon=False, markerscale=2)
    fig.tight_layout()
    finish(fig, save, show)
    return axes
