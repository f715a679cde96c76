"""Cell-cell communication scored against the ground truth of a simulation.

:func:`true_communication` says which (sender type, receiver type, ligand, receptor) rows a
simulation programmed, and, with ``region_key``, in which tissue regions the gate acted (from
``obsm["lr_active"]`` of ``simulate(..., tissue=Tissue(interaction_length=...))``).
:func:`score_communication` scores the output of any cluster-level communication method
against it: :func:`~qsimcells.tl.cellchat`, squidpy's ``gr.ligrec`` and liana's methods, each
run once or once per region.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .._utils import MissingKeyError, check_finite
from ._preprocess import check_adata, group_labels
from .grn import _average_precision, true_network

__all__ = ["score_communication", "true_communication"]

logger = logging.getLogger(__name__)

KEYS = ["source", "target", "ligand", "receptor"]
#: score columns tried in order when ``score`` is not given: qs.tl.cellchat, squidpy ligrec,
#: liana (cellphonedb / cellchat / rank aggregate)
SCORES = ("prob", "means", "lr_means", "lr_probs", "magnitude_rank")
PVALUES = ("pval", "pvalues", "cellphone_pvals", "cellchat_pvals")
#: liana's names of the ligand and receptor columns
_ALIASES = {"ligand_complex": "ligand", "receptor_complex": "receptor"}


def true_communication(
    adata: Any, *, groupby: str = "cell_type", region_key: str | None = None
) -> pd.DataFrame:
    """The programmed ligand-receptor communication of a simulation, per region.

    Parameters
    ----------
    adata
        An AnnData made by :func:`qsimcells.sim.simulate` (also after an h5ad round trip).
    groupby
        Column of ``obs`` with the cell types (the groups a communication method compares).
    region_key
        Column of ``obs`` with tissue regions (e.g. ``"domain"`` of a simulated
        :class:`~qsimcells.sim.Tissue`, or spatial clusters): one row per region and gate.
        ``None``: one row per gate over all cells.

    Returns
    -------
    pandas.DataFrame
        ``source`` and ``target`` (the cell types of the ligand's and the receptor's gene),
        ``ligand``, ``receptor``, [``region_key``], ``active_fraction`` (the fraction of the
        sender cells, in that region, whose niche the gate acted in: from ``obsm["lr_active"]``
        when the simulation made communication depend on distance, else 1) and ``n_senders``.
        A region without sender cells has no row.
    """
    check_adata(adata)
    labels = group_labels(adata, groupby).astype(str).to_numpy()
    gates = true_network(adata, kind="ligand_receptor")
    if gates.empty:
        raise ValueError(
            "adata: the design in uns['qsimcells'] has no ligand-receptor edges, "
            "so there is no communication to score"
        )
    gene_type = adata.var["cell_type"].astype(str)  # simulate's: each circuit gene's type
    active = _active_per_cell(adata, gates)
    if region_key is None:
        regions = np.zeros(adata.n_obs, dtype=np.int64)
        names: list[Any] = [None]
    else:
        region = group_labels(adata, region_key).rename("region_key")
        regions = region.cat.codes.to_numpy()
        names = list(region.cat.categories)
    rows = []
    for k, (ligand, receptor) in enumerate(zip(gates["source"], gates["target"], strict=True)):
        sender, receiver = gene_type[ligand], gene_type[receptor]
        is_sender = labels == sender
        for r, name in enumerate(names):
            cells = is_sender & (regions == r)
            n = int(cells.sum())
            if n == 0:
                continue
            fraction = 1.0 if active is None else float(active[cells, k].mean())
            rows.append((sender, receiver, ligand, receptor, name, fraction, n))
    table = pd.DataFrame(rows, columns=[*KEYS, "region", "active_fraction", "n_senders"])
    if region_key is None:
        return table.drop(columns="region")
    return table.rename(columns={"region": region_key})


def _active_per_cell(adata: Any, gates: pd.DataFrame) -> np.ndarray | None:
    """``(cells, gates)``: whether each gate acted in each cell's niche; ``None`` when every
    gate acts everywhere (no distance-dependent communication was simulated)."""
    if "lr_active" not in adata.obsm:
        return None
    names = [str(n) for n in adata.uns["qsimcells"].get("lr_active_edges", [])]
    active = np.asarray(adata.obsm["lr_active"], dtype=bool)
    if active.shape[1] != len(names):
        raise ValueError(
            f"adata: obsm['lr_active'] has {active.shape[1]} columns but "
            f"uns['qsimcells']['lr_active_edges'] names {len(names)} gates"
        )
    out = np.zeros((adata.n_obs, len(gates)), dtype=bool)
    for k, (s, t) in enumerate(zip(gates["source"], gates["target"], strict=True)):
        cols = [j for j, n in enumerate(names) if n == f"{s}->{t}"]
        if cols:
            out[:, k] = active[:, cols].any(axis=1)
    return out


def score_communication(
    adata: Any,
    result: Any,
    *,
    groupby: str = "cell_type",
    region_key: str | None = None,
    score: str | None = None,
    pval: str | None = None,
    alpha: float = 0.05,
    min_active: float = 0.0,
) -> dict[str, Any]:
    """Score a cell-cell communication result against the simulation's truth.

    A row (source, target, ligand, receptor[, region]) is true when the design has a
    ligand-receptor gate from ``ligand`` in cell type ``source`` to ``receptor`` in ``target``
    and, in that region, the gate acted in more than ``min_active`` of the sender cells' niches
    (see :func:`true_communication`). Every other row of the result is false; a true row the
    result lacks counts as missed (ranked last for AUPR).

    Parameters
    ----------
    adata
        The simulated AnnData the method ran on (with ``uns["qsimcells"]``).
    result
        The method's output, in any of these forms:

        - a long table with ``source``, ``target``, ``ligand``, ``receptor`` and a score: the
          DataFrame of :func:`~qsimcells.tl.cellchat` or liana's ``adata.uns["liana_res"]``
          (its ``ligand_complex`` / ``receptor_complex``, not the subunit columns, are read as
          ligand / receptor);
        - the dict of ``squidpy.gr.ligrec(..., copy=True)`` (``means`` and ``pvalues``);
        - a dict ``{region: result}`` of either, one per region (e.g. each domain's cells
          analysed separately); ``region_key`` names the ``obs`` column of the regions.

        Gene names are matched to ``var_names`` exactly, else ignoring case (squidpy
        upper-cases them).
    groupby
        Column of ``obs`` with the cell types the method compared.
    region_key
        Column of ``obs`` with the regions, for results per region: either a column of that
        name in the table or a ``{region: result}`` dict. ``None``: one result for all cells.
    score
        Column ranked for AUPR (higher is stronger; a column ending in ``_rank``, as liana's
        ``magnitude_rank``, lower is stronger). Default: the first of ``prob``, ``means``,
        ``lr_means``, ``lr_probs``, ``magnitude_rank`` present.
    pval
        Column of p-values; a row is called when ``pval < alpha``. Default: the first of
        ``pval``, ``pvalues``, ``cellphone_pvals``, ``cellchat_pvals`` present; without one,
        precision and recall are NaN.
    alpha
        Significance level of a call, in (0, 1).
    min_active
        A row is true when its gate acted in more than this fraction of the niches, in [0, 1).

    Returns
    -------
    dict
        ``precision``, ``recall`` and ``aupr`` over all rows (NaN where undefined), ``n_true``,
        ``n_called``, ``n_rows``, ``score`` and ``pval`` (the columns used), ``pairs``: a
        DataFrame with one row per ligand-receptor pair (``ligand``, ``receptor``, ``n_rows``,
        ``n_true``, ``n_called``, ``precision``, ``recall``, ``aupr``), and ``rows``: every
        scored row with ``score``, ``pval``, ``called``, ``active_fraction`` and ``true``.
    """
    check_adata(adata)
    alpha = check_finite("alpha", alpha, low=0.0, high=1.0, low_open=True, high_open=True)
    min_active = check_finite("min_active", min_active, low=0.0, high=1.0, high_open=True)
    if region_key is not None and region_key not in adata.obs:
        raise MissingKeyError(
            f"region_key: {region_key!r} is not a column of adata.obs; available: "
            f"{list(adata.obs.columns)}"
        )
    table = _long_table(result, region_key)
    score, pval = _score_columns(table, score, pval)
    for side in ("ligand", "receptor"):
        table[side] = _to_var_names(table[side], adata.var_names, side)
    keys = KEYS + ([region_key] if region_key else [])
    for c in keys:
        table[c] = table[c].astype(str)
    if table.duplicated(keys).any():
        first = table[table.duplicated(keys)].iloc[0][keys].tolist()
        raise ValueError(
            f"result: rows are repeated for {keys} (first: {first}); give one "
            "row per pair and region"
        )
    values = pd.to_numeric(table[score], errors="coerce").to_numpy(dtype=float)
    if score.endswith("_rank"):
        values = -values
    table = table[keys].assign(
        score=values,
        pval=(
            pd.to_numeric(table[pval], errors="coerce").to_numpy(dtype=float) if pval else np.nan
        ),
    )

    truth = true_communication(adata, groupby=groupby, region_key=region_key)
    for c in keys:
        truth[c] = truth[c].astype(str)
    rows = table.merge(truth[[*keys, "active_fraction"]], on=keys, how="outer", indicator=True)
    missed = rows["_merge"] == "right_only"
    rows["active_fraction"] = rows["active_fraction"].fillna(0.0)
    rows["true"] = rows["active_fraction"] > min_active
    rows["called"] = (rows["pval"] < alpha).to_numpy() if pval else False
    finite = rows["score"].to_numpy()[np.isfinite(rows["score"].to_numpy())]
    lowest = (finite.min() if finite.size else 0.0) - 1.0
    rows["score"] = rows["score"].where(np.isfinite(rows["score"]) & ~missed, lowest)
    rows = rows.drop(columns="_merge")
    rows = rows[rows["true"] | ~missed].reset_index(drop=True)  # inactive truth rows: not scored

    def metrics(part: pd.DataFrame) -> dict[str, Any]:
        y, called = part["true"].to_numpy(), part["called"].to_numpy(dtype=bool)
        tp, n_called, n_true = int((y & called).sum()), int(called.sum()), int(y.sum())
        return {
            "n_rows": len(part),
            "n_true": n_true,
            "n_called": n_called,
            "precision": tp / n_called if pval and n_called else float("nan"),
            "recall": tp / n_true if pval and n_true else float("nan"),
            "aupr": _average_precision(y, part["score"].to_numpy(dtype=float)),
        }

    pairs = pd.DataFrame(
        [
            {"ligand": lig, "receptor": rec, **metrics(part)}
            for (lig, rec), part in rows.groupby(["ligand", "receptor"], sort=True)
        ]
    )
    overall = metrics(rows)
    logger.info(
        "score_communication: %d rows, %d true, AUPR %.3f",
        overall["n_rows"],
        overall["n_true"],
        overall["aupr"],
    )
    return {
        **{k: overall[k] for k in ("precision", "recall", "aupr")},
        **{k: overall[k] for k in ("n_true", "n_called", "n_rows")},
        "score": score,
        "pval": pval,
        "pairs": pairs,
        "rows": rows,
    }


def _long_table(result: Any, region_key: str | None) -> pd.DataFrame:
    """Any accepted result as one long table with ``source, target, ligand, receptor``."""
    if isinstance(result, Mapping) and not _is_ligrec(result):
        if region_key is None:
            raise ValueError(
                "result: a {region: result} dict needs region_key, the obs column of the regions"
            )
        if not result:
            raise ValueError("result: the {region: result} dict is empty")
        parts = [
            _long_table(part, None).assign(**{region_key: region})
            for region, part in result.items()
        ]
        return pd.concat(parts, ignore_index=True)
    if _is_ligrec(result):
        table = _ligrec_table(result)
    elif isinstance(result, pd.DataFrame):
        aliased = [new for old, new in _ALIASES.items() if old in result.columns]
        table = result.drop(columns=[c for c in aliased if c in result.columns])
        table = table.rename(columns=_ALIASES)
    else:
        raise TypeError(
            "result: expected a DataFrame (qs.tl.cellchat, liana), the dict of "
            "squidpy.gr.ligrec or a {region: result} dict, got "
            f"{type(result).__name__}"
        )
    missing = [c for c in KEYS if c not in table.columns]
    if missing:
        raise ValueError(f"result: the table lacks columns {missing} (has {list(table.columns)})")
    if region_key is not None and region_key not in table.columns:
        raise ValueError(
            f"result: region_key {region_key!r} is not a column of the table; "
            "add it, or pass a {region: result} dict"
        )
    return table


def _is_ligrec(result: Any) -> bool:
    return (
        isinstance(result, Mapping)
        and "means" in result
        and isinstance(result["means"], pd.DataFrame)
    )


def _ligrec_table(result: Mapping[str, Any]) -> pd.DataFrame:
    """squidpy's ligrec dict (interactions x cluster pairs) as a long table."""

    def long(frame: pd.DataFrame, name: str) -> pd.Series:
        dense = frame.sparse.to_dense() if hasattr(frame, "sparse") else frame
        return dense.stack(list(range(dense.columns.nlevels)), future_stack=True).rename(name)

    parts = [long(result["means"], "means")]
    if isinstance(result.get("pvalues"), pd.DataFrame):
        parts.append(long(result["pvalues"], "pvalues"))
    table = pd.concat(parts, axis=1).reset_index()
    table.columns = ["ligand", "receptor", "source", "target", *table.columns[4:]]
    return table


def _score_columns(
    table: pd.DataFrame, score: str | None, pval: str | None
) -> tuple[str, str | None]:
    for field, name in (("score", score), ("pval", pval)):
        if name is not None and name not in table.columns:
            raise ValueError(
                f"{field}: {name!r} is not a column of the result (has {list(table.columns)})"
            )
    if score is None:
        score = next((c for c in SCORES if c in table.columns), None)
        if score is None:
            raise ValueError(
                f"score: the result has none of the score columns {list(SCORES)}; "
                f"name one of {list(table.columns)}"
            )
    if pval is None:
        pval = next((c for c in PVALUES if c in table.columns), None)
    return score, pval


def _to_var_names(names: pd.Series, var_names: pd.Index, field: str) -> pd.Series:
    """Gene names as in ``var_names``: exact, else the unique case-insensitive match."""
    exact = set(var_names)
    folded: dict[str, str | None] = {}
    for v in var_names:
        key = str(v).casefold()
        folded[key] = None if key in folded else str(v)  # None: ambiguous
    out, unknown = [], []
    for name in names.astype(str):
        if name in exact:
            out.append(name)
        elif folded.get(name.casefold()):
            out.append(folded[name.casefold()])
        else:
            out.append(name)
            unknown.append(name)
    if unknown:
        logger.info(
            "score_communication: %d %s name(s) not in var_names (e.g. %s); their rows "
            "count as false",
            len(unknown),
            field,
            unknown[0],
        )
    return pd.Series(out, index=names.index, dtype=object)
