"""Shared input handling of the analyses: counts from AnnData, log-normalisation, gene lookup
(the first three live in :mod:`qsimcells._utils`, where the simulation layer uses them too).

The analyses normalise themselves (as the paper and CellChat do) instead of expecting a
preprocessed ``X``, so they run on ``qs.sim`` output directly; numpy only, no scanpy import.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .._utils import MissingKeyError, check_adata, counts, group_labels, log_normalize

__all__ = ["check_adata", "counts", "gene_indices", "group_labels", "log_normalize"]


def gene_indices(adata: Any, genes: Iterable[str], field: str) -> np.ndarray:
    """Column indices of ``genes``; an error lists every name missing from ``var_names``."""
    names = [str(g) for g in genes]
    missing = [g for g in names if g not in adata.var_names]
    if missing:
        raise MissingKeyError(
            f"{field}: gene(s) {missing} not in adata.var_names "
            f"(first genes: {list(adata.var_names[:10])})"
        )
    return np.asarray(adata.var_names.get_indexer(names), dtype=np.int64)
