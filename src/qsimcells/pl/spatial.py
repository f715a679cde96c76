"""Cells in tissue, coloured by an ``obs`` column, with the true couplings as edges."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ._common import figure_of, finish

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def spatial(
    adata: AnnData,
    *,
    color: str = "cell_type",
    edges: str | None = "lr_coupling",
    min_coupling: float = 0.5,
    size: float = 12.0,
    ax: Axes | None = None,
    save: str | Path | None = None,
    show: bool | None = None,
    title: str | None = None,
) -> Figure:
    """Cells at ``obsm["spatial"]`` coloured by ``obs[color]``, with the true sender-receiver
    pairs of ``obsp[edges]`` drawn as lines.

    Parameters
    ----------
    adata
        Output of ``qs.sim.simulate(..., tissue=qs.sim.Tissue(...))``, or any AnnData with
        ``obsm["spatial"]``.
    color
        Categorical column of ``adata.obs`` to colour the cells by.
    edges
        ``obsp`` key of a cell-by-cell coupling matrix (the simulator's ``"lr_coupling"``:
        the probability that the niche's ligand-receptor gates act), or ``None`` for no edges.
        A missing key draws no edges.
    min_coupling
        Draw a pair when its coupling is at least this, with opacity rising with it.
    size
        Marker size (points^2).
    ax
        Axes to draw into; a new figure when ``None``.
    save
        File to write (format from the suffix).
    show
        Show the figure (``None``: only when not saving and interactive).
    title
        Plot title (default: ``color``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp
    from matplotlib.collections import LineCollection

    from .._utils import check_finite

    if "spatial" not in adata.obsm:
        raise ValueError(
            "adata: no obsm['spatial']; simulate with tissue=qs.sim.Tissue(...) "
            "or add cell coordinates"
        )
    xy = np.asarray(adata.obsm["spatial"], dtype=float)
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise ValueError(f"adata: obsm['spatial'] must have shape (n_obs, 2), got {xy.shape}")
    if color not in adata.obs:
        raise ValueError(
            f"color: {color!r} is not a column of adata.obs; choose one of "
            f"{list(adata.obs.columns)}"
        )
    min_coupling = check_finite("min_coupling", min_coupling, low=0.0, high=1.0)

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 6))
    else:
        fig = figure_of(ax)
    if edges is not None and edges in adata.obsp:
        coupling = sp.coo_matrix(adata.obsp[edges])
        keep = coupling.data >= min_coupling
        rows, cols, strength = coupling.row[keep], coupling.col[keep], coupling.data[keep]
        segments = np.stack([xy[rows, :2], xy[cols, :2]], axis=1)
        ax.add_collection(
            LineCollection(
                list(segments),
                colors=[(0.1, 0.1, 0.1, 0.3 + 0.7 * s) for s in strength],
                linewidths=1.2,
                zorder=3,
                label=f"{edges} >= {min_coupling:g}",
            )
        )
    groups = pd.Categorical(adata.obs[color])
    palette = plt.get_cmap("tab20" if len(groups.categories) > 10 else "tab10")
    for k, name in enumerate(groups.categories):
        where = groups.codes == k
        ax.scatter(
            xy[where, 0],
            xy[where, 1],
            s=size,
            color=palette(k % palette.N),
            label=str(name),
            zorder=2,
            linewidths=0,
        )
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.set_xlabel("x (um)")
    ax.set_ylabel("y (um)")
    ax.set_title(title if title is not None else color)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, markerscale=2)
    finish(fig, save, show)
    return fig
