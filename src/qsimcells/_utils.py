"""Small helpers shared across the package: randomness, argument checks, AnnData layers."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

RngLike = int | np.random.Generator | np.random.SeedSequence | None


class MissingKeyError(KeyError, ValueError):
    """A name the user gave (an obs column, a layer, a gene, a uns key) is not in the data.

    A ``KeyError``, as scanpy raises for a missing key, and a ``ValueError``, as every other
    bad argument here is, so one ``except ValueError`` catches all bad input. Its message is
    printed as written (``KeyError`` alone would show it in quotes).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def seed_sequence(rng: RngLike) -> np.random.SeedSequence:
    """Turn the public ``rng`` argument into a :class:`numpy.random.SeedSequence`.

    An ``int`` or ``None`` gives a fresh sequence whose ``entropy`` can be stored, so that even an
    unseeded run is reproducible from its record. A ``Generator`` is split, never reused.
    """
    if isinstance(rng, np.random.SeedSequence):
        return rng
    if isinstance(rng, np.random.Generator):
        return np.random.SeedSequence(rng.integers(0, 2**63, size=4).tolist())
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        if rng is not None and rng < 0:
            raise ValueError(f"rng: a seed must be a non-negative integer, got {rng}")
        return np.random.SeedSequence(None if rng is None else int(rng))
    raise TypeError(
        f"rng: expected an int seed, a numpy Generator or None, got {type(rng).__name__}"
    )


def child_seeds(seq: np.random.SeedSequence, n: int) -> list[np.random.SeedSequence]:
    """The first ``n`` children of ``seq``, the same on every call: ``seq.spawn`` would advance
    its spawn counter, so a second call (a retried or recomputed dask task) would draw new data."""
    fresh = np.random.SeedSequence(seq.entropy, spawn_key=seq.spawn_key, pool_size=seq.pool_size)
    return fresh.spawn(n)


def as_generator(rng: RngLike) -> np.random.Generator:
    """Return a :class:`numpy.random.Generator` for the public ``rng`` argument."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(seed_sequence(rng))


def check_choice(field: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raise a ``ValueError`` naming ``field`` and the allowed values when ``value`` is not one."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{field}: {value!r} is not allowed; choose one of {allowed}")


def check_positive_int(field: str, value: Any) -> int:
    """Return ``value`` as an int, or raise naming ``field`` when it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{field}: expected a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{field}: must be a positive integer (>= 1), got {value}")
    return int(value)


def check_finite(
    field: str,
    value: Any,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a float after checking that it is finite and within bounds."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{field}: expected a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{field}: must be a finite number, got {value!r}")
    if (x <= low if low_open else x < low) or (x >= high if high_open else x > high):
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{field}: {x!r} is outside the allowed range {lo}{low}, {high}{hi}")
    return x


def layer_matrix(adata: Any, layer: str | None, field: str = "adata") -> Any:
    """``adata.X`` (``layer=None``) or ``adata.layers[layer]``, as stored; a missing layer is a
    :class:`MissingKeyError` that lists the layers there are."""
    if layer is None:
        return adata.X
    if layer not in adata.layers:
        raise MissingKeyError(
            f"layer: {layer!r} is not in {field}.layers; available: {sorted(adata.layers)}"
        )
    return adata.layers[layer]


def group_labels(adata: Any, groupby: str) -> Any:
    """``obs[groupby]`` as a categorical Series (its categories define the groups); a missing
    column or a missing label is an error naming ``groupby``."""
    import pandas as pd

    if not isinstance(groupby, str) or groupby not in adata.obs:
        raise MissingKeyError(
            f"groupby: {groupby!r} is not a column of adata.obs; available: "
            f"{list(adata.obs.columns)}"
        )
    labels = adata.obs[groupby]
    if labels.isna().any():
        raise ValueError(f"groupby: obs[{groupby!r}] has {int(labels.isna().sum())} missing labels")
    return labels if isinstance(labels.dtype, pd.CategoricalDtype) else labels.astype("category")


def check_adata(adata: Any, field: str = "adata") -> None:
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        raise TypeError(f"{field}: expected an AnnData, got {type(adata).__name__}")
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise ValueError(f"{field}: is empty ({adata.n_obs} cells x {adata.n_vars} genes)")
    if not adata.var_names.is_unique:
        repeated = list(adata.var_names[adata.var_names.duplicated()].unique()[:5])
        raise ValueError(
            f"{field}.var_names: gene names must be unique, {repeated} repeat; "
            f"call {field}.var_names_make_unique()"
        )


def counts(adata: Any, layer: str | None = None) -> Any:
    """Raw counts (``X`` or ``layers[layer]``) as float64 CSR, checked finite and >= 0."""
    from scipy import sparse

    X = sparse.csr_matrix(layer_matrix(adata, layer), dtype=np.float64)
    if not np.isfinite(X.data).all():
        raise ValueError(
            f"{'X' if layer is None else f'layers[{layer!r}]'}: contains NaN or "
            "infinite values; expected raw counts"
        )
    if (X.data < 0).any():
        raise ValueError(
            f"{'X' if layer is None else f'layers[{layer!r}]'}: expected raw "
            "counts, found negative values"
        )
    return X


def log_normalize(X: Any, target_sum: float = 1e4) -> Any:
    """``log1p(X / total * target_sum)`` per cell of a CSR matrix; cells with no counts stay
    zero."""
    from scipy import sparse

    total = np.asarray(X.sum(axis=1)).ravel()
    scale = np.divide(target_sum, total, out=np.zeros_like(total), where=total > 0)
    out = sparse.diags(scale) @ X
    out = sparse.csr_matrix(out)
    np.log1p(out.data, out=out.data)
    return out
