"""Perturbation screens: exact responses, knockout cascades, the simulated cells, presets."""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import qsimcells as qs
from qsimcells.sim import CellCircuit


def _binomial_ok(successes: np.ndarray, n: int, p: np.ndarray, alpha: float = 1e-6) -> None:
    """Every count passes a two-sided exact binomial tail test, Bonferroni over all counts."""
    tail = np.minimum(stats.binom.cdf(successes, n, p), stats.binom.sf(successes - 1, n, p))
    p_value = np.minimum(1.0, 2 * tail * successes.size)
    worst = np.unravel_index(np.argmin(p_value), p_value.shape)
    assert p_value[worst] >= alpha, (
        f"entry {worst}: {successes[worst]} of {n}, expected {p[worst] * n:.1f} "
        f"(Bonferroni p = {p_value[worst]:.1e})"
    )


def _random_design(n: int, n_edges: int, seed: int, *, weights: bool = False) -> CellCircuit:
    gen = np.random.default_rng(seed)
    genes = [f"g{i}" for i in range(n)]
    edges = []
    for _ in range(n_edges):
        s, t = gen.choice(n, 2, replace=False)
        weight = float(gen.uniform(0.3, 3.0)) if weights else None
        edges.append((int(s), int(t), weight, "repression" if gen.random() < 0.3 else "+"))
    half = n // 2
    return CellCircuit(
        {"A": genes[:half], "B": genes[half:]},
        p=gen.uniform(0.05, 0.95, n),
        edges=edges,
        n_housekeeping=2,
    )


# -- exact activation -----------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_affine_activation_matches_statevector(seed):
    design = _random_design(9, 14, seed)
    for variant in (design, design.knockout("g2"), design.overexpress(["g0", "g5"])):
        affine = qs.sim.exact_activation(variant, method="affine")
        exact = qs.sim.exact_activation(variant, method="statevector")
        assert affine.attrs["method"] == "affine"
        assert list(affine.index) == variant.gene_names
        np.testing.assert_allclose(affine.to_numpy(), exact.to_numpy(), atol=1e-12)
    assert qs.sim.exact_activation(design).attrs["method"] == "affine"


def test_cone_activation_matches_statevector():
    # CRY edges that only write genes no gate has read yet: a classical program
    design = CellCircuit(
        {"A": ["a", "b", "c", "d", "e", "f"]},
        p=[0.2, 0.7, 0.4, 0.1, 0.9, 0.5],
        edges=[
            ("a", "c", 1.1),
            ("b", "c", 2.0, "-"),
            ("c", "d"),
            ("d", "e", 0.7),
            ("a", "f", 2.5),
            ("f", "b"),
        ],
    )
    assert qs.sim.exact_activation(design).attrs["method"] == "statevector"
    cone = qs.sim.exact_activation(design, method="cone")
    exact = qs.sim.exact_activation(design, method="statevector")
    np.testing.assert_allclose(cone.to_numpy(), exact.to_numpy(), atol=1e-12)
    # a CRY onto a gene that was read before is not a classical program
    quantum = CellCircuit({"A": ["a", "b", "c"]}, p=0.5, edges=[("a", "b"), ("c", "a", 1.0)])
    with pytest.raises(ValueError, match="CRY on a gene that an earlier gate already read"):
        qs.sim.exact_activation(quantum, method="cone")
    with pytest.raises(ValueError, match="max_qubits"):
        qs.sim.exact_activation(design, method="cone", max_qubits=2)


def test_exact_activation_bad_input():
    design = _random_design(6, 5, 0, weights=True)
    with pytest.raises(ValueError, match="method: 'fast' is not allowed"):
        qs.sim.exact_activation(design, method="fast")
    with pytest.raises(ValueError, match="'affine' needs every edge to be a CX"):
        qs.sim.exact_activation(design, method="affine")
    with pytest.raises(ValueError, match="exceeds max_qubits=4"):
        qs.sim.exact_activation(design, method="statevector", max_qubits=4)
    with pytest.raises(TypeError, match=r"design: expected a qs\.sim\.CellCircuit"):
        qs.sim.exact_activation("romero2025")


# -- the knockout cascade, exactly ------------------------------------------------------------
def _cascade_design() -> CellCircuit:
    # u -> x -> y -> z; w -> y; v unconnected; the gate y -> late runs *before* x -> y, so the
    # knockout of x cannot reach `late` although it is a descendant in the edge graph
    genes = ["u", "x", "y", "z", "w", "v", "late"]
    return CellCircuit(
        {"A": genes},
        p=[0.8, 0.3, 0.1, 0.2, 0.9, 0.6, 0.15],
        edges=[("u", "x"), ("y", "late"), ("x", "y"), ("w", "y"), ("y", "z")],
        n_housekeeping=1,
    )


def test_knockout_cascade_is_exact():
    design = _cascade_design()
    control = qs.sim.exact_activation(design)
    knocked = qs.sim.exact_activation(design.knockout("x"))
    down = qs.sim.downstream_genes(design, "x")
    assert down == ["y", "z"]
    assert knocked["x"] == 0.0
    for gene in down:  # downstream genes change
        assert abs(knocked[gene] - control[gene]) > 0.05, gene
    for gene in ("u", "w", "v", "late"):  # upstream, unconnected, or reached too early: equal
        assert knocked[gene] == control[gene], gene
    over = qs.sim.exact_activation(design.overexpress("x"))
    assert over["x"] == 1.0 and over["u"] == control["u"] and over["y"] != control["y"]
    # hand check: y = y0 xor x xor w, so a knockout removes x's coin
    p = design.genes["p_on"]
    x_on = p["x"] + p["u"] - 2 * p["x"] * p["u"]
    expected_y = 0.5 * (1 - (1 - 2 * p["y"]) * (1 - 2 * x_on) * (1 - 2 * p["w"]))
    assert control["y"] == pytest.approx(expected_y, abs=1e-15)
    assert knocked["y"] == pytest.approx(0.5 * (1 - (1 - 2 * p["y"]) * (1 - 2 * p["w"])), abs=1e-15)


def test_screen_records_cascade():
    design = _cascade_design()
    screen = qs.sim.perturbation_screen(design, ["x", "u"], 50, rng=1)
    truth = screen.uns["perturbation_screen"]
    assert truth["downstream"].loc["x"].index[truth["downstream"].loc["x"]].tolist() == ["y", "z"]
    # the edge graph reaches `late` too; the gate order does not
    assert truth["graph_descendant"].loc["x", "late"] and not truth["downstream"].loc["x", "late"]
    response = qs.sim.true_response(screen)
    assert (response.loc["x", ["u", "w", "v", "late"]] == 0.0).all()
    assert (response.loc["x", ["y", "z"]].abs() > 0.05).all()
    assert truth["perturbations"].loc["x", "n_changed"] == 2
    assert truth["perturbations"].loc["u", "n_downstream"] == 3  # x, y, z (not late)


def test_screen_cells_follow_the_exact_response():
    design, perturbations = qs.sim.preset_screen("random_50")
    n = 400
    screen = qs.sim.perturbation_screen(design, perturbations, n, rng=7)
    truth = screen.uns["perturbation_screen"]
    p_on = truth["p_on"]
    genes = design.gene_names
    binary = screen[:, genes].layers["binary"]
    labels = screen.obs["perturbation"].to_numpy()
    on = np.vstack([np.asarray(binary[labels == k].sum(axis=0)).ravel() for k in p_on.index])
    # every gene of every run: the sampled ON count is binomial(n, exact p_on)
    _binomial_ok(on.astype(np.int64), n, p_on.to_numpy())
    response = qs.sim.true_response(screen)
    down = truth["downstream"]
    # genes not downstream (other than the knocked-out gene) keep exactly the control's
    held = np.array([[g == label for g in genes] for label in perturbations])
    assert (response.to_numpy()[~down.to_numpy() & ~held] == 0.0).all()
    assert (response.to_numpy()[held] < 0).all()
    # a knocked-out gene is never ON
    for label in perturbations:
        assert on[p_on.index.get_loc(label), genes.index(label)] == 0
    # strong downstream responses show in the cells: perturbed vs control, > 4 standard errors
    control_rate = on[0] / n
    strong = np.argwhere(response.abs().to_numpy() >= 0.3)
    assert len(strong) >= 5
    for row, col in strong:
        if genes[col] == perturbations[row]:
            continue
        rate = on[row + 1, col] / n
        se = math.sqrt(control_rate[col] * (1 - control_rate[col]) / n + rate * (1 - rate) / n)
        assert np.sign(rate - control_rate[col]) == np.sign(response.iat[row, col])
        assert abs(rate - control_rate[col]) > 4 * se


# -- the AnnData -------------------------------------------------------------------------------
def test_screen_layout_and_round_trip(tmp_path):
    design, perturbations = qs.sim.preset_screen("random_50")
    screen = qs.sim.perturbation_screen(
        design, perturbations[:4], 30, rng=3, n_control=40, library_size=0.2
    )
    assert screen.n_obs == 40 + 4 * 30
    assert list(screen.obs["perturbation"].cat.categories) == ["control", *perturbations[:4]]
    assert screen.obs["perturbation"].iloc[0] == "control"
    assert list(screen.obs["perturbation_kind"].cat.categories) == ["control", "knockout"]
    assert screen.obs["niche"].is_unique and screen.obs_names.is_unique
    assert "size_factor" in screen.obs
    assert (screen.var["intervention"] == "").all()  # the control design's var
    np.testing.assert_array_equal(screen.var_names, design.gene_names + design.housekeeping_names)
    truth = screen.uns["perturbation_screen"]
    assert truth["p_on"].shape == (5, design.n_qubits)
    assert truth["downstream"].shape == (4, design.n_qubits)
    assert truth["perturbations"]["n_cells"].tolist() == [40, 30, 30, 30, 30]
    assert CellCircuit.from_dict(truth["design"]) == design
    assert qs.tl.true_network(screen).shape[0] == len(design.edges)
    path = tmp_path / "screen.h5ad"
    screen.write_h5ad(path)
    back = ad.read_h5ad(path)
    pd.testing.assert_frame_equal(qs.sim.true_response(back), qs.sim.true_response(screen))
    pd.testing.assert_frame_equal(qs.sim.true_response(back, delta=False), truth["p_on"])
    assert (back.X != screen.X).nnz == 0
    # a fixed seed gives the same screen, another seed another one
    again = qs.sim.perturbation_screen(
        design, perturbations[:4], 30, rng=3, n_control=40, library_size=0.2
    )
    assert (again.X != screen.X).nnz == 0
    other = qs.sim.perturbation_screen(
        design, perturbations[:4], 30, rng=4, n_control=40, library_size=0.2
    )
    assert (other.X != screen.X).nnz > 0


def test_overexpression_combination_and_two_cell_types():
    # g0 (type A) sends a ligand-receptor edge to g3 (type B)
    design = CellCircuit(
        {"A": ["g0", "g1", "g2"], "B": ["g3", "g4"]},
        p=[0.5, 0.2, 0.3, 0.1, 0.4],
        edges=[("g0", "g3"), ("g1", "g2"), ("g3", "g4")],
        n_housekeeping=2,
    )
    screen = qs.sim.perturbation_screen(
        design, {"g0": "overexpress", "g1+g0": "knockout"}, 60, rng=0
    )
    assert screen.n_obs == 3 * 60 * 2  # one cell per type and niche
    truth = screen.uns["perturbation_screen"]
    p_on = truth["p_on"]
    assert p_on.loc["g0", "g0"] == 1.0 and p_on.loc["g1+g0", "g0"] == 0.0
    assert p_on.loc["g1+g0", "g1"] == 0.0
    assert p_on.loc["g0", "g3"] == pytest.approx(0.9)  # always flipped by the ON ligand
    assert truth["downstream"].loc["g0"].tolist() == [False, False, False, True, True]
    assert truth["perturbations"].loc["g1+g0", "genes"] == "g1+g0"
    over = screen[(screen.obs["perturbation"] == "g0") & (screen.obs["cell_type"] == "A")]
    assert over[:, "g0"].layers["binary"].toarray().all()


def test_screen_bad_input():
    design = _cascade_design()
    with pytest.raises(TypeError, match="wrap a single perturbation in a list"):
        qs.sim.perturbation_screen(design, "x", 10)
    with pytest.raises(ValueError, match=r"perturbations\[1\]: unknown circuit gene\(s\) \['q'\]"):
        qs.sim.perturbation_screen(design, ["x", "q+u"], 10)
    with pytest.raises(ValueError, match="listed twice"):
        qs.sim.perturbation_screen(design, ["x", "x"], 10)
    with pytest.raises(ValueError, match="is the control label"):
        qs.sim.perturbation_screen(design, ["x"], 10, control="x")
    with pytest.raises(ValueError, match="at least one perturbation"):
        qs.sim.perturbation_screen(design, [], 10)
    with pytest.raises(ValueError, match="repeats a gene"):
        qs.sim.perturbation_screen(design, ["x+x"], 10)
    with pytest.raises(ValueError, match="kind: 'silence' is not allowed"):
        qs.sim.perturbation_screen(design, ["x"], 10, kind="silence")
    with pytest.raises(ValueError, match=r"perturbations\['x'\]: 'off' is not allowed"):
        qs.sim.perturbation_screen(design, {"x": "off"}, 10)
    with pytest.raises(ValueError, match="batches: not supported in a screen"):
        qs.sim.perturbation_screen(design, ["x"], 10, batches=2)
    with pytest.raises(ValueError, match="n_cells: must be a positive integer"):
        qs.sim.perturbation_screen(design, ["x"], 0)
    with pytest.raises(TypeError, match="n_control: expected a positive integer"):
        qs.sim.perturbation_screen(design, ["x"], 5, n_control=2.5)
    with pytest.raises(TypeError, match=r"design: expected a qs\.sim\.CellCircuit"):
        qs.sim.perturbation_screen({"A": ["x"]}, ["x"], 10)
    with pytest.raises(TypeError, match="unexpected keyword"):
        qs.sim.perturbation_screen(design, ["x"], 10, colour="red")
    with pytest.raises(ValueError, match="unknown circuit genes"):
        qs.sim.downstream_genes(design, ["x", "HKG0"])
    with pytest.raises(ValueError, match=r"uns\['perturbation_screen'\] not found"):
        qs.sim.true_response(qs.sim.simulate(design, 5, rng=0))


# -- presets -----------------------------------------------------------------------------------
def test_random_dag():
    design = qs.sim.presets.random_dag(60, 2, 90, rng=5)
    assert design == qs.sim.presets.random_dag(60, 2, 90, rng=5)
    assert design == qs.sim.presets.get("random_dag", n_genes=60, n_cell_types=2, n_edges=90, rng=5)
    edges = design.edges
    index = {g: i for i, g in enumerate(design.gene_names)}
    src = edges["source"].map(index).to_numpy()
    tgt = edges["target"].map(index).to_numpy()
    assert len(edges) == 90 and (src < tgt).all() and (np.diff(src) >= 0).all()
    assert set(edges["kind"]) == {"regulation", "ligand_receptor"}
    p = design.genes["p_on"]
    regulators = set(edges["source"])
    assert all(0.7 <= p[g] <= 0.95 for g in regulators)
    assert all(0.05 <= p[g] <= 0.3 for g in design.gene_names if g not in regulators)
    # in cascade order every descendant in the graph is reached
    screen_truth = qs.sim.perturbation_screen(design, ["G0", "G3"], 5, rng=0).uns[
        "perturbation_screen"
    ]
    pd.testing.assert_frame_equal(screen_truth["downstream"], screen_truth["graph_descendant"])
    dense = qs.sim.presets.random_dag(8, n_edges=26, rng=0)  # more than half of the 28 pairs
    assert len(dense.edges) == 26
    with pytest.raises(ValueError, match="at most 28"):
        qs.sim.presets.random_dag(8, n_edges=29)
    with pytest.raises(ValueError, match="at least 2 genes"):
        qs.sim.presets.random_dag(1)
    with pytest.raises(ValueError, match=r"regulator_p_range\[1\]"):
        qs.sim.presets.random_dag(5, regulator_p_range=(0.5, 1.5))


def test_preset_screen():
    design, perturbations = qs.sim.preset_screen("random_200")
    assert design.n_qubits == 200 and len(perturbations) == 48
    assert perturbations == sorted(perturbations, key=design.gene_names.index)
    base = qs.sim.exact_activation(design)
    for gene in perturbations[::8]:  # every picked knockout moves other genes
        moved = (qs.sim.exact_activation(design.knockout(gene)) - base).abs().drop(gene)
        assert moved.max() > 0.1
    assert qs.sim.preset_screen("random_200") == (design, perturbations)
    small, picked = qs.sim.preset_screen("random_50")
    assert small.n_qubits == 50 and len(picked) == 12
    with pytest.raises(ValueError, match="name: 'random_9' is not allowed"):
        qs.sim.preset_screen("random_9")
