"""Virtual Cell Challenge metrics with cell-eval's definitions, and the seed paper's diagnostics.

The Virtual Cell Challenge (Arc Institute) scores a predicted perturbation screen against the
real one with three numbers, computed here exactly as the ``cell-eval`` package (0.8) does in its
``"vcc"`` profile (``cell_eval/_pipeline/_runner.py``: ``mae``, ``discrimination_score_l1``,
``overlap_at_N``) so that the two agree on the same inputs:

- **DES**, differential expression score (``overlap_at_N``, ``cell_eval/_types/_de.py``
  ``DEComparison.compute_overlap``): per perturbation, the genes differentially expressed
  against the control are found in the real and in the predicted data separately (Wilcoxon
  rank-sum, BH-corrected, FDR < 0.05; ``pdex`` in reference mode). With ``k`` the number of real
  DE genes, DES = |real DE genes  ∩  the k predicted DE genes with the largest |log2 fold
  change||  / k, and 0 when the real data has no DE gene.
- **PDS**, perturbation discrimination score (``discrimination_score``,
  ``cell_eval/metrics/_anndata.py``): the predicted pseudobulk delta (mean - control mean) of a
  perturbation is compared by L1 distance with the real deltas of all perturbations, leaving out
  the column of the perturbed gene itself; PDS = 1 - rank / N, where rank is the position of
  the true perturbation among the N real deltas sorted by distance (1 is best).
- **MAE**, mean absolute error of the pseudobulk mean profiles (``mae``).

Scaled scores (``cell_eval/_score.py`` ``score_agg_metrics``) compare the means over
perturbations with those of the *cell-mean baseline* (``cell_eval/_baseline.py``
``build_base_mean_adata``: every perturbed cell predicted as the mean of the per-perturbation
mean profiles, control included, and the real control cells kept): for DES and PDS
``(model - baseline) / (1 - baseline)``, for MAE ``1 - model / baseline``; NaN counts as 0,
negative scores are clipped to 0, and the overall score is their mean (the VCC shows it x 100).

Data conventions follow cell-eval's ``_convert_to_normlog``: integer-valued data are counts and
are normalised per cell to the median total count and log1p-transformed (as
``scanpy.pp.normalize_total`` then ``log1p``, whose median includes empty cells for sparse
input); data with decimals must already be log1p-normalised (no negative values, all below 15).

The seed paper ("Hybrid Quantum-Classical Architecture for Single-Cell Gene Expression
Prediction") also reports the *participation ratio* of the quantum layer's outputs (effective
dimensionality) and the *mean between-perturbation similarity* of the predicted deltas (mode
collapse): :func:`participation_ratio` and :func:`perturbation_similarity`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from .._utils import MissingKeyError, check_choice, check_finite, layer_matrix
from ._preprocess import check_adata

__all__ = [
    "VCCResult",
    "cell_mean_baseline",
    "log_expression",
    "participation_ratio",
    "perturbation_similarity",
    "vcc_metrics",
    "vcc_scaled_scores",
]

#: cell-eval's FDR threshold for a differentially expressed gene
VCC_FDR = 0.05
#: cell-eval's limits of log1p data (``cell_eval/utils.py`` ``guess_is_lognorm``)
_DECIMAL_EPS = 1e-3
_LOG1P_MAX = 15.0
METRICS = ("des", "pds", "mae")


# -- input handling ----------------------------------------------------------------------------
def _raw_matrix(
    adata: Any, layer: str | None, field: str
) -> tuple[sparse.csr_matrix | np.ndarray, bool]:
    """The matrix as float64 (CSR if sparse) and whether it was stored as integers."""
    X = layer_matrix(adata, layer, field)
    if X is None:
        raise ValueError(f"{field}: X is empty (None)")
    integer = np.issubdtype(X.dtype, np.integer) or X.dtype == bool
    X = (
        sparse.csr_matrix(X, dtype=np.float64)
        if sparse.issparse(X)
        else np.asarray(X, dtype=np.float64)
    )
    values = X.data if sparse.issparse(X) else X
    if not np.isfinite(values).all():
        raise ValueError(f"{field}: the expression matrix contains NaN or infinite values")
    return X, integer


def log_expression(
    adata: Any, *, layer: str | None = None, normalize: bool | None = None, field: str = "adata"
) -> sparse.csr_matrix | np.ndarray:
    """The expression cell-eval scores: counts normalised and log1p-transformed, or log1p data
    as they are (cell-eval's ``_convert_to_normlog``).

    Train a perturbation model on this matrix to predict in the space :func:`vcc_metrics`
    scores.

    Parameters
    ----------
    adata
        Cells (``X`` or ``layers[layer]``).
    layer
        Layer to read instead of ``X``.
    normalize
        ``None``: integer-valued data are counts, normalised per cell to the median total
        count (scanpy's ``normalize_total``: over all cells for a sparse matrix, over non-empty
        cells for a dense one; float32 precision for integer input) and log1p-transformed;
        data with decimals must be log1p already (>= 0, < 15). ``True``: always normalise;
        ``False``: never.
    field
        Name of the data in error messages.

    Returns
    -------
    scipy.sparse.csr_matrix or numpy.ndarray
        float64 log1p expression, CSR when the input is sparse.
    """
    X, integer = _raw_matrix(adata, layer, field)
    values = np.asarray(X.data if sparse.issparse(X) else X)  # the stored values
    has_decimals = bool(np.any(np.modf(values)[0] > _DECIMAL_EPS))
    if normalize is None:
        normalize = not has_decimals
    if normalize:
        if values.size and values.min() < 0:
            raise ValueError(
                f"{field}: counts must be >= 0 to be normalised, found {values.min():.3g}"
            )
        totals = np.asarray(X.sum(axis=1)).ravel()
        # scanpy's normalize_total: the median over all cells for CSR, over non-empty ones
        # for a dense matrix
        target = np.median(totals) if sparse.issparse(X) else np.median(totals[totals > 0])
        scale = np.divide(target, totals, out=np.zeros_like(totals), where=totals > 0)
        if sparse.issparse(X):
            X = sparse.csr_matrix(sparse.diags(scale) @ X)
            np.log1p(X.data, out=X.data)
        else:
            X = np.log1p(X * scale[:, None])
        if integer:  # scanpy turns integer counts into float32 before normalising
            X = X.astype(np.float32).astype(np.float64)
        return X
    if has_decimals:  # cell-eval's validation of log1p data
        low, high = float(values.min()), float(values.max())
        if low < 0:
            raise ValueError(
                f"{field}: log1p-normalised expression must be >= 0, found {low:.3g} "
                "(clip predictions at 0, as counts cannot be negative)"
            )
        if high >= _LOG1P_MAX:
            raise ValueError(
                f"{field}: values up to {high:.3g} are not log1p-normalised "
                f"(expected < {_LOG1P_MAX}); give counts as integers or "
                "log1p(normalised) data"
            )
    return X


@dataclass
class _Profile:
    """A screen's log expression, grouped by perturbation."""

    X: sparse.csr_matrix | np.ndarray
    labels: np.ndarray
    groups: dict[str, np.ndarray]
    control: str

    @classmethod
    def build(
        cls,
        adata: Any,
        key: str,
        control: str,
        layer: str | None,
        normalize: bool | None,
        field: str,
    ) -> _Profile:
        check_adata(adata, field)
        if not isinstance(key, str) or key not in adata.obs:
            raise MissingKeyError(
                f"perturbation_key: {key!r} is not a column of {field}.obs; "
                f"available: {list(adata.obs.columns)}"
            )
        raw = adata.obs[key]
        if raw.isna().any():
            raise ValueError(
                f"{field}.obs[{key!r}]: {int(raw.isna().sum())} cells have no perturbation label"
            )
        labels = raw.astype(str).to_numpy()
        names, inverse = np.unique(labels, return_inverse=True)
        if control not in names:
            raise ValueError(
                f"control: {control!r} is not a label of {field}.obs[{key!r}]; "
                f"labels: {list(names[:12])}"
            )
        if len(names) < 2:
            raise ValueError(
                f"{field}.obs[{key!r}]: only the control {control!r}; a screen "
                "needs perturbed cells"
            )
        groups = {str(n): np.flatnonzero(inverse == i) for i, n in enumerate(names)}
        X = log_expression(adata, layer=layer, normalize=normalize, field=field)
        return cls(X, labels, groups, control)

    @property
    def perturbations(self) -> list[str]:
        """Sorted labels without the control (cell-eval's order)."""
        return [g for g in self.groups if g != self.control]

    def rows(self, label: str) -> np.ndarray:
        block = self.X[self.groups[label]]
        return block.toarray() if sparse.issparse(block) else np.asarray(block)

    def mean(self, label: str) -> np.ndarray:
        return np.asarray(self.X[self.groups[label]].mean(axis=0)).ravel()


def _check_pair(
    pred: _Profile, real: _Profile, pred_genes: pd.Index, real_genes: pd.Index, field: str
) -> None:
    if not pred_genes.equals(real_genes):
        pred_set, real_set = set(pred_genes), set(real_genes)
        if pred_set == real_set:
            raise ValueError(
                f"{field}.var_names: the same genes as real in another order; "
                f"reorder with {field}[:, real.var_names]"
            )
        missing = [g for g in real_genes if g not in pred_set][:10]
        extra = [g for g in pred_genes if g not in real_set][:10]
        raise ValueError(
            f"{field}.var_names: the genes differ from real.var_names (missing "
            f"{missing}, extra {extra}); predict the same genes in the same order"
        )
    extra = sorted(set(pred.groups) - set(real.groups))
    if extra:
        raise ValueError(
            f"{field}: perturbations {extra[:10]} are not in real; score only "
            "perturbations with real cells"
        )
    missing = sorted(set(real.groups) - set(pred.groups))
    if missing:
        raise ValueError(
            f"{field}: real perturbations {missing[:10]} have no predicted cells; "
            "predict them or subset real to the predicted perturbations plus the "
            "control"
        )


# -- the three metrics -------------------------------------------------------------------------
def _tie_term(both: np.ndarray) -> np.ndarray:
    """Sum of t^3 - t over the groups of tied values, per column."""
    n, g = both.shape
    ordered = np.sort(both, axis=0)
    starts = np.ones_like(ordered, dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    flat = np.flatnonzero(starts.T.ravel())  # column-major: runs never cross a column
    sizes = np.diff(np.append(flat, n * g)).astype(np.float64)
    return np.bincount(flat // n, weights=sizes**3 - sizes, minlength=g)


def _mannwhitney_pvalues(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Two-sided Mann-Whitney U p-value per column: normal approximation with tie and
    continuity corrections, 1 where every value is tied (numba_mwu, used by pdex)."""
    from scipy.special import ndtr
    from scipy.stats import rankdata

    n1, n2 = x.shape[0], y.shape[0]
    n = n1 + n2
    both = np.vstack([x, y])
    r1 = rankdata(both, axis=0)[:n1].sum(axis=0)
    u1 = r1 - n1 * (n1 + 1.0) / 2.0
    u = np.maximum(u1, n1 * n2 - u1)
    var = n1 * n2 / 12.0 * ((n + 1.0) - _tie_term(both) / (n * (n - 1.0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (u - n1 * n2 / 2.0 - 0.5) / np.sqrt(var)
    p = np.clip(2.0 * ndtr(-z), 0.0, 1.0)
    return np.where(var > 0, p, 1.0)


def _de_genes(pert: np.ndarray, ctrl: np.ndarray, fdr_threshold: float) -> np.ndarray:
    """Column indices of the DE genes, most changed first (pdex + cell-eval's ranking)."""
    from scipy.stats import false_discovery_control

    with np.errstate(divide="ignore", invalid="ignore"):
        # pdex: the geometric-mean pseudobulk expm1(mean(log1p x)), epsilon 0, 0/0 -> 0
        lfc = np.log2(np.expm1(pert.mean(axis=0)) / np.expm1(ctrl.mean(axis=0)))
    lfc[np.isnan(lfc)] = 0.0
    fdr = false_discovery_control(_mannwhitney_pvalues(pert, ctrl))
    # cell-eval stores both as float32, keeps fdr < threshold and ranks by |lfc|, ties in
    # gene order (polars' ordinal rank)
    significant = np.flatnonzero(fdr.astype(np.float32) < np.float32(fdr_threshold))
    size = np.abs(lfc.astype(np.float32))[significant]
    return significant[np.argsort(-size, kind="stable")]


def _score(
    pred: _Profile,
    real: _Profile,
    genes: np.ndarray,
    fdr_threshold: float,
    exclude_target_gene: bool,
    real_de: dict[str, np.ndarray] | None,
    progress: bool | None,
    desc: str,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Per-perturbation DES, PDS and MAE of ``pred`` against ``real``."""
    from scipy.spatial.distance import cdist
    from tqdm.auto import tqdm

    perts = real.perturbations
    real_means = {k: real.mean(k) for k in real.groups}
    pred_means = {k: pred.mean(k) for k in pred.groups}
    real_effect = np.vstack([real_means[p] - real_means[real.control] for p in perts])
    pred_effect = np.vstack([pred_means[p] - pred_means[pred.control] for p in perts])
    real_ctrl, pred_ctrl = real.rows(real.control), pred.rows(pred.control)

    rows, de_cache = [], dict(real_de or {})
    for i, p in enumerate(
        tqdm(
            perts,
            desc=desc,
            unit="perturbation",
            disable=(not progress) if progress is not None else None,
        )
    ):
        if p not in de_cache:
            de_cache[p] = _de_genes(real.rows(p), real_ctrl, fdr_threshold)
        real_top = de_cache[p]
        pred_top = _de_genes(pred.rows(p), pred_ctrl, fdr_threshold)
        k = real_top.size
        des = np.intersect1d(real_top, pred_top[:k]).size / k if k else 0.0
        keep = genes != p if exclude_target_gene else np.ones(genes.size, dtype=bool)
        distance = cdist(real_effect[:, keep], pred_effect[i : i + 1, keep], "cityblock").ravel()
        rank = int(np.flatnonzero(np.argsort(distance) == i)[0])  # cell-eval's argsort
        rows.append(
            {
                "perturbation": p,
                "des": des,
                "pds": 1.0 - rank / len(perts),
                "mae": float(np.mean(np.abs(pred_means[p] - real_means[p]))),
                "pds_rank": rank,
                "n_de_real": k,
                "n_de_pred": int(pred_top.size),
            }
        )
    return pd.DataFrame(rows).set_index("perturbation"), de_cache


def vcc_scaled_scores(model: Mapping[str, float], baseline: Mapping[str, float]) -> pd.Series:
    """The VCC's scaled scores of a model against a baseline (cell-eval ``score_agg_metrics``).

    Parameters
    ----------
    model, baseline
        Mean ``des``, ``pds`` and ``mae`` over perturbations (e.g. ``VCCResult.summary``).

    Returns
    -------
    pandas.Series
        ``des_scaled`` and ``pds_scaled`` = ``(model - baseline) / (1 - baseline)``,
        ``mae_scaled`` = ``1 - model / baseline``, each NaN -> 0 and clipped below at 0, and
        ``score``, their mean (the VCC's overall score / 100).
    """
    for field, values in (("model", model), ("baseline", baseline)):
        missing = [m for m in METRICS if m not in values]
        if missing:
            raise ValueError(f"{field}: missing {missing}; expected the mean des, pds and mae")
    user = np.array([model[m] for m in METRICS], dtype=np.float64)
    base = np.array([baseline[m] for m in METRICS], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.r_[
            (user[:2] - base[:2]) / (1.0 - base[:2]),  # best value 1: des, pds
            1.0 - user[2:] / base[2:],
        ]  # best value 0: mae
    scaled[np.isnan(scaled)] = 0.0
    scaled = np.clip(scaled, 0.0, None)
    return pd.Series(
        np.r_[scaled, scaled.mean()], index=["des_scaled", "pds_scaled", "mae_scaled", "score"]
    )


@dataclass(frozen=True)
class VCCResult:
    """Output of :func:`vcc_metrics`.

    Attributes
    ----------
    per_perturbation
        One row per perturbation (sorted labels, control excluded): ``des``, ``pds``, ``mae``,
        ``pds_rank`` (0 = the true perturbation is the nearest), ``n_de_real``, ``n_de_pred``
        (DE genes at the FDR threshold).
    baseline
        The same table for the cell-mean baseline, or ``None`` when no baseline was scored.
    summary
        ``des``, ``pds``, ``mae`` (means over perturbations); with a baseline also
        ``des_baseline``, ``pds_baseline``, ``mae_baseline``, ``des_scaled``, ``pds_scaled``,
        ``mae_scaled`` and ``score`` (see :func:`vcc_scaled_scores`).
    """

    per_perturbation: pd.DataFrame
    baseline: pd.DataFrame | None
    summary: pd.Series


def _baseline_profile(real: _Profile, source: _Profile | None = None) -> _Profile:
    """cell-eval's cell-mean baseline: every perturbed cell of ``real`` predicted as the mean of
    ``source``'s per-perturbation means (control included), and ``real``'s control cells."""
    source = source or real
    profile = np.mean([source.mean(k) for k in source.groups], axis=0)
    perts = real.perturbations
    sizes = [real.groups[p].size for p in perts]
    ctrl = real.rows(real.control)
    X = np.vstack([np.tile(profile, (sum(sizes), 1)), ctrl])
    labels = np.concatenate([np.repeat(perts, sizes), np.repeat(real.control, ctrl.shape[0])])
    names, inverse = np.unique(labels, return_inverse=True)
    groups = {str(n): np.flatnonzero(inverse == i) for i, n in enumerate(names)}
    return _Profile(X, labels, groups, real.control)


def cell_mean_baseline(
    adata: Any,
    *,
    perturbation_key: str = "perturbation",
    control: str = "control",
    layer: str | None = None,
    normalize: bool | None = None,
    like: Any = None,
) -> Any:
    """The VCC's cell-mean baseline prediction (cell-eval ``build_base_mean_adata``).

    Every perturbed cell is predicted as the mean, over the perturbations of ``adata`` (the
    control included), of their mean log expression; the control cells are kept as they are.

    Parameters
    ----------
    adata
        The screen whose means define the baseline (e.g. the training perturbations).
    perturbation_key, control
        The ``obs`` column of perturbation labels and the control's label.
    layer
        Expression from ``layers[layer]`` instead of ``X``.
    normalize
        As in :func:`vcc_metrics`.
    like
        The screen to mirror (its perturbations, their cell counts and its control cells);
        default ``adata`` itself.

    Returns
    -------
    anndata.AnnData
        Dense log1p expression, ``obs[perturbation_key]``, the genes of ``adata``.
    """
    import anndata as ad

    source = _Profile.build(adata, perturbation_key, control, layer, normalize, "adata")
    target = (
        source
        if like is None
        else _Profile.build(like, perturbation_key, control, layer, normalize, "like")
    )
    if like is not None and not like.var_names.equals(adata.var_names):
        raise ValueError("like.var_names: the genes differ from adata.var_names")
    base = _baseline_profile(target, source)
    obs = pd.DataFrame(
        {perturbation_key: pd.Categorical(base.labels)},
        index=pd.Index([f"baseline_{i}" for i in range(base.labels.size)]),
    )
    return ad.AnnData(X=base.X, obs=obs, var=pd.DataFrame(index=adata.var_names.copy()))


def vcc_metrics(
    pred: Any,
    real: Any,
    *,
    perturbation_key: str = "perturbation",
    control: str = "control",
    layer: str | None = None,
    baseline: Any = "cell_mean",
    normalize: bool | None = None,
    fdr_threshold: float = VCC_FDR,
    exclude_target_gene: bool = True,
    progress: bool | None = None,
) -> VCCResult:
    """DES, PDS and MAE of a predicted screen against the real one, and the VCC scaled scores.

    Definitions, normalisation and tie rules are cell-eval's (see the module notes), so
    ``cell_eval.MetricsEvaluator(...).compute(profile="vcc")`` gives the same numbers on the
    same data.

    Parameters
    ----------
    pred
        Predicted cells, with the same genes (same order) as ``real`` and the same
        perturbation labels, control cells included (the predicted deltas and DE genes are taken
        against the predicted control).
    real
        The real (or simulated, e.g. :func:`qsimcells.sim.perturbation_screen`) screen.
    perturbation_key
        ``obs`` column of perturbation labels in both.
    control
        Label of the control cells.
    layer
        Use ``layers[layer]`` of both instead of ``X``.
    baseline
        ``"cell_mean"``: cell-eval's cell-mean baseline built from ``real``; an AnnData: a
        baseline prediction scored like ``pred`` (e.g. :func:`cell_mean_baseline` of the training
        screen with ``like=real``); ``None``: no baseline and no scaled scores.
    normalize
        ``None``: integer data are counts (normalised to the median total, log1p), data with
        decimals are log1p already (cell-eval's rule); ``True`` / ``False`` to force either.
    fdr_threshold
        FDR below which a gene is differentially expressed (cell-eval: 0.05).
    exclude_target_gene
        Leave the column of a perturbation's own gene (a var name equal to its label) out of
        its PDS distances, as cell-eval does.
    progress
        Progress bar over perturbations; ``None`` only in an interactive terminal.

    Returns
    -------
    VCCResult
        ``per_perturbation``, ``baseline`` and ``summary`` tables.
    """
    if normalize is not None and not isinstance(normalize, bool):
        raise TypeError(f"normalize: expected None, True or False, got {normalize!r}")
    if not isinstance(exclude_target_gene, bool):
        raise TypeError(f"exclude_target_gene: expected True or False, got {exclude_target_gene!r}")
    fdr_threshold = check_finite("fdr_threshold", fdr_threshold, low=0.0, high=1.0, low_open=True)
    if isinstance(baseline, str):
        check_choice("baseline", baseline, ["cell_mean"])
    elif baseline is not None:
        check_adata(baseline, "baseline")
    args = (perturbation_key, control, layer, normalize)
    real_p = _Profile.build(real, *args, "real")
    pred_p = _Profile.build(pred, *args, "pred")
    _check_pair(pred_p, real_p, pred.var_names, real.var_names, "pred")
    genes = np.asarray(real.var_names.astype(str))
    table, real_de = _score(
        pred_p, real_p, genes, fdr_threshold, exclude_target_gene, None, progress, "vcc_metrics"
    )
    summary = table[list(METRICS)].mean()
    base_table = None
    if baseline is not None:
        if isinstance(baseline, str):
            base_p = _baseline_profile(real_p)
        else:
            base_p = _Profile.build(baseline, *args, "baseline")
            _check_pair(base_p, real_p, baseline.var_names, real.var_names, "baseline")
        base_table, _ = _score(
            base_p,
            real_p,
            genes,
            fdr_threshold,
            exclude_target_gene,
            real_de,
            progress,
            "vcc_metrics (baseline)",
        )
        base_summary = base_table[list(METRICS)].mean()
        summary = pd.concat(
            [
                summary,
                base_summary.add_suffix("_baseline"),
                vcc_scaled_scores(summary, base_summary),
            ]
        )
    return VCCResult(table, base_table, summary)


# -- the seed paper's diagnostics --------------------------------------------------------------
def participation_ratio(outputs: Any) -> float:
    """Effective dimensionality of a set of outputs: ``(sum l)^2 / sum l^2`` over the eigenvalues
    ``l`` of their covariance.

    ``d`` equally strong independent directions give ``d``; one dominant direction gives about
    1. The seed paper reports 2.58 for the 24 Pauli expectation values of its 8-qubit layer.

    Parameters
    ----------
    outputs
        ``(n_samples, n_features)`` array, e.g. the quantum layer's expectation values per cell.

    Returns
    -------
    float
    """
    X = np.asarray(outputs, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        raise ValueError(
            f"outputs: expected a (n_samples >= 2, n_features) array, got shape {X.shape}"
        )
    if not np.isfinite(X).all():
        raise ValueError("outputs: contains NaN or infinite values")
    # covariance eigenvalues are the squared singular values of the centred data / (n - 1)
    singular = np.linalg.svd(X - X.mean(axis=0), compute_uv=False)
    eig = singular**2
    if eig.sum() <= 0:
        raise ValueError(
            "outputs: every row is the same (zero variance), so the participation "
            "ratio is undefined"
        )
    return float(eig.sum() ** 2 / np.sum(eig**2))


def perturbation_similarity(
    adata: Any,
    *,
    perturbation_key: str = "perturbation",
    control: str = "control",
    metric: str = "cosine",
    layer: str | None = None,
    normalize: bool | None = None,
) -> float:
    """Mean similarity between the mean deltas (vs control) of every pair of perturbations.

    Near 1 means every perturbation is predicted to shift the cells the same way (the seed
    paper's mode collapse: 0.9993); real screens are far lower.

    Parameters
    ----------
    adata
        A screen, predicted or real, with control cells.
    perturbation_key, control
        The ``obs`` column of perturbation labels and the control's label.
    metric
        ``"cosine"`` or ``"pearson"`` (correlation of the two delta profiles).
    layer, normalize
        As in :func:`vcc_metrics` (the deltas are taken in log1p space).

    Returns
    -------
    float
        The mean over the ``N (N - 1) / 2`` pairs of perturbations.
    """
    check_choice("metric", metric, ["cosine", "pearson"])
    profile = _Profile.build(adata, perturbation_key, control, layer, normalize, "adata")
    perts = profile.perturbations
    if len(perts) < 2:
        raise ValueError(
            f"adata.obs[{perturbation_key!r}]: at least two perturbations are "
            f"needed for a between-perturbation similarity, got {perts}"
        )
    ctrl = profile.mean(control)
    delta = np.vstack([profile.mean(p) - ctrl for p in perts])
    if metric == "pearson":
        delta = delta - delta.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(delta, axis=1)
    flat = [p for p, n in zip(perts, norms, strict=True) if not n > 0]
    if flat:
        raise ValueError(
            f"adata: perturbations {flat[:10]} have a constant delta profile "
            f"(all {'equal' if metric == 'pearson' else 'zero'}), so their "
            f"{metric} similarity is undefined"
        )
    unit = delta / norms[:, None]
    sims = unit @ unit.T
    upper = np.triu_indices(len(perts), 1)
    return float(np.mean(sims[upper]))
