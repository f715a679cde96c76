"""simulate(): the AnnData contract, statistics against exact probabilities, determinism."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from _helpers import assert_distribution_matches, niche_bits
from scipy import stats

import qsimcells as qs
from qsimcells.samplers.statevector import StatevectorSampler


@pytest.fixture(scope="module")
def case1() -> ad.AnnData:
    return qs.sim.simulate(qs.sim.presets.romero2025(True), 20_000, rng=11, chunk_size=7_000)


def test_anndata_contract(case1: ad.AnnData) -> None:
    a = case1
    assert a.shape == (40_000, 60)
    assert sp.issparse(a.X) and a.X.format == "csr" and np.issubdtype(a.X.dtype, np.integer)
    assert a.layers["binary"].format == "csr" and a.layers["binary"].dtype == np.uint8
    assert list(a.obs.columns) == ["cell_type", "niche"]
    assert list(a.obs["cell_type"].cat.categories) == ["CT1", "CT2"]
    assert (a.obs["cell_type"].value_counts() == 20_000).all()
    assert sorted(a.obs.loc[a.obs.cell_type == "CT2", "niche"]) == list(range(20_000))
    assert {
        "cell_type",
        "housekeeping",
        "background",
        "qubit",
        "theta",
        "p_on",
        "mu",
        "r",
        "intervention",
    } <= set(a.var.columns)
    assert a.var["housekeeping"].sum() == 50
    assert np.allclose(a.var.loc["g3", "p_on"], np.sin(0.45 * np.pi) ** 2)
    rec = a.uns["qsimcells"]
    assert rec["version"] == qs.__version__ and rec["seed"] == 11
    assert rec["sampler"]["name"] == "exact" and rec["sampler"]["requested"] == "auto"
    truth = rec["design"]["edges"]
    assert list(zip(truth.source, truth.target, truth.kind, strict=True)) == [
        ("g3", "g5", "ligand_receptor"),
        ("g5", "g7", "regulation"),
        ("g7", "g0", "ligand_receptor"),
    ]
    # structural exclusion: a cell expresses only its own type's circuit genes
    X = a.X.toarray()
    ct1 = (a.obs["cell_type"] == "CT1").to_numpy()
    assert X[np.ix_(ct1, range(5, 10))].sum() == 0 and X[np.ix_(~ct1, range(0, 5))].sum() == 0
    # counts only where the gene is ON; the index of every CSR row is sorted
    B = a.layers["binary"].toarray()
    assert ((X[:, :10] > 0) <= (B[:, :10] > 0)).all()
    assert a.X.has_sorted_indices and a.X.has_canonical_format


def test_nb_counts_have_the_programmed_moments(case1: ad.AnnData) -> None:
    X = case1.X.toarray()
    B = case1.layers["binary"].toarray().astype(bool)
    on = X[:, 3][B[:, 3]]  # g3 in the CT1 cells where it is ON: NB(mu=5, r=1)
    mean, var = 5.0, 5.0 + 25.0
    assert abs(on.mean() - mean) < 5 * np.sqrt(var / on.size)
    hk = X[:, 10:].ravel()  # housekeeping NB(100, 5) in every cell (the co-culture case)
    hk_mu, hk_r = 100.0, 5.0
    hk_var = hk_mu + hk_mu**2 / hk_r
    assert abs(hk.mean() - hk_mu) < 5 * np.sqrt(hk_var / hk.size)
    # sd of a sample variance: var * sqrt((excess kurtosis + 2) / n)
    kurtosis = float(stats.nbinom.stats(hk_r, hk_r / (hk_r + hk_mu), moments="k"))
    assert abs(hk.var() / hk_var - 1) < 5 * np.sqrt((kurtosis + 2) / hk.size)


@pytest.mark.parametrize("interacting", [True, False])
def test_niche_joint_distribution_matches_exact(interacting: bool) -> None:
    """Pairing the cells of each niche gives back the full 10-qubit shot, distributed as the
    circuit's exact probabilities; so do the per-gene marginals."""
    design = qs.sim.presets.romero2025(interacting)
    adata = qs.sim.simulate(design, 30_000, rng=5)
    bits = niche_bits(adata)
    probs = StatevectorSampler().probabilities(design.to_qiskit(measure=False))
    assert_distribution_matches(bits, probs)
    index = np.arange(probs.size)
    marginal = np.array([probs[(index >> q) & 1 == 1].sum() for q in range(10)])
    sd = np.sqrt(marginal * (1 - marginal) / 30_000)
    assert (np.abs(bits.mean(0) - marginal) < 5 * sd + 1e-12).all()


def test_cross_cell_dependence_only_when_interacting() -> None:
    """g3 (CT1) drives g5 (CT2) through the niche: strongly dependent in case 1 only."""

    def g3_g5_correlation(interacting: bool) -> float:
        bits = niche_bits(qs.sim.simulate(qs.sim.presets.romero2025(interacting), 20_000, rng=2))
        return float(np.corrcoef(bits[:, 3], bits[:, 5])[0, 1])

    with_lr, without = g3_g5_correlation(True), g3_g5_correlation(False)
    assert with_lr > 0.3
    assert abs(without) < 5 / np.sqrt(20_000)


def test_same_seed_same_data_bit_for_bit() -> None:
    design = qs.sim.presets.random_network(40, 2, 60, rng=0)
    a = qs.sim.simulate(design, 3000, rng=4, chunk_size=1000, batches=2, library_size=0.3)
    b = qs.sim.simulate(design, 3000, rng=4, chunk_size=1000, batches=2, library_size=0.3)
    c = qs.sim.simulate(design, 3000, rng=5, chunk_size=1000, batches=2, library_size=0.3)
    for left, right in ((a.X, b.X), (a.layers["binary"], b.layers["binary"])):
        assert (left != right).nnz == 0
    assert a.obs.equals(b.obs)
    assert (a.X != c.X).nnz > 0


def test_unseeded_run_records_a_reproducible_seed() -> None:
    design = qs.sim.presets.romero2025(True)
    first = qs.sim.simulate(design, 500)
    seed = first.uns["qsimcells"]["seed"]
    again = qs.sim.simulate(design, 500, rng=int(seed))
    assert (first.X != again.X).nnz == 0


def test_h5ad_round_trip_is_unchanged(tmp_path, case1: ad.AnnData) -> None:
    small = qs.sim.simulate(
        qs.sim.presets.romero2025(True), 300, rng=1, batches=["b1", "b2"], library_size=0.2
    )
    path = tmp_path / "sim.h5ad"
    small.write_h5ad(path)
    back = ad.read_h5ad(path)
    assert (back.X != small.X).nnz == 0 and back.X.dtype == small.X.dtype
    assert (back.layers["binary"] != small.layers["binary"]).nnz == 0
    pd.testing.assert_frame_equal(back.obs, small.obs)
    pd.testing.assert_frame_equal(back.var, small.var)
    _assert_same(back.uns, small.uns)
    design = qs.sim.CellCircuit.from_dict(back.uns["qsimcells"]["design"])
    assert design == qs.sim.presets.romero2025(True)


def _assert_same(left, right, path="uns") -> None:
    if isinstance(right, dict):
        assert set(left) == set(right), path
        for key in right:
            _assert_same(left[key], right[key], f"{path}[{key!r}]")
    elif isinstance(right, pd.DataFrame):
        pd.testing.assert_frame_equal(left, right, check_index_type=False, obj=path)
    elif isinstance(right, np.ndarray):
        assert np.array_equal(left, right, equal_nan=right.dtype.kind == "f"), path
    elif isinstance(right, float) and np.isnan(right):
        assert np.isnan(left), path
    else:
        assert left == right, path


def test_batches_and_library_size() -> None:
    design = qs.sim.presets.romero2025(True, housekeeping=(80.0, 6.0))
    a = qs.sim.simulate(design, 20_000, rng=3, batches=3, batch_scale=0.5, library_size=0.4)
    assert list(a.obs["batch"].cat.categories) == ["batch0", "batch1", "batch2"]
    # both cells of a niche are in the same batch
    per_niche = a.obs.groupby("niche", observed=True)["batch"].nunique()
    assert (per_niche == 1).all()
    sf = a.obs["size_factor"].to_numpy()
    assert abs(sf.mean() - 1) < 5 * np.sqrt(np.expm1(0.16) / sf.size)
    factors = a.uns["qsimcells"]["batch_factors"]
    assert factors.shape == (3, 60)
    # a housekeeping gene's mean per batch follows its batch factor: X | s ~ NB(mu s, 6) with
    # E[s] = 1, so Var X = mu + mu^2 E[s^2] / r + mu^2 Var s, E[s^2] = exp(0.4^2)
    hk = a.X[:, 10].toarray().ravel()
    for k, name in enumerate(a.obs["batch"].cat.categories):
        in_batch = (a.obs["batch"] == name).to_numpy()
        mu = 80 * factors[k, 10]
        var = mu + mu**2 * np.exp(0.16) / 6 + mu**2 * np.expm1(0.16)
        observed = hk[in_batch].mean()
        assert abs(observed - mu) < 5 * np.sqrt(var / in_batch.sum()), (name, observed, mu)
    # library size moves total counts per cell: the log total over 50 HKG (~4,000 counts) has
    # sampling noise sd ~0.07 next to the size factors' 0.4, so the expected correlation is ~0.98
    totals = np.asarray(a.X[:, 10:].sum(1)).ravel()
    assert np.corrcoef(np.log(sf), np.log(totals))[0, 1] > 0.9


def test_background_genes_and_explicit_sampler() -> None:
    design = qs.sim.CellCircuit(
        {"A": ["x", "y"]},
        p=[0.5, 0.1],
        edges=[("x", "y")],
        n_housekeeping=2,
        n_background=3,
        background_mu=0.5,
    )
    a = qs.sim.simulate(design, 4000, sampler="statevector", rng=0)
    assert list(a.var_names) == ["x", "y", "HKG0", "HKG1", "BG0", "BG1", "BG2"]
    assert a.var["background"].sum() == 3 and a.uns["qsimcells"]["sampler"]["name"] == "statevector"
    bg = a.X[:, 4:].toarray()
    assert abs(bg.mean() - 0.5) < 5 * np.sqrt((0.5 + 0.25 / 0.5) / bg.size)
    # y = y0 XOR x: P(y) = 0.1 * 0.5 + 0.9 * 0.5 = 0.5
    y_on = a.layers["binary"][:, 1].toarray().mean()
    assert abs(y_on - 0.5) < 5 * np.sqrt(0.25 / 4000)


def test_generate_dispatches_to_registered_generators() -> None:
    quantum = qs.sim.generate("qsimcells", n_cells=5000, rng=0)
    control = qs.sim.generate(
        "independent", design="romero2025", preset_params={"interacting": True}, n_cells=5000, rng=0
    )
    assert quantum.uns["qsimcells"]["generator"] == "qsimcells"
    assert control.uns["qsimcells"]["generator"] == "independent"
    assert control.uns["qsimcells"]["design"]["edges"].empty
    g5 = quantum.var_names.get_loc("g5")
    on_q = quantum.layers["binary"][:, g5].sum() / 5000
    on_c = control.layers["binary"][:, g5].sum() / 5000
    p_basal = np.sin(0.1 * np.pi) ** 2
    assert abs(on_c - p_basal) < 5 * np.sqrt(p_basal * (1 - p_basal) / 5000)
    assert on_q > 0.8  # g3 (p = 0.976) flips g5 on
    with pytest.raises(qs.plugins.PluginError, match="unknown generator 'splatter'"):
        qs.sim.generate("splatter")
    with pytest.raises(ValueError, match="preset: unknown preset 'nope'"):
        qs.sim.generate("qsimcells", design="nope")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_cells": 0}, ValueError, "n_cells: must be a positive integer"),
        ({"n_cells": -5}, ValueError, "n_cells: must be a positive integer"),
        ({"n_cells": 2.5}, TypeError, "n_cells: expected a positive integer"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"batches": "two"}, ValueError, "batches: expected None"),
        ({"batches": 0}, ValueError, "batches: must be a positive integer"),
        ({"batches": ["a", "a"]}, ValueError, "batch names must be unique"),
        ({"library_size": -0.1}, ValueError, "library_size"),
        ({"batch_scale": float("nan")}, ValueError, "batch_scale"),
        ({"batch_scale": 10.0}, ValueError, r"batch_scale: 10\.0 is outside the allowed range"),
        ({"library_size": 3.0}, ValueError, r"library_size: 3\.0 is outside the allowed range"),
        ({"sampler": "nope"}, qs.plugins.PluginError, r"unknown circuit sampler 'nope'"),
        ({"sampler_options": {"x": 1}}, ValueError, "need a named sampler"),
        (
            {"progres": False},
            TypeError,
            r"simulate: unexpected keyword argument\(s\) "
            r"\['progres'\]; other keywords are sampler options",
        ),
        (
            {"sampler": "statevector", "sampler_options": {"max_qubits": 12}, "max_qubits": 12},
            ValueError,
            r"sampler_options: \['max_qubits'\] also given as keyword arguments",
        ),
    ],
)
def test_bad_simulate_arguments(kwargs, error, match) -> None:
    args = {"n_cells": 10, **kwargs}
    with pytest.raises(error, match=match):
        qs.sim.simulate(qs.sim.presets.romero2025(True), **args)


def test_sampler_options_as_keywords_or_as_a_dict_are_the_same() -> None:
    design = qs.sim.presets.romero2025(True)
    by_dict = qs.sim.simulate(
        design, 50, sampler="statevector", rng=3, sampler_options={"max_qubits": 12}
    )
    by_keyword = qs.sim.simulate(design, 50, sampler="statevector", rng=3, max_qubits=12)
    assert by_keyword.uns["qsimcells"]["sampler"]["options"] == {"max_qubits": 12}
    assert (by_dict.X != by_keyword.X).nnz == 0


def test_design_must_be_a_cellcircuit() -> None:
    with pytest.raises(TypeError, match=r"design: expected a qs\.sim\.CellCircuit"):
        qs.sim.simulate("romero2025", 10)


def test_cells_with_nothing_expressed() -> None:
    """A design whose genes are all held OFF and that has no housekeeping genes gives empty
    rows, not an error."""
    design = qs.sim.CellCircuit({"A": ["x"], "B": ["y"]}, p=0.5, n_housekeeping=0)
    silent = design.knockout(["x", "y"])
    a = qs.sim.simulate(silent, 50, rng=0)
    assert a.X.nnz == 0 and a.layers["binary"].nnz == 0 and a.shape == (100, 2)
    some = qs.sim.simulate(design.knockout("x"), 2000, rng=0)
    y_on = some.layers["binary"][:, 1].sum() / 2000
    assert abs(y_on - 0.5) < 5 * np.sqrt(0.25 / 2000)
