"""The lazy engine of ``simulate``: ``X`` and ``layers["binary"]`` as dask arrays of CSR chunks.

One dask task per chunk draws that chunk's cells from its own spawned seed
(:meth:`Simulation.chunk`) and returns both matrices; ``X`` and ``binary`` take their part of it,
so computing the two together runs each chunk once. Whatever scheduler dask is set to runs the
tasks: the current ``dask.distributed`` client if there is one (a ``LocalCluster`` or a cluster of
many machines), otherwise the threaded scheduler.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:  # pragma: no cover
    import dask.array as da

    from .simulate import Simulation


def _import_dask():
    try:
        import dask
        import dask.array as da
    except ImportError as err:  # pragma: no cover - dask is in the `atlas` extra
        raise ImportError(
            "engine='dask' needs dask: pip install 'qsimcells[atlas]' "
            "(dask[array,distributed] and zarr)"
        ) from err
    return dask, da


def _token(run: Simulation) -> str:
    """Same simulation (design, seed, settings) -> same dask key names, so dask can share
    results between two lazy AnnData of the same run."""
    digest = hashlib.sha1(
        repr(
            (
                run.design.digest(),
                run.root.entropy,
                run.root.spawn_key,
                run.n_cells,
                run.chunk_size,
                run.batch_names,
                run.batch_scale,
                run.library_size,
                run.info.as_dict(),
                None if run.tissue is None else run.tissue.key(),
            )
        ).encode()
    )
    return digest.hexdigest()[:16]


def lazy_matrices(run: Simulation) -> tuple[da.Array, da.Array]:
    """``(X, binary)`` of ``run`` as dask arrays, one CSR chunk per ``run.chunk_size`` niches."""
    dask, da = _import_dask()

    token = _token(run)
    # sent to each worker once; each chunk's task carries its own rows of the cell effects
    plan = dask.delayed(run.shared(), name=f"qsimcells-simulation-{token}")
    rows = tuple(
        (stop - start) * run.n_types for start, stop in map(run.niches, range(run.n_chunks))
    )
    n_vars = run.layout.n_vars
    X_parts, binary_parts = [], []
    for chunk, n_rows in enumerate(rows):
        pair = dask.delayed(compute_chunk, nout=2)(
            plan, chunk, run.chunk_effects(chunk), dask_key_name=f"qsimcells-chunk-{token}-{chunk}"
        )
        X_parts.append(
            da.from_delayed(
                pair[0],
                (n_rows, n_vars),
                dtype=np.int32,
                meta=sp.csr_matrix((0, 0), dtype=np.int32),
            )
        )
        binary_parts.append(
            da.from_delayed(
                pair[1],
                (n_rows, n_vars),
                dtype=np.uint8,
                meta=sp.csr_matrix((0, 0), dtype=np.uint8),
            )
        )
    return da.concatenate(X_parts, axis=0), da.concatenate(binary_parts, axis=0)


def compute_chunk(
    plan: Simulation, chunk: int, effects: Any
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """One chunk's ``(X, binary)``: the task a dask worker runs (a module-level function, so
    the distributed scheduler can pickle it by name)."""
    return plan.chunk(chunk, effects)
