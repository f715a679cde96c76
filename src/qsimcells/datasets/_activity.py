"""The layout of a binary activity matrix, shared by the loaders, the statistics, the plots and
SpiQGAN.

A sample is one row of ``n_units * n_timesteps`` values in ``{0, 1}``, *timestep-major*: column
``t * n_units + u`` is unit ``u`` at timestep ``t``. Reshaped to ``(samples, n_timesteps,
n_units)`` it is a stack of short spike trains. As AnnData: ``X`` (or a layer) holds the matrix,
``var`` has ``unit`` and ``timestep`` columns, and ``uns["qsimcells"]["activity"]`` records
``n_units``, ``n_timesteps`` and the bin size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._utils import check_finite, check_positive_int, layer_matrix


def binary_matrix(
    data: Any, *, layer: str | None = None, threshold: float | None = None, field: str = "data"
) -> np.ndarray:
    """Return ``data`` (an array or AnnData) as a 2-D ``uint8`` matrix in ``{0, 1}``.

    Parameters
    ----------
    data
        An array-like ``(samples, columns)``, a scipy sparse matrix, or an AnnData (``X`` or
        ``layers[layer]``).
    layer
        AnnData layer to read (``None``: ``X``).
    threshold
        Binarise: a value ``> threshold`` is active. ``None``: the values must already be 0/1.
    field
        Name of the argument, for error messages.
    """
    from scipy import sparse

    if hasattr(data, "obs") and hasattr(data, "var"):  # AnnData, without importing anndata
        values = layer_matrix(data, layer, field)
    elif layer is not None:
        raise ValueError(f"layer: only used when {field} is an AnnData")
    else:
        values = data
    if values is None:
        raise ValueError(f"{field}: the AnnData has no X; pass layer=")
    if sparse.issparse(values):
        values = values.toarray()
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{field}: expected a numeric array or an AnnData, got {type(data).__name__}"
        ) from None
    if arr.ndim != 2:
        raise ValueError(
            f"{field}: expected a 2-D (samples, columns) matrix, got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{field}: is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise ValueError(f"{field}: contains NaN or infinite values")
    if threshold is not None:
        threshold = check_finite("threshold", threshold)
        return (arr > threshold).astype(np.uint8)
    bad = ~np.isin(arr, (0.0, 1.0))
    if bad.any():
        example = arr[bad][0]
        raise ValueError(
            f"{field}: values must be 0 or 1 (found {example:g}); binarise counts "
            "with threshold=0 (a value > threshold is active)"
        )
    return arr.astype(np.uint8)


def recorded_layout(data: Any) -> tuple[int, int] | None:
    """``(n_units, n_timesteps)`` recorded in an activity AnnData, or ``None``."""
    uns = getattr(data, "uns", None)
    if uns is None:
        return None
    record = uns.get("qsimcells", {}).get("activity") if hasattr(uns, "get") else None
    if not record:
        return None
    return int(record["n_units"]), int(record["n_timesteps"])


def resolve_layout(
    width: int,
    n_units: int | None,
    n_timesteps: int | None,
    data: Any = None,
    *,
    field: str = "data",
) -> tuple[int, int]:
    """Check (or infer) ``n_units`` and ``n_timesteps`` against a matrix of ``width`` columns.

    Either may be omitted when the other is given; both may be omitted for an AnnData that
    records them (``uns["qsimcells"]["activity"]``).
    """
    if n_units is None and n_timesteps is None:
        recorded = recorded_layout(data)
        if recorded is None:
            raise ValueError(
                f"n_units: give n_units (and n_timesteps) for {field}; only "
                "activity AnnData from qs.datasets record them"
            )
        n_units, n_timesteps = recorded
    if n_units is not None:
        n_units = check_positive_int("n_units", n_units)
    if n_timesteps is not None:
        n_timesteps = check_positive_int("n_timesteps", n_timesteps)
    if n_units is None:
        assert n_timesteps is not None  # both None took the recorded layout above
        if width % n_timesteps:
            raise ValueError(
                f"{field}: width {width} is not a multiple of n_timesteps={n_timesteps}"
            )
        n_units = width // n_timesteps
    if n_timesteps is None:
        if width % n_units:
            raise ValueError(f"{field}: width {width} is not a multiple of n_units={n_units}")
        n_timesteps = width // n_units
    if n_units * n_timesteps != width:
        raise ValueError(
            f"{field}: has {width} columns, but n_units * n_timesteps = "
            f"{n_units} * {n_timesteps} = {n_units * n_timesteps} (columns are "
            "timestep-major: column t * n_units + u is unit u at timestep t)"
        )
    return n_units, n_timesteps


def activity_var(
    n_units: int, n_timesteps: int, unit_names: Sequence[Any] | np.ndarray | None = None
) -> pd.DataFrame:
    """The ``var`` table of an activity AnnData: one row per (timestep, unit), timestep-major."""
    names = (
        [f"u{u}" for u in range(n_units)] if unit_names is None else [str(u) for u in unit_names]
    )
    if len(names) != n_units:
        raise ValueError(f"unit_names: expected {n_units} names, got {len(names)}")
    if len(set(names)) != n_units:
        raise ValueError("unit_names: the unit names must be unique")
    unit = np.tile(np.asarray(names, dtype=object), n_timesteps)
    timestep = np.repeat(np.arange(n_timesteps), n_units)
    index = (
        list(unit)
        if n_timesteps == 1
        else [f"{u}@t{t}" for u, t in zip(unit, timestep, strict=True)]
    )
    return pd.DataFrame(
        {"unit": pd.Categorical(unit, categories=names), "timestep": timestep},
        index=pd.Index(index),
    )


def activity_anndata(
    bits: np.ndarray,
    n_units: int,
    n_timesteps: int,
    *,
    unit_names: Sequence[Any] | np.ndarray | None = None,
    obs: pd.DataFrame | None = None,
    bin_size: float | None = None,
    record: dict[str, Any] | None = None,
) -> Any:
    """Wrap a binary ``(samples, n_units * n_timesteps)`` matrix as an activity AnnData.

    ``X`` is CSR ``uint8``; ``uns["qsimcells"]`` holds ``record`` plus the ``activity`` layout.
    """
    import anndata as ad
    from scipy import sparse

    from .._version import __version__

    bits = np.asarray(bits, dtype=np.uint8)
    if obs is None:
        obs = pd.DataFrame(index=pd.Index([str(i) for i in range(bits.shape[0])]))
    uns = {
        "version": __version__,
        **(record or {}),
        "activity": {
            "n_units": int(n_units),
            "n_timesteps": int(n_timesteps),
            "bin_size": None if bin_size is None else float(bin_size),
        },
    }
    return ad.AnnData(
        X=sparse.csr_matrix(bits),
        obs=obs,
        var=activity_var(n_units, n_timesteps, unit_names),
        uns={"qsimcells": uns},
    )


def seed_record(root: np.random.SeedSequence) -> int | str:
    """The seed entropy as stored in ``uns`` (an int when it fits, else its string)."""
    entropy = root.entropy
    return int(entropy) if isinstance(entropy, int) and entropy < 2**63 else str(entropy)
