"""Spike-time files and their binning into binary activity AnnData.

The file format (:func:`read_spike_times`, :func:`write_spike_times`) is one spike per row with
the columns ``unit`` (any label), ``time`` (a number, in the unit of ``bin_size``, usually
seconds) and optionally ``trial`` (a label; times are then relative to the start of the trial,
as for repeated presentations of a stimulus):

- ``.csv`` (comma), ``.tsv`` (tab) or ``.txt`` (any whitespace): a header line naming the
  columns, in any order; lines starting with ``#`` are comments; other columns are ignored.
- ``.npz``: arrays ``unit``, ``time`` and optionally ``trial``, all of one length.

:func:`bin_spike_times` turns spikes into bins of ``bin_size`` (1: at least one spike in the
bin), and cuts each trial's bins into windows of ``n_timesteps`` consecutive bins, one sample
(row) per window, timestep-major as SpiQGAN and :func:`qsimcells.tl.spike_statistics` expect.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._utils import check_finite, check_positive_int
from ._activity import activity_anndata

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

__all__ = ["bin_spike_times", "read_spike_times", "write_spike_times"]

logger = logging.getLogger(__name__)

_TEXT_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": r"\s+"}
_COLUMNS = ("unit", "time", "trial")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (*_TEXT_SEPARATORS, ".npz"):
        raise ValueError(
            f"path: unknown format {suffix!r}; use one of {[*_TEXT_SEPARATORS, '.npz']}"
        )
    return suffix


def _spike_table(times: Any, units: Any, trials: Any = None) -> pd.DataFrame:
    """Validated spikes as a DataFrame with columns unit, time (and trial)."""
    time = np.asarray(times)
    unit = np.asarray(units)
    if time.ndim != 1 or unit.ndim != 1:
        raise ValueError(
            f"spike_times, unit_ids: expected 1-D arrays, got shapes {time.shape} and {unit.shape}"
        )
    if time.size != unit.size:
        raise ValueError(
            f"unit_ids: has {unit.size} entries for {time.size} spike times; "
            "give one unit per spike"
        )
    try:
        time = time.astype(np.float64)
    except (TypeError, ValueError):
        raise TypeError("spike_times: expected numbers") from None
    if not np.isfinite(time).all():
        raise ValueError("spike_times: contains NaN or infinite values")
    table = pd.DataFrame({"unit": unit, "time": time})
    if trials is not None:
        trial = np.asarray(trials)
        if trial.shape != time.shape:
            raise ValueError(
                f"trials: has shape {trial.shape}, expected {time.shape} (one "
                "trial label per spike)"
            )
        table["trial"] = trial
    return table


def read_spike_times(path: str | os.PathLike) -> pd.DataFrame:
    """Read a spike-time file (format in :mod:`qsimcells.datasets.spikes`).

    Parameters
    ----------
    path
        A ``.csv``, ``.tsv``, ``.txt`` or ``.npz`` file.

    Returns
    -------
    pandas.DataFrame
        One row per spike, columns ``unit``, ``time`` and, when the file has one, ``trial``.
    """
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {str(path)!r}")
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            columns = {key: npz[key] for key in _COLUMNS if key in npz.files}
        found = sorted(columns)
    else:
        frame = pd.read_csv(
            path,
            sep=_TEXT_SEPARATORS[suffix],
            comment="#",
            skipinitialspace=True,
            float_precision="round_trip",
        )
        frame.columns = [str(c).strip() for c in frame.columns]
        columns = {key: frame[key].to_numpy() for key in _COLUMNS if key in frame.columns}
        found = list(frame.columns)
    missing = [key for key in ("unit", "time") if key not in columns]
    if missing:
        raise ValueError(
            f"{path.name}: missing column(s) {missing}; found {found} (a spike "
            "file needs 'unit' and 'time', and may have 'trial')"
        )
    return _spike_table(columns["time"], columns["unit"], columns.get("trial"))


def write_spike_times(
    path: str | os.PathLike, spike_times: Any, unit_ids: Any, *, trials: Any = None
) -> Path:
    """Write spikes in the format :func:`read_spike_times` reads (chosen by the suffix).

    Parameters
    ----------
    path
        Output file: ``.csv``, ``.tsv``, ``.txt`` or ``.npz``.
    spike_times
        Spike times, 1-D.
    unit_ids
        The unit of each spike, 1-D of the same length.
    trials
        Optional trial label of each spike.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    suffix = _suffix(path)
    table = _spike_table(spike_times, unit_ids, trials)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npz":
        arrays = {}
        for key in table.columns:
            values = table[key].to_numpy()
            arrays[key] = values.astype(str) if values.dtype == object else values
        np.savez(path, **arrays)
    else:
        sep = " " if suffix == ".txt" else _TEXT_SEPARATORS[suffix]
        if suffix == ".txt" and table["unit"].astype(str).str.contains(r"\s").any():
            raise ValueError("unit_ids: labels with spaces cannot be written to .txt; use .csv")
        table.to_csv(path, sep=sep, index=False)  # shortest round-trip float repr
    return path


def bin_spike_times(
    spike_times: Any,
    unit_ids: Any = None,
    *,
    bin_size: float,
    t_start: float = 0.0,
    t_stop: float | None = None,
    n_timesteps: int = 1,
    stride: int | None = None,
    trials: Any = None,
    units: Any = None,
) -> AnnData:
    """Bin spike times into a binary activity AnnData of windows of ``n_timesteps`` bins.

    Parameters
    ----------
    spike_times
        Spike times (1-D), or the DataFrame of :func:`read_spike_times` (then ``unit_ids`` and
        ``trials`` come from its columns).
    unit_ids
        The unit of each spike.
    bin_size
        Bin width, in the unit of the times.
    t_start, t_stop
        The binned interval ``[t_start, t_stop)`` (of each trial). ``t_stop=None``: up to the
        last spike (the last, possibly partial, bin is kept); otherwise only whole bins.
        Spikes outside are dropped and counted in ``uns``.
    n_timesteps
        Consecutive bins per sample.
    stride
        Bins between the starts of consecutive windows (default ``n_timesteps``:
        non-overlapping). Windows never cross a trial boundary.
    trials
        Trial label of each spike (times relative to the trial's start). ``None``: one trial.
    units
        Units to keep, in column order (default: every unit that spikes, sorted).

    Returns
    -------
    anndata.AnnData
        ``X``: CSR ``uint8`` ``(windows, n_units * n_timesteps)``, timestep-major (column
        ``t * n_units + u``); ``obs``: ``trial``, ``t_start`` (window start); ``var``: ``unit``,
        ``timestep``; ``uns["qsimcells"]``: the binning settings, the number of dropped spikes
        and of bins that held more than one spike (binarised to 1).
    """
    if isinstance(spike_times, pd.DataFrame):
        if unit_ids is not None or trials is not None:
            raise ValueError(
                "unit_ids, trials: taken from the DataFrame's columns; do not pass them as well"
            )
        missing = [key for key in ("unit", "time") if key not in spike_times.columns]
        if missing:
            raise ValueError(f"spike_times: DataFrame lacks column(s) {missing}")
        frame = spike_times
        table = _spike_table(
            frame["time"].to_numpy(),
            frame["unit"].to_numpy(),
            frame["trial"].to_numpy() if "trial" in frame.columns else None,
        )
    else:
        if unit_ids is None:
            raise ValueError(
                "unit_ids: give the unit of each spike (or pass a DataFrame with "
                "'unit' and 'time' columns)"
            )
        table = _spike_table(spike_times, unit_ids, trials)
    bin_size = check_finite("bin_size", bin_size, low=0.0, low_open=True)
    t_start = check_finite("t_start", t_start)
    n_timesteps = check_positive_int("n_timesteps", n_timesteps)
    stride = n_timesteps if stride is None else check_positive_int("stride", stride)

    if units is None:
        unit_names = np.array(
            sorted(pd.unique(table["unit"]), key=lambda u: (str(type(u)), u)), dtype=object
        )
    else:
        unit_names = np.asarray(units, dtype=object).ravel()
        if len(set(unit_names.tolist())) != unit_names.size:
            raise ValueError("units: contains duplicates")
    if unit_names.size == 0:
        raise ValueError("spike_times: no spikes, so no units; pass units= to bin silent units")
    n_units = unit_names.size

    if t_stop is None:
        last = table["time"].max() if len(table) else t_start
        n_bins = max(1, int(np.floor(np.round((last - t_start) / bin_size, 9))) + 1)
    else:
        t_stop = check_finite("t_stop", t_stop)
        if t_stop <= t_start:
            raise ValueError(f"t_stop: must exceed t_start={t_start}, got {t_stop}")
        n_bins = int(np.floor(np.round((t_stop - t_start) / bin_size, 9)))
    if n_bins < n_timesteps:
        raise ValueError(
            f"n_timesteps: {n_timesteps} bins per window, but the interval holds "
            f"only {n_bins} bins of {bin_size}"
        )

    column = pd.Index(unit_names).get_indexer(table["unit"].to_numpy(dtype=object))
    # a small rounding guard so that a spike at exactly k * bin_size lands in bin k
    bin_index = np.floor(np.round((table["time"].to_numpy() - t_start) / bin_size, 9))
    keep = (column >= 0) & (bin_index >= 0) & (bin_index < n_bins)
    dropped = int((~keep & (column >= 0)).sum())
    if units is not None and (column < 0).any():
        logger.info(
            "bin_spike_times: %d spikes of units not in `units` ignored", int((column < 0).sum())
        )

    if "trial" in table.columns:
        trial_names = pd.unique(table["trial"])
        trial_of = pd.Index(trial_names).get_indexer(table["trial"].to_numpy())
    else:
        trial_names = np.array([0])
        trial_of = np.zeros(len(table), dtype=np.int64)
    counts = np.zeros((trial_names.size, n_bins, n_units), dtype=np.int64)
    np.add.at(counts, (trial_of[keep], bin_index[keep].astype(np.int64), column[keep]), 1)
    binary = (counts > 0).astype(np.uint8)

    starts = np.arange(0, n_bins - n_timesteps + 1, stride)
    windows = binary[:, starts[:, None] + np.arange(n_timesteps)]  # (trials, windows, T, units)
    bits = windows.reshape(trial_names.size * starts.size, n_timesteps * n_units)
    obs = pd.DataFrame(
        {
            "trial": np.repeat(np.asarray(trial_names, dtype=object).astype(str), starts.size),
            "t_start": np.tile(t_start + starts * bin_size, trial_names.size),
        }
    )
    obs.index = pd.Index(
        [f"{t}_{k}" for t, k in zip(obs["trial"], np.tile(starts, trial_names.size), strict=True)]
    )
    obs["trial"] = pd.Categorical(obs["trial"])
    record = {
        "generator": "bin_spike_times",
        "n_spikes": int(keep.sum()),
        "dropped_spikes": dropped,
        "multi_spike_bins": int((counts > 1).sum()),
        "t_start": t_start,
        "n_bins": n_bins,
        "stride": stride,
        "n_trials": int(trial_names.size),
    }
    return activity_anndata(
        bits, n_units, n_timesteps, unit_names=unit_names, obs=obs, bin_size=bin_size, record=record
    )
