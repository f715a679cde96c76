"""``simulate``: sample a design's circuit and turn the shots into an AnnData of counts."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._utils import RngLike, check_finite, check_positive_int, seed_sequence
from .._version import __version__
from .counts import gated_counts, ungated_counts
from .design import CellCircuit

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 20_000


@dataclass
class _Layout:
    """Where each gene block sits in ``var`` and its NB parameters."""

    design: CellCircuit

    def __post_init__(self) -> None:
        genes = self.design.genes
        self.n_circuit = len(genes)
        self.types = list(self.design.cell_types)
        self.spans = {}  # cell type -> (first, last + 1) qubit
        for t, members in self.design.cell_types.items():
            first = int(genes.at[members[0], "qubit"])
            self.spans[t] = (first, first + len(members))
        hk, bg = self.design.housekeeping, self.design.background
        self.mu = genes["mu"].to_numpy()
        self.r = genes["r"].to_numpy()
        self.extra_mu = np.r_[np.full(hk.n, hk.mu), np.full(bg.n, bg.mu)]
        self.extra_r = np.r_[np.full(hk.n, hk.r), np.full(bg.n, bg.r)]
        self.n_vars = self.n_circuit + hk.n + bg.n

    def var(self) -> pd.DataFrame:
        genes = self.design.genes
        hk, bg = self.design.housekeeping, self.design.background
        names = (self.design.gene_names + self.design.housekeeping_names
                 + self.design.background_names)
        kinds = ["housekeeping"] * hk.n + ["background"] * bg.n
        var = pd.DataFrame(
            {
                "cell_type": pd.Categorical(
                    list(genes["cell_type"]) + kinds,
                    categories=self.types + [k for k in ("housekeeping", "background")
                                             if k in kinds]),
                "housekeeping": np.r_[np.zeros(self.n_circuit, bool), np.ones(hk.n, bool),
                                      np.zeros(bg.n, bool)],
                "background": np.r_[np.zeros(self.n_circuit + hk.n, bool), np.ones(bg.n, bool)],
                "qubit": np.r_[genes["qubit"].to_numpy(), np.full(hk.n + bg.n, -1)],
                "theta": np.r_[genes["theta"].to_numpy(), np.full(hk.n + bg.n, np.nan)],
                "p_on": np.r_[genes["p_on"].to_numpy(), np.ones(hk.n + bg.n)],
                "mu": np.r_[self.mu, self.extra_mu],
                "r": np.r_[self.r, self.extra_r],
                "intervention": pd.Categorical(list(genes["intervention"]) + [""] * (hk.n + bg.n)),
            },
            index=pd.Index(names),
        )
        return var


def _check_batches(batches: Any) -> list[str] | None:
    if batches is None:
        return None
    if isinstance(batches, (int, np.integer)) and not isinstance(batches, bool):
        return [f"batch{i}" for i in range(check_positive_int("batches", batches))]
    if isinstance(batches, Sequence) and not isinstance(batches, str) and len(batches) > 0:
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
        Standard deviation of the log batch factors.
    library_size
        Standard deviation of log per-cell size factors (log-normal with mean 1); ``None`` for
        none.
    chunk_size
        Shots per chunk; memory stays near the size of the output.
    sampler_options
        Options for a named sampler (e.g. ``{"method": "statevector"}`` for ``aer``).
    progress
        Show a progress bar; ``None`` shows it only in an interactive terminal.

    Returns
    -------
    anndata.AnnData
        ``X`` integer counts (CSR), ``layers["binary"]`` the sampled bits, ``obs`` with
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
    batch_scale = check_finite("batch_scale", batch_scale, low=0.0)
    if library_size is not None:
        library_size = check_finite("library_size", library_size, low=0.0)
    if sampler_options is not None and not isinstance(sampler_options, dict):
        raise TypeError("sampler_options: expected a dict of options or None")

    circuit = design.to_qiskit(measure=True)
    sampler_obj, info = resolve_sampler(circuit, sampler=sampler, **(sampler_options or {}))
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
                                       size=(n_types, n_cells)))
                   if library_size is not None else None)

    # pieces[t] = list of (data, indices, nnz per row) for X and for the binary layer
    x_pieces: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(n_types)]
    b_pieces: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(n_types)]
    starts = range(0, n_cells, chunk_size)
    for start, seq in tqdm(list(zip(starts, chunk_seqs)), desc="simulate", unit="chunk",
                           disable=(not progress) if progress is not None else None):
        stop = min(start + chunk_size, n_cells)
        bits_rng, counts_rng = (np.random.default_rng(s) for s in seq.spawn(2))
        bits = validate_bits(sampler_obj.sample(circuit, stop - start, rng=bits_rng),
                             stop - start, circuit.num_qubits, info.name)
        for k, t in enumerate(layout.types):
            scale = None
            if batch_factor is not None or size_factor is not None:
                scale = np.ones((stop - start, layout.n_vars))
                if batch_factor is not None:
                    scale = scale * batch_factor[batch_of_niche[start:stop]]
                if size_factor is not None:
                    scale = scale * size_factor[k, start:stop, None]
            x, b = _type_block(bits, layout, t, counts_rng, scale)
            x_pieces[k].append(x)
            b_pieces[k].append(b)
        del bits

    X = _assemble(_drain(x_pieces), n_cells * n_types, layout.n_vars, np.int32)
    binary = _assemble(_drain(b_pieces), n_cells * n_types, layout.n_vars, np.uint8)

    niche = np.tile(np.arange(n_cells), n_types)
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(np.repeat(layout.types, n_cells), categories=layout.types),
         "niche": niche},
        index=pd.Index([f"{t}_{i}" for t in layout.types for i in range(n_cells)]),
    )
    if batch_names:
        obs["batch"] = pd.Categorical(np.asarray(batch_names)[np.tile(batch_of_niche, n_types)],
                                      categories=batch_names)
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
    adata = ad.AnnData(X=X, obs=obs, var=layout.var(), layers={"binary": binary},
                       uns={"qsimcells": uns})
    return adata


def _type_block(bits: np.ndarray, layout: _Layout, cell_type: str, rng: np.random.Generator,
                scale: np.ndarray | None) -> tuple[tuple, tuple]:
    """Counts and binary rows of one cell type's cells in a chunk, in global gene columns."""
    first, last = layout.spans[cell_type]
    block = bits[:, first:last]
    gated = gated_counts(block, layout.mu[first:last], layout.r[first:last], rng,
                         None if scale is None else scale[:, first:last])
    binary = (np.ones(gated.nnz, np.uint8), gated.indices + first, np.diff(gated.indptr))
    gated.eliminate_zeros()
    n = block.shape[0]
    extra = ungated_counts(n, layout.extra_mu, layout.extra_r, rng,
                           None if scale is None else scale[:, layout.n_circuit:])
    # circuit genes come before housekeeping and background genes, so rows stay sorted
    x = sp.hstack([sp.csr_matrix((gated.data, gated.indices + first, gated.indptr),
                                 shape=(n, layout.n_circuit)),
                   sp.csr_matrix(extra)], format="csr")
    return (x.data, x.indices, np.diff(x.indptr)), binary


def _drain(nested: list[list[tuple]]) -> list[tuple]:
    """Flatten per-type piece lists (types in order) and drop the nested references."""
    flat = [piece for inner in nested for piece in inner]
    nested.clear()
    return flat


def _assemble(pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_rows: int,
              n_cols: int, dtype: type) -> sp.csr_matrix:
    """Concatenate row blocks into one CSR, freeing each block once it is copied, so the peak
    stays near the size of the result (``np.empty`` pages are committed only when written)."""
    nnz = sum(p[0].size for p in pieces)
    index_dtype = np.int32 if max(nnz, n_cols) < 2**31 else np.int64
    data = np.empty(nnz, dtype=dtype)
    indices = np.empty(nnz, dtype=index_dtype)
    indptr = np.zeros(n_rows + 1, dtype=index_dtype)
    at = row = 0
    while pieces:
        values, cols, per_row = pieces.pop(0)
        data[at:at + values.size] = values
        indices[at:at + cols.size] = cols
        indptr[row + 1:row + 1 + per_row.size] = at + np.cumsum(per_row)
        at += values.size
        row += per_row.size
        del values, cols, per_row
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))
