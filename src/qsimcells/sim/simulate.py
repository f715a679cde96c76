"""``simulate``: sample a design's circuit and turn the shots into an AnnData of counts."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._utils import RngLike, check_finite, check_positive_int, seed_sequence
from .._version import __version__
from ._csr import CSRBuilder
from .counts import NBTable, nb_with_effects
from .design import CellCircuit

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 20_000
#: entries handled at once: small enough that the temporaries are reused, not re-mapped
_BLOCK_ENTRIES = 1 << 20


class _Layout:
    """Where each gene block sits in ``var``, its NB parameters, and which columns a cell of
    each type can express."""

    def __init__(self, design: CellCircuit) -> None:
        self.design = design
        genes = design.genes
        hk, bg = design.housekeeping, design.background
        self.types = list(design.cell_types)
        self.n_circuit = len(genes)
        self.n_extra = hk.n + bg.n
        self.mu = np.r_[genes["mu"].to_numpy(), np.full(hk.n, hk.mu), np.full(bg.n, bg.mu)]
        self.r = np.r_[genes["r"].to_numpy(), np.full(hk.n, hk.r), np.full(bg.n, bg.r)]
        self.n_vars = self.mu.size
        self.spans = []  # (first, last + 1) qubit of each cell type
        for members in design.cell_types.values():
            first = int(genes.at[members[0], "qubit"])
            self.spans.append((first, first + len(members)))
        # columns[k] lists the var columns a cell of type k can express: its own circuit genes,
        # then every housekeeping and background gene (ascending, so CSR rows come out sorted);
        # shorter lists are padded and the padding is never marked as expressed
        self.width = max(last - first for first, last in self.spans) + self.n_extra
        self.columns = np.zeros((len(self.types), self.width), dtype=np.int32)
        for k, (first, last) in enumerate(self.spans):
            own = np.r_[first:last, self.n_circuit:self.n_vars]
            self.columns[k, :own.size] = own
        self.p_on = genes["p_on"].to_numpy()
        self._tiled = np.empty(0, dtype=np.int32)

    def tiled_columns(self, n_shots: int) -> np.ndarray:
        """``columns`` repeated for ``n_shots`` niches, flat (reused between blocks)."""
        size = n_shots * self.columns.size
        if self._tiled.size < size:
            self._tiled = np.tile(self.columns.ravel(), n_shots)
        return self._tiled[:size]

    def expressed(self, bits: np.ndarray) -> np.ndarray:
        """``(shots, types, width)`` mask of the entries each cell of each niche expresses."""
        mask = np.zeros((bits.shape[0], len(self.types), self.width), dtype=bool)
        for k, (first, last) in enumerate(self.spans):
            mask[:, k, :last - first] = bits[:, first:last]
            mask[:, k, last - first:last - first + self.n_extra] = True
        return mask

    def var(self) -> pd.DataFrame:
        genes = self.design.genes
        hk, bg = self.design.housekeeping, self.design.background
        names = (self.design.gene_names + self.design.housekeeping_names
                 + self.design.background_names)
        kinds = ["housekeeping"] * hk.n + ["background"] * bg.n
        extra = self.n_extra
        return pd.DataFrame(
            {
                "cell_type": pd.Categorical(
                    list(genes["cell_type"]) + kinds,
                    categories=self.types + [k for k in ("housekeeping", "background")
                                             if k in kinds]),
                "housekeeping": np.r_[np.zeros(self.n_circuit, bool), np.ones(hk.n, bool),
                                      np.zeros(bg.n, bool)],
                "background": np.r_[np.zeros(self.n_circuit + hk.n, bool), np.ones(bg.n, bool)],
                "qubit": np.r_[genes["qubit"].to_numpy(), np.full(extra, -1)],
                "theta": np.r_[genes["theta"].to_numpy(), np.full(extra, np.nan)],
                "p_on": np.r_[self.p_on, np.ones(extra)],
                "mu": self.mu,
                "r": self.r,
                "intervention": pd.Categorical(list(genes["intervention"]) + [""] * extra),
            },
            index=pd.Index(names),
        )


def _check_batches(batches: Any) -> list[str] | None:
    if batches is None:
        return None
    if isinstance(batches, (int, np.integer)) and not isinstance(batches, bool):
        return [f"batch{i}" for i in range(check_positive_int("batches", batches))]
    if isinstance(batches, (Sequence, np.ndarray)) and not isinstance(batches, str) \
            and np.ndim(batches) == 1 and len(batches) > 0:
        names = [str(b) for b in batches]
        if len(set(names)) != len(names):
            raise ValueError(f"batches: batch names must be unique, got {names}")
        return names
    raise ValueError(f"batches: expected None, a number of batches >= 1 or a list of batch "
                     f"names, got {batches!r}")


def simulate(
    design: CellCircuit,
    n_cells: int,
    *,
    sampler: str = "auto",
    rng: RngLike = None,
    batches: int | Sequence[str] | None = None,
    batch_scale: float = 0.3,
    library_size: float | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    sampler_options: dict[str, Any] | None = None,
    progress: bool | None = None,
    **sampler_kwargs: Any,
) -> AnnData:
    """Simulate scRNA-seq counts from a qSimCells design.

    Each shot of the design's circuit yields one cell of every cell type (a *niche*): the cell of
    type ``t`` expresses the genes of ``t`` that are ON in the shot (NB counts), plus every
    housekeeping and background gene; genes of the other types are zero in it.

    Parameters
    ----------
    design
        The design (:class:`~qsimcells.sim.CellCircuit` or a preset).
    n_cells
        Cells per cell type (= shots); the result has ``n_cells * n_cell_types`` observations.
    sampler
        Circuit sampler name, or ``"auto"`` (exact classical path when valid).
    rng
        Seed or generator. The same seed and ``chunk_size`` give the same data, bit for bit.
    batches
        Number of batches or their names. Each niche goes to one batch at random and each batch
        multiplies every gene's mean by its own log-normal factor (``sd = batch_scale``).
    batch_scale
        Standard deviation of the log batch factors (at most 2).
    library_size
        Standard deviation of log per-cell size factors (log-normal with mean 1, at most 2);
        ``None`` for none.
    chunk_size
        Shots per chunk; memory stays near the size of the output.
    sampler_options
        Options for a named sampler (e.g. ``{"method": "statevector"}`` for ``aer``).
    progress
        Show a progress bar; ``None`` shows it only in an interactive terminal.
    **sampler_kwargs
        Sampler options as keywords, merged with ``sampler_options`` (e.g.
        ``simulate(design, 2000, sampler="ibm", backend="fake_manila")``); an option given both
        ways is an error.

    Returns
    -------
    anndata.AnnData
        ``X`` integer counts (CSR), ``layers["binary"]`` the sampled bits, ``obs``
        (niche-major: the cells of one shot are adjacent rows) with
        ``cell_type``, ``niche`` (and ``batch``, ``size_factor``), ``var`` with ``cell_type``,
        ``housekeeping``, ``background``, ``qubit``, ``theta``, ``p_on``, ``mu``, ``r``,
        ``intervention``, and ``uns["qsimcells"]`` with the design (ground truth), the sampler
        that ran, the seed and the package version.
    """
    import anndata as ad
    from tqdm.auto import tqdm

    from ..samplers import resolve_sampler
    from ..samplers._bits import validate_bits

    if not isinstance(design, CellCircuit):
        raise TypeError(f"design: expected a qs.sim.CellCircuit, got {type(design).__name__}")
    n_cells = check_positive_int("n_cells", n_cells)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    batch_names = _check_batches(batches)
    batch_scale = check_finite("batch_scale", batch_scale, low=0.0, high=2.0)
    if library_size is not None:
        library_size = check_finite("library_size", library_size, low=0.0, high=2.0)
    if sampler_options is not None and not isinstance(sampler_options, dict):
        raise TypeError("sampler_options: expected a dict of options or None")
    if sampler_kwargs and sampler == "auto":  # most likely a misspelt argument of simulate
        raise TypeError(f"simulate: unexpected keyword argument(s) {sorted(sampler_kwargs)}; "
                        "other keywords are sampler options, which need a named sampler "
                        "(e.g. sampler='aer')")
    twice = sorted(set(sampler_options or {}) & set(sampler_kwargs))
    if twice:
        raise ValueError(f"sampler_options: {twice} also given as keyword arguments; give each "
                         "option once")
    sampler_options = {**(sampler_options or {}), **sampler_kwargs}

    circuit = design.to_qiskit(measure=True)
    sampler_obj, info = resolve_sampler(circuit, sampler=sampler, **sampler_options)
    logger.info("simulate: %d cells per type with sampler %r (%s)", n_cells, info.name,
                info.reason)

    root = seed_sequence(rng)
    root = np.random.SeedSequence(root.entropy, spawn_key=root.spawn_key)  # fresh spawn counter
    setup_seq, *chunk_seqs = root.spawn(1 + math.ceil(n_cells / chunk_size))
    setup = np.random.default_rng(setup_seq)

    layout = _Layout(design)
    n_types = len(layout.types)
    batch_of_niche = (setup.integers(len(batch_names), size=n_cells)
                      if batch_names else None)
    batch_factor = (np.exp(setup.normal(0.0, batch_scale, size=(len(batch_names),
                                                                   layout.n_vars)))
                    if batch_names else None)
    size_factor = (np.exp(setup.normal(-library_size**2 / 2, library_size,
                                       size=(n_cells, n_types)))
                   if library_size is not None else None)
    effects = _Effects(batch_of_niche, batch_factor, size_factor)
    table = NBTable(layout.mu, layout.r) if not effects else None

    # cells are niche-major: the cells of one shot are adjacent rows (one per cell type)
    n_obs = n_cells * n_types
    max_binary = n_cells * layout.n_circuit
    expected_binary = int(n_cells * layout.p_on.sum())
    X = CSRBuilder(n_obs, layout.n_vars, np.int32, max_binary + n_obs * layout.n_extra,
                   expected_binary + n_obs * layout.n_extra)
    binary = CSRBuilder(n_obs, layout.n_vars, None, max_binary, expected_binary)
    block = max(1, _BLOCK_ENTRIES // (n_types * layout.width))
    starts = range(0, n_cells, chunk_size)
    for start, seq in tqdm(list(zip(starts, chunk_seqs)), desc="simulate", unit="chunk",
                           disable=(not progress) if progress is not None else None):
        stop = min(start + chunk_size, n_cells)
        bits_rng, counts_rng = (np.random.default_rng(s) for s in seq.spawn(2))
        bits = validate_bits(sampler_obj.sample(circuit, stop - start, rng=bits_rng),
                             stop - start, circuit.num_qubits, info.name)
        for first in range(0, stop - start, block):
            _count_block(bits[first:first + block], start + first, layout, table, effects,
                         counts_rng, X, binary)
        del bits

    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(np.tile(layout.types, n_cells), categories=layout.types),
         "niche": np.repeat(np.arange(n_cells), n_types)},
        index=pd.Index([f"{t}_{i}" for i in range(n_cells) for t in layout.types]),
    )
    if batch_names:
        obs["batch"] = pd.Categorical(
            np.asarray(batch_names)[np.repeat(batch_of_niche, n_types)], categories=batch_names)
    if size_factor is not None:
        obs["size_factor"] = size_factor.ravel()

    entropy = root.entropy
    uns = {
        "version": __version__,
        "generator": "qsimcells",
        "design": design.to_dict(),
        "sampler": info.as_dict(),
        "seed": int(entropy) if isinstance(entropy, int) and entropy < 2**63 else str(entropy),
        "n_cells": n_cells,
        "chunk_size": chunk_size,
        "batches": np.asarray(batch_names if batch_names else [], dtype=object),
        "batch_scale": batch_scale,
        "library_size": library_size,
    }
    if batch_factor is not None:
        uns["batch_factors"] = batch_factor
    return ad.AnnData(X=X.finish(), obs=obs, var=layout.var(),
                      layers={"binary": binary.finish()}, uns={"qsimcells": uns})


@dataclass
class _Effects:
    """Optional cell-level effects on the NB means."""

    batch_of_niche: np.ndarray | None
    batch_factor: np.ndarray | None  # (batches, vars)
    size_factor: np.ndarray | None  # (niches, types)

    def __bool__(self) -> bool:
        return self.batch_factor is not None or self.size_factor is not None

    def scale(self, niche: np.ndarray, cell_type: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Multiplier of the mean of each entry."""
        out = np.ones(cols.size)
        if self.batch_factor is not None:
            out *= self.batch_factor[self.batch_of_niche[niche], cols]
        if self.size_factor is not None:
            out *= self.size_factor[niche, cell_type]
        return out


def _count_block(bits: np.ndarray, first_niche: int, layout: _Layout, table: NBTable | None,
                 effects: _Effects, rng: np.random.Generator, X: CSRBuilder,
                 binary: CSRBuilder) -> None:
    """Counts and bits of the cells of a block of niches, appended to the two builders."""
    expressed = layout.expressed(bits)
    per_row = np.count_nonzero(expressed, axis=2).ravel()  # rows: (niche, type), niche-major
    # np.compress is several times faster than boolean indexing for these dense masks
    cols = np.compress(expressed.ravel(), layout.tiled_columns(bits.shape[0]))
    if effects:
        rows = np.repeat(np.arange(per_row.size), per_row)
        niche, cell_type = np.divmod(rows, len(layout.types))
        mu = layout.mu[cols] * effects.scale(first_niche + niche, cell_type, cols)
        values = nb_with_effects(mu, layout.r[cols], rng)
    else:
        values = table.draw(cols, rng)
    binary.append(np.compress(cols < layout.n_circuit, cols), per_row - layout.n_extra)
    keep = values > 0  # an ON gene can still draw a zero count
    last_entry = np.cumsum(per_row) - 1  # of each row; -1 while no row has entries yet
    kept_so_far = (np.cumsum(keep)[np.maximum(last_entry, 0)] * (last_entry >= 0)
                   if keep.size else np.zeros_like(last_entry))
    kept_per_row = np.diff(kept_so_far, prepend=0)
    X.append(np.compress(keep, cols), kept_per_row, np.compress(keep, values))
