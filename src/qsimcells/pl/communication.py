"""Communication probabilities of two datasets per ligand-receptor pair (Romero et al.,
Table 3), as grouped bars or a dot plot."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._common import figure_of, finish

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_KINDS = ("bar", "dot")


def communication(
    shift: pd.DataFrame,
    *,
    kind: str = "bar",
    labels: tuple[str, str] = ("reference", "alternative"),
    ax: Axes | None = None,
    save: str | Path | None = None,
    show: bool | None = None,
) -> Figure:
    """Plot the output of :func:`qsimcells.tl.communication_shift`.

    Parameters
    ----------
    shift
        Columns ``source``, ``target``, ``ligand``, ``receptor``, ``prob_ref``, ``prob_alt``
        and ``fold_change``: one row per group pair and ligand-receptor pair.
    kind
        ``"bar"``: the two probabilities side by side per pair, the fold change written above;
        ``"dot"``: one row per dataset, dot area by probability, colour by log2 fold change.
    labels
        Names of the reference and alternative datasets (e.g. ``("non-interacting",
        "interacting")``).
    ax
        Axes to draw into; a new figure when ``None``.
    save
        File to write (format from the suffix).
    show
        Show the figure (``None``: only when not saving and interactive).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from .._utils import check_choice

    check_choice("kind", kind, _KINDS)
    needed = ["source", "target", "ligand", "receptor", "prob_ref", "prob_alt", "fold_change"]
    missing = [c for c in needed if c not in getattr(shift, "columns", [])]
    if missing:
        raise ValueError(
            f"shift: missing column(s) {missing}; pass the table of qs.tl.communication_shift"
        )
    if len(shift) == 0:
        raise ValueError("shift: has no rows to plot")
    names = [
        f"{r.ligand}\u2192{r.receptor}\n{r.source}\u2192{r.target}" for r in shift.itertuples()
    ]
    x = np.arange(len(shift))
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(shift) + 1.5), 3.8))
    else:
        fig = figure_of(ax)
    ref, alt = shift["prob_ref"].to_numpy(float), shift["prob_alt"].to_numpy(float)
    fold = shift["fold_change"].to_numpy(float)
    if kind == "bar":
        width = 0.38
        ax.bar(x - width / 2, ref, width, label=labels[0], color="#9ecae1")
        ax.bar(x + width / 2, alt, width, label=labels[1], color="#3182bd")
        for i, value in enumerate(fold):
            text = (
                "n/a"
                if not np.isfinite(value)
                else f"{value:.2f}x"
                if value < 10
                else f"{value:.0f}x"
            )
            ax.annotate(
                text,
                (x[i], np.nanmax([ref[i], alt[i], 0.0])),
                ha="center",
                va="bottom",
                xytext=(0, 3),
                textcoords="offset points",
                fontsize=9,
            )
        ax.set_ylim(0, 1.15 * max(np.nanmax(np.r_[ref, alt, 0.0]), 1e-12))  # room for labels
        ax.set_ylabel("communication probability")
        ax.legend(frameon=False, fontsize=9)
    else:
        log_fold = np.log2(np.where(np.isfinite(fold) & (fold > 0), fold, np.nan))
        size = 2000 * np.concatenate([ref, alt]) / max(np.nanmax([ref.max(), alt.max()]), 1e-12)
        points = ax.scatter(
            np.concatenate([x, x]),
            np.repeat([0, 1], len(x)),
            s=np.nan_to_num(size) + 5,
            c=np.concatenate([log_fold, log_fold]),
            cmap="RdBu_r",
            vmin=-np.nanmax(np.abs(log_fold), initial=1),
            vmax=np.nanmax(np.abs(log_fold), initial=1),
            edgecolors="black",
        )
        fig.colorbar(points, ax=ax, label="log2 fold change")
        ax.set_yticks([0, 1], labels)
        ax.set_ylim(-0.6, 1.6)
    ax.set_xticks(x, names, fontsize=9)
    ax.set_title("communication probability per ligand-receptor pair")
    finish(fig, save, show)
    return fig
