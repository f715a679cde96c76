"""``compare_to_reference``: how close simulated counts are to a real reference.

The statistics of simulator benchmarks (Splatter's ``compareSCEs``, scDesign3's and SimBench's
evaluations): per-gene mean, variance and zero fraction, library sizes, gene-gene correlations
(over all cells and within cell types), and a kNN two-sample test whose AUC is 0.5 when the two
data sets cannot be told apart, with how well the reference's cell types are recognised in the
simulation. numpy and scipy only (no scanpy, no scikit-learn).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse, stats

from .._utils import RngLike, as_generator, check_positive_int
from ._preprocess import check_adata, counts, log_normalize
from .grn import _roc_auc

__all__ = ["ReferenceComparison", "compare_to_reference"]


@dataclass
class ReferenceComparison:
    """Output of :func:`compare_to_reference`.

    Attributes
    ----------
    table
        One row per ``statistic`` and ``metric``, column ``value``. Per-gene statistics
        (``mean``, ``variance`` on log10(x + 1e-3); ``zero_fraction``): ``ks`` (two-sample
        Kolmogorov-Smirnov distance between the values over genes), ``wasserstein`` (the same
        two distributions) and ``mae`` (mean absolute difference gene by gene). ``library_size``
        (log10 of the total over the shared genes, per cell): ``ks``, ``wasserstein``.
        ``correlation`` and ``correlation_within_types`` (Pearson of log-normalised
        expression over the ``n_correlation_genes`` most expressed genes): ``mae`` over gene
        pairs. ``knn``: ``auc`` (two-sample; 0.5 = indistinguishable), ``cell_type_accuracy``
        (simulated cells labelled by their reference neighbours),
        ``cell_type_accuracy_reference`` (the same for reference cells, leave one out) and
        ``cell_type_accuracy_gap``, the difference of the two: types that are too cleanly
        separated are as unlike the reference as types that blur.
    per_gene
        Per shared gene: ``mean``, ``variance`` and ``zero_fraction`` of each side.
    library
        ``{"simulated": ..., "reference": ...}``: totals per cell.
    correlation
        ``{"genes": ..., "simulated": ..., "reference": ...}``: the correlation matrices
        (all cells).
    """

    table: pd.DataFrame
    per_gene: pd.DataFrame
    library: dict[str, np.ndarray]
    correlation: dict[str, Any]

    def value(self, statistic: str, metric: str) -> float:
        """One entry of :attr:`table`."""
        rows = self.table[(self.table["statistic"] == statistic) & (self.table["metric"] == metric)]
        if rows.empty:
            raise ValueError(
                f"statistic, metric: ({statistic!r}, {metric!r}) is not in the "
                "table; available: "
                f"{list(zip(self.table['statistic'], self.table['metric'], strict=True))}"
            )
        return float(rows["value"].iloc[0])


def compare_to_reference(
    adata: Any,
    reference: Any,
    *,
    groupby: str | None = "cell_type",
    layer: str | None = None,
    reference_layer: str | None = None,
    n_correlation_genes: int = 100,
    n_neighbors: int = 10,
    n_pcs: int = 20,
    max_cells: int = 5000,
    rng: RngLike = 0,
) -> ReferenceComparison:
    """Compare a simulation with the real data it imitates (see :class:`ReferenceComparison`).

    Parameters
    ----------
    adata
        The simulation: raw counts in ``X`` or ``layers[layer]``.
    reference
        The real data, counts in ``X`` or ``layers[reference_layer]``. Only the genes of both
        are compared (in the simulation's order); at least 2 are needed.
    groupby
        ``obs`` column of cell types, in both: for the correlations within types and the
        cell-type accuracy; ``None`` to skip those.
    layer, reference_layer
        Layers with the counts (``None``: ``X``).
    n_correlation_genes
        Genes in the correlation matrices (the most expressed in the reference).
    n_neighbors, n_pcs
        The kNN graph: neighbours per cell and principal components (of the log-normalised
        shared genes, fitted on both sets together).
    max_cells
        Cells per side in the kNN test (a random subsample with ``rng`` beyond it); both sides
        are cut to the smaller size, so the AUC is not skewed by unequal sizes.
    rng
        Seed of the subsampling.

    Returns
    -------
    ReferenceComparison
    """
    check_adata(adata, "adata")
    check_adata(reference, "reference")
    n_correlation_genes = check_positive_int("n_correlation_genes", n_correlation_genes)
    n_neighbors = check_positive_int("n_neighbors", n_neighbors)
    n_pcs = check_positive_int("n_pcs", n_pcs)
    max_cells = check_positive_int("max_cells", max_cells)
    shared = [g for g in adata.var_names if g in set(reference.var_names)]
    if len(shared) < 2:
        raise ValueError(
            f"reference: shares {len(shared)} genes with adata (at least 2 are "
            "needed); compare data over the same genes"
        )
    if groupby is not None:
        for name, data in (("adata", adata), ("reference", reference)):
            if groupby not in data.obs:
                raise ValueError(
                    f"groupby: {groupby!r} is not a column of {name}.obs; give "
                    "the cell-type column, or None"
                )
    sim = counts(adata, layer)[:, adata.var_names.get_indexer(shared)]
    real = counts(reference, reference_layer)[:, reference.var_names.get_indexer(shared)]

    rows: list[tuple[str, str, float]] = []
    per_gene = _per_gene(sim, real, shared)
    for stat in ("mean", "variance", "zero_fraction"):
        a, b = per_gene[f"{stat}_simulated"], per_gene[f"{stat}_reference"]
        if stat != "zero_fraction":
            a, b = np.log10(a + 1e-3), np.log10(b + 1e-3)
        rows += [
            (stat, "ks", float(stats.ks_2samp(a, b).statistic)),
            (stat, "wasserstein", float(stats.wasserstein_distance(a, b))),
            (stat, "mae", float(np.abs(a - b).mean())),
        ]
    library = {
        "simulated": np.asarray(sim.sum(axis=1)).ravel(),
        "reference": np.asarray(real.sum(axis=1)).ravel(),
    }
    la, lb = (np.log10(library[k] + 1) for k in ("simulated", "reference"))
    rows += [
        ("library_size", "ks", float(stats.ks_2samp(la, lb).statistic)),
        ("library_size", "wasserstein", float(stats.wasserstein_distance(la, lb))),
    ]

    top = np.sort(
        np.argsort(-per_gene["mean_reference"].to_numpy(), kind="stable")[:n_correlation_genes]
    )
    lsim, lreal = log_normalize(sim), log_normalize(real)
    corr_sim, corr_real = _correlation(lsim[:, top]), _correlation(lreal[:, top])
    rows.append(("correlation", "mae", _pair_mae(corr_sim, corr_real)))
    if groupby is not None:
        types = [
            t
            for t in pd.unique(reference.obs[groupby].astype(str))
            if (adata.obs[groupby].astype(str) == t).sum() > 2
            and (reference.obs[groupby].astype(str) == t).sum() > 2
        ]
        errors = [
            _pair_mae(
                _correlation(lsim[np.flatnonzero(adata.obs[groupby].astype(str) == t)][:, top]),
                _correlation(
                    lreal[np.flatnonzero(reference.obs[groupby].astype(str) == t)][:, top]
                ),
            )
            for t in types
        ]
        errors = [e for e in errors if np.isfinite(e)]
        rows.append(
            ("correlation_within_types", "mae", float(np.mean(errors)) if errors else float("nan"))
        )
    rows += _knn_rows(
        lsim, lreal, adata, reference, groupby, n_neighbors, n_pcs, max_cells, as_generator(rng)
    )
    table = pd.DataFrame.from_records(rows, columns=["statistic", "metric", "value"])
    return ReferenceComparison(
        table=table,
        per_gene=per_gene,
        library=library,
        correlation={
            "genes": [shared[i] for i in top],
            "simulated": corr_sim,
            "reference": corr_real,
        },
    )


def _per_gene(sim: sparse.csr_matrix, real: sparse.csr_matrix, genes: list[str]) -> pd.DataFrame:
    out = {}
    for name, X in (("simulated", sim), ("reference", real)):
        mean = np.asarray(X.mean(axis=0)).ravel()
        out[f"mean_{name}"] = mean
        out[f"variance_{name}"] = np.asarray(X.multiply(X).mean(axis=0)).ravel() - mean**2
        out[f"zero_fraction_{name}"] = 1 - X.getnnz(axis=0) / X.shape[0]
    return pd.DataFrame(out, index=pd.Index(genes))


def _correlation(X: sparse.csr_matrix) -> np.ndarray:
    """Pearson correlation of the columns; NaN for a constant column."""
    dense = np.asarray(X.toarray())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.atleast_2d(np.corrcoef(dense, rowvar=False))


def _pair_mae(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |a - b| over the gene pairs (upper triangle) defined on both sides."""
    i, j = np.triu_indices(a.shape[0], 1)
    d = np.abs(a[i, j] - b[i, j])
    d = d[np.isfinite(d)]
    return float(d.mean()) if d.size else float("nan")


def _knn_rows(
    lsim: sparse.csr_matrix,
    lreal: sparse.csr_matrix,
    adata: Any,
    reference: Any,
    groupby: str | None,
    k: int,
    n_pcs: int,
    max_cells: int,
    gen: np.random.Generator,
) -> list[tuple[str, str, float]]:
    """Two-sample kNN AUC in the joint PCA space, and cell-type recognition."""
    from scipy.spatial import cKDTree

    n = min(lsim.shape[0], lreal.shape[0], max_cells)
    if n <= k:
        return [("knn", "auc", float("nan"))]
    pick_sim = np.sort(gen.choice(lsim.shape[0], n, replace=False))
    pick_real = np.sort(gen.choice(lreal.shape[0], n, replace=False))
    A = np.asarray(lsim[pick_sim].toarray())
    B = np.asarray(lreal[pick_real].toarray())
    # principal components of both sets together: fitted on one side alone they would fit
    # its noise, spread its cells more than the other's and lift the AUC of two draws of one
    # model above 0.5
    both = np.vstack([A, B])
    both -= both.mean(axis=0)
    _, _, vt = np.linalg.svd(both, full_matrices=False)
    emb = both @ vt[: min(n_pcs, vt.shape[0])].T
    is_sim = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    _, nbr = cKDTree(emb).query(emb, k=k + 1)
    nbr = nbr[:, 1:]  # without the cell itself
    score = is_sim[nbr].mean(axis=1)
    rows = [("knn", "auc", _roc_auc(is_sim, score))]
    if groupby is not None:
        sim_types = adata.obs[groupby].astype(str).to_numpy()[pick_sim]
        real_types = reference.obs[groupby].astype(str).to_numpy()[pick_real]
        tree = cKDTree(emb[n:])
        _, to_real = tree.query(emb[:n], k=k)
        _, within = tree.query(emb[n:], k=k + 1)
        rows.append(
            ("knn", "cell_type_accuracy", float((_vote(real_types[to_real]) == sim_types).mean()))
        )
        rows.append(
            (
                "knn",
                "cell_type_accuracy_reference",
                float((_vote(real_types[within[:, 1:]]) == real_types).mean()),
            )
        )
        rows.append(("knn", "cell_type_accuracy_gap", abs(rows[-2][2] - rows[-1][2])))
    return rows


def _vote(labels: np.ndarray) -> np.ndarray:
    """The most common label of each row (ties: the first in sorted order)."""
    out = np.empty(labels.shape[0], dtype=object)
    for i, row in enumerate(labels):
        values, count = np.unique(row, return_counts=True)
        out[i] = values[count.argmax()]
    return out
