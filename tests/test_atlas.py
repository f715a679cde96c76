"""Atlas scale: the dask engine and simulate_to_zarr give the in-memory data bit for bit, the
store reads back exactly, an interrupted write is finished or refused, unsuitable samplers are
refused."""

from __future__ import annotations

import shutil
import signal
import threading
import types

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from anndata.tests.helpers import assert_equal
from hypothesis import HealthCheck, given, settings, strategies as st

import qsimcells as qs
from conftest import run_python
from qsimcells.plugins import CircuitSamplerSpec, PluginRegistry, hookimpl, registry
from qsimcells.sim import zarr_store
from qsimcells.sim.simulate import Simulation

DESIGN = qs.sim.presets.romero2025(True, n_housekeeping=10)
EFFECTS = {"batches": 3, "library_size": 0.4}


def assert_same_csr(got: sp.spmatrix, want: sp.csr_matrix) -> None:
    """Bit for bit: the same dtype, the same stored entries in the same order."""
    got = sp.csr_matrix(got)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert got.indices.dtype == want.indices.dtype and got.indptr.dtype == want.indptr.dtype
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)


def assert_same_data(got: ad.AnnData, want: ad.AnnData) -> None:
    assert_same_csr(got.X, want.X)
    assert_same_csr(got.layers["binary"], want.layers["binary"])
    assert_equal(got.obs, want.obs)
    assert_equal(got.var, want.var)


# --------------------------------------------------------------------------------------------
# the dask engine


@pytest.mark.parametrize("chunk_size", [1, 37, 250, 4000])
@pytest.mark.parametrize("effects", [{}, EFFECTS], ids=["plain", "batches+library"])
def test_dask_engine_is_lazy_and_bit_identical(chunk_size: int, effects: dict) -> None:
    import dask.array as da

    n_cells = 600
    lazy = qs.sim.simulate(DESIGN, n_cells, rng=11, chunk_size=chunk_size, engine="dask", **effects)
    memory = qs.sim.simulate(DESIGN, n_cells, rng=11, chunk_size=chunk_size, **effects)
    assert isinstance(lazy.X, da.Array) and isinstance(lazy.layers["binary"], da.Array)
    assert lazy.X.numblocks[0] == -(-n_cells // chunk_size)  # one block per chunk of niches
    assert isinstance(lazy.X._meta, sp.csr_matrix)
    assert lazy.X.dtype == np.int32 and lazy.layers["binary"].dtype == np.uint8
    lazy.X, lazy.layers["binary"] = da.compute(lazy.X, lazy.layers["binary"])
    assert_same_data(lazy, memory)
    assert lazy.uns["qsimcells"]["seed"] == memory.uns["qsimcells"]["seed"] == 11


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_cells=st.integers(1, 300),
    chunk_size=st.integers(1, 400),
    batches=st.sampled_from([None, 1, 4]),
    library_size=st.sampled_from([None, 0.0, 1.3]),
    seed=st.integers(0, 2**32),
)
def test_dask_equals_memory_for_any_chunking(
    n_cells: int, chunk_size: int, batches: int | None, library_size: float | None, seed: int
) -> None:
    kwargs = {
        "rng": seed,
        "chunk_size": chunk_size,
        "batches": batches,
        "library_size": library_size,
    }
    lazy = qs.sim.simulate(DESIGN, n_cells, engine="dask", **kwargs)
    memory = qs.sim.simulate(DESIGN, n_cells, **kwargs)
    lazy.X = lazy.X.compute(scheduler="synchronous")
    lazy.layers["binary"] = lazy.layers["binary"].compute(scheduler="synchronous")
    assert_same_data(lazy, memory)


def test_recomputing_a_chunk_gives_the_same_data() -> None:
    """X and binary computed apart run each chunk's task twice (a retried task does too): the
    chunk's seeds must not advance between the two runs."""
    lazy = qs.sim.simulate(DESIGN, 40, rng=0, chunk_size=7, engine="dask")
    memory = qs.sim.simulate(DESIGN, 40, rng=0, chunk_size=7)
    for _ in range(2):
        assert_same_csr(lazy.X.compute(scheduler="synchronous"), memory.X)
        assert_same_csr(
            lazy.layers["binary"].compute(scheduler="synchronous"), memory.layers["binary"]
        )
    run = Simulation(DESIGN, 40, rng=0, chunk_size=7)
    first, again = run.chunk(2), run.chunk(2)
    for a, b in zip(first, again, strict=True):
        assert_same_csr(a, b)


def test_many_cell_types_and_batches_keep_their_labels() -> None:
    """Category codes wider than int8 / int16 (130 cell types, 200 batches)."""
    types = {f"t{k}": [f"g{k}"] for k in range(130)}
    design = qs.sim.CellCircuit(types, p=[0.5] * 130, n_housekeeping=1)
    names = [f"b{k}" for k in range(200)]
    for engine in ("memory", "dask"):
        adata = qs.sim.simulate(design, 300, rng=0, batches=names, engine=engine)
        assert list(adata.obs["cell_type"][:130]) == list(types)
        per_niche = adata.obs.groupby("niche", observed=True)["batch"].nunique()
        assert (per_niche == 1).all() and adata.obs["batch"].nunique() > 127


def test_engine_is_checked() -> None:
    with pytest.raises(ValueError, match=r"engine: .*'memory', 'dask'"):
        qs.sim.simulate(DESIGN, 10, engine="spark")


@pytest.fixture
def dask_client():
    """Two worker processes: tasks and the plan travel by pickle, as on a real cluster. Closed
    after its test: while a client is current every later test would run on it."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def test_distributed_client_runs_both_paths(dask_client, tmp_path) -> None:
    memory = qs.sim.simulate(DESIGN, 900, rng=3, chunk_size=200, **EFFECTS)
    lazy = qs.sim.simulate(DESIGN, 900, rng=3, chunk_size=200, engine="dask", **EFFECTS)
    lazy.X = lazy.X.compute()  # the current client is dask's default scheduler
    lazy.layers["binary"] = lazy.layers["binary"].compute()
    assert_same_data(lazy, memory)
    workers = {w for w in dask_client.processing()}
    assert len(workers) == 2

    store = qs.sim.simulate_to_zarr(
        DESIGN, 900, tmp_path / "cells.zarr", rng=3, chunk_size=200, **EFFECTS
    )
    assert_same_data(ad.read_zarr(store), memory)


# --------------------------------------------------------------------------------------------
# simulate_to_zarr and reading it back


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_store_reads_back_exactly(tmp_path, zarr_format: int) -> None:
    memory = qs.sim.simulate(DESIGN, 1000, rng=5, chunk_size=130, **EFFECTS)
    with ad.settings.override(zarr_write_format=zarr_format):
        store = qs.sim.simulate_to_zarr(
            DESIGN, 1000, tmp_path / "cells.zarr", rng=5, chunk_size=130, n_ahead=2, **EFFECTS
        )
    assert store == tmp_path / "cells.zarr"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.zarr"]  # no partial, no temp
    assert not (store / zarr_store.PROGRESS_FILE).exists()

    full = ad.read_zarr(store)
    assert_same_data(full, memory)
    assert qs.sim.CellCircuit.from_dict(full.uns["qsimcells"]["design"]) == DESIGN
    np.testing.assert_array_equal(
        full.uns["qsimcells"]["batch_factors"], memory.uns["qsimcells"]["batch_factors"]
    )

    lazy = ad.experimental.read_lazy(store)
    assert lazy.n_obs == memory.n_obs
    assert_same_csr(lazy.X[200:700].compute(), memory.X[200:700])

    backed = qs.sim.read_backed(store)
    assert_same_csr(backed.X[1234:1999], memory.X[1234:1999])
    assert_same_csr(backed.layers["binary"][:50], memory.layers["binary"][:50])


def test_a_store_that_may_outgrow_32_bit_indices_is_int64_throughout(tmp_path, monkeypatch) -> None:
    """Past 2**31 possible entries the stored indices and indptr are both int64 (scipy refuses
    mixed index dtypes, e.g. in eliminate_zeros, which scanpy's QC metrics call)."""
    memory = qs.sim.simulate(DESIGN, 300, rng=6, chunk_size=64)
    monkeypatch.setattr(Simulation, "index_dtypes", lambda self: (np.int64, np.int64))
    store = qs.sim.simulate_to_zarr(DESIGN, 300, tmp_path / "wide.zarr", rng=6, chunk_size=64)
    back = ad.read_zarr(store)
    for got, want in ((back.X, memory.X), (back.layers["binary"], memory.layers["binary"])):
        assert got.indices.dtype == got.indptr.dtype == np.int64
        got.eliminate_zeros()
        np.testing.assert_array_equal(got.indptr, want.indptr)
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_array_equal(got.data, want.data)


@pytest.mark.parametrize("n_ahead", [1, 3])
def test_the_writer_holds_only_a_few_chunks(tmp_path, monkeypatch, n_ahead: int) -> None:
    """Chunks computed but not yet written never exceed n_ahead + 1 (the one being written)."""
    started, written, most = [], [], []
    real_chunk, real_progress = Simulation.chunk, zarr_store._write_progress

    def chunk(self, index, effects=None):
        started.append(index)
        most.append(len(started) - len(written))
        return real_chunk(self, index, effects)

    def progress(partial, identity, chunks_done):
        written.append(chunks_done)
        real_progress(partial, identity, chunks_done)

    monkeypatch.setattr(Simulation, "chunk", chunk)
    monkeypatch.setattr(zarr_store, "_write_progress", progress)
    qs.sim.simulate_to_zarr(DESIGN, 600, tmp_path / "c.zarr", rng=0, chunk_size=20, n_ahead=n_ahead)
    assert sorted(started) == list(range(30)) and written == list(range(1, 31))
    assert max(most) <= n_ahead + 1


def test_a_single_chunk_store(tmp_path) -> None:
    store = qs.sim.simulate_to_zarr(DESIGN, 7, tmp_path / "one.zarr", rng=0)
    assert_same_data(ad.read_zarr(store), qs.sim.simulate(DESIGN, 7, rng=0))


def _computed_chunks(monkeypatch, fail_at: int | None = None) -> list[int]:
    """Record the chunks computed (and fail at ``fail_at``)."""
    seen: list[int] = []
    real = Simulation.chunk

    def chunk(self, index, effects=None):
        if index == fail_at:
            raise RuntimeError("worker lost")
        seen.append(index)
        return real(self, index, effects)

    monkeypatch.setattr(Simulation, "chunk", chunk)
    return seen


def test_interrupted_write_is_finished_by_a_rerun(tmp_path, monkeypatch) -> None:
    store = tmp_path / "cells.zarr"
    partial = tmp_path / "cells.zarr.partial"
    kwargs = {"rng": 8, "chunk_size": 100, "n_ahead": 1, **EFFECTS}
    _computed_chunks(monkeypatch, fail_at=6)
    with pytest.raises(RuntimeError, match="worker lost"):
        qs.sim.simulate_to_zarr(DESIGN, 1050, store, **kwargs)
    monkeypatch.undo()
    assert not store.exists() and partial.is_dir()
    with pytest.raises(Exception, match="qsimcells-partial-anndata"):
        ad.read_zarr(partial)  # never reads as a complete data set
    with pytest.raises(ValueError, match="unfinished simulate_to_zarr store"):
        qs.sim.read_backed(partial)

    seen = _computed_chunks(monkeypatch)
    qs.sim.simulate_to_zarr(DESIGN, 1050, store, **kwargs)
    assert sorted(seen) == list(range(6, 11))  # resumed after the 6 chunks on disk
    assert not partial.exists()
    assert_same_data(
        ad.read_zarr(store), qs.sim.simulate(DESIGN, 1050, rng=8, chunk_size=100, **EFFECTS)
    )


def test_a_killed_writer_leaves_a_store_that_a_rerun_repairs(tmp_path) -> None:
    """SIGKILL after X and binary of chunk 3 were appended but before its obs and progress:
    the rerun cuts the matrices back to chunk 2 and finishes bit for bit."""
    store = tmp_path / "cells.zarr"
    code = f"""
import os, signal
import qsimcells as qs
from qsimcells.sim import zarr_store
real, calls = zarr_store._append_frame, []
def append_then_die(group, frame):
    calls.append(1)
    if len(calls) == 3:  # chunk 3
        os.kill(os.getpid(), signal.SIGKILL)
    real(group, frame)
zarr_store._append_frame = append_then_die
design = qs.sim.presets.romero2025(True, n_housekeeping=10)
qs.sim.simulate_to_zarr(design, 700, {str(store)!r}, rng=4, chunk_size=100, n_ahead=1,
                        batches=2)
"""
    result = run_python(code)
    assert result.returncode == -signal.SIGKILL, result.stderr
    partial = tmp_path / "cells.zarr.partial"
    assert not store.exists() and partial.is_dir()
    grown = ad.io.sparse_dataset(__import__("zarr").open_group(partial)["X"]).shape[0]
    assert grown == 4 * 100 * 2  # chunk 3's rows of X were on disk, its obs were not

    qs.sim.simulate_to_zarr(DESIGN, 700, store, rng=4, chunk_size=100, batches=2)
    assert_same_data(
        ad.read_zarr(store), qs.sim.simulate(DESIGN, 700, rng=4, chunk_size=100, batches=2)
    )


def test_a_partial_store_of_another_simulation_is_refused(tmp_path, monkeypatch) -> None:
    store = tmp_path / "cells.zarr"
    _computed_chunks(monkeypatch, fail_at=2)
    with pytest.raises(RuntimeError):
        qs.sim.simulate_to_zarr(DESIGN, 500, store, rng=1, chunk_size=100, n_ahead=1)
    monkeypatch.undo()
    with pytest.raises(FileExistsError, match=r"different simulation.*pass rng=1"):
        qs.sim.simulate_to_zarr(DESIGN, 500, store, rng=2, chunk_size=100)
    with pytest.raises(FileExistsError, match="different simulation"):
        qs.sim.simulate_to_zarr(DESIGN, 500, store, rng=1, chunk_size=50)  # other chunking
    assert (tmp_path / "cells.zarr.partial").is_dir()  # refusing destroyed nothing
    qs.sim.simulate_to_zarr(DESIGN, 500, store, rng=2, chunk_size=100, overwrite=True)
    assert_same_data(ad.read_zarr(store), qs.sim.simulate(DESIGN, 500, rng=2, chunk_size=100))


def test_existing_and_impossible_targets_are_refused(tmp_path) -> None:
    store = qs.sim.simulate_to_zarr(DESIGN, 50, tmp_path / "cells.zarr", rng=0)
    before = ad.read_zarr(store)
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        qs.sim.simulate_to_zarr(DESIGN, 60, store, rng=1)
    assert_same_data(ad.read_zarr(store), before)  # untouched
    replaced = qs.sim.simulate_to_zarr(DESIGN, 60, store, rng=1, overwrite=True)
    assert ad.read_zarr(replaced).n_obs == 120
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.zarr"]

    (tmp_path / "file.zarr").write_text("not a store")
    with pytest.raises(ValueError, match="is an existing file"):
        qs.sim.simulate_to_zarr(DESIGN, 50, tmp_path / "file.zarr", overwrite=True)
    with pytest.raises(ValueError, match="does not exist"):
        qs.sim.simulate_to_zarr(DESIGN, 50, tmp_path / "no" / "cells.zarr")
    with pytest.raises(TypeError, match="store: expected a path"):
        qs.sim.simulate_to_zarr(DESIGN, 50, 42)
    with pytest.raises(ValueError, match="n_ahead: must be a positive integer"):
        qs.sim.simulate_to_zarr(DESIGN, 50, tmp_path / "new.zarr", n_ahead=0)
    with pytest.raises(ValueError, match="n_cells"):
        qs.sim.simulate_to_zarr(DESIGN, 0, tmp_path / "new.zarr")
    assert not (tmp_path / "new.zarr").exists() and not (tmp_path / "new.zarr.partial").exists()


# --------------------------------------------------------------------------------------------
# samplers that cannot run in a worker


class _Zeros:
    def sample(self, circuit, shots, *, rng):
        return np.zeros((shots, circuit.num_qubits), np.uint8)


class _Locked(_Zeros):
    """Holds a lock, as a sampler with a live connection would: it does not pickle."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


@pytest.fixture
def odd_samplers(monkeypatch):
    @hookimpl
    def qsimcells_circuit_samplers():
        return [
            CircuitSamplerSpec("cloud", factory=_Zeros, needs_credentials=True),
            CircuitSamplerSpec("locked", factory=_Locked),
        ]

    plugin = types.SimpleNamespace(
        __name__="odd", qsimcells_circuit_samplers=qsimcells_circuit_samplers
    )
    monkeypatch.setattr(
        registry,
        "_registry",
        PluginRegistry(load_entry_points=False, extra_plugins=[(plugin, "odd-dist", "0")]),
    )


def test_samplers_that_cannot_run_in_a_worker_are_refused(odd_samplers, tmp_path) -> None:
    assert qs.sim.simulate(DESIGN, 5, sampler="cloud").X.sum() > 0  # in memory it runs
    with pytest.raises(ValueError, match=r"'cloud' needs credentials.*cannot run in a dask worker"):
        qs.sim.simulate(DESIGN, 5, sampler="cloud", engine="dask")
    with pytest.raises(ValueError, match="'cloud' needs credentials"):
        qs.sim.simulate_to_zarr(DESIGN, 5, tmp_path / "c.zarr", sampler="cloud")
    with pytest.raises(ValueError, match="'locked' cannot be sent to a dask worker"):
        qs.sim.simulate(DESIGN, 5, sampler="locked", engine="dask")
    with pytest.raises(ValueError, match="'locked' cannot be sent to a dask worker"):
        qs.sim.simulate_to_zarr(DESIGN, 5, tmp_path / "l.zarr", sampler="locked")
    assert list(tmp_path.iterdir()) == []


def test_a_named_local_sampler_runs_per_chunk(tmp_path) -> None:
    memory = qs.sim.simulate(DESIGN, 300, rng=2, chunk_size=64, sampler="statevector")
    store = qs.sim.simulate_to_zarr(
        DESIGN, 300, tmp_path / "sv.zarr", rng=2, chunk_size=64, sampler="statevector"
    )
    stored = ad.read_zarr(store)
    assert_same_data(stored, memory)
    assert stored.uns["qsimcells"]["sampler"]["name"] == "statevector"
    shutil.rmtree(store)


def test_a_tissue_store_keeps_coordinates_and_communication_truth(tmp_path) -> None:
    tissue = qs.sim.Tissue(
        "hex",
        spacing=40.0,
        contact_radius=15.0,
        interaction_length=20.0,
        domains={"a": (300.0, 300.0, 200.0)},
        interacting_domains=["a"],
    )
    memory = qs.sim.simulate(DESIGN, 900, rng=3, chunk_size=200, tissue=tissue)
    store = qs.sim.simulate_to_zarr(
        DESIGN, 900, tmp_path / "tissue.zarr", rng=3, chunk_size=200, tissue=tissue, n_ahead=1
    )
    full = ad.read_zarr(store)
    assert_same_data(full, memory)
    assert_equal(full.obs, memory.obs)  # domain included
    for key in ("spatial", "lr_active"):
        np.testing.assert_array_equal(full.obsm[key], memory.obsm[key])
        assert full.obsm[key].dtype == memory.obsm[key].dtype
    assert_same_csr(full.obsp["lr_coupling"], memory.obsp["lr_coupling"])
    truth = qs.tl.true_communication(full, region_key="domain")
    assert truth.equals(qs.tl.true_communication(memory, region_key="domain"))
    assert ad.experimental.read_lazy(store).obsm["spatial"].shape == (1800, 2)
    # the same call without the tissue is another simulation: its partial store is refused
    (tmp_path / "other.zarr.partial").mkdir()
    zarr_store._write_progress(
        tmp_path / "other.zarr.partial",
        zarr_store._fingerprint(
            Simulation(DESIGN, 900, rng=3, chunk_size=200, for_workers=True, tissue=tissue)
        ),
        1,
    )
    with pytest.raises(FileExistsError, match="unfinished store of a different simulation"):
        qs.sim.simulate_to_zarr(DESIGN, 900, tmp_path / "other.zarr", rng=3, chunk_size=200)
