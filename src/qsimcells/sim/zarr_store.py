"""``simulate_to_zarr``: an atlas-sized simulation written chunk by chunk to a zarr AnnData store.

The chunks are computed in parallel, a few ahead of the writer (on the current
``dask.distributed`` client when there is one, otherwise on local threads), and appended in order
with anndata's own writers: ``anndata.io.write_elem`` for the first chunk, then
``anndata.io.sparse_dataset(...).append`` for ``X`` and ``layers["binary"]`` and the same
resize-and-write for the columns of ``obs``. So the writing process holds only a few chunks, never
the whole matrix or the whole ``obs``.

Crash safety: everything is written under ``<store>.partial``, whose root carries an encoding
anndata refuses to read, and a small progress file (written by rename) records how many chunks are
complete and which simulation they belong to. Only a finished store is renamed to ``<store>``. A
rerun of the same simulation (same design, seed and settings) truncates the partial store to its
last complete chunk and finishes it; a different simulation is refused. Zarr's local store
replaces each file by rename, so a kill never leaves a half-written chunk file behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import scipy.sparse as sp

from .._utils import RngLike, check_positive_int
from .._version import __version__
from .backed import _PARTIAL_ENCODING  # anndata refuses to read a root with it
from .design import CellCircuit
from .lazy import compute_chunk
from .simulate import DEFAULT_CHUNK_SIZE, Simulation
from .tissue import Tissue

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
PROGRESS_FILE = "qsimcells-progress.json"
#: entries per zarr chunk of data / indices / indptr (4 MiB of int32 before compression)
ZARR_CHUNK = 1 << 20
_MATRICES = ("X", "layers/binary")


def simulate_to_zarr(
    design: CellCircuit,
    n_cells: int,
    store: str | os.PathLike[str],
    *,
    sampler: str = "auto",
    rng: RngLike = None,
    batches: int | Sequence[str] | None = None,
    batch_scale: float = 0.3,
    library_size: float | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    tissue: Tissue | None = None,
    overwrite: bool = False,
    n_ahead: int | None = None,
    sampler_options: dict[str, Any] | None = None,
    progress: bool | None = None,
    **sampler_kwargs: Any,
) -> Path:
    """Simulate like :func:`simulate` and write the AnnData to a zarr store, chunk by chunk.

    The store holds the same data as ``simulate(design, n_cells, rng=rng, chunk_size=chunk_size,
    ...)`` bit for bit, and reads back with ``anndata.read_zarr``,
    ``anndata.experimental.read_lazy`` (``X`` as dask) or :func:`qsimcells.sim.read_backed`
    (``X`` on disk, for training).

    Parameters
    ----------
    design, n_cells, sampler, rng, batches, batch_scale, library_size, chunk_size, tissue
        As in :func:`simulate`. A sampler that needs credentials or hardware is refused. With
        a ``tissue``, ``obsm`` (``spatial``, ``lr_active``) and ``obsp`` (``lr_coupling``)
        are placed before the first chunk is drawn and written whole with it: they take
        ``n_cells * n_types * (16 + LR gates)`` bytes of memory, plus the stored couplings.
    store
        Path of the zarr store (a directory) to create.
    overwrite
        Replace an existing store at ``store``; without it an existing store is an error.
    n_ahead
        Chunks computed ahead of the writer (default: the number of dask worker threads, or of
        CPU cores, plus one). Memory holds about ``n_ahead + 1`` chunks.
    sampler_options, **sampler_kwargs
        Options of a named sampler, as in :func:`simulate`.
    progress
        Show a progress bar; ``None`` shows it only in an interactive terminal.

    Returns
    -------
    pathlib.Path
        The finished store.

    Notes
    -----
    The work goes to the current ``dask.distributed`` client when one exists
    (``Client(LocalCluster(n_workers=2))`` on one machine, or a client of a multi-node cluster:
    the same call), otherwise to a local thread pool. Only this process writes, so the store must
    be on a file system it can reach; the workers need no access to it.

    An interrupted run leaves ``<store>.partial``; running the same call again (same seed,
    design and settings) finishes it, and a different call is refused until the partial store is
    removed or ``overwrite=True`` is given.
    """
    import anndata as ad
    import zarr
    from tqdm.auto import tqdm

    target = _check_target(store, overwrite)
    if n_ahead is not None:
        check_positive_int("n_ahead", n_ahead)
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
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
        for_workers=True,
        tissue=tissue,
    )
    identity = _fingerprint(run)
    done = _resume_point(partial, identity, run, overwrite)
    if done:
        logger.info(
            "simulate_to_zarr: resuming %s after %d of %d chunks", partial, done, run.n_chunks
        )

    heap = _GlibcHeap()
    bar = tqdm(
        total=run.n_chunks,
        initial=done,
        desc="simulate_to_zarr",
        unit="chunk",
        disable=(not progress) if progress is not None else None,
    )
    root = None
    with bar:
        for chunk, (X, binary) in _computed(run, range(done, run.n_chunks), n_ahead):
            if chunk == 0:
                root = _create(partial, run, X, binary)
            else:
                root = root if root is not None else zarr.open_group(partial, mode="r+")
                for key, matrix in zip(_MATRICES, (X, binary), strict=True):
                    ad.io.sparse_dataset(root[key]).append(matrix)
                _append_frame(root["obs"], run.obs(*run.niches(chunk)))
            del X, binary
            heap.trim()
            _write_progress(partial, identity, chunk + 1)
            bar.update()
    return _finish(partial, target, run, overwrite)


# --------------------------------------------------------------------------------------------
# the target path, the identity of a run and the progress record


def _check_target(store: Any, overwrite: bool) -> Path:
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"store: expected a path, got {type(store).__name__}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite: expected True or False, got {overwrite!r}")
    target = Path(store).expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise ValueError(
            f"store: {str(target)!r} is an existing file, not a zarr store; choose another path"
        )
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"store: {str(target)!r} already exists; pass overwrite=True to replace it"
        )
    if not target.parent.is_dir():
        raise ValueError(f"store: the folder {str(target.parent)!r} does not exist")
    if not os.access(target.parent, os.W_OK):
        raise PermissionError(f"store: the folder {str(target.parent)!r} is not writable")
    return target


def _fingerprint(run: Simulation) -> dict[str, Any]:
    """What makes two runs write the same store; a partial store is resumed only by its own."""
    entropy = run.root.entropy
    return {
        "design": run.design.digest(),
        "seed": str(entropy),
        "n_cells": run.n_cells,
        "chunk_size": run.chunk_size,
        "batches": run.batch_names,
        "batch_scale": run.batch_scale,
        "library_size": run.library_size,
        "tissue": None if run.tissue is None else run.tissue.key(),
        "sampler": run.info.as_dict(),
        "version": __version__,
    }


def _write_progress(partial: Path, identity: dict[str, Any], chunks_done: int) -> None:
    """Record ``chunks_done`` after its data is on disk: write a temporary file, then rename."""
    path = partial / PROGRESS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"identity": identity, "chunks_done": chunks_done}))
    os.replace(tmp, path)


def _resume_point(partial: Path, identity: dict[str, Any], run: Simulation, overwrite: bool) -> int:
    """Chunks already complete in ``partial`` (0 for a fresh start); refuses a foreign one."""
    if not partial.exists():
        return 0
    record = None
    with contextlib.suppress(OSError, ValueError):
        record = json.loads((partial / PROGRESS_FILE).read_text())
    if record is not None and record.get("identity") == identity:
        done = int(record["chunks_done"])
        if done > 0:
            _truncate(partial, run, done)
            return done
    elif not overwrite:
        theirs = (record or {}).get("identity", {})
        hint = (
            f" (it was written with seed {theirs['seed']}: pass rng={theirs['seed']} "
            "with the same settings to finish it)"
            if theirs.get("seed") and theirs.get("seed") != identity["seed"]
            else ""
        )
        raise FileExistsError(
            f"store: an unfinished store of a different simulation is at {str(partial)!r}"
            f"{hint}; remove it or pass overwrite=True to start again"
        )
    shutil.rmtree(partial)  # nothing complete in it, or overwrite=True
    return 0


def _truncate(partial: Path, run: Simulation, chunks_done: int) -> None:
    """Cut every appended array back to the end of chunk ``chunks_done`` (a killed append may
    have grown some of them further)."""
    import zarr

    # anndata's layout (groups of arrays by name), which zarr's own types cannot know
    root: Any = zarr.open_group(partial, mode="r+")
    rows = run.niches(chunks_done - 1)[1] * run.n_types
    for key in _MATRICES:
        group = root[key]
        indptr = group["indptr"]
        if indptr.shape[0] < rows + 1:
            raise ValueError(
                f"store: the unfinished store at {str(partial)!r} is damaged "
                f"({key} has fewer rows than its progress record); remove it"
            )
        indptr.resize((rows + 1,))
        nnz = int(indptr[rows])
        group["data"].resize((nnz,))
        group["indices"].resize((nnz,))
        group.attrs["shape"] = [rows, run.layout.n_vars]
    for array in _frame_arrays(root["obs"]):
        array.resize((rows,))


# --------------------------------------------------------------------------------------------
# computing chunks ahead of the writer


def _computed(
    run: Simulation, chunks: range, n_ahead: int | None
) -> Iterator[tuple[int, tuple[sp.csr_matrix, sp.csr_matrix]]]:
    """``(chunk, (X, binary))`` in chunk order, computed up to ``n_ahead`` chunks ahead."""
    client = _current_client()
    if client is not None:
        # one copy of the plan per worker, not one per task; each task carries its own rows of
        # the cell effects
        plan = client.scatter(run.shared(), broadcast=True)

        def submit(chunk: int) -> Any:
            return client.submit(compute_chunk, plan, chunk, run.chunk_effects(chunk), pure=False)

        ahead = n_ahead or sum(client.nthreads().values()) + 1
        pool = None
    else:
        from concurrent.futures import ThreadPoolExecutor

        threads = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else (os.cpu_count() or 1)
        )
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="qsimcells-chunk")

        def submit(chunk: int) -> Any:
            return pool.submit(run.chunk, chunk)

        ahead = n_ahead or threads + 1
    pending: deque = deque()
    try:
        for chunk in chunks:
            pending.append((chunk, submit(chunk)))
            if len(pending) > ahead:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        for _, future in pending:
            future.cancel()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class _GlibcHeap:
    """Keeps the writer's memory flat over thousands of chunks (glibc only; a no-op elsewhere).

    glibc raises its mmap threshold after each large free, so chunk-sized buffers (the bits, the
    per-block draws) come from the worker threads' heaps, which fragment: the writer grew by
    about 2 MB per chunk (1.0 -> 1.2 GB over 120 chunks of 20,000 niches of the 1,000-gene
    benchmark design). Fixing the threshold at glibc's own maximum (32 MiB, so the heap still
    serves the per-block buffers) and trimming the heaps after each chunk keeps it flat at
    0.83 GB at the same speed; a 1 MiB threshold is also flat but 50% slower (fresh pages for
    every block). The threshold is the process's malloc policy, as
    ``MALLOC_MMAP_THRESHOLD_=33554432`` would set it, and stays set.
    """

    M_MMAP_THRESHOLD = -3

    def __init__(self) -> None:
        import ctypes

        self._trim: Any = None  # glibc's malloc_trim, or None off glibc
        try:  # the C library's symbols, already loaded into the process (find_library would
            # run ldconfig in a subprocess)
            libc = ctypes.CDLL(None)
            self._trim, mallopt = libc.malloc_trim, libc.mallopt
        except (OSError, AttributeError):  # not glibc
            return
        mallopt(self.M_MMAP_THRESHOLD, 32 << 20)

    def trim(self) -> None:
        """Return the freed pages of every heap to the system."""
        if self._trim is not None:
            self._trim(0)


def _current_client() -> Any:
    """The current ``dask.distributed`` client, or ``None``."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:  # no client
        return None


# --------------------------------------------------------------------------------------------
# writing


def _with_index_dtype(matrix: sp.csr_matrix, dtype: type) -> sp.csr_matrix:
    """The first chunk fixes the dtype of the stored ``indices`` and ``indptr`` (later appends
    are cast to it): that of the whole matrix in memory, int64 for both once it can pass 2**31
    entries (anndata's ``append`` refuses to outgrow a 32-bit indptr, scipy wants one dtype)."""
    matrix.indices = matrix.indices.astype(dtype, copy=False)
    matrix.indptr = matrix.indptr.astype(dtype, copy=False)
    return matrix


def _create(partial: Path, run: Simulation, X: sp.csr_matrix, binary: sp.csr_matrix) -> Any:
    """A fresh partial store holding chunk 0, ``var`` and ``uns``."""
    import anndata as ad
    import zarr

    if partial.exists():
        shutil.rmtree(partial)
    root = zarr.open_group(partial, mode="w-", zarr_format=ad.settings.zarr_write_format)
    first = ad.AnnData(
        obs=run.obs(*run.niches(0)), var=run.layout.var(), uns={"qsimcells": run.uns()}
    )
    ad.io.write_elem(root, "/", first)
    # reopen: a zarr group caches its attributes, and anndata wrote the root's through another
    root = zarr.open_group(partial, mode="r+")
    root.attrs["encoding-type"] = _PARTIAL_ENCODING  # unreadable until finished
    chunks = {"chunks": (ZARR_CHUNK,)}
    for key, matrix, dtype in zip(_MATRICES, (X, binary), run.index_dtypes(), strict=True):
        ad.io.write_elem(root, key, _with_index_dtype(matrix, dtype), dataset_kwargs=chunks)
    obsm, obsp = run.cell_annotations()  # all rows: placed before any chunk was drawn
    for group, elems in (("obsm", obsm), ("obsp", obsp)):
        for name, value in elems.items():
            ad.io.write_elem(
                root[group],
                name,
                value,
                dataset_kwargs=chunks
                if sp.issparse(value)
                else {"chunks": (ZARR_CHUNK, *value.shape[1:])},
            )
    return root


def _frame_arrays(group: Any) -> list[Any]:
    """The row arrays of an anndata dataframe group: the index, each column (a categorical's
    codes)."""
    arrays = []
    for name in [group.attrs["_index"], *group.attrs["column-order"]]:
        member = group[name]
        arrays.append(
            member["codes"] if member.attrs.get("encoding-type") == "categorical" else member
        )
    return arrays


def _append_frame(group: Any, frame: pd.DataFrame) -> None:
    """Append the rows of ``frame`` to the dataframe ``group`` that anndata wrote from a frame of
    the same columns and categories (resize, then write the new rows, as anndata's sparse
    ``append`` does)."""
    columns = [group.attrs["_index"], *group.attrs["column-order"]]
    values = [frame.index.to_numpy()] + [
        frame[c].cat.codes.to_numpy()
        if isinstance(frame[c].dtype, pd.CategoricalDtype)
        else frame[c].to_numpy()
        for c in columns[1:]
    ]
    for array, new in zip(_frame_arrays(group), values, strict=True):
        old = array.shape[0]
        array.resize((old + len(new),))
        array[old:] = new


def _finish(partial: Path, target: Path, run: Simulation, overwrite: bool) -> Path:
    """Check the row counts, drop the progress file, consolidate and rename into place."""
    import zarr

    root: Any = zarr.open_group(partial, mode="r+")  # anndata's layout, as in _truncate
    n_obs = run.n_cells * run.n_types
    for key in _MATRICES:
        shape = tuple(root[key].attrs["shape"])
        if shape != (n_obs, run.layout.n_vars) or root[key]["indptr"].shape[0] != n_obs + 1:
            raise RuntimeError(
                f"simulate_to_zarr: {key} has shape {shape}, expected "
                f"{(n_obs, run.layout.n_vars)}; the store at {str(partial)!r} is "
                "kept for inspection"
            )
    if any(a.shape[0] != n_obs for a in _frame_arrays(root["obs"])):
        raise RuntimeError(f"simulate_to_zarr: obs does not have {n_obs} rows")
    for name, array in root["obsm"].arrays():  # the tissue's, written with chunk 0
        if array.shape[0] != n_obs:
            raise RuntimeError(f"simulate_to_zarr: obsm[{name!r}] does not have {n_obs} rows")
    root.attrs["encoding-type"] = "anndata"
    with warnings.catch_warnings():  # the progress file is not part of the zarr hierarchy
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        zarr.consolidate_metadata(str(partial))
    old = None
    if target.exists():  # overwrite=True was checked at the start
        if not overwrite:
            raise FileExistsError(
                f"store: {str(target)!r} appeared while writing; the new store "
                f"is kept at {str(partial)!r}"
            )
        old = target.with_name(f"{target.name}.replaced-{os.getpid()}")
        os.rename(target, old)
    os.rename(partial, target)
    # a kill before this line leaves a complete store with a stray progress file: harmless
    (target / PROGRESS_FILE).unlink()
    if old is not None:
        shutil.rmtree(old)
    return target
