"""Niches placed in tissue (issue 16, first part): obsm["spatial"] from qs.sim.Tissue."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

import qsimcells as qs

DESIGN = qs.sim.presets.romero2025(True, n_housekeeping=5)
N_TYPES = len(DESIGN.cell_types)


def _cells(adata: ad.AnnData) -> np.ndarray:
    """Coordinates as (niche, cell of the niche, xy)."""
    return adata.obsm["spatial"].reshape(-1, N_TYPES, 2)


@pytest.mark.parametrize("layout", ["grid", "hex", "poisson"])
def test_layouts_keep_niches_together_and_apart(layout: str) -> None:
    tissue = qs.sim.Tissue(layout, spacing=40.0, contact_radius=15.0)
    adata = qs.sim.simulate(DESIGN, 400, rng=0, tissue=tissue)
    xy = adata.obsm["spatial"]
    assert xy.shape == (adata.n_obs, 2) and xy.dtype == np.float64
    cells = _cells(adata)
    centres = cells.mean(axis=1)
    # every pair of cells of one niche within the contact radius
    inside = np.linalg.norm(cells[:, 0] - cells[:, 1], axis=1)
    assert inside.max() <= 15.0 and inside.max() > 10.0  # and they use the room they have
    # cells of different niches at least spacing - contact_radius apart
    tree = cKDTree(xy)
    niche = adata.obs["niche"].to_numpy()
    for i, j in tree.query_pairs(40.0 - 15.0 - 1e-9):
        assert niche[i] == niche[j]
    # niche centres spread like the layout: nearest neighbour about spacing away
    nearest = cKDTree(centres).query(centres, k=2)[0][:, 1]
    assert np.median(nearest) == pytest.approx(40.0, rel=0.35)
    assert adata.uns["qsimcells"]["tissue"] == {"layout": layout, "spacing": 40.0,
                                                "contact_radius": 15.0, "units": "micrometre"}


def test_lattices_are_exact() -> None:
    grid = qs.sim.Tissue("grid", spacing=10.0, contact_radius=1.0).centres(9, None)
    np.testing.assert_array_equal(grid, [[x, y] for y in (0, 10, 20) for x in (0, 10, 20)])
    hexa = qs.sim.Tissue("hex", spacing=10.0, contact_radius=1.0).centres(50, None)
    d = cKDTree(hexa).query(hexa, k=2)[0][:, 1]
    np.testing.assert_allclose(d, 10.0)  # every centre's nearest neighbour exactly spacing away
    poisson = qs.sim.Tissue("poisson", spacing=10.0, contact_radius=1.0).centres(
        500, np.random.default_rng(0))
    assert len(poisson) == 500 and cKDTree(poisson).query(poisson, k=2)[0][:, 1].min() >= 10.0


def test_placement_is_seeded_and_changes_nothing_else() -> None:
    tissue = qs.sim.Tissue("poisson", spacing=30.0)
    a = qs.sim.simulate(DESIGN, 300, rng=4, tissue=tissue, batches=2, library_size=0.3)
    b = qs.sim.simulate(DESIGN, 300, rng=4, tissue=tissue, batches=2, library_size=0.3)
    plain = qs.sim.simulate(DESIGN, 300, rng=4, batches=2, library_size=0.3)
    np.testing.assert_array_equal(a.obsm["spatial"], b.obsm["spatial"])
    assert not np.array_equal(
        a.obsm["spatial"], qs.sim.simulate(DESIGN, 300, rng=5, tissue=tissue).obsm["spatial"])
    assert (a.X != plain.X).nnz == 0 and a.obs.equals(plain.obs)
    assert "spatial" not in plain.obsm and "tissue" not in plain.uns["qsimcells"]
    lazy = qs.sim.simulate(DESIGN, 300, rng=4, tissue=tissue, batches=2, library_size=0.3,
                           engine="dask")
    np.testing.assert_array_equal(lazy.obsm["spatial"], a.obsm["spatial"])


def test_given_centres_and_h5ad_round_trip(tmp_path) -> None:
    centres = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    adata = qs.sim.simulate(DESIGN, 3, rng=0,
                            tissue=qs.sim.Tissue(centres, contact_radius=8.0))
    np.testing.assert_allclose(_cells(adata).mean(axis=1), centres, atol=4.0)
    assert adata.uns["qsimcells"]["tissue"]["layout"] == "given"
    adata.write_h5ad(tmp_path / "t.h5ad")
    back = ad.read_h5ad(tmp_path / "t.h5ad")
    np.testing.assert_array_equal(back.obsm["spatial"], adata.obsm["spatial"])
    assert back.uns["qsimcells"]["tissue"] == adata.uns["qsimcells"]["tissue"]


def test_bad_tissues_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"layout: 'ring' is not allowed; choose one of "
                                         r"\['grid', 'hex', 'poisson'\]"):
        qs.sim.Tissue("ring")
    with pytest.raises(ValueError, match=r"layout: niche centres must have shape \(n_niches, 2\)"):
        qs.sim.Tissue(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="layout: niche centres must be finite"):
        qs.sim.Tissue([[0.0, np.nan]])
    with pytest.raises(ValueError, match=r"spacing: .* outside the allowed range \(0.0"):
        qs.sim.Tissue("grid", spacing=0)
    with pytest.raises(TypeError, match="contact_radius: expected a number"):
        qs.sim.Tissue("grid", contact_radius="far")
    with pytest.raises(ValueError, match="contact_radius: 60.0 is larger than spacing"):
        qs.sim.Tissue("grid", spacing=50, contact_radius=60)
    with pytest.raises(ValueError, match="layout: 2 niche centres given for 5 niches"):
        qs.sim.simulate(DESIGN, 5, tissue=qs.sim.Tissue([[0, 0], [1, 1]]))
    with pytest.raises(TypeError, match="tissue: expected a qs.sim.Tissue"):
        qs.sim.simulate(DESIGN, 5, tissue="grid")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 300), layout=st.sampled_from(["grid", "hex"]),
       spacing=st.floats(1e-3, 1e4), share=st.floats(1e-3, 1.0), seed=st.integers(0, 2**32))
def test_any_lattice_tissue_keeps_its_promises(n: int, layout: str, spacing: float,
                                               share: float, seed: int) -> None:
    tissue = qs.sim.Tissue(layout, spacing=spacing, contact_radius=spacing * share)
    xy = tissue.place(n, 3, np.random.default_rng(seed)).reshape(n, 3, 2)
    assert np.isfinite(xy).all()
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert (np.linalg.norm(xy[:, a] - xy[:, b], axis=1)
                <= tissue.contact_radius * (1 + 1e-9)).all()
    centres = tissue.centres(n, None)
    if n > 1:
        assert cKDTree(centres).query(centres, k=2)[0][:, 1].min() >= spacing * (1 - 1e-9)
