"""True against inferred gene networks, side by side (Romero et al., Fig. 4)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._utils import MissingKeyError
from ._common import figure_of, finish

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Edge colours by scoring status (qs.tl.score_network).
STATUS_COLORS = {
    "true": "#2ca02c",
    "reversed": "#17becf",
    "indirect": "#ff7f0e",
    "spurious": "#d62728",
    "missed": "#7f7f7f",
}
_LAYOUTS = ("circular", "spring", "kamada_kawai", "shell")


def network(
    adata: AnnData,
    key: str,
    *,
    directed: bool = False,
    layout: str = "circular",
    ax: Axes | Sequence[Axes] | None = None,
    save: str | Path | None = None,
    show: bool | None = None,
    title: str | None = None,
) -> Figure:
    """Draw the programmed network next to an inferred one, inferred edges coloured by status.

    Parameters
    ----------
    adata
        Data holding the ground truth (``qs.sim`` output) and the inferred network
        ``adata.uns[key]`` (e.g. from :func:`qsimcells.tl.correlation_network`).
    key
        Key of the inferred network.
    directed
        Score directions too (see :func:`qsimcells.tl.score_network`). The score that
        ``score_network`` stored in ``adata.uns[key]["score"]`` is reused when its ``directed``
        matches; otherwise the network is scored (and the score stored) here.
    layout
        networkx layout: ``"circular"``, ``"spring"``, ``"kamada_kawai"`` or ``"shell"``; both
        panels share the node positions.
    ax
        Two axes (programmed, inferred), or one axes for the inferred panel alone; programmed
        edges that were missed are drawn dashed in the inferred panel. New figure when
        ``None``.
    save
        File to write (format from the suffix).
    show
        Show the figure (``None``: only when not saving and interactive).
    title
        Title of the inferred panel (default: the method and threshold).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    import networkx as nx
    from matplotlib.lines import Line2D

    from .._utils import check_choice
    from ..tl import score_network, true_network

    check_choice("layout", layout, _LAYOUTS)
    if key not in adata.uns:
        raise MissingKeyError(
            f"key: {key!r} is not in adata.uns; run qs.tl.correlation_network "
            "(or store a network there) first"
        )
    # the score stored by qs.tl.score_network when it ran with these settings; else score now
    score = adata.uns[key].get("score")
    if not score or bool(score.get("directed", False)) != directed:
        score = score_network(adata, key, directed=directed)
    truth = true_network(adata)
    edges = score["edges"]
    genes = list(adata.uns[key].get("genes", [])) or sorted(
        set(edges["source"]) | set(edges["target"])
    )
    nodes = list(dict.fromkeys([*genes, *truth["source"], *truth["target"]]))
    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    positions = _layout(graph, layout)

    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    elif hasattr(ax, "plot"):  # one Axes: the inferred panel alone
        axes, fig = [None, ax], figure_of(ax)
    else:  # a list or numpy array of axes
        axes = list(ax)
        if len(axes) != 2:
            raise ValueError(
                f"ax: expected one axes or two (programmed, inferred), got {len(axes)}"
            )
        fig = axes[0].figure

    if axes[0] is not None:
        programmed = nx.DiGraph()
        programmed.add_nodes_from(nodes)
        programmed.add_edges_from(zip(truth["source"], truth["target"], strict=True))
        _draw_nodes(programmed, positions, axes[0], adata)
        nx.draw_networkx_edges(
            programmed,
            positions,
            ax=axes[0],
            arrows=True,
            arrowsize=16,
            edge_color="black",
            width=1.8,
            node_size=700,
        )
        axes[0].set_title(f"programmed ({len(truth)} CX gate{'s' if len(truth) != 1 else ''})")
        axes[0].margins(0.15)  # room for the node circles at the layout's edge
        axes[0].set_axis_off()

    inferred = nx.Graph()
    inferred.add_nodes_from(nodes)
    _draw_nodes(inferred, positions, axes[1], adata)
    shown = edges  # missed programmed edges too, dashed, so the panel reads on its own
    for status, color in STATUS_COLORS.items():
        part = shown[shown["status"] == status]
        if part.empty:
            continue
        nx.draw_networkx_edges(
            inferred,
            positions,
            edgelist=list(zip(part["source"], part["target"], strict=True)),
            ax=axes[1],
            edge_color=color,
            width=2.2,
            node_size=700,
            style="dashed" if status == "missed" else "solid",
        )
    params = adata.uns[key].get("params", {})
    axes[1].set_title(
        title
        or f"inferred: {params.get('method', key)}"
        + (f", |r| > {params['threshold']}" if "threshold" in params else "")
        + f"\nprecision {score['precision']:.2f}, recall {score['recall']:.2f}"
    )
    axes[1].margins(0.15)
    axes[1].set_axis_off()
    present = [s for s in STATUS_COLORS if (shown["status"] == s).any()]
    axes[1].legend(
        handles=[
            Line2D(
                [], [], color=STATUS_COLORS[s], lw=2.2, ls="--" if s == "missed" else "-", label=s
            )
            for s in present
        ],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=8,
        frameon=False,
    )
    finish(fig, save, show)
    return fig


def _layout(graph: Any, layout: str) -> dict:
    import networkx as nx

    if layout == "spring":
        return nx.spring_layout(graph, seed=0)
    return {
        "circular": nx.circular_layout,
        "kamada_kawai": nx.kamada_kawai_layout,
        "shell": nx.shell_layout,
    }[layout](graph)


def _draw_nodes(graph: Any, positions: dict, ax: Axes, adata: AnnData) -> None:
    """Nodes coloured by the cell type whose register holds the gene."""
    import matplotlib.pyplot as plt
    import networkx as nx

    cell_type = adata.var.get("cell_type", None)
    types = sorted(
        {str(cell_type[n]) for n in graph.nodes if cell_type is not None and n in cell_type.index}
    )
    pastel = plt.get_cmap("Pastel1")  # 9 colours, repeated for more cell types
    palette = {t: pastel(i % pastel.N) for i, t in enumerate(types)}
    colors = [
        palette.get(str(cell_type[n]), "#dddddd")
        if cell_type is not None and n in cell_type.index
        else "#dddddd"
        for n in graph.nodes
    ]
    nx.draw_networkx_nodes(
        graph,
        positions,
        ax=ax,
        node_color=colors,
        node_size=700,
        edgecolors="black",
        linewidths=0.8,
    )
    nx.draw_networkx_labels(graph, positions, ax=ax, font_size=10)
