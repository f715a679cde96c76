"""CellChat-style cell-cell communication: probabilities, permutation p-values and shifts.

:func:`cellchat` re-implements the core of CellChat's ``computeCommunProb`` (Jin et al., Nat.
Commun. 2021) for single genes: normalise, scale by a maximum, aggregate ligand and receptor
per group (truncated mean or trimean), ``P = LR / (K + LR)`` and a label permutation test.
:func:`communication_shift` compares two such results (the paper's Table 3).

Two choices differ from R CellChat's defaults:

* the aggregate: R's ``computeCommunProb`` defaults to ``type = "triMean"`` (with
  ``trim = 0.1`` for ``"truncatedMean"``); the default here is the truncated mean, the option
  the paper used, with ``trim = 0.01``. ``mean="trimean"`` gives CellChat's (and liana's)
  ``triMean``;
* the scaling: R CellChat divides by the maximum over the database's signalling genes
  (``data.signaling``, ``data / max(data)``), whereas liana divides by the maximum of the whole
  normalised matrix. The whole-matrix maximum is used here, as in liana: it is what reproduces
  the control column of the paper's Table 3 (the signalling-gene maximum roughly doubles the
  probabilities, e.g. 0.027 instead of the paper's 0.0148 for CT1 -> CT2, g3 -> g5).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._utils import (
    MissingKeyError,
    RngLike,
    as_generator,
    check_choice,
    check_finite,
    seed_sequence,
)
from ._preprocess import check_adata, counts, gene_indices, group_labels, log_normalize

__all__ = ["cellchat", "communication_shift"]

logger = logging.getLogger(__name__)

MEANS = ("truncated", "trimean")
KEYS = ["source", "target", "ligand", "receptor"]
#: entries of one permutation block: (permutations x cells) labels and values per gene
_BLOCK = 4_000_000


def cellchat(
    adata: Any,
    *,
    groupby: str,
    pairs: Sequence[tuple[str, str]] | pd.DataFrame | None = None,
    resource: str | pd.DataFrame | None = None,
    mean: str = "truncated",
    trim: float = 0.01,
    k: float = 0.5,
    n_perms: int = 1000,
    rng: RngLike = None,
    layer: str | None = None,
    key_added: str = "cellchat",
    copy: bool = False,
) -> pd.DataFrame:
    """CellChat's communication probability of ligand-receptor pairs between groups of cells.

    For every ordered pair of groups (``source``, ``target``; ``source == target`` included) and
    every ligand-receptor pair, as in CellChat's ``computeCommunProb``:

    1. raw counts are normalised per cell to 1e4 and ``log1p``-transformed (CellChat's
       ``normalizeData``), then divided by the maximum of the whole normalised matrix (all
       genes), as liana does. R CellChat instead divides by the maximum over the database's
       signalling genes only (``data.signaling``); the whole-matrix maximum is what reproduces
       the control column of the paper's Table 3, while the signalling-gene maximum roughly
       doubles the probabilities (0.027 instead of the paper's 0.0148 for g3 -> g5);
    2. the ligand is aggregated over the source cells and the receptor over the target cells:
       ``mean="truncated"`` is R's ``mean(x, trim=trim)`` (``floor(n * trim)`` values cut at each
       end, as :func:`scipy.stats.trim_mean`), ``mean="trimean"`` is CellChat's ``triMean``,
       ``(q25 + 2 q50 + q75) / 4`` with R's default quantile type 7 (numpy's ``"linear"``);
    3. ``prob = L R / (k + L R)`` (Hill coefficient 1). Simplified relative to CellChat: single
       genes only, no agonist / antagonist co-factors and no population-size term;
    4. ``pval``: the group labels are permuted ``n_perms`` times (one permutation of all cells
       shared by every pair and group, as CellChat does) and ``pval`` is the fraction of
       permutations whose probability is strictly greater than the observed one (CellChat's
       rule). As in CellChat, ``pval = 1`` where ``prob == 0`` (no evidence, e.g. an all-zero
       gene). With fewer than 2 non-empty groups permuting the labels changes nothing: every
       permutation ties the observed value, the strict rule gives ``pval = 0`` and the
       p-values are meaningless (a warning says so).

    Parameters
    ----------
    adata
        Annotated data with raw counts in ``X`` (or ``layers[layer]``), e.g. from
        :func:`qsimcells.sim.simulate`.
    groupby
        Column of ``adata.obs`` with the groups (cell types); its categories define the groups.
        A category without cells gives rows with ``prob`` and ``pval`` NaN and a warning;
        missing labels (NaN) are an error.
    pairs
        Ligand-receptor pairs: a list of ``(ligand, receptor)`` tuples or a DataFrame with
        columns ``ligand``, ``receptor`` (optional ``pathway`` and ``name`` are carried into the
        result). Every gene must be in ``var_names``. ``None`` (and no ``resource``): the
        ligand-receptor edges (``kind == "ligand_receptor"``) of the ground truth in
        ``adata.uns["qsimcells"]["design"]``. Duplicated pairs are dropped.
    resource
        Instead of ``pairs``: a liana resource name (e.g. ``"consensus"``, loaded with
        ``liana.resource.select_resource``, which needs liana) or a DataFrame with columns
        ``ligand``, ``receptor``. Only pairs whose two genes are in ``var_names`` are kept;
        complexes (names with ``"_"`` that are not themselves in ``var_names``) are skipped,
        since subunits are not aggregated here.
    mean
        Group aggregate: ``"truncated"`` (CellChat's ``truncatedMean``, the option the paper
        used) or ``"trimean"`` (CellChat's ``triMean``, the default of R's
        ``computeCommunProb(type = "triMean")`` and the only one in liana).
    trim
        Fraction cut at each end by the truncated mean, in ``[0, 0.5)`` (0.01 here; R
        CellChat's default is 0.1).
    k
        Half-saturation constant ``K`` of the Hill function (CellChat's ``Kh = 0.5``), > 0.
    n_perms
        Number of label permutations; 0 skips the test (``pval`` NaN).
    rng
        Seed or generator of the permutations; a fixed seed gives identical p-values.
    layer
        Layer with the raw counts; ``None`` uses ``X``.
    key_added
        Results are stored in ``adata.uns[key_added]``.
    copy
        ``True`` leaves ``adata`` unchanged (nothing is stored; the results are only
        returned). ``False`` stores them in ``adata.uns[key_added]``.

    Returns
    -------
    pandas.DataFrame
        One row per (source, target, ligand, receptor), sorted by these (groups in category
        order), with columns ``source``, ``target`` (categorical), ``ligand``, ``receptor``,
        ``prob``, ``pval``, ``ligand_mean`` and ``receptor_mean`` (the group aggregates of the
        scaled data, truncated mean or trimean), plus ``pathway`` / ``name`` when given. Unless
        ``copy``, also stored as ``adata.uns[key_added] = {"results": df, "params": {...}}``
        (``groupby``, ``mean``, ``trim``, ``k``, ``n_perms``, ``seed``, ``pairs_from``,
        ``data_max``, ``layer``).
    """
    # -- validate everything before anything is computed or written -----------------------
    check_adata(adata)
    check_choice("mean", mean, MEANS)
    trim = check_finite("trim", trim)
    if not 0.0 <= trim < 0.5:
        raise ValueError(f"trim: {trim!r} is outside the allowed range [0, 0.5)")
    k = check_finite("k", k, low=0.0, low_open=True)
    if isinstance(n_perms, bool) or not isinstance(n_perms, (int, np.integer)):
        raise TypeError(f"n_perms: expected an integer >= 0, got {n_perms!r}")
    if n_perms < 0:
        raise ValueError(f"n_perms: must be >= 0, got {n_perms}")
    n_perms = int(n_perms)
    if not isinstance(key_added, str) or not key_added:
        raise TypeError(f"key_added: expected a non-empty string, got {key_added!r}")
    if not isinstance(copy, bool):
        raise TypeError(f"copy: expected True or False, got {copy!r}")
    labels = group_labels(adata, groupby)
    table, pairs_from = _resolve_pairs(adata, pairs, resource)
    X = counts(adata, layer)
    if X.nnz == 0 or not (X.data > 0).any():
        raise ValueError(
            f"{'X' if layer is None else f'layers[{layer!r}]'}: every count is "
            "zero; nothing to normalise"
        )
    seed_info: int | str  # the seed as uns records it
    if isinstance(rng, np.random.Generator):
        gen, seed_info = rng, "Generator"
    else:
        seq = seed_sequence(rng)
        gen = as_generator(seq)
        entropy = seq.entropy
        seed_info = int(entropy) if isinstance(entropy, int) and entropy < 2**63 else str(entropy)

    # -- data: log-normalised, divided by the global maximum -------------------------------
    norm = log_normalize(X)
    data_max = float(norm.data.max())
    genes = pd.unique(pd.concat([table["ligand"], table["receptor"]])).tolist()
    cols = gene_indices(adata, genes, "pairs")
    data = np.asarray(norm[:, cols].toarray(), dtype=np.float64) / data_max
    groups = [str(g) for g in labels.cat.categories]
    codes = np.asarray(labels.cat.codes, dtype=np.int16 if len(groups) < 2**15 else np.int32)
    sizes = np.bincount(codes, minlength=len(groups))
    empty = [g for g, n in zip(groups, sizes, strict=True) if n == 0]
    if empty:
        warnings.warn(
            f"cellchat: group(s) {empty} of obs[{groupby!r}] have no cells; their "
            "rows get prob and pval NaN",
            UserWarning,
            stacklevel=2,
        )
    if n_perms and np.count_nonzero(sizes) < 2:
        warnings.warn(
            f"cellchat: obs[{groupby!r}] has fewer than 2 non-empty groups, so "
            "permuting the labels changes nothing: every permutation ties the "
            "observed value, the strict rule gives pval = 0 and the p-values are "
            "meaningless",
            UserWarning,
            stacklevel=2,
        )

    gene_pos = {g: i for i, g in enumerate(genes)}
    lig = table["ligand"].map(gene_pos).to_numpy()
    rec = table["receptor"].map(gene_pos).to_numpy()
    orders = [np.argsort(data[:, j], kind="stable") for j in range(len(genes))]
    sorted_values = [data[o, j] for j, o in enumerate(orders)]

    def stats(perm_codes: np.ndarray) -> np.ndarray:
        """Group aggregates, shape (permutations, groups, genes)."""
        out = np.empty((perm_codes.shape[0], len(groups), len(genes)))
        for j in range(len(genes)):
            out[:, :, j] = _group_aggregate(
                sorted_values[j], perm_codes[:, orders[j]], sizes, mean, trim
            )
        return out

    def probability(s: np.ndarray) -> np.ndarray:
        """(permutations, groups, genes) -> (permutations, sources, targets, pairs)."""
        lr = s[:, :, None, lig] * s[:, None, :, rec]
        return lr / (k + lr)

    observed = stats(codes[None, :])
    prob = probability(observed)[0]  # (sources, targets, pairs)
    if n_perms:
        exceed = np.zeros(prob.shape, dtype=np.int64)
        chunk = max(1, min(n_perms, _BLOCK // codes.size))
        sub = max(1, 2_000_000 // max(1, prob.size))
        done = 0
        while done < n_perms:
            m = min(chunk, n_perms - done)
            perm_codes = np.stack([gen.permutation(codes) for _ in range(m)])
            s = stats(perm_codes)
            for start in range(0, m, sub):
                exceed += (probability(s[start : start + sub]) > prob).sum(axis=0)
            done += m
        pval = exceed / n_perms
        pval[prob == 0] = 1.0
    else:
        pval = np.full(prob.shape, np.nan)
    pval[np.isnan(prob)] = np.nan

    # -- assemble the table -----------------------------------------------------------------
    n_g, n_p = len(groups), len(table)
    src, tgt, pair = (
        a.ravel()
        for a in np.meshgrid(np.arange(n_g), np.arange(n_g), np.arange(n_p), indexing="ij")
    )
    df = pd.DataFrame(
        {
            "source": pd.Categorical.from_codes(src, categories=groups),
            "target": pd.Categorical.from_codes(tgt, categories=groups),
            "ligand": table["ligand"].to_numpy()[pair],
            "receptor": table["receptor"].to_numpy()[pair],
            "prob": prob.ravel(),
            "pval": pval.ravel(),
            "ligand_mean": observed[0][src, lig[pair]],
            "receptor_mean": observed[0][tgt, rec[pair]],
        }
    )
    for extra in ("pathway", "name"):
        if extra in table:
            df[extra] = table[extra].to_numpy()[pair]
    df = df.sort_values(KEYS, kind="stable").reset_index(drop=True)

    params = {
        "groupby": groupby,
        "mean": mean,
        "trim": trim,
        "k": k,
        "n_perms": n_perms,
        "seed": seed_info,
        "pairs_from": pairs_from,
        "data_max": data_max,
        "layer": "X" if layer is None else layer,
    }
    logger.info(
        "cellchat: %d pairs x %d groups^2, %s mean, %d permutations", n_p, n_g, mean, n_perms
    )
    if not copy:
        adata.uns[key_added] = {"results": df, "params": params}
    return df


def _group_aggregate(
    values: np.ndarray, perm_codes: np.ndarray, sizes: np.ndarray, mean: str, trim: float
) -> np.ndarray:
    """Per-group truncated mean or trimean of one gene for many label vectors.

    ``values`` are the gene's values sorted ascending, ``perm_codes`` (permutations, cells) the
    group of each of them. A stable argsort of the codes groups the cells by label while keeping
    the values sorted within each group, so group ``g`` occupies one contiguous sorted block.
    """
    idx = np.argsort(perm_codes, axis=1, kind="stable")
    grouped = values[idx]
    out = np.full((perm_codes.shape[0], sizes.size), np.nan)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    for g, n in enumerate(sizes.tolist()):
        if n == 0:
            continue
        block = grouped[:, offsets[g] : offsets[g + 1]]
        if mean == "truncated":
            cut = math.floor(n * trim)  # R: lo <- floor(n * trim) + 1; hi <- n + 1 - lo
            out[:, g] = block[:, cut : n - cut].sum(axis=1) / (n - 2 * cut)
        else:
            q25, q50, q75 = (_quantile7(block, q) for q in (0.25, 0.5, 0.75))
            out[:, g] = (q25 + 2.0 * q50 + q75) / 4.0
    return out


def _quantile7(block: np.ndarray, q: float) -> np.ndarray:
    """R's type-7 quantile of each row of an ascending ``block`` (numpy's linear rule)."""
    n = block.shape[1]
    h = (n - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    t = h - lo
    a, b = block[:, lo], block[:, hi]
    # numpy's _lerp: a + t (b - a), or b - (1 - t)(b - a) when t >= 0.5
    return b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t


def _resolve_pairs(adata: Any, pairs: Any, resource: Any) -> tuple[pd.DataFrame, str]:
    """The pair table (ligand, receptor[, pathway, name]) and where it came from."""
    if pairs is not None and resource is not None:
        raise ValueError("pairs: give either pairs or resource, not both")
    if resource is not None:
        if isinstance(resource, str):
            try:
                from liana.resource import select_resource
            except ImportError as err:
                raise ImportError(
                    f"resource: loading the resource {resource!r} by name needs "
                    "liana (pip install liana); or pass pairs= or a resource "
                    "DataFrame"
                ) from err
            table, origin = (
                _pair_table(select_resource(resource), "resource"),
                f"resource:{resource}",
            )
        elif isinstance(resource, pd.DataFrame):
            table, origin = _pair_table(resource, "resource"), "resource:DataFrame"
        else:
            raise TypeError(
                "resource: expected a liana resource name or a DataFrame with "
                f"columns ligand, receptor, got {type(resource).__name__}"
            )
        n = len(table)
        # a name with "_" is a complex unless that exact name is a gene of the data
        complex_ = pd.Series(False, index=table.index)
        for side in ("ligand", "receptor"):
            complex_ |= table[side].str.contains("_", regex=False) & ~table[side].isin(
                adata.var_names
            )
        present = table["ligand"].isin(adata.var_names) & table["receptor"].isin(adata.var_names)
        table = table[~complex_ & present].reset_index(drop=True)
        logger.info(
            "cellchat: %d of %d resource pairs kept (%d complexes skipped)",
            len(table),
            n,
            int(complex_.sum()),
        )
        if table.empty:
            raise ValueError(
                f"resource: none of its {n} pairs has both genes in "
                f"adata.var_names (complexes skipped; first genes: "
                f"{list(adata.var_names[:10])})"
            )
        return table, origin
    if pairs is None:
        design = (
            adata.uns.get("qsimcells", {}).get("design", {})
            if isinstance(adata.uns.get("qsimcells"), dict)
            else {}
        )
        edges = design.get("edges") if isinstance(design, dict) else None
        if edges is not None and not isinstance(edges, pd.DataFrame):
            edges = pd.DataFrame(edges)
        if edges is None or "kind" not in edges:
            raise ValueError(
                "pairs: none given and adata.uns['qsimcells']['design'] has no "
                "edge table; pass pairs=[(ligand, receptor), ...] or resource="
            )
        lr = edges[edges["kind"] == "ligand_receptor"]
        if lr.empty:
            raise ValueError(
                "pairs: none given and the design in adata.uns['qsimcells'] has "
                "no ligand-receptor edges; pass pairs=[(ligand, receptor), ...] "
                "or resource="
            )
        table = pd.DataFrame(
            {
                "ligand": lr["source"].astype(str).to_numpy(),
                "receptor": lr["target"].astype(str).to_numpy(),
            }
        )
        origin = "design"
    else:
        table, origin = _pair_table(pairs, "pairs"), "pairs"
    table = table.drop_duplicates(["ligand", "receptor"]).reset_index(drop=True)
    gene_indices(adata, pd.unique(pd.concat([table["ligand"], table["receptor"]])), "pairs")
    return table, origin


def _pair_table(pairs: Any, field: str) -> pd.DataFrame:
    if isinstance(pairs, pd.DataFrame):
        missing = {"ligand", "receptor"} - set(pairs.columns)
        if missing:
            raise ValueError(
                f"{field}: the table needs columns 'ligand' and 'receptor' "
                f"(missing {sorted(missing)}; has {list(pairs.columns)})"
            )
        keep = ["ligand", "receptor"] + [c for c in ("pathway", "name") if c in pairs.columns]
        table = pairs[keep].copy()
    elif isinstance(pairs, (str, bytes)) or not isinstance(pairs, (Sequence, np.ndarray)):
        raise TypeError(
            f"{field}: expected a list of (ligand, receptor) tuples or a DataFrame "
            f"with columns ligand, receptor, got {type(pairs).__name__}"
        )
    else:
        rows = list(pairs)
        for i, row in enumerate(rows):
            if (
                isinstance(row, (str, bytes))
                or not isinstance(row, (Sequence, np.ndarray))
                or len(row) != 2
            ):
                raise ValueError(f"{field}[{i}]: expected a (ligand, receptor) pair, got {row!r}")
        table = pd.DataFrame(rows, columns=["ligand", "receptor"], dtype=object)
    if table.empty:
        raise ValueError(f"{field}: no ligand-receptor pairs given")
    if table[["ligand", "receptor"]].isna().any().any():
        raise ValueError(f"{field}: ligand and receptor names must not be missing")
    for c in table.columns:
        table[c] = table[c].astype(str)
    table = table.drop_duplicates(["ligand", "receptor"]).reset_index(drop=True)
    return table


def _results(obj: Any, key: str, field: str) -> pd.DataFrame:
    if isinstance(obj, pd.DataFrame):
        df = obj
    else:
        uns = getattr(obj, "uns", None)
        if uns is None:
            raise TypeError(
                f"{field}: expected an AnnData or a result DataFrame of "
                f"qs.tl.cellchat, got {type(obj).__name__}"
            )
        entry = uns.get(key)
        if not isinstance(entry, dict) or "results" not in entry:
            raise MissingKeyError(
                f"{field}: adata.uns[{key!r}]['results'] not found; run "
                f"qs.tl.cellchat(adata, groupby=..., key_added={key!r}) first "
                f"(uns keys: {sorted(uns)})"
            )
        df = entry["results"]
    missing = set([*KEYS, "prob", "pval"]) - set(df.columns)
    if missing:
        raise ValueError(f"{field}: the results lack columns {sorted(missing)}")
    return df


def communication_shift(
    ref: Any, alt: Any, *, key: str = "cellchat", min_prob: float = 0.0
) -> pd.DataFrame:
    """Change of the communication probability between two datasets (the paper's Table 3).

    Parameters
    ----------
    ref
        The reference (e.g. the non-interacting control): an AnnData with
        ``uns[key]["results"]`` from :func:`cellchat`, or that result DataFrame.
    alt
        The alternative (e.g. the interacting design), likewise.
    key
        Key of the results in ``uns`` (``key_added`` of :func:`cellchat`).
    min_prob
        Keep only rows where ``prob_ref`` or ``prob_alt`` is at least this (0 keeps all).

    Returns
    -------
    pandas.DataFrame
        The rows present in both (inner merge on ``source``, ``target``, ``ligand``,
        ``receptor``) with ``prob_ref``, ``prob_alt``, ``pval_ref``, ``pval_alt``,
        ``fold_change = prob_alt / prob_ref`` and ``log2_fold_change`` (``pathway`` / ``name``
        of ``ref`` carried along when present). Where ``prob_ref == 0`` the fold change is
        ``inf`` (``prob_alt > 0``) or NaN (both 0); ``log2`` of a zero ``prob_alt`` is ``-inf``.
    """
    min_prob = check_finite("min_prob", min_prob, low=0.0, high=1.0)
    a, b = _results(ref, key, "ref"), _results(alt, key, "alt")
    extra = [c for c in ("pathway", "name") if c in a.columns]

    def keyed(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
        out = df[KEYS + cols].copy()
        for c in KEYS:
            out[c] = out[c].astype(str)
        return out

    merged = keyed(a, ["prob", "pval", *extra]).merge(
        keyed(b, ["prob", "pval"]), on=KEYS, how="inner", suffixes=("_ref", "_alt")
    )
    p_ref = merged["prob_ref"].to_numpy(dtype=float)
    p_alt = merged["prob_alt"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        fc = p_alt / p_ref
        log2 = np.log2(fc)
    out = merged[KEYS].copy()
    for c in ("prob_ref", "prob_alt", "pval_ref", "pval_alt"):
        out[c] = merged[c].to_numpy(dtype=float)
    out["fold_change"] = fc
    out["log2_fold_change"] = log2
    for c in extra:
        out[c] = merged[c].to_numpy()
    if min_prob > 0:
        out = out[(out["prob_ref"] >= min_prob) | (out["prob_alt"] >= min_prob)]
    return out.reset_index(drop=True)
