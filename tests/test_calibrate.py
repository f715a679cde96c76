"""qs.sim.fit_design: marginals and edges recovered from a known circuit, look-alike
simulations, the fit report, and bad inputs."""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scipy import sparse

import qsimcells as qs

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def known():
    """A 2-type, 16-gene random network with 10 housekeeping genes and library-size effects:
    the reference, and its fit."""
    design = qs.sim.presets.random_network(16, 2, rng=4, n_housekeeping=10)
    ref = qs.sim.simulate(design, 1500, rng=5, library_size=0.3, progress=False)
    fitted = qs.sim.fit_design(ref, n_genes=None, progress=False)
    return design, ref, fitted


def test_independent_marginals_are_recovered() -> None:
    """No edges, NB zeros negligible (mu = 20, r = 5: P(0) = 3e-4): p-hat is within 4 sd of a
    binomial proportion of p, mu-hat within 4 sd of a mean of the ON counts."""
    p = np.array([0.1, 0.3, 0.5, 0.7, 0.9, 0.6])
    design = qs.sim.CellCircuit(
        {"A": ["a0", "a1", "a2"], "B": ["b0", "b1", "b2"]}, p=p, mu=20.0, r=5.0, n_housekeeping=0
    )
    n = 3000
    ref = qs.sim.simulate(design, n, rng=1, progress=False)
    fitted = qs.sim.fit_design(ref, n_genes=None, edges=None, progress=False)
    marg = fitted.fit["marginals"].set_index(["cell_type", "gene"])
    for gene, cell_type, p_true in zip(
        design.gene_names, design.genes["cell_type"], p, strict=True
    ):
        row = marg.loc[(cell_type, gene)]
        assert abs(row["p_on"] - p_true) < 4 * math.sqrt(p_true * (1 - p_true) / n), gene
        sd_mean = math.sqrt((20 + 20**2 / 5) / (n * p_true))
        assert abs(row["mu"] - 20) < 4 * sd_mean, gene
        assert 5 / 1.6 < row["r"] < 5 * 1.6, gene
    # genes of the other type never count in a cell: no qubit for them
    assert fitted.circuit.n_qubits == 6 and fitted.fit["edges"].empty
    assert fitted.library_size == {"A": 0.0, "B": 0.0} or max(fitted.library_size.values()) < 0.3


def test_edges_of_a_known_circuit_are_recovered(known) -> None:
    """Undirected regulation edges of the programmed circuit against the fitted ones, at 1,500
    cells per type and 16 genes (benchmarks/calibration.py measures precision 0.80 and recall
    0.38 on a 40-gene circuit; a CX onto a gene ON half the time leaves no pairwise trace, so
    recall stays low). The bounds leave room for the seed, not for a fit that finds nothing or
    noise."""
    design, _, fitted = known
    truth = design.edges[design.edges["kind"] == "regulation"]
    true_pairs = {frozenset(p) for p in zip(truth["source"], truth["target"], strict=True)}
    found = {
        frozenset(p)
        for p in zip(fitted.fit["edges"]["source"], fitted.fit["edges"]["target"], strict=True)
    }
    hits = len(true_pairs & found)
    assert found, "no edge found"
    assert hits / len(found) >= 0.6 and hits / len(true_pairs) >= 0.25, (
        hits,
        len(found),
        len(true_pairs),
    )
    # every fitted edge lies within one cell type and the graph is acyclic (var order)
    order = {g: i for i, g in enumerate(fitted.genes)}
    edges = fitted.fit["edges"]
    assert (edges["source"].map(order) < edges["target"].map(order)).all()
    assert (edges["delta_loglik"] > 0).all() and edges["weight"].between(0, math.pi).all()
    assert fitted.fit["loglik"] > fitted.fit["loglik_independent"]


def test_library_sizes_and_shares(known) -> None:
    _, _ref, fitted = known
    for sd in fitted.library_size.values():
        assert abs(sd - 0.3) < 0.05  # 1,500 cells: the sd of an sd is 0.3 / sqrt(3000)
    assert fitted.proportions.to_dict() == pytest.approx({"CT1": 0.5, "CT2": 0.5})
    assert fitted.cells_per_type(7) == {"CT1": 4, "CT2": 3}


def test_look_alike_simulation(known) -> None:
    """Per gene and cell type, the simulation's zero fraction is within 5 sd of the
    reference's (two proportions), and its mean within 15% (or 0.05 counts)."""
    _, ref, fitted = known
    sim = fitted.simulate(3000, rng=7, progress=False)
    assert sim.n_obs == 3000 and list(sim.var_names) == fitted.genes
    assert sim.obs["cell_type"].value_counts().to_dict() == {"CT1": 1500, "CT2": 1500}
    for cell_type in ("CT1", "CT2"):
        a = ref[ref.obs["cell_type"] == cell_type, fitted.genes].X.toarray()
        b = sim[sim.obs["cell_type"] == cell_type].X.toarray()
        za, zb = (a == 0).mean(0), (b == 0).mean(0)
        pooled = (za + zb) / 2
        sd = np.sqrt(pooled * (1 - pooled) * (1 / len(a) + 1 / len(b))) + 1e-9
        assert (np.abs(za - zb) < 5 * sd + 1e-9).all(), cell_type
        ma, mb = a.mean(0), b.mean(0)
        assert (np.abs(ma - mb) <= np.maximum(0.15 * ma, 0.05)).all(), cell_type
    # the same seed gives the same data; simulate() of the fitted design is the same call
    again = qs.sim.simulate(fitted, 3000, rng=7, progress=False)
    assert (again.X != sim.X).nnz == 0 and (again.layers["binary"] != sim.layers["binary"]).nnz == 0


def test_fit_report_in_uns_and_h5ad(known, tmp_path) -> None:
    _, ref, fitted = known
    report = ref.uns["qsimcells_fit"]
    assert set(report) >= {"marginals", "edges", "loglik", "params", "library_size"}
    sim = fitted.simulate(200, rng=0, progress=False)
    cal = sim.uns["qsimcells"]["calibration"]
    assert len(cal["edges"]) == len(fitted.fit["edges"])
    sim.write_h5ad(tmp_path / "sim.h5ad")
    back = ad.read_h5ad(tmp_path / "sim.h5ad")
    assert (
        back.uns["qsimcells"]["calibration"]["edges"]["source"].tolist()
        == fitted.fit["edges"]["source"].tolist()
    )


def test_edges_from_a_table_and_none(known) -> None:
    design, ref, _fitted = known
    truth = design.edges[design.edges["kind"] == "regulation"][["source", "target"]]
    given_table = qs.sim.fit_design(ref, n_genes=None, edges=truth, key_added=None, progress=False)
    allowed = {frozenset(p) for p in zip(truth["source"], truth["target"], strict=True)}
    found = {
        frozenset(p)
        for p in zip(
            given_table.fit["edges"]["source"], given_table.fit["edges"]["target"], strict=True
        )
    }
    assert found and found <= allowed
    none = qs.sim.fit_design(ref, n_genes=None, edges=None, key_added=None, progress=False)
    assert none.fit["edges"].empty and none.fit["n_candidates"] == 0


def test_gene_selection(known) -> None:
    _, ref, _ = known
    fitted = qs.sim.fit_design(ref, n_genes=5, edges=None, key_added=None, progress=False)
    assert len(fitted.genes) == 5
    assert fitted.genes == [g for g in ref.var_names if g in fitted.genes]  # var order
    chosen = qs.sim.fit_design(ref, genes=["G3", "G1"], edges=None, key_added=None, progress=False)
    assert chosen.genes == ["G1", "G3"]


def test_states_split_a_mixed_cell_type() -> None:
    """Two designs' cells under one label: n_states=2 finds the two sub-populations (k-means
    on the PCA), fits each, and the simulation keeps the label with obs['state']."""
    a = qs.sim.CellCircuit({"A": ["x", "y", "z"]}, p=[0.9, 0.9, 0.05], mu=20.0, n_housekeeping=0)
    b = qs.sim.CellCircuit({"A": ["x", "y", "z"]}, p=[0.05, 0.05, 0.9], mu=20.0, n_housekeeping=0)
    ref = ad.concat(
        [
            qs.sim.simulate(a, 300, rng=0, progress=False),
            qs.sim.simulate(b, 200, rng=1, progress=False),
        ],
        index_unique="-",
    )
    fitted = qs.sim.fit_design(ref, n_genes=None, edges=None, n_states=2, progress=False)
    # cells OFF in every gene belong to neither: a few land in the other state
    assert np.allclose(sorted(fitted.proportions), [0.4, 0.6], atol=0.03)
    assert set(fitted.cell_type_of.values()) == {"A"} and len(fitted.cell_type_of) == 2
    marg = fitted.fit["marginals"]
    z = marg[marg["gene"] == "z"].sort_values("p_on")["p_on"].to_numpy()
    assert z[0] < 0.15 and z[1] > 0.8  # each state has its own marginals
    sim = fitted.simulate(1000, rng=2, progress=False)
    assert set(sim.obs["cell_type"]) == {"A"} and sim.obs["state"].nunique() == 2
    with pytest.raises(ValueError, match="n_states: must be a positive integer"):
        qs.sim.fit_design(ref, n_states=0)


def _reference(n=40) -> ad.AnnData:
    gen = np.random.default_rng(0)
    X = gen.negative_binomial(1.0, 0.3, size=(n, 6)).astype(np.float32)
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(np.repeat(["A", "B"], n // 2))},
        index=[f"c{i}" for i in range(n)],
    )
    return ad.AnnData(
        X=sparse.csr_matrix(X), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(6)])
    )


@pytest.mark.parametrize(
    ("change", "kwargs", "error", "match"),
    [
        (None, {"groupby": "type"}, KeyError, "groupby: 'type' is not a column"),
        ("fractional", {}, ValueError, r"X: expected raw counts \(non-negative integers\)"),
        ("negative", {}, ValueError, "X: expected raw counts"),
        ("nan", {}, ValueError, "X: contains NaN"),
        ("nan_label", {}, ValueError, "groupby: obs\\['cell_type'\\] has 1 missing"),
        ("duplicate", {}, ValueError, "adata.var_names: gene names must be unique"),
        (None, {"edges": "grnboost"}, ValueError, "edges: expected 'correlation'"),
        (
            None,
            {"edges": pd.DataFrame({"source": ["g0"]})},
            ValueError,
            r"edges: the table needs columns 'source' and 'target'",
        ),
        (
            None,
            {"edges": pd.DataFrame({"source": ["g0"], "target": ["zz"]})},
            ValueError,
            r"edges\[0\].target: 'zz' is not a fitted gene",
        ),
        (
            None,
            {"edges": pd.DataFrame({"source": ["g0"], "target": ["g1"], "cell_type": ["C"]})},
            ValueError,
            r"edges\[0\].cell_type: 'C' is not one of \['A', 'B'\]",
        ),
        (None, {"max_parents": 7}, ValueError, "max_parents: at most 6"),
        (None, {"min_correlation": 2}, ValueError, "min_correlation: 2.0 is outside"),
        (None, {"genes": ["g0", "nope"]}, KeyError, r"genes: \['nope'\] not in"),
        (None, {"n_genes": 0}, ValueError, "n_genes: must be a positive integer"),
        (None, {"layer": "counts"}, KeyError, "layer: 'counts' is not in adata.layers"),
    ],
)
def test_bad_inputs_name_their_field(change, kwargs, error, match) -> None:
    adata = _reference()
    if change == "fractional":
        adata.X = adata.X * 0.5
    elif change == "negative":
        adata.X = adata.X.toarray() - 1
    elif change == "nan":
        X = adata.X.toarray()
        X[0, 0] = np.nan
        adata.X = X
    elif change == "nan_label":
        adata.obs["cell_type"] = adata.obs["cell_type"].astype(object)
        adata.obs.iloc[0, 0] = np.nan
    elif change == "duplicate":
        adata.var_names = ["g0"] * 2 + [f"g{i}" for i in range(2, 6)]
    with pytest.raises(error, match=match):
        qs.sim.fit_design(adata, progress=False, **kwargs)
    assert "qsimcells_fit" not in adata.uns  # nothing half-written


def test_batches_of_a_fitted_design_scale_a_gene_alike_in_every_cell_type(known) -> None:
    """With batches, each gene's mean is multiplied by one factor per batch, the same in
    both cell types (their qubits of a gene share it): per type and gene, the log ratio of the
    batch means lies within 5 sd of the log ratio of the factors."""
    _, _, fitted = known
    sim = qs.sim.simulate(
        fitted, 8000, rng=3, batches=["b0", "b1"], batch_scale=0.5, progress=False
    )
    factors = sim.uns["qsimcells"]["batch_factors"]
    assert factors.shape == (2, len(fitted.genes))
    assert set(sim.obs["batch"]) == {"b0", "b1"}
    want = np.log(factors[1] / factors[0])
    checked = 0
    for cell_type in ("CT1", "CT2"):
        part = sim[sim.obs["cell_type"] == cell_type]
        X = part.X.toarray().astype(float)
        b0, b1 = X[part.obs["batch"].to_numpy() == "b0"], X[part.obs["batch"].to_numpy() == "b1"]
        m0, m1 = b0.mean(0), b1.mean(0)
        shown = (m0 > 0.5) & (m1 > 0.5)
        sd = np.sqrt(b0.var(0) / (len(b0) * m0**2 + 1e-12) + b1.var(0) / (len(b1) * m1**2 + 1e-12))
        got = np.log(m1[shown] / m0[shown])
        assert (np.abs(got - want[shown]) < 5 * sd[shown]).all(), cell_type
        checked += int(shown.sum())
    assert checked >= 15  # housekeeping genes count in both types
    with pytest.raises(ValueError, match=r"batches: expected None"):
        qs.sim.simulate(fitted, 10, batches="b0")


def test_simulate_refuses_options_a_fitted_design_brings_itself(known) -> None:
    _, _, fitted = known
    with pytest.raises(ValueError, match=r"tissue: not available for a fitted design"):
        qs.sim.simulate(fitted, 10, tissue=qs.sim.Tissue())
    with pytest.raises(ValueError, match=r"library_size: not available"):
        qs.sim.simulate(fitted, 10, library_size=0.5)
    with pytest.raises(ValueError, match=r"n_cells: must be a positive integer"):
        fitted.simulate(0)


def test_library_size_per_cell_type() -> None:
    design = qs.sim.presets.romero2025(True, n_housekeeping=5)
    adata = qs.sim.simulate(
        design, 2000, rng=0, library_size={"CT1": 0.0, "CT2": 0.8}, progress=False
    )
    sizes = adata.obs.groupby("cell_type", observed=True)["size_factor"]
    assert sizes.std()["CT1"] == 0.0 and abs(np.log(sizes.get_group("CT2")).std() - 0.8) < 0.05
    with pytest.raises(ValueError, match=r"library_size: a mapping needs one sd per cell type"):
        qs.sim.simulate(design, 10, library_size={"CT1": 0.1})
    with pytest.raises(ValueError, match=r"library_size\['CT2'\]: 3.0 is outside"):
        qs.sim.simulate(design, 10, library_size={"CT1": 0.1, "CT2": 3})


@settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    st.integers(2, 30),
    st.integers(1, 5),
    st.integers(1, 3),
    st.floats(0.0, 1.0),
    st.integers(0, 2**16),
)
def test_any_small_reference_fits_or_names_the_field(
    n_cells, n_genes, n_types, zeros, seed
) -> None:
    """Random small references (sparse counts, a type with one cell, all-zero genes): the fit
    works and its simulation has the reference's genes, or a named ValueError comes back."""
    gen = np.random.default_rng(seed)
    X = gen.negative_binomial(0.5, 0.2, size=(n_cells, n_genes)) * (
        gen.random((n_cells, n_genes)) > zeros
    )
    labels = [f"T{k}" for k in gen.integers(n_types, size=n_cells)]
    adata = ad.AnnData(
        X=X.astype(np.float64),
        obs=pd.DataFrame({"cell_type": labels}, index=[f"c{i}" for i in range(n_cells)]),
        var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]),
    )
    try:
        fitted = qs.sim.fit_design(adata, key_added=None, progress=False)
    except (ValueError, TypeError) as err:
        assert str(err).split(":")[0] in {"adata", "groupby", "X"}, err
        return
    sim = fitted.simulate(20, rng=0, progress=False)
    assert list(sim.var_names) == fitted.genes and sim.n_obs == 20
    assert np.isfinite(sim.X.data).all()
