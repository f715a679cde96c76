"""Gene regulatory networks: correlation inference and scoring against the programmed circuit.

- :func:`true_network`: the edges a ``qs.sim`` design programmed (the ground truth).
- :func:`correlation_network`: the pipeline of Romero et al. (section 2.4): normalise every cell
  to 1e4 counts, ``log1p``, z-score each gene, Pearson or Spearman correlation across all cells,
  keep the pairs with ``|r| > threshold``.
- :func:`score_network`: precision, recall, F1, AUPR and AUROC of any inferred network (a stored
  correlation network or a table such as GRNBoost2's ``TF, target, importance``) against the
  truth, with every edge labelled ``true``, ``reversed``, ``indirect``, ``spurious`` or ``missed``.

Everything runs on raw counts (``X`` or a layer) and needs numpy, scipy, pandas and networkx
only: no scanpy and no scikit-learn (the ranking metrics are computed here and equal
scikit-learn's ``average_precision_score`` and ``roc_auc_score``; the tests check that).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._utils import MissingKeyError, check_choice, check_finite
from ._preprocess import check_adata, counts, gene_indices, log_normalize

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

    from ..sim.design import CellCircuit

__all__ = ["correlation_network", "score_network", "true_network"]

logger = logging.getLogger(__name__)

METHODS = ("pearson", "spearman")
EDGE_KINDS = ("regulation", "ligand_receptor")
STATUSES = ("true", "reversed", "indirect", "spurious", "missed")
#: accepted column names of a user edge table, first match wins (GRNBoost2 / pySCENIC: TF)
_SOURCE_COLUMNS = ("source", "TF", "tf", "regulator")
_TARGET_COLUMNS = ("target",)
_WEIGHT_COLUMNS = ("weight", "importance", "score", "abs_weight")
#: var["cell_type"] labels of genes that belong to no cell type (expressed in every cell)
_NOT_A_CELL_TYPE = ("housekeeping", "background")


# -- ground truth ----------------------------------------------------------------------------
def true_network(data: AnnData | CellCircuit, *, kind: str | None = None) -> pd.DataFrame:
    """The programmed edges of a qSimCells design (the ground truth of a simulation).

    Parameters
    ----------
    data
        An AnnData made by :func:`qsimcells.sim.simulate` (its ``uns["qsimcells"]["design"]``,
        also after an h5ad round trip) or a :class:`~qsimcells.sim.CellCircuit`.
    kind
        ``None`` for all edges, ``"regulation"`` (within a cell type) or ``"ligand_receptor"``
        (across cell types).

    Returns
    -------
    pandas.DataFrame
        One row per gate, in gate order: ``source``, ``target``, ``sign`` (``activation`` or
        ``repression``), ``kind``, ``angle`` (the CRY angle, NaN for a full CX) and ``order``
        (the gate's position in the circuit, counted over all edges before filtering).
    """
    from ..sim.design import CellCircuit

    check_choice("kind", kind, (None, *EDGE_KINDS))
    if isinstance(data, CellCircuit):
        design = data
    else:
        check_adata(data, "data")
        record = data.uns.get("qsimcells")
        if not isinstance(record, Mapping) or "design" not in record:
            raise ValueError(
                "data: adata.uns['qsimcells']['design'] not found, so this AnnData "
                "carries no qsimcells ground truth (simulate it with "
                "qs.sim.simulate, or pass the truth explicitly)"
            )
        try:  # rebuilding validates the stored tables, also after an h5ad round trip
            design = CellCircuit.from_dict(record["design"])
        except (TypeError, ValueError, KeyError) as err:
            raise ValueError(
                f"data: adata.uns['qsimcells']['design'] is not a valid design: {err}"
            ) from err
    edges = design.edges
    table = pd.DataFrame(
        {
            "source": edges["source"].astype(object),
            "target": edges["target"].astype(object),
            "sign": edges["sign"].astype(object),
            "kind": edges["kind"].astype(object),
            "angle": edges["weight"].astype(float),
            "order": np.arange(len(edges), dtype=np.int64),
        }
    )
    if kind is not None:
        table = table[table["kind"] == kind].reset_index(drop=True)
    return table


# -- inference -------------------------------------------------------------------------------
def _flag_column(adata: AnnData, column: str) -> np.ndarray:
    """``var[column]`` as a boolean mask (missing values False). Accepts bool, nullable
    boolean, categorical or object columns whose values are booleans (or 0/1); anything else,
    e.g. strings such as ``"yes"`` or ``"False"`` (truthy as text), is an error."""
    values = adata.var[column].astype(object)
    present = values[values.notna()]

    def boolean_like(v: Any) -> bool:
        if isinstance(v, (bool, np.bool_)):
            return True
        return isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1)

    bad = [v for v in pd.unique(present.to_numpy()) if not boolean_like(v)]
    if bad:
        raise ValueError(
            f"var[{column!r}]: expected a boolean column (True/False), got "
            f"non-boolean value(s) {bad[:5]!r} (dtype {adata.var[column].dtype})"
        )
    mask = np.zeros(adata.n_vars, dtype=bool)
    mask[values.notna().to_numpy()] = present.astype(bool).to_numpy(dtype=bool)
    return mask


def _default_genes(adata: AnnData, exclude_housekeeping: bool) -> np.ndarray:
    """All genes, minus housekeeping and background genes when asked and marked in ``var``."""
    keep = np.ones(adata.n_vars, dtype=bool)
    if exclude_housekeeping:
        for column in ("housekeeping", "background"):
            if column in adata.var.columns:
                keep &= ~_flag_column(adata, column)
    return np.flatnonzero(keep)


def _zscore(Y: np.ndarray, constant: np.ndarray) -> np.ndarray:
    """Columns z-scored (ddof=0); constant columns become NaN (their correlation is undefined)."""
    Z = Y - Y.mean(axis=0)
    sd = np.sqrt((Z * Z).mean(axis=0))
    sd[constant] = np.nan
    return Z / sd


def correlation_network(
    adata: AnnData,
    *,
    method: str = "pearson",
    threshold: float = 0.5,
    genes: Sequence[str] | None = None,
    exclude_housekeeping: bool = True,
    layer: str | None = None,
    key_added: str | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Infer a gene-gene network by correlation (the pipeline of Romero et al., section 2.4).

    From raw counts: every cell is normalised to 1e4 total counts over *all* genes
    (housekeeping genes included, as in the paper), ``log1p``-transformed, each analysed gene is
    z-scored across cells, and the Pearson or Spearman correlation of every pair of analysed
    genes is computed across all cells (all cell types together). Pairs with
    ``|r| > threshold`` become undirected edges. Spearman is the Pearson correlation of the
    ranks (average ranks for ties, which are many: every zero count ties).

    A gene that is constant across cells (e.g. never expressed) has no defined correlation: its
    row and column are NaN, it gets no edge, and a warning names it.

    Parameters
    ----------
    adata
        Cells x genes with raw (non-negative) counts in ``X`` or ``layers[layer]``.
    method
        ``"pearson"`` or ``"spearman"``.
    threshold
        Keep edges with ``|r| > threshold``, in ``[0, 1]`` (the paper uses 0.5).
    genes
        Genes to analyse, in any order (they are reported in ``var`` order). ``None``: every
        gene, minus those marked ``housekeeping`` or ``background`` in ``var`` when
        ``exclude_housekeeping`` (and when those columns exist). An explicit list is used as
        given.
    exclude_housekeeping
        Leave out housekeeping and background genes when ``genes`` is ``None``.
    layer
        Layer with the counts; ``None`` for ``X``.
    key_added
        Where the result goes; default ``f"{method}_network"``.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    anndata.AnnData or None
        ``None`` (or the copy when ``copy=True``), with

        - ``varp[key]``: ``n_vars x n_vars`` float64 correlation matrix; NaN in the rows and
          columns of genes that were not analysed or are constant.
        - ``uns[key]``: a dict with ``edges`` (DataFrame ``source``, ``target``, ``weight`` = r,
          ``abs_weight``; one row per undirected pair, ``source`` before ``target`` in ``var``
          order, sorted by ``abs_weight`` descending), ``genes`` (the analysed genes, ``var``
          order), ``constant_genes`` and ``params`` (``method``, ``threshold``,
          ``exclude_housekeeping``, ``layer``, ``genes_given``, ``directed=False``).

    Notes
    -----
    ``varp[key]`` is dense, ``n_vars**2`` floats whatever ``genes`` is (3.2 GB at 20,000
    genes): on large real data subset the AnnData to the genes of interest first.
    """
    # every check runs before anything is written, so a failing call leaves adata untouched
    check_adata(adata)
    check_choice("method", method, METHODS)
    threshold = check_finite("threshold", threshold, low=0.0, high=1.0)
    if not isinstance(exclude_housekeeping, (bool, np.bool_)):
        raise TypeError(
            f"exclude_housekeeping: expected True or False, got {exclude_housekeeping!r}"
        )
    key = f"{method}_network" if key_added is None else key_added
    if not isinstance(key, str) or not key:
        raise TypeError(f"key_added: expected a non-empty string or None, got {key_added!r}")
    if adata.n_obs < 3:
        raise ValueError(
            f"adata: a correlation across cells needs at least 3 cells, got {adata.n_obs}"
        )
    if genes is None:
        idx = _default_genes(adata, bool(exclude_housekeeping))
    else:
        if isinstance(genes, str):
            raise TypeError("genes: expected a list of gene names, got a single string")
        names = [str(g) for g in genes]
        dupes = sorted({g for g in names if names.count(g) > 1})
        if dupes:
            raise ValueError(f"genes: repeated gene names {dupes}")
        idx = np.sort(gene_indices(adata, names, "genes"))
    if idx.size < 2:
        raise ValueError(
            f"genes: a network needs at least 2 analysed genes, got {idx.size} "
            f"(genes={None if genes is None else list(genes)!r}, "
            f"exclude_housekeeping={bool(exclude_housekeeping)})"
        )
    X = counts(adata, layer)  # checks finiteness and signs

    # normalise over all genes first: the library size includes the housekeeping genes
    Y = log_normalize(X, 1e4)[:, idx].toarray()
    constant = Y.max(axis=0) == Y.min(axis=0)  # exact test; a std can be a tiny non-zero
    if method == "spearman":
        from scipy.stats import rankdata

        Y = rankdata(Y, axis=0, method="average")  # z-scoring first would not change ranks
    Z = _zscore(Y, constant)
    R = (Z.T @ Z) / Z.shape[0]
    np.clip(R, -1.0, 1.0, out=R)  # rounding can leave |r| a hair above 1
    np.fill_diagonal(R, np.where(constant, np.nan, 1.0))

    var_names = np.asarray(adata.var_names, dtype=object)
    analysed = var_names[idx]
    if constant.any():
        bad = [str(g) for g in analysed[constant]]
        warnings.warn(
            f"correlation_network: gene(s) {bad} are constant across cells (e.g. "
            "never expressed); their correlation is undefined: NaN in "
            f"varp[{key!r}] and no edges",
            RuntimeWarning,
            stacklevel=2,
        )

    iu, ju = np.triu_indices(idx.size, k=1)
    r = R[iu, ju]
    keep = np.abs(r) > threshold  # NaN compares False: a constant gene never gets an edge
    iu, ju, r = iu[keep], ju[keep], r[keep]
    order = np.argsort(-np.abs(r), kind="stable")  # ties stay in var order of the pairs
    edges = pd.DataFrame(
        {
            "source": pd.Series(analysed[iu[order]], dtype=object),
            "target": pd.Series(analysed[ju[order]], dtype=object),
            "weight": r[order],
            "abs_weight": np.abs(r[order]),
        }
    )
    full = np.full((adata.n_vars, adata.n_vars), np.nan)
    full[np.ix_(idx, idx)] = R

    logger.info(
        "correlation_network: %s on %d genes x %d cells, %d edges with |r| > %g",
        method,
        idx.size,
        adata.n_obs,
        len(edges),
        threshold,
    )
    out = adata.copy() if copy else adata
    out.varp[key] = full
    out.uns[key] = {
        "edges": edges,
        "genes": np.asarray(analysed, dtype=object),
        "constant_genes": np.asarray(analysed[constant], dtype=object),
        "params": {
            "method": method,
            "threshold": threshold,
            "exclude_housekeeping": bool(exclude_housekeeping),
            "layer": layer,
            "genes_given": genes is not None,
            "directed": False,
        },
    }
    return out if copy else None


# -- scoring ---------------------------------------------------------------------------------
def _pick(columns: Iterable[str], choices: Sequence[str]) -> str | None:
    columns = list(columns)
    return next((c for c in choices if c in columns), None)


def _edge_table(edges: Any, field: str) -> pd.DataFrame:
    """A user edge table as ``source, target, weight`` (weight 1 when the table has none)."""
    if isinstance(edges, pd.DataFrame):
        table = edges
    elif isinstance(edges, (str, bytes)) or not isinstance(edges, Iterable):
        raise TypeError(
            f"{field}: expected a DataFrame with columns source/TF, target and "
            f"optionally weight/importance, got {type(edges).__name__}"
        )
    else:
        rows = [tuple(e) for e in edges]
        if any(len(e) not in (2, 3) for e in rows):
            raise ValueError(f"{field}: expected (source, target[, weight]) tuples")
        table = pd.DataFrame(
            [e if len(e) == 3 else (*e, 1.0) for e in rows], columns=["source", "target", "weight"]
        )
    src = _pick(table.columns, _SOURCE_COLUMNS)
    tgt = _pick(table.columns, _TARGET_COLUMNS)
    if src is None or tgt is None:
        raise ValueError(
            f"{field}: the table needs a source column (one of "
            f"{list(_SOURCE_COLUMNS)}) and a 'target' column; got columns "
            f"{list(table.columns)}"
        )
    wcol = _pick(table.columns, _WEIGHT_COLUMNS)
    if wcol is None:
        weight = np.ones(len(table))
    else:
        column = table[wcol]
        numeric = pd.to_numeric(column, errors="coerce")
        bad = column[numeric.isna() & column.notna()]
        if len(bad):
            raise ValueError(
                f"{field}: the weight column {wcol!r} must be numeric, got "
                f"dtype {column.dtype} with non-numeric value(s) "
                f"{list(pd.unique(bad.astype(object)))[:5]!r}"
            )
        weight = numeric.to_numpy(dtype=float)
    return pd.DataFrame(
        {
            "source": table[src].astype(str).to_numpy(dtype=object),
            "target": table[tgt].astype(str).to_numpy(dtype=object),
            "weight": weight,
        }
    )


def _truth_table(truth: Any) -> pd.DataFrame:
    from ..sim.design import CellCircuit

    if isinstance(truth, CellCircuit):
        return true_network(truth)
    table = _edge_table(truth, "truth")
    if isinstance(truth, pd.DataFrame) and "sign" in truth.columns:
        table["sign"] = truth["sign"].to_numpy(dtype=object)
    return table


def _average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """Average precision, as :func:`sklearn.metrics.average_precision_score` (step-wise, ties
    at one threshold); NaN without positives."""
    y = np.asarray(y, dtype=bool)
    if not y.any():
        return float("nan")
    order = np.argsort(-score, kind="stable")
    s, t = score[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each distinct score
    tps = np.cumsum(t)[last]
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def _roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney with average ranks for ties, equal to
    :func:`sklearn.metrics.roc_auc_score`); NaN without positives or without negatives."""
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score, method="average")
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def score_network(
    adata: AnnData | None,
    key: str | None = None,
    *,
    edges: pd.DataFrame | None = None,
    truth: pd.DataFrame | CellCircuit | None = None,
    genes: Sequence[str] | None = None,
    directed: bool = False,
) -> dict[str, Any]:
    """Score an inferred network against the programmed topology.

    Parameters
    ----------
    adata
        The data the network was inferred from; holds the stored network (``key``) and, unless
        ``truth`` is given, the ground truth (``uns["qsimcells"]``). May be ``None`` when both
        ``edges`` and ``truth`` are given.
    key
        A network stored by :func:`correlation_network`: ``uns[key]["edges"]`` is the inferred
        edge set and ``varp[key]`` (when present) scores every pair for AUPR/AUROC. The scores
        are then stored in ``uns[key]["score"]``. Give ``key`` or ``edges``, not both.
    edges
        An inferred edge table instead: columns ``source`` (or ``TF``, as GRNBoost2 writes it),
        ``target`` and optionally ``weight`` (or ``importance``/``score``; 1 when absent). Every
        row is an inferred edge; duplicated pairs keep the largest ``|weight|``; self-pairs are
        dropped. Nothing is stored.
    truth
        The programmed edges: a table with ``source``/``target`` (e.g. :func:`true_network`
        output) or a :class:`~qsimcells.sim.CellCircuit`. Default ``true_network(adata)``.
    genes
        The candidate genes (all their pairs are scored); with ``adata``, each must be in
        ``adata.var_names`` (a KeyError lists the missing ones). Default: the analysed genes of the
        stored network; for an ``edges`` table, the genes of ``adata`` minus housekeeping and
        background genes (or the genes of ``edges`` and ``truth`` without ``adata``), plus every
        gene of the table.
    directed
        ``False``: edges are unordered pairs (a truth edge ``a -> b`` is found by ``a - b`` or
        ``b - a``). ``True``: ordered pairs; an inferred edge present only the other way round is
        ``reversed`` (counted as a false positive). A stored correlation network is undirected
        and cannot be scored with ``directed=True``.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` of the inferred edge set (NaN where undefined),
        ``aupr`` (average precision) and ``auroc`` over all candidate pairs scored by
        ``|weight|`` (pairs not in the inferred table score 0; NaN when the candidates hold no
        true or no false pair), ``n_true`` (truth pairs among the candidates), ``n_inferred``,
        ``n_true_positives``, ``n_candidates``, ``recall_within_types`` (the recall over the
        programmed candidate pairs whose two genes are in one cell type; NaN when there are
        none), ``n_true_cross_type`` (programmed candidate pairs whose genes are in two
        different cell types; pairs of unknown cell type count in neither), ``directed``, and
        ``edges``: a DataFrame of every inferred and every programmed pair with ``source``,
        ``target``, ``weight`` (NaN if not inferred), ``inferred``, ``programmed`` (this pair,
        this way if directed), ``analysed`` (both genes among the candidates),
        ``same_cell_type`` (nullable boolean: whether both genes are of one cell type in
        ``adata.var["cell_type"]``; housekeeping and background genes belong to no type, so
        False with any gene; NA without ``adata``, without that column, for a gene not in
        ``var_names`` or with a missing type), ``sign_agrees`` (for a found programmed pair:
        whether the sign of ``weight`` is the programmed one, activation ``+``, repression
        ``-``; NA otherwise; in the paper's case 1 the ligand-receptor pair g3-g5 is found with
        a *negative* r, because cells of two types never co-express, so a found pair is not
        necessarily a recovered mechanism) and ``status``: ``"true"``, ``"reversed"``,
        ``"indirect"`` (not programmed, but a directed path of programmed edges joins the two
        genes, either way: a cascade seen as correlation), ``"spurious"`` (none of these) or
        ``"missed"`` (programmed, not inferred). Programmed edges with a gene outside the
        candidates are listed (``analysed=False``, status ``"missed"``) but left out of every
        metric.

    Notes
    -----
    In ``qs.sim`` output every cell expresses only the genes of its own cell type. A
    correlation across cells between genes of two different types therefore measures only
    the two types' ON fractions (the composition), never a dependence, programmed or not:
    it cannot see a dependence between genes that are never expressed in the same cell, such
    as a ligand-receptor edge, whose dependence lives in the pairing of cells of one niche
    (``obs["niche"]``). In the paper's case 1 (seed 0) the programmed pair g3-g5 is "found"
    with r = -0.54 and the "indirect" g3-g7 has r = -0.507, while the unprogrammed g3-g8 (on no
    programmed path) has r = -0.498: all three are the same composition effect. ``recall``
    and ``precision`` mix such pairs with genuine within-type findings; ``same_cell_type``,
    ``recall_within_types`` and ``n_true_cross_type`` separate them. Score cross-type edges
    with a method that pairs the cells of a niche, not with a per-cell correlation.
    """
    import networkx as nx

    if not isinstance(directed, (bool, np.bool_)):
        raise TypeError(f"directed: expected True or False, got {directed!r}")
    directed = bool(directed)
    if (key is None) == (edges is None):
        raise ValueError(
            "key, edges: give either key (a network stored in adata.uns) or "
            "edges (an edge table), not both and not neither"
        )
    if adata is None and (key is not None or truth is None):
        raise ValueError("adata: needed unless both edges and truth are given")
    if adata is not None:
        check_adata(adata)
    if genes is not None:
        if isinstance(genes, str):
            raise TypeError("genes: expected a list of gene names, got a single string")
        genes = [str(g) for g in genes]
        if adata is not None:
            gene_indices(adata, genes, "genes")  # a KeyError listing every missing gene

    scores_matrix = None
    if key is not None:
        assert adata is not None  # checked above: a stored network needs its adata
        stored = adata.uns.get(key)
        if not isinstance(stored, Mapping) or "edges" not in stored:
            networks = [k for k, v in adata.uns.items() if isinstance(v, Mapping) and "edges" in v]
            raise MissingKeyError(
                f"key: {key!r} is not a network in adata.uns (expected "
                f"uns[{key!r}]['edges'], e.g. from correlation_network); networks "
                f"found: {networks}"
            )
        if directed and not bool(dict(stored.get("params", {})).get("directed", False)):
            raise ValueError(
                f"directed: the network uns[{key!r}] is undirected (a correlation "
                "network); score it with directed=False"
            )
        inferred = _edge_table(stored["edges"], f"uns[{key!r}]['edges']")
        if genes is None and "genes" in stored:
            genes = [str(g) for g in np.asarray(stored["genes"]).ravel()]
        if key in adata.varp and not directed:
            scores_matrix = np.asarray(adata.varp[key], dtype=np.float64)
    else:
        inferred = _edge_table(edges, "edges")
    truth_table = true_network(adata) if truth is None else _truth_table(truth)

    # -- candidate genes --------------------------------------------------------------------
    table_genes = list(dict.fromkeys([*inferred["source"], *inferred["target"]]))
    if genes is not None:
        base = [str(g) for g in genes]
    elif adata is not None:
        base = [str(g) for g in adata.var_names[_default_genes(adata, True)]]
    else:
        base = list(dict.fromkeys([*truth_table["source"], *truth_table["target"]]))
    candidates = list(dict.fromkeys([*base, *table_genes]))
    position = {g: i for i, g in enumerate(candidates)}
    n = len(candidates)
    if n < 2:
        raise ValueError(f"genes: scoring needs at least 2 candidate genes, got {candidates}")

    def pair(s: str, t: str) -> tuple[str, str]:
        if directed:
            return (s, t)
        # candidates in their order; genes outside them after, by name, so {a, b} has one key
        return (s, t) if (position.get(s, n), s) <= (position.get(t, n), t) else (t, s)

    # inferred pairs: first appearance keeps the orientation, the largest |weight| wins
    inferred = inferred[inferred["source"] != inferred["target"]]
    best: dict[tuple[str, str], tuple[str, str, float]] = {}
    for s, t, w in inferred.itertuples(index=False):
        p, w = pair(s, t), float(w)
        if p not in best:
            best[p] = (s, t, w)
        elif abs(np.nan_to_num(w)) > abs(np.nan_to_num(best[p][2])):
            best[p] = (*best[p][:2], w)
    truth_rows = [
        (str(s), str(t))
        for s, t in truth_table[["source", "target"]].itertuples(index=False)
        if str(s) != str(t)
    ]
    # the programmed sign of each pair (+1 activation, -1 repression; 0 when mixed or unknown)
    signs = (
        truth_table["sign"]
        .map({"activation": 1, "+": 1, 1: 1, "repression": -1, "-": -1, -1: -1})
        .fillna(0)
        .to_numpy()
        if "sign" in truth_table.columns
        else np.zeros(len(truth_table))
    )
    truth_sign: dict[tuple[str, str], int] = {}
    for (s, t), sg in zip(
        truth_table[["source", "target"]].astype(str).itertuples(index=False), signs, strict=True
    ):
        p = pair(s, t)
        truth_sign[p] = int(sg) if truth_sign.get(p, sg) == sg else 0
    truth_pairs = list(dict.fromkeys(pair(s, t) for s, t in truth_rows))
    truth_set = set(truth_pairs)
    truth_directed = {(s, t) for s, t in truth_rows}
    graph = nx.DiGraph(truth_rows)

    # -- labels and scores over the candidate pairs -----------------------------------------
    if directed:
        ii, jj = np.nonzero(~np.eye(n, dtype=bool))
    else:
        ii, jj = np.triu_indices(n, k=1)
    if scores_matrix is not None:
        assert adata is not None  # scores come from adata.varp
        # every analysed pair has a correlation: use it, not just the thresholded edges
        var_pos = adata.var_names.get_indexer(candidates)
        sub = np.zeros((n, n))
        ok = var_pos >= 0
        sub[np.ix_(ok, ok)] = np.abs(scores_matrix[np.ix_(var_pos[ok], var_pos[ok])])
        score = np.nan_to_num(sub[ii, jj], nan=0.0)
    else:
        score = np.zeros(ii.size)
        for (s, t), (_, _, w) in best.items():
            i, j = position[s], position[t]
            k = _ordered_index(i, j, n) if directed else _triu_index(i, j, n)
            score[k] = abs(np.nan_to_num(w))
    label = np.zeros(ii.size, dtype=bool)
    for s, t in truth_pairs:
        if s in position and t in position:
            i, j = position[s], position[t]
            label[_ordered_index(i, j, n) if directed else _triu_index(i, j, n)] = True

    # -- cell types of the genes (qs.sim: var["cell_type"]) ---------------------------------
    cell_type: dict[str, Any] | None = None
    if adata is not None and "cell_type" in adata.var.columns:
        cell_type = dict(
            zip(
                (str(g) for g in adata.var_names),
                adata.var["cell_type"].astype(object),
                strict=True,
            )
        )

    def same_type(s: str, t: str) -> bool | None:
        """Both genes in one cell type; None when unknown. Housekeeping and background genes
        belong to no type (False with any gene)."""
        if cell_type is None or s not in cell_type or t not in cell_type:
            return None
        a, b = cell_type[s], cell_type[t]
        if pd.isna(a) or pd.isna(b):
            return None
        if str(a) in _NOT_A_CELL_TYPE or str(b) in _NOT_A_CELL_TYPE:
            return False
        return str(a) == str(b)

    # -- the edge report --------------------------------------------------------------------
    reach: dict[str, set[str]] = {}  # descendants per gene, computed once on demand

    def joined(s: str, t: str) -> bool:
        if s not in graph or t not in graph:
            return False
        for a, b in ((s, t), (t, s)):
            if a not in reach:
                reach[a] = nx.descendants(graph, a)
            if b in reach[a]:
                return True
        return False

    rows = []
    for p, (s, t, w) in best.items():
        if p in truth_set:
            status = "true"
        elif directed and (t, s) in truth_directed:
            status = "reversed"
        elif joined(s, t):
            status = "indirect"
        else:
            status = "spurious"
        agrees = (
            bool(np.sign(w) == truth_sign[p])
            if p in truth_set and truth_sign.get(p, 0) != 0 and np.isfinite(w)
            else None
        )
        rows.append((s, t, w, True, p in truth_set, True, same_type(s, t), agrees, status))
    for p in truth_pairs:
        if p not in best:
            s, t = p if directed else next((a, b) for a, b in truth_rows if pair(a, b) == p)
            rows.append(
                (
                    s,
                    t,
                    np.nan,
                    False,
                    True,
                    s in position and t in position,
                    same_type(s, t),
                    None,
                    "missed",
                )
            )
    report = pd.DataFrame(
        rows,
        columns=[
            "source",
            "target",
            "weight",
            "inferred",
            "programmed",
            "analysed",
            "same_cell_type",
            "sign_agrees",
            "status",
        ],
    )
    report = report.astype(
        {
            "source": object,
            "target": object,
            "weight": float,
            "inferred": bool,
            "programmed": bool,
            "analysed": bool,
            "same_cell_type": "boolean",
            "sign_agrees": "boolean",
            "status": object,
        }
    )
    inferred_first = report.assign(_abs=report["weight"].abs().fillna(-1.0))
    report = (
        inferred_first.sort_values(["inferred", "_abs"], ascending=[False, False], kind="stable")
        .drop(columns="_abs")
        .reset_index(drop=True)
    )

    # -- metrics ----------------------------------------------------------------------------
    n_inferred = len(best)
    n_true = int(label.sum())
    tp = int(sum(1 for p in best if p in truth_set))
    precision = tp / n_inferred if n_inferred else float("nan")
    recall = tp / n_true if n_true else float("nan")
    if np.isnan(precision) or np.isnan(recall):
        f1 = float("nan")
    else:
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    scored_truth = [p for p in truth_pairs if p[0] in position and p[1] in position]
    within = [p for p in scored_truth if same_type(*p) is True]
    n_cross = sum(1 for p in scored_truth if same_type(*p) is False)
    recall_within = sum(1 for p in within if p in best) / len(within) if within else float("nan")
    result: dict[str, Any] = {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "aupr": _average_precision(label, score),
        "auroc": _roc_auc(label, score),
        "n_true": n_true,
        "n_inferred": n_inferred,
        "n_true_positives": tp,
        "n_candidates": int(ii.size),
        "recall_within_types": float(recall_within),
        "n_true_cross_type": int(n_cross),
        "directed": directed,
        "edges": report,
    }
    n_outside = int((~report["analysed"]).sum())
    if n_outside:
        logger.info(
            "score_network: %d programmed edge(s) involve genes outside the candidates "
            "and are left out of the metrics",
            n_outside,
        )
    if key is not None:
        assert adata is not None
        adata.uns[key]["score"] = dict(result)
    return result


def _triu_index(i: int, j: int, n: int) -> int:
    """Position of the unordered pair ``{i, j}`` in ``np.triu_indices(n, k=1)`` order."""
    i, j = min(i, j), max(i, j)
    return i * n - i * (i + 1) // 2 + (j - i - 1)


def _ordered_index(i: int, j: int, n: int) -> int:
    """Position of the ordered pair ``(i, j)`` in row-major order of the off-diagonal."""
    return i * (n - 1) + (j if j < i else j - 1)
