"""QBM-VAE from a zarr store whose X stays on disk: minibatch reads only, same model as in memory.

Every read of a zarr array goes through ``zarr.core.array._get_selection``; a spy there records
how many elements each read of ``X/data`` and ``X/indices`` returned, so the tests see whether
anything (qsimcells, scvi-tools or anndata) ever reads ``X`` whole.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import qsimcells as qs
from qsimcells.sim.backed import read_backed

pytest.importorskip("scvi")
import anndata
import scvi
import zarr
import zarr.core.array

from qsimcells.model import qbmvae as qbmvae_mod

FAST = {"enable_progress_bar": False, "accelerator": "cpu"}
SMALL = {"n_latent": 8, "n_hidden": 32}
BATCH = 64


pytestmark = pytest.mark.usefixtures("scvi_quiet_seeded")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("backed") / "a.zarr"
    adata = qs.sim.simulate(qs.sim.presets.romero2025(True), 500, rng=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr v2 format notice
        adata.write_zarr(path)
    return path


class _Reads:
    """Elements returned by each read of a zarr array, by the array's path in the store."""

    def __init__(self) -> None:
        self.by_path: dict[str, list[int]] = defaultdict(list)

    def take(self) -> dict[str, list[int]]:
        out, self.by_path = dict(self.by_path), defaultdict(list)
        return out


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> _Reads:
    record = _Reads()
    original = zarr.core.array._get_selection

    async def spy(store_path, metadata, codec_pipeline, config, indexer, **kwargs):
        record.by_path[store_path.path].append(math.prod(indexer.shape))
        return await original(store_path, metadata, codec_pipeline, config, indexer, **kwargs)

    monkeypatch.setattr(zarr.core.array, "_get_selection", spy)
    return record


def _x_reads(taken: dict[str, list[int]]) -> list[int]:
    return taken.get("X/data", []) + taken.get("X/indices", [])


def test_read_backed_leaves_x_and_layers_on_disk(store: Path) -> None:
    full = anndata.read_zarr(store)
    backed = read_backed(store)
    assert isinstance(backed.X, anndata.abc.CSRDataset)
    assert isinstance(backed.layers["binary"], anndata.abc.CSRDataset)
    assert backed.shape == full.shape
    assert backed.obs.equals(full.obs) and backed.var.equals(full.var)
    assert backed.uns["qsimcells"]["generator"] == full.uns["qsimcells"]["generator"]
    rows = np.array([7, 3, 900, 3])  # unsorted, repeated
    assert (backed.X[rows] != full.X[rows]).nnz == 0
    assert (backed.layers["binary"][rows] != full.layers["binary"][rows]).nnz == 0
    opened = read_backed(zarr.open_group(store, mode="r"), layers=False)
    assert isinstance(opened.X, anndata.abc.CSRDataset) and not opened.layers


def test_read_backed_rejects_what_is_not_an_on_disk_csr_anndata(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"store: .* is not a zarr store"):
        read_backed(tmp_path / "missing.zarr")
    zarr.open_group(tmp_path / "plain.zarr", mode="w")
    with pytest.raises(ValueError, match=r"store: .* not an AnnData store"):
        read_backed(tmp_path / "plain.zarr")
    with pytest.raises(TypeError, match=r"store: expected a path or a zarr\.Group"):
        read_backed(3)
    dense = anndata.AnnData(
        X=np.ones((5, 3), np.float32), layers={"c": sp.csc_matrix(np.ones((5, 3), np.float32))}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dense.write_zarr(tmp_path / "dense.zarr")
        dense.X = sp.csr_matrix(dense.X)
        dense.write_zarr(tmp_path / "csc_layer.zarr")
    with pytest.raises(
        ValueError, match="X: expected a CSR sparse matrix on disk, got encoding 'array'"
    ):
        read_backed(tmp_path / "dense.zarr")
    with pytest.raises(ValueError, match=r"layers\['c'\]: .* got encoding 'csc_matrix'"):
        read_backed(tmp_path / "csc_layer.zarr")
    assert isinstance(
        read_backed(tmp_path / "csc_layer.zarr", layers=False).X, anndata.abc.CSRDataset
    )


def test_trains_from_disk_one_minibatch_at_a_time(
    store: Path, reads: _Reads, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = 4096  # the count check streams X's values in blocks of this many entries
    monkeypatch.setattr(qbmvae_mod, "_BLOCK_ENTRIES", block)
    full = anndata.read_zarr(store).X
    nnz = full.nnz
    per_row = np.sort(np.diff(full.indptr))[::-1]
    bound = int(per_row[:BATCH].sum())  # the most entries BATCH rows can hold
    assert bound < nnz / 10 and block < nnz / 10
    reads.take()  # forget the reads of the whole X just above

    adata = read_backed(store)
    qs.model.QBMVAE.setup_anndata(adata)
    setup = _x_reads(reads.take())  # scvi-tools' count-data check reads X[:100]
    assert max(setup) <= int(np.diff(full.indptr)[:100].sum())
    model = qs.model.QBMVAE(adata, **SMALL)
    init = reads.take()
    assert len(init["X/data"]) == math.ceil(nnz / block) and max(init["X/data"]) <= block
    assert "X/indices" not in init

    model.train(max_epochs=2, batch_size=BATCH, **FAST)
    train = _x_reads(reads.take())
    n_train = math.ceil(0.9 * adata.n_obs)  # scvi-tools' default train_size
    assert len(train) == 2 * 2 * math.ceil(n_train / BATCH)  # data + indices, per minibatch
    assert max(train) <= bound

    q = model.get_latent_representation(batch_size=BATCH)
    assert q.shape == (adata.n_obs, SMALL["n_latent"]) and q.dtype == np.float32
    assert max(_x_reads(reads.take())) <= bound
    np.testing.assert_array_equal(model._library_sizes(), np.asarray(full.sum(1)).ravel())


def test_backed_and_in_memory_training_give_the_same_model(store: Path) -> None:
    latents = []
    for adata in (anndata.read_zarr(store), read_backed(store)):
        scvi.settings.seed = 0
        qs.model.QBMVAE.setup_anndata(adata)
        model = qs.model.QBMVAE(adata, **SMALL)
        model.train(max_epochs=2, batch_size=BATCH, **FAST)
        latents.append(model.get_latent_representation())
    np.testing.assert_array_equal(latents[0], latents[1])


def test_count_checks_stream_through_an_on_disk_x(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(qbmvae_mod, "_BLOCK_ENTRIES", 16)
    X = sp.random(200, 20, density=0.3, format="csr", random_state=0, dtype=np.float32)
    X.data = np.ceil(X.data * 5)
    X.data[-1] = 0.5  # in the last block only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        anndata.AnnData(X=X).write_zarr(tmp_path / "half.zarr")
    adata = read_backed(tmp_path / "half.zarr")
    qs.model.QBMVAE.setup_anndata(adata)
    with pytest.raises(ValueError, match="likelihood='nb' needs integer counts"):
        qs.model.QBMVAE(adata, **SMALL)
    qs.model.QBMVAE(adata, likelihood="mse", **SMALL)
