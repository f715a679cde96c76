"""The gene-network prior of :class:`~qsimcells.model.QPerturb`: how an intervention on one gene
moves the others, propagated over a gene-gene graph (GEARS's idea, in closed form).

From the control cells alone, for every edge ``s -> t`` of the graph::

    beta[s, t] = P(t ON | s ON) - P(t ON | s OFF)      (ON: a count > 0)

An intervention sets the ON probability of the perturbed gene ``g`` (0 for a knockout, 1 for an
overexpression), a change ``d[g] = target - P(g ON)``, and the change travels along the edges for
``n_hops`` steps (``d_{k+1} = d_k @ beta``, summed over k) with the intervened genes held fixed. The
expected shift of gene ``j``'s log expression is then ``d[j]`` times its mean log expression when
ON.

For the simulator's gates this is exact in expectation for one CX edge: a CX flips ``t`` when ``s``
is ON, so ``P(t ON | s)`` is linear in ``s``'s bit with slope ``1 - 2 p_t`` (``p_t`` the basal ON
probability of ``t``), which gives the exact knockout response ``p_s (2 p_t - 1)``. A correlation
graph is undirected, so the change also travels against the arrows; the programmed graph
(``network="truth"``) is directed and gives the upper bound.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

__all__ = ["NetworkPrior", "network_edges"]

SOURCES = ("correlation", "truth")


def network_edges(
    network: Any, adata: Any, control_rows: np.ndarray, genes: list[str], threshold: float
) -> tuple[pd.DataFrame, bool, str]:
    """The graph as ``source, target`` rows of gene names, whether it is directed, and where it
    came from (``correlation``, ``truth`` or ``table``)."""
    if isinstance(network, str):
        if network not in SOURCES:
            raise ValueError(
                f"network: {network!r} is not allowed; choose one of "
                f"{list(SOURCES)}, a DataFrame with columns source, target, or "
                "None"
            )
        if network == "truth":
            from ..tl.grn import true_network

            try:
                table = true_network(adata)
            except ValueError as err:
                raise ValueError(f"network: 'truth' needs a simulated screen ({err})") from None
            return table[["source", "target"]].astype(str), True, "truth"
        from ..tl.grn import correlation_network

        control = adata[control_rows]
        result = correlation_network(control, threshold=threshold, copy=True)
        assert result is not None  # copy=True returns the copy
        edges = result.uns["pearson_network"]["edges"][["source", "target"]].astype(str)
        return edges.reset_index(drop=True), False, "correlation"
    if isinstance(network, pd.DataFrame):
        missing = {"source", "target"} - set(network.columns)
        if missing:
            raise ValueError(
                f"network: the table needs columns source and target (missing "
                f"{sorted(missing)}; has {list(network.columns)})"
            )
        table = network[["source", "target"]].astype(str).reset_index(drop=True)
        unknown = sorted((set(table["source"]) | set(table["target"])) - set(genes))
        if unknown:
            raise ValueError(f"network: genes {unknown[:10]} are not in var_names")
        directed = bool(network.attrs.get("directed", True))
        return table, directed, "table"
    raise TypeError(
        f"network: expected 'correlation', 'truth', a DataFrame with columns "
        f"source, target, or None, got {type(network).__name__}"
    )


class NetworkPrior:
    """Expected shift of every gene's log expression under an intervention, from a gene graph.

    Parameters
    ----------
    control_counts
        Raw counts of the control cells (cells x genes).
    control_expr
        Their log expression on the model's scale (dense, same shape).
    edges
        Gene indices ``(sources, targets)`` of the graph.
    directed
        ``False``: every edge also acts from target to source.
    n_hops
        How far the change travels (edges in a path).
    """

    def __init__(
        self,
        control_counts: sparse.csr_matrix,
        control_expr: np.ndarray,
        edges: tuple[np.ndarray, np.ndarray],
        *,
        directed: bool,
        n_hops: int = 3,
    ) -> None:
        on = np.asarray((control_counts > 0).toarray(), dtype=np.float64)
        n_genes = on.shape[1]
        self.p_on = on.mean(axis=0)
        sources, targets = (np.asarray(a, dtype=np.int64) for a in edges)
        if not directed:
            sources, targets = np.r_[sources, targets], np.r_[targets, sources]
        keep = sources != targets
        # one slope per ordered pair, however often the graph lists it
        pairs = np.unique(np.stack([sources[keep], targets[keep]], axis=1), axis=0)
        sources, targets = pairs[:, 0], pairs[:, 1]
        # per edge: P(t ON | s ON) - P(t ON | s OFF); 0 where the source never takes both states
        source_on = on[:, sources]
        n_on = source_on.sum(axis=0)
        n_off = on.shape[0] - n_on
        on_given_on = (source_on * on[:, targets]).sum(axis=0)
        on_given_off = on[:, targets].sum(axis=0) - on_given_on
        both = (n_on > 0) & (n_off > 0)
        slope = np.zeros(sources.size)
        slope[both] = on_given_on[both] / n_on[both] - on_given_off[both] / n_off[both]
        # sparse: a graph has far fewer edges than gene pairs (20,000 genes would be 3.2 GB)
        self.beta = sparse.csr_matrix((slope, (sources, targets)), shape=(n_genes, n_genes))
        expressed = np.where(on > 0, control_expr, np.nan)
        with np.errstate(invalid="ignore"):
            level = np.nanmean(expressed, axis=0) if expressed.size else np.zeros(n_genes)
        self.level_on = np.nan_to_num(level, nan=0.0)  # log expression of an ON gene
        self.mean_expr = control_expr.mean(axis=0)
        self.n_hops = int(n_hops)
        self.n_edges = int(sources.size)

    def on_change(self, genes: list[int], kind: str) -> np.ndarray:
        """``(n_genes,)`` change of every gene's ON probability when ``genes`` are knocked out
        (``kind="knockout"``) or overexpressed."""
        change = np.zeros_like(self.p_on)
        target = 0.0 if kind == "knockout" else 1.0
        change[genes] = target - self.p_on[genes]
        total, frontier = change.copy(), change
        for _ in range(self.n_hops):
            frontier = self.beta.T @ frontier
            frontier[genes] = 0.0  # the intervention holds the perturbed genes
            total += frontier
        return np.clip(total, -1.0, 1.0, out=total)  # a change of an ON probability

    def shift(self, genes: list[int], kind: str) -> np.ndarray:
        """``(n_genes,)`` expected shift of log expression when ``genes`` are knocked out
        (``kind="knockout"``) or overexpressed."""
        out = self.on_change(genes, kind) * self.level_on
        if kind == "knockout":  # exact for the perturbed gene itself: its expression goes to 0
            out[genes] = -self.mean_expr[genes]
        return out
