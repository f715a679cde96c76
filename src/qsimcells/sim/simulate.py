"""``simulate``: sample a design's circuit and turn the shots into an AnnData of counts."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._utils import (
    RngLike,
    check_choice,
    check_finite,
    check_positive_int,
    child_seeds,
    seed_sequence,
)
from .._version import __version__
from ._csr import CSRBuilder, index_dtype
from .calibrate import CalibratedDesign
from .counts import NBTable, nb_with_effects
from .design import CellCircuit
from .tissue import Tissue

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
            own = np.r_[first:last, self.n_circuit : self.n_vars]
            self.columns[k, : own.size] = own
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
            mask[:, k, : last - first] = bits[:, first:last]
            mask[:, k, last - first : last - first + self.n_extra] = True
        return mask

    def var(self) -> pd.DataFrame:
        genes = self.design.genes
        hk, bg = self.design.housekeeping, self.design.background
        names = (
            self.design.gene_names + self.design.housekeeping_names + self.design.background_names
        )
        kinds = ["housekeeping"] * hk.n + ["background"] * bg.n
        extra = self.n_extra
        return pd.DataFrame(
            {
                "cell_type": pd.Categorical(
                    list(genes["cell_type"]) + kinds,
                    categories=self.types
                    + [k for k in ("housekeeping", "background") if k in kinds],
                ),
                "housekeeping": np.r_[
                    np.zeros(self.n_circuit, bool), np.ones(hk.n, bool), np.zeros(bg.n, bool)
                ],
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


def _check_calibrated_options(**given: Any) -> None:
    """A fitted design brings its own library sizes and cell-type shares: refuse the
    options that would contradict them, or that it cannot take."""
    default = {"library_size": None, "tissue": None, "engine": "memory", "sampler_options": None}
    wrong = sorted(k for k, v in given.items() if k not in default or v != default[k])
    if wrong:
        raise ValueError(
            f"{wrong[0]}: not available for a fitted design (qs.sim.fit_design): "
            "it brings its own library sizes and cell-type shares and runs in "
            "memory; allowed: n_cells, sampler, rng, batches, batch_scale, "
            "chunk_size, progress"
        )


def _check_library_size(value: Any, types: list[str]) -> float | dict[str, float] | None:
    """``None``, one sd of the log size factors for every cell type, or a mapping cell type ->
    sd (each in [0, 2])."""
    if value is None:
        return None
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(types))
        missing = [t for t in types if t not in value]
        if unknown or missing:
            raise ValueError(
                f"library_size: a mapping needs one sd per cell type {types}; "
                f"unknown {unknown}, missing {missing}"
            )
        return {t: check_finite(f"library_size[{t!r}]", value[t], low=0.0, high=2.0) for t in types}
    return check_finite("library_size", value, low=0.0, high=2.0)


def _check_batches(batches: Any) -> list[str] | None:
    if batches is None:
        return None
    if isinstance(batches, (int, np.integer)) and not isinstance(batches, bool):
        return [f"batch{i}" for i in range(check_positive_int("batches", batches))]
    if (
        isinstance(batches, (Sequence, np.ndarray))
        and not isinstance(batches, str)
        and np.ndim(batches) == 1
        and len(batches) > 0
    ):
        names = [str(b) for b in batches]
        if len(set(names)) != len(names):
            raise ValueError(f"batches: batch names must be unique, got {names}")
        return names
    raise ValueError(
        f"batches: expected None, a number of batches >= 1 or a list of batch "
        f"names, got {batches!r}"
    )


ENGINES = ("memory", "dask")


def simulate(
    design: CellCircuit | CalibratedDesign,
    n_cells: int,
    *,
    sampler: str = "auto",
    rng: RngLike = None,
    batches: int | Sequence[str] | None = None,
    batch_scale: float = 0.3,
    library_size: float | dict[str, float] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    engine: str = "memory",
    tissue: Tissue | None = None,
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
        The design (:class:`~qsimcells.sim.CellCircuit` or a preset), or a design fitted to a
        reference (:class:`~qsimcells.sim.CalibratedDesign` from
        :func:`~qsimcells.sim.fit_design`; see :meth:`CalibratedDesign.simulate`).
    n_cells
        Cells per cell type (= shots); the result has ``n_cells * n_cell_types`` observations.
        For a fitted design: cells in all, split as the reference's cell types.
    sampler
        Circuit sampler name, or ``"auto"`` (exact classical path when valid).
    rng
        Seed or generator. The same seed and ``chunk_size`` give the same data, bit for bit, with
        either engine.
    batches
        Number of batches or their names. Each niche goes to one batch at random and each batch
        multiplies every gene's mean by its own log-normal factor (``sd = batch_scale``).
    batch_scale
        Standard deviation of the log batch factors (at most 2).
    library_size
        Standard deviation of log per-cell size factors (log-normal with mean 1, at most 2):
        one number, or a mapping cell type -> sd; ``None`` for none.
    chunk_size
        Shots (niches) per chunk. Each chunk is drawn from its own seed, spawned from ``rng``.
    engine
        ``"memory"``: ``X`` and ``layers["binary"]`` are scipy CSR matrices (memory stays near
        the size of the output). ``"dask"``: they are lazy :mod:`dask.array` arrays of CSR
        chunks, one chunk per ``chunk_size`` niches, computed on the current
        ``dask.distributed`` client if there is one, else on dask's threaded scheduler; see
        :func:`simulate_to_zarr` to write them to disk chunk by chunk.
    tissue
        Place the niches in 2-D tissue (:class:`Tissue`): cell coordinates in micrometres go to
        ``obsm["spatial"]`` and the settings to ``uns["qsimcells"]["tissue"]``. The placement
        is drawn after every other set-up draw, so it changes nothing else of the data.
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
    check_choice("engine", engine, ENGINES)
    if isinstance(design, CalibratedDesign):
        _check_calibrated_options(
            library_size=library_size,
            tissue=tissue,
            engine=engine,
            sampler_options=sampler_options,
            **sampler_kwargs,
        )
        return design.simulate(
            n_cells,
            rng=rng,
            sampler=sampler,
            batches=batches,
            batch_scale=batch_scale,
            chunk_size=chunk_size,
            progress=progress,
        )
    run = Simulation(
        design,
        n_cells,
        sampler=sampler,
        rng=rng,
        batches=batches,
        batch_scale=batch_scale,
        library_size=library_size,
        chunk_size=chunk_size,
        sampler_options=sampler_options,
        sampler_kwargs=sampler_kwargs,
        for_workers=engine == "dask",
        tissue=tissue,
    )
    return _as_anndata(run, engine, progress)


def _as_anndata(run: Simulation, engine: str = "memory", progress: bool | None = None) -> AnnData:
    """The data of a prepared simulation, in memory or as lazy dask arrays."""
    import anndata as ad

    if engine == "dask":
        from .lazy import lazy_matrices

        X, binary = lazy_matrices(run)
    else:
        X, binary = run.in_memory(progress)
    obsm, obsp = run.cell_annotations()
    return ad.AnnData(
        X=X,
        obs=run.obs(),
        var=run.layout.var(),
        layers={"binary": binary},
        obsm=obsm or None,
        obsp=obsp or None,
        uns={"qsimcells": run.uns()},
    )


class Simulation:
    """One simulation, prepared: the sampler, the seeds of every chunk and the cell-level effects.

    Chunk ``i`` covers niches ``[i * chunk_size, (i + 1) * chunk_size)`` and is drawn from its own
    spawned seed only, so chunks can be computed in any order, in any process, and give the same
    data as one in-memory run. Arguments as in :func:`simulate`; ``for_workers`` refuses samplers
    that cannot run in a worker process (credentials, hardware, objects that do not pickle);
    ``batch_columns`` gives each var the column of the batch factors it takes (vars that share
    a column share the factor; default: a column of its own).
    """

    def __init__(
        self,
        design: CellCircuit,
        n_cells: int,
        *,
        sampler: str = "auto",
        rng: RngLike = None,
        batches: int | Sequence[str] | None = None,
        batch_scale: float = 0.3,
        library_size: float | dict[str, float] | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        sampler_options: dict[str, Any] | None = None,
        sampler_kwargs: dict[str, Any] | None = None,
        for_workers: bool = False,
        tissue: Tissue | None = None,
        batch_columns: np.ndarray | None = None,
    ) -> None:
        from ..samplers import resolve_sampler

        if not isinstance(design, CellCircuit):
            raise TypeError(f"design: expected a qs.sim.CellCircuit, got {type(design).__name__}")
        self.n_cells = check_positive_int("n_cells", n_cells)
        self.chunk_size = check_positive_int("chunk_size", chunk_size)
        self.batch_names = _check_batches(batches)
        self.batch_scale = check_finite("batch_scale", batch_scale, low=0.0, high=2.0)
        self.library_size = _check_library_size(library_size, list(design.cell_types))
        sampler_kwargs = sampler_kwargs or {}
        if sampler_options is not None and not isinstance(sampler_options, dict):
            raise TypeError("sampler_options: expected a dict of options or None")
        if sampler_kwargs and sampler == "auto":  # most likely a misspelt argument of simulate
            raise TypeError(
                f"simulate: unexpected keyword argument(s) {sorted(sampler_kwargs)}; "
                "other keywords are sampler options, which need a named sampler "
                "(e.g. sampler='aer')"
            )
        twice = sorted(set(sampler_options or {}) & set(sampler_kwargs))
        if twice:
            raise ValueError(
                f"sampler_options: {twice} also given as keyword arguments; give each option once"
            )
        options = {**(sampler_options or {}), **sampler_kwargs}
        if tissue is not None and not isinstance(tissue, Tissue):
            raise TypeError(
                f"tissue: expected a qs.sim.Tissue or None, got {type(tissue).__name__}"
            )
        if for_workers:
            _check_runs_in_workers(sampler)

        self.design = design
        self.circuit = design.to_qiskit(measure=True)
        self.sampler, self.info = resolve_sampler(self.circuit, sampler=sampler, **options)
        if for_workers:
            _check_pickles(self.sampler, self.info.name)
        logger.info(
            "simulate: %d cells per type with sampler %r (%s)",
            self.n_cells,
            self.info.name,
            self.info.reason,
        )

        self.root = seed_sequence(rng)
        setup_seq, *self.chunk_seeds = child_seeds(self.root, 1 + self.n_chunks)
        setup = np.random.default_rng(setup_seq)

        self.layout = _Layout(design)
        names = self.batch_names
        n_types = len(self.layout.types)
        batch_of_niche = setup.integers(len(names), size=self.n_cells) if names else None
        # one factor per gene: a fitted design's qubits of one gene share their column
        columns = np.arange(self.layout.n_vars) if batch_columns is None else batch_columns
        batch_factor = (
            np.exp(setup.normal(0.0, self.batch_scale, size=(len(names), int(columns.max()) + 1)))[
                :, columns
            ]
            if names
            else None
        )
        size_factor = None
        if library_size is not None:  # log-normal with mean 1: log ~ N(-sd^2 / 2, sd)
            sd = (
                np.array([library_size[t] for t in self.layout.types])
                if isinstance(library_size, dict)
                else np.float64(library_size)
            )
            size_factor = np.exp(setup.normal(-(sd**2) / 2, sd, size=(self.n_cells, n_types)))
        self.tissue = tissue
        # last of the set-up draws, so the placement leaves every other draw as it was
        self.spatial: np.ndarray | None = None  # (cells, 2) positions, with a tissue
        self.domain: np.ndarray | None = None  # each niche's domain code
        if tissue:
            centres, self.spatial = tissue.place_niches(self.n_cells, n_types, setup)
            if tissue.domains:
                self.domain = tissue.domain_of(centres)
        self.lr = _Couplings.draw(
            design, self.layout.types, tissue, self.spatial, self.domain, setup
        )
        self.effects: _Effects | None = _Effects(
            batch_of_niche, batch_factor, size_factor, None if self.lr is None else self.lr.active
        )
        self._circuits: dict[bytes, Any] = {}  # circuit of each pattern of acting LR gates
        self.switched = self._switched_circuit()
        self.table = NBTable(self.layout.mu, self.layout.r) if not self.effects else None

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.n_cells / self.chunk_size)

    @property
    def n_types(self) -> int:
        return len(self.layout.types)

    def niches(self, chunk: int) -> tuple[int, int]:
        """First and last + 1 niche of ``chunk``."""
        start = chunk * self.chunk_size
        return start, min(start + self.chunk_size, self.n_cells)

    def _max_entries(self, n_niches: int) -> tuple[int, int]:
        """Most entries ``X`` and ``binary`` of ``n_niches`` niches can hold."""
        max_binary = n_niches * self.layout.n_circuit
        return max_binary + n_niches * self.n_types * self.layout.n_extra, max_binary

    def index_dtypes(self) -> tuple[type, type]:
        """Index dtypes of ``X`` and ``binary`` of the whole simulation (as in memory)."""
        max_X, max_binary = self._max_entries(self.n_cells)
        return index_dtype(max_X, self.layout.n_vars), index_dtype(max_binary, self.layout.n_vars)

    def _builders(self, n_niches: int) -> tuple[CSRBuilder, CSRBuilder]:
        layout = self.layout
        n_obs = n_niches * self.n_types
        max_X, max_binary = self._max_entries(n_niches)
        expected_binary = int(n_niches * layout.p_on.sum())
        X = CSRBuilder(
            n_obs, layout.n_vars, np.int32, max_X, expected_binary + n_obs * layout.n_extra
        )
        binary = CSRBuilder(n_obs, layout.n_vars, None, max_binary, expected_binary)
        return X, binary

    @property
    def cell_effects(self) -> _Effects:
        """The cell-level effects of every niche; a worker's copy (:meth:`shared`) has none."""
        if self.effects is None:
            raise RuntimeError("a worker's copy of the simulation carries no cell-level effects")
        return self.effects

    def chunk_effects(self, chunk: int) -> _Effects:
        """The cell-level effects of the niches of ``chunk`` alone."""
        return self.cell_effects.rows(*self.niches(chunk))

    def shared(self) -> Simulation:
        """A copy without the cell-level effects, for the workers: each chunk's task carries
        its own rows of them (:meth:`chunk_effects`), so no worker holds the effects of every
        cell (0.8 GB of size factors at 10^8 cells)."""
        plan = copy.copy(self)
        plan.effects = plan.spatial = None
        if plan.lr is not None:  # the plan keeps which gates; each task carries its rows
            plan.lr = dataclasses.replace(plan.lr, probability=None, active=None)
        return plan

    def fill(
        self, chunk: int, X: CSRBuilder, binary: CSRBuilder, effects: _Effects | None = None
    ) -> None:
        """Draw the cells of ``chunk`` and append their rows to the two builders (``effects``:
        the chunk's own, default :meth:`chunk_effects`)."""
        start, stop = self.niches(chunk)
        effects = self.chunk_effects(chunk) if effects is None else effects
        bits_rng, counts_rng = (
            np.random.default_rng(s) for s in child_seeds(self.chunk_seeds[chunk], 2)
        )
        bits = self._bits(stop - start, effects.lr_active, bits_rng)
        block = max(1, _BLOCK_ENTRIES // (self.n_types * self.layout.width))
        for first in range(0, stop - start, block):
            _count_block(
                bits[first : first + block],
                first,
                self.layout,
                self.table,
                effects,
                counts_rng,
                X,
                binary,
            )

    def _switched_circuit(self) -> Any:
        """With couplings in space and a sampler that takes per-shot bits (``given``, as the
        exact sampler does): one circuit whose ligand-receptor gates have a switch qubit as a
        further control; else ``None`` (one circuit per pattern of acting gates)."""
        if self.lr is None or "given" not in inspect.signature(self.sampler.sample).parameters:
            return None
        switched = self.design.to_qiskit(measure=True, switches=True)
        supports = getattr(self.sampler, "supports", None)
        return switched if supports is None or supports(switched) is None else None

    def _bits(
        self, shots: int, lr_active: np.ndarray | None, rng: np.random.Generator
    ) -> np.ndarray:
        """The shots of a chunk. With couplings in space, the switch of each ligand-receptor
        gate is given shot by shot (:meth:`_switched_circuit`), or else the niches of each
        pattern of acting gates come from the circuit of that pattern (one circuit per distinct
        pattern, in sorted order, never one per niche)."""
        from ..samplers._bits import validate_bits

        def sample(circuit: Any, n: int, **given: Any) -> np.ndarray:
            return validate_bits(
                self.sampler.sample(circuit, n, rng=rng, **given),
                n,
                circuit.num_qubits,
                self.info.name,
            )

        if lr_active is None:
            return sample(self.circuit, shots)
        n_genes = self.circuit.num_qubits
        if self.switched is not None:
            switches = {n_genes + k: lr_active[:, k] for k in range(lr_active.shape[1])}
            return np.ascontiguousarray(sample(self.switched, shots, given=switches)[:, :n_genes])
        bits = np.empty((shots, n_genes), dtype=np.uint8)
        patterns, which = np.unique(lr_active, axis=0, return_inverse=True)
        which = which.reshape(-1)
        for k, pattern in enumerate(patterns):
            rows = np.flatnonzero(which == k)
            bits[rows] = sample(self._circuit_for(pattern), rows.size)
        return bits

    def _circuit_for(self, pattern: np.ndarray) -> Any:
        """The circuit in which only the ligand-receptor gates ``pattern`` marks act."""
        key = np.packbits(pattern).tobytes()
        if key not in self._circuits:
            assert self.lr is not None  # patterns exist only with ligand-receptor gates
            design = self.design.without_edges(self.lr.edge_rows[~pattern])
            self._circuits[key] = design.to_qiskit(measure=True)
        return self._circuits[key]

    def chunk(
        self, chunk: int, effects: _Effects | None = None
    ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """``(X, binary)`` CSR rows of one chunk, exactly the rows :meth:`in_memory` has there."""
        start, stop = self.niches(chunk)
        X, binary = self._builders(stop - start)
        self.fill(chunk, X, binary, effects)
        return X.finish(), binary.finish()

    def in_memory(self, progress: bool | None = None) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """All chunks into one pair of CSR matrices, without a second copy of the data."""
        from tqdm.auto import tqdm

        X, binary = self._builders(self.n_cells)
        for chunk in tqdm(
            range(self.n_chunks),
            desc="simulate",
            unit="chunk",
            disable=(not progress) if progress is not None else None,
        ):
            self.fill(chunk, X, binary)
        return X.finish(), binary.finish()

    def obs(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """``obs`` of niches ``[start, stop)`` (cells niche-major: one row per cell type)."""
        stop = self.n_cells if stop is None else stop
        types, names = self.layout.types, self.batch_names
        niche = np.repeat(np.arange(start, stop), len(types))
        type_codes: np.ndarray = np.arange(len(types), dtype=_codes_dtype(len(types)))
        obs = pd.DataFrame(
            {
                "cell_type": pd.Categorical.from_codes(
                    np.tile(type_codes, stop - start), categories=types
                ),
                "niche": niche,
            },
            index=pd.Index([f"{t}_{i}" for i in range(start, stop) for t in types]),
        )
        if names:
            batch_of_niche = self.cell_effects.batch_of_niche
            assert batch_of_niche is not None  # batches were drawn
            batch_codes: np.ndarray = batch_of_niche[niche].astype(_codes_dtype(len(names)))
            obs["batch"] = pd.Categorical.from_codes(batch_codes, categories=names)
        size_factor = self.cell_effects.size_factor
        if size_factor is not None:
            obs["size_factor"] = size_factor[start:stop].ravel()
        if self.domain is not None:
            assert self.tissue is not None  # domains come from the tissue
            domains = self.tissue.domain_names
            obs["domain"] = pd.Categorical.from_codes(self.domain[niche], categories=domains)
        return obs

    def cell_annotations(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``obsm`` and ``obsp`` of the whole simulation: cell coordinates and the truth of
        communication in space (empty without a tissue)."""
        obsm: dict[str, Any] = {}
        obsp: dict[str, Any] = {}
        if self.spatial is not None:
            obsm["spatial"] = self.spatial
        if self.lr is not None:
            obsm["lr_active"] = self.lr.per_cell(self.n_types)
            obsp["lr_coupling"] = self.lr.pairs(self.n_types)
        return obsm, obsp

    def uns(self) -> dict[str, Any]:
        """``uns["qsimcells"]``: the design (ground truth), the sampler, seed and settings."""
        entropy = self.root.entropy
        uns = {
            "version": __version__,
            "generator": "qsimcells",
            "design": self.design.to_dict(),
            "sampler": self.info.as_dict(),
            "seed": int(entropy) if isinstance(entropy, int) and entropy < 2**63 else str(entropy),
            "n_cells": self.n_cells,
            "chunk_size": self.chunk_size,
            "batches": np.asarray(self.batch_names or [], dtype=object),
            "batch_scale": self.batch_scale,
            "library_size": self.library_size,
        }
        if self.cell_effects.batch_factor is not None:
            uns["batch_factors"] = self.cell_effects.batch_factor
        if self.tissue is not None:
            uns["tissue"] = self.tissue.as_dict()
        if self.lr is not None:
            uns["lr_active_edges"] = np.asarray(self.lr.names(self.design), dtype=object)
            uns["lr_sampling"] = (
                "per-shot switch qubits"
                if self.switched is not None
                else "one circuit per pattern of acting gates"
            )
        return uns


def _codes_dtype(n_categories: int) -> type:
    """The smallest signed integer dtype for the codes of ``n_categories`` categories."""
    return next(t for t in (np.int8, np.int16, np.int32) if n_categories <= np.iinfo(t).max)


def _check_runs_in_workers(sampler: str) -> None:
    """Refuse samplers that need an account or hardware: they cannot run in a dask worker."""
    if sampler == "auto":
        return  # auto never picks a sampler that needs credentials
    from ..plugins import get_circuit_sampler

    spec = get_circuit_sampler(sampler).spec
    if spec.needs_credentials:
        raise ValueError(
            f"sampler: {sampler!r} needs credentials or quantum hardware and cannot run in a "
            "dask worker; use engine='memory' for it, or a sampler that runs locally "
            "(e.g. 'exact', 'statevector', 'aer')"
        )


def _check_pickles(sampler: Any, name: str) -> None:
    """A dask.distributed worker gets the sampler by pickling: check it survives that now."""
    import pickle

    try:
        pickle.dumps(sampler)
    except Exception as err:
        raise ValueError(
            f"sampler: {name!r} cannot be sent to a dask worker ({type(err).__name__}:"
            f" {err}); use engine='memory'"
        ) from None


@dataclass
class _Couplings:
    """Ligand-receptor gates whose action depends on the distance of the two cells in a niche."""

    edge_rows: np.ndarray  # rows of the design's edge table that are ligand-receptor gates
    senders: np.ndarray  # cell-type index of each gate's sender (source) and receiver
    receivers: np.ndarray
    # None in a worker's copy (Simulation.shared): each task carries its own rows
    probability: np.ndarray | None  # (niches, gates): exp(-d / interaction_length)
    active: np.ndarray | None  # (niches, gates) bool: the gate acts in that niche

    @classmethod
    def draw(
        cls,
        design: CellCircuit,
        types: list[str],
        tissue: Tissue | None,
        spatial: np.ndarray | None,
        domain: np.ndarray | None,
        rng: np.random.Generator,
    ) -> _Couplings | None:
        if tissue is None or tissue.interaction_length is None:
            return None
        edges = design.edges
        rows = np.flatnonzero((edges["kind"] == "ligand_receptor").to_numpy())
        if rows.size == 0:
            return None
        cell_type = design.genes["cell_type"]
        senders = np.array([types.index(cell_type[g]) for g in edges["source"].iloc[rows]])
        receivers = np.array([types.index(cell_type[g]) for g in edges["target"].iloc[rows]])
        assert spatial is not None  # a tissue placed the niches
        xy = spatial.reshape(-1, len(types), 2)
        distance = np.linalg.norm(xy[:, senders] - xy[:, receivers], axis=-1)
        probability = tissue.coupling(distance)
        if domain is not None:  # switched off outside the interacting domains
            probability *= tissue.communicating(domain)[:, None]
        active = rng.random(probability.shape) < probability
        return cls(rows, senders, receivers, probability, active)

    def names(self, design: CellCircuit) -> list[str]:
        edges = design.edges.iloc[self.edge_rows]
        return [f"{s}->{t}" for s, t in zip(edges["source"], edges["target"], strict=True)]

    def per_cell(self, n_types: int) -> np.ndarray:
        """``active`` repeated for every cell of a niche (rows aligned with ``obs``)."""
        assert self.active is not None  # the coordinating copy
        return np.repeat(self.active, n_types, axis=0)

    def pairs(self, n_types: int) -> sp.csr_matrix:
        """``(cells, cells)`` coupling probability from each sender cell to its receiver cell
        in the same niche, for every pair of cell types some gate joins (zeros not stored)."""
        assert self.probability is not None  # the coordinating copy
        probability = self.probability
        n_niches = probability.shape[0]
        base = np.arange(n_niches) * n_types
        rows, cols, values = [], [], []
        seen = set()
        for k, (a, b) in enumerate(zip(self.senders, self.receivers, strict=True)):
            if (a, b) in seen:  # same two cells, same distance: one entry
                continue
            seen.add((a, b))
            rows.append(base + a)
            cols.append(base + b)
            values.append(probability[:, k])
        n = n_niches * n_types
        pairs = sp.csr_matrix(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )
        pairs.eliminate_zeros()  # niches where communication is switched off
        return pairs


@dataclass
class _Effects:
    """Optional cell-level effects on the NB means."""

    batch_of_niche: np.ndarray | None
    batch_factor: np.ndarray | None  # (batches, vars)
    size_factor: np.ndarray | None  # (niches, types)
    lr_active: np.ndarray | None = None  # (niches, LR gates): which gates act in each niche

    def __bool__(self) -> bool:
        return self.batch_factor is not None or self.size_factor is not None

    def rows(self, start: int, stop: int) -> _Effects:
        """The effects of niches ``[start, stop)``, indexed from 0."""

        def part(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[start:stop]

        return _Effects(
            part(self.batch_of_niche),
            self.batch_factor,
            part(self.size_factor),
            part(self.lr_active),
        )

    def scale(self, niche: np.ndarray, cell_type: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Multiplier of the mean of each entry."""
        out = np.ones(cols.size)
        if self.batch_factor is not None:
            assert self.batch_of_niche is not None  # drawn with the factors
            out *= self.batch_factor[self.batch_of_niche[niche], cols]
        if self.size_factor is not None:
            out *= self.size_factor[niche, cell_type]
        return out


def _count_block(
    bits: np.ndarray,
    first_niche: int,
    layout: _Layout,
    table: NBTable | None,
    effects: _Effects,
    rng: np.random.Generator,
    X: CSRBuilder,
    binary: CSRBuilder,
) -> None:
    """Counts and bits of the cells of a block of niches, appended to the two builders
    (``first_niche``: the block's first niche in the rows of ``effects``)."""
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
        assert table is not None  # without effects every gene has its fixed table
        values = table.draw(cols, rng)
    binary.append(np.compress(cols < layout.n_circuit, cols), per_row - layout.n_extra)
    keep = values > 0  # an ON gene can still draw a zero count
    last_entry = np.cumsum(per_row) - 1  # of each row; -1 while no row has entries yet
    kept_so_far = (
        np.cumsum(keep)[np.maximum(last_entry, 0)] * (last_entry >= 0)
        if keep.size
        else np.zeros_like(last_entry)
    )
    kept_per_row = np.diff(kept_so_far, prepend=0)
    X.append(np.compress(keep, cols), kept_per_row, np.compress(keep, values))
