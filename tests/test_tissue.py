"""Niches placed in tissue (issue 16, first part): obsm["spatial"] from qs.sim.Tissue."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
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
    settings_ = dict(adata.uns["qsimcells"]["tissue"])
    assert np.isnan(settings_.pop("interaction_length"))  # no coupling in space
    assert settings_.pop("domains") == {} and list(settings_.pop("interacting_domains")) == [
        "outside"
    ]
    assert settings_ == {
        "layout": layout,
        "spacing": 40.0,
        "contact_radius": 15.0,
        "units": "micrometre",
    }
    assert "domain" not in adata.obs
    assert "lr_active" not in adata.obsm and "lr_coupling" not in adata.obsp


def test_lattices_are_exact() -> None:
    grid = qs.sim.Tissue("grid", spacing=10.0, contact_radius=1.0).centres(9, None)
    np.testing.assert_array_equal(grid, [[x, y] for y in (0, 10, 20) for x in (0, 10, 20)])
    hexa = qs.sim.Tissue("hex", spacing=10.0, contact_radius=1.0).centres(50, None)
    d = cKDTree(hexa).query(hexa, k=2)[0][:, 1]
    np.testing.assert_allclose(d, 10.0)  # every centre's nearest neighbour exactly spacing away
    poisson = qs.sim.Tissue("poisson", spacing=10.0, contact_radius=1.0).centres(
        500, np.random.default_rng(0)
    )
    assert len(poisson) == 500 and cKDTree(poisson).query(poisson, k=2)[0][:, 1].min() >= 10.0


def test_placement_is_seeded_and_changes_nothing_else() -> None:
    tissue = qs.sim.Tissue("poisson", spacing=30.0)
    a = qs.sim.simulate(DESIGN, 300, rng=4, tissue=tissue, batches=2, library_size=0.3)
    b = qs.sim.simulate(DESIGN, 300, rng=4, tissue=tissue, batches=2, library_size=0.3)
    plain = qs.sim.simulate(DESIGN, 300, rng=4, batches=2, library_size=0.3)
    np.testing.assert_array_equal(a.obsm["spatial"], b.obsm["spatial"])
    assert not np.array_equal(
        a.obsm["spatial"], qs.sim.simulate(DESIGN, 300, rng=5, tissue=tissue).obsm["spatial"]
    )
    assert (a.X != plain.X).nnz == 0 and a.obs.equals(plain.obs)
    assert "spatial" not in plain.obsm and "tissue" not in plain.uns["qsimcells"]
    lazy = qs.sim.simulate(
        DESIGN, 300, rng=4, tissue=tissue, batches=2, library_size=0.3, engine="dask"
    )
    np.testing.assert_array_equal(lazy.obsm["spatial"], a.obsm["spatial"])


def test_given_centres_and_h5ad_round_trip(tmp_path) -> None:
    centres = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    adata = qs.sim.simulate(DESIGN, 3, rng=0, tissue=qs.sim.Tissue(centres, contact_radius=8.0))
    np.testing.assert_allclose(_cells(adata).mean(axis=1), centres, atol=4.0)
    assert adata.uns["qsimcells"]["tissue"]["layout"] == "given"
    adata.write_h5ad(tmp_path / "t.h5ad")
    back = ad.read_h5ad(tmp_path / "t.h5ad")
    np.testing.assert_array_equal(back.obsm["spatial"], adata.obsm["spatial"])
    assert back.uns["qsimcells"]["tissue"]["layout"] == "given"


def test_bad_tissues_name_the_field() -> None:
    with pytest.raises(
        ValueError,
        match=r"layout: 'ring' is not allowed; choose one of "
        r"\['grid', 'hex', 'poisson'\]",
    ):
        qs.sim.Tissue("ring")
    with pytest.raises(ValueError, match=r"layout: niche centres must have shape \(n_niches, 2\)"):
        qs.sim.Tissue(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="layout: niche centres must be finite"):
        qs.sim.Tissue([[0.0, np.nan]])
    with pytest.raises(ValueError, match=r"spacing: .* outside the allowed range \(0.0"):
        qs.sim.Tissue("grid", spacing=0)
    with pytest.raises(TypeError, match="contact_radius: expected a number"):
        qs.sim.Tissue("grid", contact_radius="far")
    with pytest.raises(ValueError, match=r"contact_radius: 60\.0 is larger than spacing"):
        qs.sim.Tissue("grid", spacing=50, contact_radius=60)
    with pytest.raises(ValueError, match="layout: 2 niche centres given for 5 niches"):
        qs.sim.simulate(DESIGN, 5, tissue=qs.sim.Tissue([[0, 0], [1, 1]]))
    with pytest.raises(ValueError, match=r"interaction_length: .* outside the allowed range"):
        qs.sim.Tissue("grid", interaction_length=-1.0)
    with pytest.raises(TypeError, match=r"tissue: expected a qs\.sim\.Tissue"):
        qs.sim.simulate(DESIGN, 5, tissue="grid")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 300),
    layout=st.sampled_from(["grid", "hex"]),
    spacing=st.floats(1e-3, 1e4),
    share=st.floats(1e-3, 1.0),
    seed=st.integers(0, 2**32),
)
def test_any_lattice_tissue_keeps_its_promises(
    n: int, layout: str, spacing: float, share: float, seed: int
) -> None:
    tissue = qs.sim.Tissue(layout, spacing=spacing, contact_radius=spacing * share)
    xy = tissue.place_niches(n, 3, np.random.default_rng(seed))[1].reshape(n, 3, 2)
    assert np.isfinite(xy).all()
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert (
            np.linalg.norm(xy[:, a] - xy[:, b], axis=1) <= tissue.contact_radius * (1 + 1e-9)
        ).all()
    centres = tissue.centres(n, None)
    if n > 1:
        assert cKDTree(centres).query(centres, k=2)[0][:, 1].min() >= spacing * (1 - 1e-9)


# --------------------------------------------------------------------------------------------
# communication that decays with distance

SPATIAL = qs.sim.Tissue("hex", spacing=40.0, contact_radius=30.0, interaction_length=8.0)


def _sigma(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(p * (1 - p), 1e-12) / np.maximum(n, 1))


def test_coupling_falls_with_distance_as_programmed() -> None:
    adata = qs.sim.simulate(DESIGN, 20_000, rng=2, tissue=SPATIAL)
    names = list(adata.uns["qsimcells"]["lr_active_edges"])
    assert names == ["g3->g5", "g7->g0"]  # the design's two ligand-receptor gates
    cells = _cells(adata)
    distance = np.linalg.norm(cells[:, 0] - cells[:, 1], axis=1)
    active = adata.obsm["lr_active"][::N_TYPES]  # one row per niche
    np.testing.assert_array_equal(adata.obsm["lr_active"][1::N_TYPES], active)
    # the stored probability is exp(-d / 8) at (sender cell, receiver cell), both directions
    coupling = adata.obsp["lr_coupling"]
    niches = np.arange(distance.size) * N_TYPES
    np.testing.assert_allclose(
        np.asarray(coupling[niches, niches + 1]).ravel(), np.exp(-distance / 8.0)
    )
    np.testing.assert_allclose(
        np.asarray(coupling[niches + 1, niches]).ravel(), np.exp(-distance / 8.0)
    )
    assert coupling.nnz == 2 * distance.size
    # the fraction of niches in which each gate acted, by distance bin, within 4 sigma
    edges = np.linspace(0, 30, 7)
    bins = np.digitize(distance, edges[1:-1])
    for k in range(2):
        for b in range(6):
            inside = bins == b
            if inside.sum() < 50:
                continue
            want = np.exp(-distance[inside] / 8.0).mean()
            got = active[inside, k].mean()
            assert abs(got - want) < 4 * _sigma(want, inside.sum()), (k, b, got, want)
    # and near cells act more often than far ones
    assert active[distance < 5].mean() > 0.5 > 0.15 > active[distance > 20].mean()


def _receiver_on_rates(adata: ad.AnnData, active: np.ndarray) -> np.ndarray:
    """Per-gene ON rate of the circuit genes (in qubit order) in the niches ``active`` selects."""
    bits = (
        adata.layers["binary"].toarray()[:, : DESIGN.n_qubits].reshape(-1, N_TYPES, DESIGN.n_qubits)
    )
    return bits[active].sum(axis=1).mean(axis=0)  # a gene is ON in its own cell type's cell


@pytest.mark.parametrize("sampler", ["exact", "statevector"])
def test_acting_gates_give_the_exact_response(sampler: str) -> None:
    """The niches in which both gates acted follow the full circuit, those in which none did
    the circuit without ligand-receptor gates: per-gene ON rates within 4 sigma of the exact
    probabilities, for the exact and the statevector sampler alike."""
    adata = qs.sim.simulate(DESIGN, 12_000, rng=3, sampler=sampler, tissue=SPATIAL)
    assert adata.uns["qsimcells"]["sampler"]["name"] == sampler
    assert (
        adata.uns["qsimcells"]["lr_sampling"]
        == {
            "exact": "per-shot switch qubits",
            "statevector": "one circuit per pattern of acting gates",
        }[sampler]
    )
    active = adata.obsm["lr_active"][::N_TYPES]
    no_lr = DESIGN.without_edges(np.flatnonzero(DESIGN.edges["kind"] == "ligand_receptor"))
    for chosen, design in ((active.all(axis=1), DESIGN), (~active.any(axis=1), no_lr)):
        assert chosen.sum() > 1000
        want = qs.sim.exact_activation(design).to_numpy()
        got = _receiver_on_rates(adata, chosen)
        assert (np.abs(got - want) < 4 * _sigma(want, chosen.sum()) + 1e-9).all(), (got, want)
    # the gates matter: g5 (a receiver) responds to its sender only where the gate acted
    full = qs.sim.exact_activation(DESIGN).to_numpy()
    none = qs.sim.exact_activation(no_lr).to_numpy()
    assert np.abs(full - none).max() > 0.1


def test_spatial_coupling_is_bit_identical_across_engines_and_survives_h5ad(tmp_path) -> None:
    memory = qs.sim.simulate(DESIGN, 700, rng=9, tissue=SPATIAL, chunk_size=90)
    lazy = qs.sim.simulate(DESIGN, 700, rng=9, tissue=SPATIAL, chunk_size=90, engine="dask")
    assert (lazy.X.compute() != memory.X).nnz == 0
    assert (lazy.layers["binary"].compute() != memory.layers["binary"]).nnz == 0
    np.testing.assert_array_equal(lazy.obsm["lr_active"], memory.obsm["lr_active"])
    other = qs.sim.simulate(
        DESIGN,
        700,
        rng=9,
        chunk_size=90,
        engine="dask",
        tissue=qs.sim.Tissue("hex", 40.0, 30.0, interaction_length=1.0),
    )
    assert (other.layers["binary"].compute() != memory.layers["binary"]).nnz > 0  # own keys
    memory.write_h5ad(tmp_path / "s.h5ad")
    back = ad.read_h5ad(tmp_path / "s.h5ad")
    np.testing.assert_array_equal(back.obsm["lr_active"], memory.obsm["lr_active"])
    assert (back.obsp["lr_coupling"] != memory.obsp["lr_coupling"]).nnz == 0
    assert list(back.uns["qsimcells"]["lr_active_edges"]) == ["g3->g5", "g7->g0"]
    assert back.uns["qsimcells"]["tissue"]["interaction_length"] == 8.0


def test_switch_qubits_gate_each_shot_and_bad_switches_are_refused() -> None:
    from qsimcells.samplers.exact import ExactSampler

    circuit = DESIGN.to_qiskit(switches=True)
    n = DESIGN.n_qubits
    assert circuit.num_qubits == n + 2 and circuit.qregs[-1].name == "lr_switch"
    exact = ExactSampler()
    off = np.zeros(4000, bool)
    on = np.ones(4000, bool)
    rng = np.random.default_rng(0)
    # all switches off: the design without ligand-receptor gates; all on: the full design
    no_lr = DESIGN.without_edges(np.flatnonzero(DESIGN.edges["kind"] == "ligand_receptor"))
    for switch, design in ((off, no_lr), (on, DESIGN)):
        bits = exact.sample(circuit, 4000, rng=rng, given={n: switch, n + 1: switch})
        want = qs.sim.exact_activation(design).to_numpy()
        assert (np.abs(bits[:, :n].mean(0) - want) < 4 * _sigma(want, 4000) + 1e-9).all()
        np.testing.assert_array_equal(bits[:, n], switch)
    with pytest.raises(ValueError, match="given: qubit 0 is acted on"):
        exact.sample(circuit, 10, rng=rng, given={0: np.ones(10, bool)})
    with pytest.raises(ValueError, match=r"given: qubit 10 needs 10 bits .* shape \(3,\)"):
        exact.sample(circuit, 10, rng=rng, given={n: np.ones(3, bool)})


def test_many_ligand_receptor_gates_stay_fast_on_the_exact_path() -> None:
    """40 gates make nearly every niche its own pattern: the exact path gives the switches
    per shot instead of compiling one circuit per niche (which took minutes)."""
    design = qs.sim.presets.random_network(200, 4, 200, rng=0)
    adata = qs.sim.simulate(design, 2000, rng=0, tissue=SPATIAL)
    active = adata.obsm["lr_active"]
    assert (
        active.shape[1] == 40 and adata.uns["qsimcells"]["lr_sampling"] == "per-shot switch qubits"
    )
    assert len(np.unique(active[::4], axis=0)) > 1000  # patterns: one circuit each would crawl


def test_spatial_plot_draws_cells_and_true_pairs(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    adata = qs.sim.simulate(DESIGN, 80, rng=0, tissue=SPATIAL)
    fig, ax = plt.subplots()
    out = qs.pl.spatial(adata, ax=ax, min_coupling=0.3, save=tmp_path / "s.png", show=False)
    assert out is fig and (tmp_path / "s.png").stat().st_size > 0
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    want = int((adata.obsp["lr_coupling"].data >= 0.3).sum())
    assert len(lines) == 1 and len(lines[0].get_segments()) == want > 0
    points = sum(len(c.get_offsets()) for c in ax.collections if c not in lines)
    assert points == adata.n_obs
    assert [t.get_text() for t in ax.get_legend().get_texts()][1:] == ["CT1", "CT2"]
    plt.close("all")
    with pytest.raises(ValueError, match=r"adata: no obsm\['spatial'\]"):
        qs.pl.spatial(qs.sim.simulate(DESIGN, 5, rng=0), show=False)
    with pytest.raises(ValueError, match=r"color: 'tissue' is not a column of adata\.obs"):
        qs.pl.spatial(adata, color="tissue", show=False)
    with pytest.raises(ValueError, match=r"min_coupling: 2\.0 is outside"):
        qs.pl.spatial(adata, min_coupling=2, show=False)
    plt.close("all")


def test_domains_label_niches_and_switch_communication_on(tmp_path) -> None:
    tissue = qs.sim.Tissue(
        "hex",
        spacing=40.0,
        contact_radius=30.0,
        interaction_length=8.0,
        domains={"tumour": (300.0, 300.0, 200.0), "edge": (0.0, 0.0, 150.0)},
        interacting_domains="tumour",
    )
    adata = qs.sim.simulate(DESIGN, 1500, rng=1, tissue=tissue)
    domain = adata.obs["domain"]
    assert list(domain.cat.categories) == ["tumour", "edge", "outside"]
    centres = _cells(adata).mean(axis=1)  # within contact_radius / 2 of the true centre
    label = domain.to_numpy()[::N_TYPES]
    far_in = np.hypot(*(centres - 300.0).T) < 200.0 - 15.0
    far_out = np.hypot(*(centres - 300.0).T) > 200.0 + 15.0
    assert (label[far_in] == "tumour").all() and (label[far_out] != "tumour").all()
    assert {"tumour", "edge", "outside"} <= set(label)
    assert (domain.to_numpy()[1::N_TYPES] == label).all()  # one domain per niche
    active = adata.obsm["lr_active"][::N_TYPES]
    assert not active[label != "tumour"].any() and active[label == "tumour"].any()
    coupling = adata.obsp["lr_coupling"]
    assert coupling.nnz == 2 * (label == "tumour").sum()  # zero coupling is not stored
    adata.write_h5ad(tmp_path / "d.h5ad")
    back = ad.read_h5ad(tmp_path / "d.h5ad")
    assert back.obs["domain"].equals(adata.obs["domain"])
    np.testing.assert_array_equal(
        back.uns["qsimcells"]["tissue"]["domains"]["tumour"], [300.0, 300.0, 200.0]
    )
    assert list(back.uns["qsimcells"]["tissue"]["interacting_domains"]) == ["tumour"]


def test_bad_domains_name_the_field() -> None:
    with pytest.raises(TypeError, match=r"domains: expected a dict \{name: \(x, y, radius\)\}"):
        qs.sim.Tissue(domains=[(0, 0, 1)])
    with pytest.raises(ValueError, match=r"domains\['a'\]: expected \(x, y, radius\)"):
        qs.sim.Tissue(domains={"a": (0, 0)})
    with pytest.raises(ValueError, match=r"domains\['a'\].radius: .* outside the allowed"):
        qs.sim.Tissue(domains={"a": (0, 0, -1)})
    with pytest.raises(ValueError, match=r"domains\['a'\].x: must be a finite number"):
        qs.sim.Tissue(domains={"a": (np.nan, 0, 1)})
    with pytest.raises(
        ValueError, match="a domain name must be a non-empty string other than 'outside'"
    ):
        qs.sim.Tissue(domains={"outside": (0, 0, 1)})
    with pytest.raises(
        ValueError,
        match=r"interacting_domains: 'b' is not allowed; choose one "
        r"of \['a', 'outside'\]",
    ):
        qs.sim.Tissue(domains={"a": (0, 0, 1)}, interacting_domains=["b"], interaction_length=5)
    with pytest.raises(ValueError, match="interacting_domains: needs interaction_length"):
        qs.sim.Tissue(domains={"a": (0, 0, 1)}, interacting_domains=["a"])


def test_squidpy_spatial_analyses_run_on_the_output() -> None:
    sq = pytest.importorskip("squidpy")
    import pandas as pd
    import scanpy as sc

    adata = qs.sim.simulate(DESIGN, 600, rng=0, tissue=SPATIAL)
    sq.gr.spatial_neighbors(adata, coord_type="generic", radius=SPATIAL.contact_radius)
    graph = adata.obsp["spatial_connectivities"]
    niches = np.arange(600) * N_TYPES
    # the cells of every niche are neighbours within the contact radius
    assert (np.asarray(graph[niches, niches + 1]).ravel() > 0).all()
    sq.gr.nhood_enrichment(
        adata, cluster_key="cell_type", seed=0, n_perms=100, show_progress_bar=False
    )
    z = adata.uns["cell_type_nhood_enrichment"]["zscore"]
    assert z[0, 1] > 3 and z[0, 0] < -3  # each niche pairs a CT1 with a CT2 cell
    norm = adata.copy()
    sc.pp.normalize_total(norm, target_sum=1e4)
    sc.pp.log1p(norm)
    pairs = pd.DataFrame({"source": ["g3", "g7"], "target": ["g5", "g0"]})
    res = sq.gr.ligrec(
        norm,
        "cell_type",
        interactions=pairs,
        n_perms=100,
        seed=0,
        copy=True,
        use_raw=False,
        show_progress_bar=False,
        threshold=0.0,
    )
    means = res["means"]
    assert set(means.index) == {("G3", "G5"), ("G7", "G0")}  # ligrec upper-cases genes
    # the ligand's and the receptor's own cell types: the only pair where both are expressed
    assert means.loc[("G3", "G5"), ("CT1", "CT2")] > 0
    assert means.loc[("G7", "G0"), ("CT2", "CT1")] > 0
    # no tissue image, so no uns["spatial"]: squidpy draws the cells from obsm["spatial"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert "spatial" not in adata.uns
    sq.pl.spatial_scatter(adata, shape=None, color="cell_type")
    assert len(plt.gcf().axes[0].collections) > 0
    plt.close("all")
