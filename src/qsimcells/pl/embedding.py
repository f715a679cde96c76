"""UMAP of simulated cells through scanpy (Romero et al., Fig. 3)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .._utils import MissingKeyError, RngLike
from ._common import figure_of, finish

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def umap(
    adata: AnnData,
    *,
    color: str = "cell_type",
    rng: RngLike = 0,
    n_pcs: int = 20,
    ax: Axes | None = None,
    save: str | Path | None = None,
    show: bool | None = None,
    title: str | None = None,
) -> Figure:
    """UMAP of ``adata`` coloured by an ``obs`` column, computed by scanpy when needed.

    When ``adata.obsm`` has no ``"X_umap"``, a copy of the counts goes through the paper's
    preprocessing (normalise to 1e4, log1p, z-score), PCA, the kNN graph and UMAP; ``adata``
    itself is not changed. To colour two cases the way the paper does, concatenate them with a
    column such as ``"case"`` and colour by case and cell type together.

    Parameters
    ----------
    adata
        Counts in ``X`` (``qs.sim`` output or any AnnData), or an embedding in
        ``obsm["X_umap"]``.
    color
        Column of ``adata.obs`` to colour by.
    rng
        Seed of the PCA and UMAP (an int; a Generator gives one draw).
    n_pcs
        Principal components for the kNN graph (at most ``n_vars - 1``).
    ax
        Axes to draw into; a new figure when ``None``.
    save
        File to write (format from the suffix).
    show
        Show the figure (``None``: only when not saving and interactive).
    title
        Plot title (default: the colour column).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    import numpy as np

    try:
        import scanpy as sc
    except ImportError:
        raise ImportError("qs.pl.umap needs scanpy: pip install 'qsimcells[analysis]'") from None

    from .._utils import as_generator, check_positive_int

    if color not in adata.obs:
        raise MissingKeyError(
            f"color: {color!r} is not a column of adata.obs; available: {list(adata.obs.columns)}"
        )
    n_pcs = check_positive_int("n_pcs", n_pcs)
    seed = (
        int(rng)
        if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)
        else int(as_generator(rng).integers(2**31))
    )
    if "X_umap" in adata.obsm:
        view = adata
    else:
        view = adata.copy()
        sc.pp.normalize_total(view, target_sum=1e4)
        sc.pp.log1p(view)
        sc.pp.scale(view)
        n_comps = min(n_pcs, view.n_vars - 1, view.n_obs - 1)
        sc.pp.pca(view, n_comps=n_comps, random_state=seed)
        sc.pp.neighbors(view, n_pcs=n_comps, random_state=seed)
        sc.tl.umap(view, random_state=seed)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
    else:
        fig = figure_of(ax)
    sc.pl.umap(view, color=color, ax=ax, show=False, title=title or color, frameon=False)
    finish(fig, save, show)
    return fig
