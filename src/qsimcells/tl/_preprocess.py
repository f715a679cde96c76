"""Shared input handling of the analyses: counts from AnnData, log-normalisation, gene lookup.

The analyses normalise themselves (as the paper and CellChat do) instead of expecting a
preprocessed ``X``, so they run on ``qs.sim`` output directly; numpy only, no scanpy import.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import sparse

from .._utils import MissingKeyError, group_labels, layer_matrix

__all__ = ["check_adata", "counts", "gene_indices", "group_labels", "log_normalize"]


def check_adata(adata: Any, field: str = "adata") -> None:
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        raise TypeError(f"{field}: expected an AnnData, got {type(adata).__name__}")
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise ValueError(f"{field}: is empty ({adata.n_obs} cells x {adata.n_vars} genes)")
    if not adata.var_names.is_unique:
        repeated = list(adata.var_names[adata.var_names.duplicated()].unique()[:5])
        raise ValueError(f"{field}.var_names: gene names must be unique, {repeated} repeat; "
                         f"call {field}.var_names_make_unique()")


def counts(adata: Any, layer: str | None = None) -> sparse.csr_matrix:
    """Raw counts (``X`` or ``layers[layer]``) as float64 CSR, checked finite and >= 0."""
    X = sparse.csr_matrix(layer_matrix(adata, layer), dtype=np.float64)
    if not np.isfinite(X.data).all():
        raise ValueError(f"{'X' if layer is None else f'layers[{layer!r}]'}: contains NaN or "
                         "infinite values; expected raw counts")
    if (X.data < 0).any():
        raise ValueError(f"{'X' if layer is None else f'layers[{layer!r}]'}: contains negative "
                         "values; expected raw counts")
    return X


def log_normalize(X: sparse.csr_matrix, target_sum: float = 1e4) -> sparse.csr_matrix:
    """``log1p(X / total * target_sum)`` per cell; cells with no counts stay zero."""
    total = np.asarray(X.sum(axis=1)).ravel()
    scale = np.divide(target_sum, total, out=np.zeros_like(total), where=total > 0)
    out = sparse.diags(scale) @ X
    out = sparse.csr_matrix(out)
    np.log1p(out.data, out=out.data)
    return out


def gene_indices(adata: Any, genes: Iterable[str], field: str) -> np.ndarray:
    """Column indices of ``genes``; an error lists every name missing from ``var_names``."""
    names = [str(g) for g in genes]
    missing = [g for g in names if g not in adata.var_names]
    if missing:
        raise MissingKeyError(f"{field}: gene(s) {missing} not in adata.var_names "
                       f"(first genes: {list(adata.var_names[:10])})")
    return np.asarray(adata.var_names.get_indexer(names), dtype=np.int64)
