"""The lazy scanpy recipe of docs/atlas_scanpy.md on a zarr store read back lazily.

A small store is written by ``qs.sim.simulate_to_zarr`` (CSR int32 counts in ``X``), ``X`` is
read back as a dask array of CSR row chunks, and normalize_total -> log1p ->
highly_variable_genes -> pca (on the HVGs) runs on it without ``X`` being loaded whole. Every
result is compared with the same chain on the in-memory AnnData.

Why the float32 tolerances are what they are: on dask, scanpy sums each CSR chunk in float32
(scipy's ``sum`` keeps the float32 dtype inside a chunk) before adding the chunk results in float64,
whereas the in-memory numba kernels accumulate in float64. With ``X`` cast to float64 the two paths
agree to ~1e-14, which the float64 case checks. ``PCAEighDask`` (the only PCA scanpy runs on sparse
dask) divides the covariance by n, sklearn by n - 1: ``uns["pca"]["variance"]`` differs by exactly
n / (n - 1), and the variance *ratios* agree.
"""

from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
sc = pytest.importorskip("scanpy")

import anndata as ad  # noqa: E402
import dask  # noqa: E402
import scipy.linalg  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import zarr  # noqa: E402
from anndata.experimental import read_elem_lazy  # noqa: E402
from anndata.io import read_elem  # noqa: E402
from dask.callbacks import Callback  # noqa: E402

import qsimcells as qs  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Writing zarr v2 data:UserWarning")

ROWS = 300  # rows per dask chunk: 2000 cells -> six chunks of 300 and a ragged one of 200
N_TOP = 40
N_COMPS = 8

# (dtype X is cast to before the chain, tolerances); None keeps the stored int32, which
# normalize_total turns into float32 on both paths
TOLERANCES = {
    "float32": dict(
        dtype=None,
        x_rtol=1e-6,
        means_rtol=1e-5,
        disp_rtol=1e-4,
        disp_norm_atol=1e-2,
        var_rtol=1e-4,
        ratio_atol=1e-5,
        pcs_atol=1e-3,
        subspace_sin=1e-3,
        x_pca_atol=1e-3,
    ),
    # var["dispersions_norm"] and X_pca are stored as float32 on both paths
    "float64": dict(
        dtype=np.float64,
        x_rtol=1e-12,
        means_rtol=1e-10,
        disp_rtol=1e-10,
        disp_norm_atol=1e-5,
        var_rtol=1e-10,
        ratio_atol=1e-10,
        pcs_atol=1e-8,
        subspace_sin=1e-8,
        x_pca_atol=1e-6,
    ),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("atlas") / "atlas.zarr"
    # written chunk by chunk by the out-of-core writer, in chunks unrelated to the read chunks
    qs.sim.simulate_to_zarr(
        qs.sim.presets.random_network(60, 2, 60, rng=0), 1000, path, rng=0, chunk_size=170
    )
    return path


def read_lazily(path, rows: int = ROWS, dtype=None) -> ad.AnnData:
    """The recipe: X as dask CSR row chunks of ``rows`` rows; obs and var as pandas."""
    g = zarr.open_group(path, mode="r")
    X = read_elem_lazy(g["X"], chunks=(rows, -1))
    if dtype is not None:
        X = X.astype(dtype)
    return ad.AnnData(X=X, obs=read_elem(g["obs"]), var=read_elem(g["var"]))


def read_in_memory(path, dtype=None) -> ad.AnnData:
    a = ad.read_zarr(path)
    X = a.X if dtype is None else a.X.astype(dtype)
    return ad.AnnData(X=X, obs=a.obs, var=a.var)


def _no_compute(dsk, keys, **kwargs):
    raise AssertionError("a step that should be lazy computed a dask graph")


class LargestChunk(Callback):
    """Records the most rows of any sparse/2-D task result while a graph runs."""

    def __init__(self, n_vars: int) -> None:
        super().__init__()
        self.n_vars = n_vars
        self.rows = 0
        self.graphs = 0

    def _start(self, dsk) -> None:
        self.graphs += 1

    def _posttask(self, key, result, dsk, state, id) -> None:
        if sp.issparse(result) or (
            isinstance(result, np.ndarray) and result.ndim == 2 and result.shape[1] == self.n_vars
        ):
            self.rows = max(self.rows, result.shape[0])


def normalize_log1p(adata: ad.AnnData) -> None:
    sc.pp.normalize_total(adata, target_sum=1e4)  # explicit target_sum: no pass over X
    sc.pp.log1p(adata)


def hvg_pca(adata: ad.AnnData) -> None:
    sc.pp.highly_variable_genes(adata, n_top_genes=N_TOP)  # flavor="seurat"
    sc.pp.pca(adata, n_comps=N_COMPS, mask_var="highly_variable", svd_solver="covariance_eigh")


def _dense(x) -> np.ndarray:
    x = x.compute() if isinstance(x, da.Array) else x
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def test_lazy_read_gives_dask_csr_row_chunks(store) -> None:
    lazy, mem = read_lazily(store), read_in_memory(store)
    assert isinstance(lazy.X, da.Array) and isinstance(lazy.X._meta, sp.csr_matrix)
    assert lazy.X.dtype == np.int32
    assert lazy.X.chunks == ((ROWS,) * 6 + (200,), (mem.n_vars,))
    assert type(lazy.obs) is type(mem.obs)  # plain pandas, not read_lazy's Dataset2D
    assert lazy.obs["cell_type"].dtype == "category"
    block = lazy.X.blocks[1].compute()
    assert isinstance(block, sp.csr_matrix) and block.shape == (ROWS, mem.n_vars)
    np.testing.assert_array_equal(_dense(lazy.X), mem.X.toarray())


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_lazy_chain_matches_in_memory(store, precision: str) -> None:
    tol = TOLERANCES[precision]
    lazy, mem = read_lazily(store, dtype=tol["dtype"]), read_in_memory(store, dtype=tol["dtype"])
    n_obs, n_vars = mem.shape

    with dask.config.set(scheduler=_no_compute):  # fails if these two compute anything
        normalize_log1p(lazy)
    normalize_log1p(mem)
    assert isinstance(lazy.X, da.Array) and isinstance(lazy.X._meta, sp.csr_matrix)
    assert lazy.X.dtype == mem.X.dtype == (tol["dtype"] or np.float32)

    watch = LargestChunk(n_vars)
    with watch:
        hvg_pca(lazy)
    hvg_pca(mem)
    # hvg and the PCA fit each read X once, one chunk at a time; X is never loaded whole
    assert 1 <= watch.graphs <= 3  # 2 in scanpy 1.11.5
    assert 0 < watch.rows <= ROWS
    assert isinstance(lazy.X, da.Array) and lazy.X.chunks[0] == (ROWS,) * 6 + (200,)
    assert isinstance(lazy.obsm["X_pca"], da.Array)  # the projection stays lazy too

    np.testing.assert_allclose(_dense(lazy.X), mem.X.toarray(), rtol=tol["x_rtol"], atol=0)

    lv, mv = lazy.var, mem.var
    hv = mv["highly_variable"].to_numpy()
    np.testing.assert_array_equal(lv["highly_variable"].to_numpy(), hv)
    assert mv["highly_variable"].sum() == N_TOP
    np.testing.assert_allclose(lv["means"], mv["means"], rtol=tol["means_rtol"])
    np.testing.assert_allclose(lv["dispersions"], mv["dispersions"], rtol=tol["disp_rtol"])
    np.testing.assert_allclose(
        lv["dispersions_norm"], mv["dispersions_norm"], atol=tol["disp_norm_atol"], rtol=0
    )

    lp, mp = lazy.uns["pca"], mem.uns["pca"]
    np.testing.assert_allclose(lp["variance_ratio"], mp["variance_ratio"], atol=tol["ratio_atol"])
    # dask's covariance divides by n, sklearn's by n - 1
    np.testing.assert_allclose(
        lp["variance"] * n_obs / (n_obs - 1), mp["variance"], rtol=tol["var_rtol"]
    )
    if precision == "float32":  # the n / (n - 1) gap (5e-4 here) is bigger than the tolerance
        assert not np.allclose(lp["variance"], mp["variance"], rtol=tol["var_rtol"], atol=0)

    assert not lazy.varm["PCs"][~hv].any()
    pcs_lazy, pcs_mem = lazy.varm["PCs"][hv], mem.varm["PCs"][hv]
    # component signs are arbitrary: compare |loadings| and the spanned subspace
    np.testing.assert_allclose(np.abs(pcs_lazy), np.abs(pcs_mem), atol=tol["pcs_atol"], rtol=0)
    assert np.sin(scipy.linalg.subspace_angles(pcs_lazy, pcs_mem)).max() < tol["subspace_sin"]

    x_pca = lazy.obsm["X_pca"].compute()
    assert x_pca.shape == (n_obs, N_COMPS)
    scale = np.abs(mem.obsm["X_pca"]).max()
    np.testing.assert_allclose(
        np.abs(x_pca), np.abs(mem.obsm["X_pca"]), atol=tol["x_pca_atol"] * scale, rtol=0
    )


def test_qc_metrics_on_lazy_counts(store) -> None:
    lazy, mem = read_lazily(store), read_in_memory(store)
    # percent_top must stay below n_vars (110); the default (50, 100, 200, 500) fails in memory too
    kw = dict(percent_top=(10, 50), inplace=False)
    obs_lazy, var_lazy = sc.pp.calculate_qc_metrics(lazy, **kw)  # eager: pandas frames
    obs_mem, var_mem = sc.pp.calculate_qc_metrics(mem, **kw)
    for got, want in ((obs_lazy, obs_mem), (var_lazy, var_mem)):
        assert list(got.columns) == list(want.columns)
        np.testing.assert_allclose(got.to_numpy(float), want.to_numpy(float), rtol=1e-6)
    assert isinstance(lazy.X, da.Array)


def test_documented_limitations(store) -> None:
    lazy = read_lazily(store)
    normalize_log1p(lazy)
    # scale without centering keeps CSR chunks; centering densifies every chunk (avoid)
    assert isinstance(sc.pp.scale(lazy, zero_center=False, copy=True).X._meta, sp.csr_matrix)
    with pytest.warns(UserWarning, match="densifies"):
        assert isinstance(sc.pp.scale(lazy, copy=True).X._meta, np.ndarray)
    with pytest.raises(TypeError, match="zero_center=False"):
        sc.pp.pca(lazy, n_comps=N_COMPS, zero_center=False)
    with pytest.warns(UserWarning, match="Ignoring svd_solver='arpack'"):
        sc.pp.pca(lazy, n_comps=N_COMPS, svd_solver="arpack", copy=True)


def test_chain_on_local_cluster(store) -> None:
    distributed = pytest.importorskip("dask.distributed")
    mem = read_in_memory(store)
    normalize_log1p(mem)
    hvg_pca(mem)
    # worker processes: each opens the zarr path itself when it reads a chunk
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        lazy = read_lazily(store)
        normalize_log1p(lazy)
        hvg_pca(lazy)
        x_pca = lazy.obsm["X_pca"].compute()
    np.testing.assert_array_equal(lazy.var["highly_variable"], mem.var["highly_variable"])
    np.testing.assert_allclose(
        lazy.uns["pca"]["variance_ratio"], mem.uns["pca"]["variance_ratio"], atol=1e-5
    )
    scale = np.abs(mem.obsm["X_pca"]).max()
    np.testing.assert_allclose(np.abs(x_pca), np.abs(mem.obsm["X_pca"]), atol=1e-3 * scale)
