"""CellChat-style communication: the formula, permutation p-values, the paper's Table 3, liana."""

from __future__ import annotations

import math
import sys
import time
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse, stats

import qsimcells as qs
from qsimcells.tl.communication import _group_aggregate

KEYS = ["source", "target", "ligand", "receptor"]
#: the paper's Table 2 (custom LR database): two programmed pairs and two decoys
TABLE2 = pd.DataFrame(
    {
        "name": ["g3_g5_simulated", "g7_g0_simulated", "g8_g4_simulated", "g9_g4_simulated"],
        "pathway": ["Simulated1", "Simulated2", "Simulated3", "Simulated4"],
        "ligand": ["g3", "g7", "g8", "g9"],
        "receptor": ["g5", "g0", "g4", "g4"],
    }
)
#: the paper's Table 3: (source, target, ligand, receptor) -> (non-interacting, interacting)
TABLE3 = {
    ("CT1", "CT2", "g3", "g5"): (0.0148, 0.1135),
    ("CT2", "CT1", "g7", "g0"): (0.0011, 0.0830),
    ("CT2", "CT1", "g8", "g4"): (0.1133, 0.1008),
    ("CT2", "CT1", "g9", "g4"): (0.0726, 0.0638),
}


@pytest.fixture(scope="module")
def paper() -> dict[bool, ad.AnnData]:
    """The paper's two designs, 2,000 cells per cell type, seed 0."""
    return {
        inter: qs.sim.simulate(qs.sim.presets.romero2025(inter), 2000, rng=0)
        for inter in (False, True)
    }


@pytest.fixture
def small() -> ad.AnnData:
    return qs.sim.simulate(qs.sim.presets.romero2025(True), 100, rng=1)


def _scaled(adata: ad.AnnData) -> np.ndarray:
    """The reference data, independently of the package: log1p(x / total * 1e4) / global max."""
    x = np.asarray(adata.X.toarray(), dtype=np.float64)
    norm = np.log1p(x / x.sum(axis=1, keepdims=True) * 1e4)
    return norm / norm.max()


def _truncated_mean(x: np.ndarray, trim: float = 0.01) -> float:
    """R's mean(x, trim): drop floor(n * trim) values at each end of the sorted vector."""
    x = np.sort(x)
    n = x.size
    cut = math.floor(n * trim)
    return float(x[cut : n - cut].mean())


def _quantile7(x: np.ndarray, q: float) -> float:
    """R's quantile(x, q, type = 7)."""
    x = np.sort(x)
    h = (x.size - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, x.size - 1)
    return float(x[lo] + (h - lo) * (x[hi] - x[lo]))


def _trimean(x: np.ndarray) -> float:
    return (_quantile7(x, 0.25) + 2 * _quantile7(x, 0.5) + _quantile7(x, 0.75)) / 4


# -- the formula --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mean", "aggregate"), [("truncated", _truncated_mean), ("trimean", _trimean)]
)
def test_probability_matches_the_formula(paper, mean, aggregate) -> None:
    adata = paper[True]
    df = qs.tl.cellchat(adata, groupby="cell_type", pairs=TABLE2, mean=mean, n_perms=0, copy=True)
    data = _scaled(adata)
    cell_type = adata.obs["cell_type"].to_numpy()
    names = list(adata.var_names)
    assert len(df) == 2 * 2 * 4
    for row in df.itertuples():
        lig = aggregate(data[cell_type == row.source, names.index(row.ligand)])
        rec = aggregate(data[cell_type == row.target, names.index(row.receptor)])
        assert row.ligand_mean == pytest.approx(lig, abs=1e-12)
        assert row.receptor_mean == pytest.approx(rec, abs=1e-12)
        assert row.prob == pytest.approx(lig * rec / (0.5 + lig * rec), abs=1e-12)
    assert df["pval"].isna().all()  # n_perms=0: no test
    # each cell type expresses only its own genes: only the programmed directions are non-zero
    nonzero = df.loc[df["prob"] > 0, KEYS].astype(str)
    assert set(map(tuple, nonzero.to_numpy())) == set(TABLE3)
    assert df[KEYS].astype(str).equals(df.sort_values(KEYS)[KEYS].astype(str))
    if mean == "trimean":  # the hand-written type-7 quantile is numpy's default
        x = data[cell_type == "CT1", names.index("g3")]
        assert _quantile7(x, 0.25) == pytest.approx(np.quantile(x, 0.25), abs=1e-15)


@pytest.mark.parametrize("trim", [0.0, 0.01, 0.1, 0.25, 0.3, 0.49])
def test_truncated_mean_cuts_like_r_and_scipy(trim) -> None:
    """R's floor(n * trim) and scipy's int(trim * n) cut the same count, for every n here."""
    rng = np.random.default_rng(0)
    for n in [*list(range(1, 120)), 199, 200, 201, 2000, 2001]:
        x = rng.poisson(2.0, size=n) * rng.random(n)  # ties and zeros
        assert math.floor(n * trim) == int(trim * n)
        got = _group_aggregate(
            np.sort(x), np.zeros((1, n), dtype=np.int16), np.array([n]), "truncated", trim
        )[0, 0]
        assert got == pytest.approx(stats.trim_mean(x, trim), abs=1e-12)
        assert got == pytest.approx(_truncated_mean(x, trim), abs=1e-12)
        tri = _group_aggregate(
            np.sort(x), np.zeros((1, n), dtype=np.int16), np.array([n]), "trimean", trim
        )[0, 0]
        assert tri == pytest.approx(_trimean(x), abs=1e-12)


def test_k_and_trim_are_used(small) -> None:
    """Non-default k and trim give the independent formula with those values."""
    df = qs.tl.cellchat(
        small,
        groupby="cell_type",
        pairs=[("g3", "g5"), ("g7", "g0")],
        k=1.0,
        trim=0.1,
        n_perms=0,
        copy=True,
    )
    default = qs.tl.cellchat(
        small, groupby="cell_type", pairs=[("g3", "g5"), ("g7", "g0")], n_perms=0, copy=True
    )
    data = _scaled(small)
    cell_type = small.obs["cell_type"].to_numpy()
    names = list(small.var_names)
    assert (cell_type == "CT1").sum() == 100  # floor(100 * 0.1) = 10 values cut at each end
    for row in df.itertuples():
        lig = _truncated_mean(data[cell_type == row.source, names.index(row.ligand)], 0.1)
        rec = _truncated_mean(data[cell_type == row.target, names.index(row.receptor)], 0.1)
        assert row.ligand_mean == pytest.approx(lig, abs=1e-12)
        assert row.receptor_mean == pytest.approx(rec, abs=1e-12)
        assert row.prob == pytest.approx(lig * rec / (1.0 + lig * rec), abs=1e-12)
    # the test has power: both parameters change the numbers
    assert (df["prob"] > 0).sum() >= 2
    assert not np.allclose(df["ligand_mean"], default["ligand_mean"], rtol=0, atol=1e-9)
    assert (df.loc[df["prob"] > 0, "prob"] < default.loc[df["prob"] > 0, "prob"]).all()


def test_docstrings_attribute_the_defaults_and_the_scaling(paper) -> None:
    """R CellChat defaults to triMean and scales by data.signaling; liana by the whole matrix."""
    from qsimcells.tl import communication

    for doc in (communication.__doc__, qs.tl.cellchat.__doc__):
        text = " ".join(doc.split())
        assert 'type = "triMean"' in text
        assert "data.signaling" in text and "liana" in text
        assert "0.027" in text and "0.0148" in text
    assert "default ``truncatedMean``" not in " ".join(qs.tl.cellchat.__doc__.split())
    # the claim itself: the whole-matrix maximum (ours, liana's) gives the paper's 0.0148, the
    # maximum over the signalling genes (R CellChat's data.signaling) about 0.027
    adata = paper[False]
    df = qs.tl.cellchat(adata, groupby="cell_type", pairs=TABLE2, n_perms=0, copy=True)
    ours = df.set_index(KEYS).loc[("CT1", "CT2", "g3", "g5"), "prob"]
    x = np.asarray(adata.X.toarray(), dtype=np.float64)
    norm = np.log1p(x / x.sum(axis=1, keepdims=True) * 1e4)
    names = list(adata.var_names)
    signalling = [names.index(g) for g in pd.unique(TABLE2[["ligand", "receptor"]].values.ravel())]
    data = norm / norm[:, signalling].max()
    cell_type = adata.obs["cell_type"].to_numpy()
    lig = _truncated_mean(data[cell_type == "CT1", names.index("g3")])
    rec = _truncated_mean(data[cell_type == "CT2", names.index("g5")])
    theirs = lig * rec / (0.5 + lig * rec)
    assert ours == pytest.approx(0.0148, rel=0.15)
    assert theirs == pytest.approx(0.027, abs=0.002)
    assert 1.6 < theirs / ours < 2.4


# -- the paper's Table 3 ------------------------------------------------------------------------


def test_table3_programmed_pairs_rise_and_decoys_stay(paper) -> None:
    results = {}
    for inter, adata in paper.items():
        start = time.perf_counter()
        # the paper-sized case: 4,000 cells, 4 LR pairs, 2 groups, 1,000 permutations
        results[inter] = qs.tl.cellchat(
            adata, groupby="cell_type", pairs=TABLE2, n_perms=1000, rng=0
        )
        assert time.perf_counter() - start < 20  # ~0.5 s here
    shift = qs.tl.communication_shift(paper[False], paper[True])
    shift = shift.set_index(KEYS)
    fold = {key: shift.loc[key, "fold_change"] for key in TABLE3}
    # seed 0 gives 0.0144 -> 0.122 (8.5x), 0.0011 -> 0.088 (about 80x), 0.120 -> 0.101
    # (0.85x) and 0.0759 -> 0.0667 (0.88x), next to the paper's 0.0148 -> 0.1135,
    # 0.0011 -> 0.0830, 0.1133 -> 0.1008 (0.89x) and 0.0726 -> 0.0638 (0.88x): the decoys fall
    # as in the paper because the co-culture's housekeeping genes, NB(100, 5), raise the
    # matrix maximum that every probability is divided by.
    assert fold[("CT1", "CT2", "g3", "g5")] > 3
    assert fold[("CT2", "CT1", "g7", "g0")] > 10
    # decoys: the sd of log(fold) over 12 seeds was 0.027, so [0.8, 1.25] is ~8 sd wide
    for key in [("CT2", "CT1", "g8", "g4"), ("CT2", "CT1", "g9", "g4")]:
        assert 0.8 < fold[key] < 1.25, (key, fold[key])
    # the control's absolute probabilities reproduce the paper's first four rows closely
    for key, (ref, _) in TABLE3.items():
        assert shift.loc[key, "prob_ref"] == pytest.approx(ref, rel=0.15, abs=5e-4), key
        # and, as the paper reports, every one of the eight rows has p = 0
        assert shift.loc[key, "pval_ref"] == 0 and shift.loc[key, "pval_alt"] == 0
    assert set(shift.loc[list(TABLE3), "pathway"]) == set(TABLE2["pathway"])
    # the cross-type-only rows are zero: probability 0 and p = 1 (CellChat's rule)
    zero = results[True][results[True]["prob"] == 0]
    assert len(zero) == 12 and (zero["pval"] == 1.0).all()


def test_table3_is_the_papers_within_sampling_noise() -> None:
    """Each of the paper's eight probabilities lies within 3 sd of ours, the sd taken over 8
    seeds of 2,000 cells per type (the paper's value is one such draw)."""
    probs = {case: [] for case in (False, True)}
    for case in probs:
        design = qs.sim.presets.romero2025(case)
        for seed in range(8):
            adata = qs.sim.simulate(design, 2000, rng=seed, progress=False)
            table = qs.tl.cellchat(
                adata, groupby="cell_type", pairs=TABLE2, n_perms=0, copy=True
            ).set_index(KEYS)
            probs[case].append([table.loc[key, "prob"] for key in TABLE3])
    for case, column in ((False, 0), (True, 1)):
        values = np.array(probs[case])
        mean, sd = values.mean(axis=0), values.std(axis=0, ddof=1)
        paper = np.array([TABLE3[key][column] for key in TABLE3])
        z = (paper - mean) / sd
        assert (np.abs(z) < 3).all(), (case, dict(zip(TABLE3, z.round(2), strict=True)))
    # the earlier preset, NB(80, 6) housekeeping genes in both cases, is about 1.2x the paper
    old = qs.sim.simulate(
        qs.sim.presets.romero2025(True, housekeeping=(80.0, 6.0)), 2000, rng=0, progress=False
    )
    table = qs.tl.cellchat(old, groupby="cell_type", pairs=TABLE2, n_perms=0, copy=True).set_index(
        KEYS
    )
    ratio = [table.loc[key, "prob"] / TABLE3[key][1] for key in TABLE3]
    assert all(1.1 < r < 1.35 for r in ratio), ratio


# -- permutation p-values -----------------------------------------------------------------------


def _null_adata(n: int = 150, seed: int = 0) -> ad.AnnData:
    """Two groups drawn from one distribution: no pair differs between groups."""
    rng = np.random.default_rng(seed)
    genes = [f"L{i}" for i in range(4)] + [f"R{i}" for i in range(4)] + [f"B{i}" for i in range(20)]
    mu = np.r_[np.full(8, 3.0), np.full(20, 20.0)]
    x = rng.negative_binomial(2, 2 / (2 + mu), size=(2 * n, len(genes)))
    obs = pd.DataFrame(
        {"group": pd.Categorical(np.repeat(["A", "B"], n))}, index=[f"c{i}" for i in range(2 * n)]
    )
    return ad.AnnData(
        X=sparse.csr_matrix(x.astype(np.float32)), obs=obs, var=pd.DataFrame(index=genes)
    )


NULL_PAIRS = [(f"L{i}", f"R{i}") for i in range(4)]


def test_pvalues_equal_a_naive_permutation_loop() -> None:
    """The vectorised test equals a loop over the same permutations (CellChat's strict >)."""
    adata = _null_adata(60)
    df = qs.tl.cellchat(adata, groupby="group", pairs=NULL_PAIRS, n_perms=40, rng=7)
    data = _scaled(adata)
    codes = adata.obs["group"].cat.codes.to_numpy().astype(np.int16)
    names = list(adata.var_names)
    gen = np.random.default_rng(7)
    perms = [gen.permutation(codes) for _ in range(40)]

    def prob(labels, row):
        lig = _truncated_mean(data[labels == ["A", "B"].index(row.source), names.index(row.ligand)])
        rec = _truncated_mean(
            data[labels == ["A", "B"].index(row.target), names.index(row.receptor)]
        )
        return lig * rec / (0.5 + lig * rec)

    for row in df.itertuples():
        observed = prob(codes, row)
        assert row.prob == pytest.approx(observed, abs=1e-12)
        expected = np.mean([prob(p, row) > observed for p in perms])
        assert row.pval == pytest.approx(expected, abs=1e-12)


def test_single_group_ties_give_the_strict_zero_and_a_warning(small) -> None:
    """One group: every permutation ties the observed value; CellChat's strict > gives 0."""
    adata = small.copy()
    adata.obs["one"] = pd.Categorical(["all"] * adata.n_obs)
    with pytest.warns(UserWarning, match=r"fewer than 2 non-empty groups.*meaningless"):
        df = qs.tl.cellchat(adata, groupby="one", pairs=[("g3", "g5")], n_perms=30, rng=0)
    assert len(df) == 1 and df["prob"].iloc[0] > 0
    assert df["pval"].iloc[0] == 0  # a tie is not "greater": 0, where >= would give 1
    # no test, no warning; two groups, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        qs.tl.cellchat(adata, groupby="one", pairs=[("g3", "g5")], n_perms=0)
        qs.tl.cellchat(small, groupby="cell_type", pairs=[("g3", "g5")], n_perms=5, rng=0)
    # a second, empty category does not count as a group
    adata.obs["one"] = adata.obs["one"].cat.add_categories(["none"])
    with pytest.warns(UserWarning) as record:
        qs.tl.cellchat(adata, groupby="one", pairs=[("g3", "g5")], n_perms=5, rng=0)
    messages = [str(w.message) for w in record]
    assert any("fewer than 2 non-empty groups" in m for m in messages)
    assert any("['none']" in m and "no cells" in m for m in messages)


def test_pvalues_reproducible_seed_dependent_and_null_is_not_significant() -> None:
    adata = _null_adata()

    def run(rng):
        return qs.tl.cellchat(adata, groupby="group", pairs=NULL_PAIRS, n_perms=200, rng=rng)

    first, again = run(11), run(11)
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first, run(np.random.default_rng(11)))
    other = run(12)
    pd.testing.assert_series_equal(first["prob"], other["prob"])
    inner = (first["pval"] > 0) & (first["pval"] < 1)
    assert inner.sum() >= 4
    assert (first.loc[inner, "pval"] != other.loc[inner, "pval"]).any()
    # 16 rows (4 pairs x 2 x 2 groups) without any group difference: not all significant,
    # spread over (0, 1) rather than piled at 0
    p = first["pval"].to_numpy()
    assert (p < 0.05).mean() <= 0.5
    assert 0.15 < p.mean() < 0.85
    assert adata.uns["cellchat"]["params"]["seed"] == 12


# -- liana ----------------------------------------------------------------------------------------


def test_trimean_agrees_with_liana(paper) -> None:
    liana = pytest.importorskip("liana")
    adata = paper[True]
    ours = qs.tl.cellchat(
        adata, groupby="cell_type", pairs=TABLE2, mean="trimean", n_perms=0, copy=True
    )
    # liana takes log-normalised X (it divides by the matrix max itself) and uses the trimean
    x = np.asarray(adata.X.toarray(), dtype=np.float64)
    lognorm = ad.AnnData(
        X=sparse.csr_matrix(np.log1p(x / x.sum(1, keepdims=True) * 1e4)),
        obs=adata.obs[["cell_type"]].copy(),
        var=pd.DataFrame(index=adata.var_names),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = liana.mt.cellchat(
            lognorm,
            groupby="cell_type",
            resource=TABLE2[["ligand", "receptor"]],
            expr_prop=0,
            use_raw=False,
            n_perms=10,
            seed=0,
            inplace=False,
            verbose=False,
        )
    merged = ours.astype({"source": str, "target": str}).merge(
        theirs.astype({"source": str, "target": str}), on=KEYS, how="outer", indicator=True
    )
    assert (merged["_merge"] == "both").all() and len(merged) == 16
    np.testing.assert_allclose(merged["prob"], merged["lr_probs"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(merged["ligand_mean"], merged["ligand_trimean"], atol=1e-6)
    np.testing.assert_allclose(merged["receptor_mean"], merged["receptor_trimean"], atol=1e-6)


def test_liana_resource_by_name() -> None:
    pytest.importorskip("liana")
    from liana.resource import select_resource

    table = select_resource("consensus")
    simple = table[~table["ligand"].str.contains("_") & ~table["receptor"].str.contains("_")]
    lig, rec = simple.iloc[0]
    complex_row = table[table["receptor"].str.contains("_")].iloc[0]
    genes = list(
        dict.fromkeys(
            [lig, rec, *complex_row["receptor"].split("_"), complex_row["ligand"], "filler"]
        )
    )
    rng = np.random.default_rng(0)
    adata = ad.AnnData(
        X=sparse.csr_matrix(rng.poisson(3, size=(40, len(genes))).astype(float)),
        obs=pd.DataFrame(
            {"g": pd.Categorical(np.repeat(["a", "b"], 20))}, index=[f"c{i}" for i in range(40)]
        ),
        var=pd.DataFrame(index=genes),
    )
    df = qs.tl.cellchat(adata, groupby="g", resource="consensus", n_perms=5, rng=0)
    found = set(zip(df["ligand"], df["receptor"], strict=True))
    assert (lig, rec) in found
    assert not any("_" in lr for pair in found for lr in pair)  # complexes skipped
    assert adata.uns["cellchat"]["params"]["pairs_from"] == "resource:consensus"


def test_resource_keeps_a_gene_whose_name_has_an_underscore() -> None:
    """ "_" marks a complex only when that exact name is not a gene of the data."""
    genes = ["L_1", "R1", "A", "B", "filler"]
    rng = np.random.default_rng(0)
    adata = ad.AnnData(
        X=sparse.csr_matrix(rng.poisson(3, size=(40, len(genes))).astype(float)),
        obs=pd.DataFrame(
            {"g": pd.Categorical(np.repeat(["a", "b"], 20))}, index=[f"c{i}" for i in range(40)]
        ),
        var=pd.DataFrame(index=genes),
    )
    resource = pd.DataFrame({"ligand": ["L_1", "A_B", "L_1"], "receptor": ["R1", "R1", "A_B"]})
    df = qs.tl.cellchat(adata, groupby="g", resource=resource, n_perms=0)
    assert set(zip(df["ligand"], df["receptor"], strict=True)) == {
        ("L_1", "R1")
    }  # A_B: a complex, skipped
    assert len(df) == 4 and (df["prob"] > 0).all()


def test_resource_name_without_liana_is_a_clear_import_error(small, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "liana", None)
    monkeypatch.setitem(sys.modules, "liana.resource", None)
    with pytest.raises(ImportError, match="needs liana"):
        qs.tl.cellchat(small, groupby="cell_type", resource="consensus")
    assert "cellchat" not in small.uns


# -- pairs, resources, storage ----------------------------------------------------------------


def test_default_pairs_come_from_the_ground_truth_and_survive_h5ad(small, tmp_path) -> None:
    df = qs.tl.cellchat(small, groupby="cell_type", n_perms=20, rng=3)
    assert set(zip(df["ligand"], df["receptor"], strict=True)) == {("g3", "g5"), ("g7", "g0")}
    assert list(df.columns) == [
        "source",
        "target",
        "ligand",
        "receptor",
        "prob",
        "pval",
        "ligand_mean",
        "receptor_mean",
    ]
    stored = small.uns["cellchat"]
    assert stored["results"] is df
    assert stored["params"] == {
        "groupby": "cell_type",
        "mean": "truncated",
        "trim": 0.01,
        "k": 0.5,
        "n_perms": 20,
        "seed": 3,
        "pairs_from": "design",
        "data_max": pytest.approx(stored["params"]["data_max"]),
        "layer": "X",
    }
    path = tmp_path / "cc.h5ad"
    small.write_h5ad(path)
    back = ad.read_h5ad(path)
    pd.testing.assert_frame_equal(back.uns["cellchat"]["results"], df)
    assert {k: v for k, v in back.uns["cellchat"]["params"].items()} == stored["params"]
    # the ground truth survives too, so the read-back data gives the same answer
    pd.testing.assert_frame_equal(qs.tl.cellchat(back, groupby="cell_type", n_perms=20, rng=3), df)
    shift = qs.tl.communication_shift(back, small)
    assert np.allclose(shift.loc[shift["prob_ref"] > 0, "fold_change"], 1.0)


def test_pair_forms_duplicates_resource_table_and_copy(small) -> None:
    as_list = qs.tl.cellchat(
        small, groupby="cell_type", pairs=[("g3", "g5"), ("g3", "g5")], n_perms=0, copy=True
    )
    assert len(as_list) == 4  # deduplicated: one pair x 2 x 2 groups
    assert "cellchat" not in small.uns  # copy=True stores nothing in the input
    resource = pd.DataFrame(
        {"ligand": ["g3", "g3_g4", "nope", "g7", "g3"], "receptor": ["g5", "g5", "g0", "g0", "g5"]}
    )
    from_resource = qs.tl.cellchat(
        small, groupby="cell_type", resource=resource, n_perms=0, key_added="cc_res"
    )
    assert set(zip(from_resource["ligand"], from_resource["receptor"], strict=True)) == {
        ("g3", "g5"),
        ("g7", "g0"),
    }
    assert small.uns["cc_res"]["params"]["pairs_from"] == "resource:DataFrame"
    same = from_resource[(from_resource["ligand"] == "g3")].reset_index(drop=True)
    pd.testing.assert_frame_equal(same, as_list)


def test_empty_group_and_all_zero_gene(small) -> None:
    adata = small.copy()
    adata.obs["cell_type"] = adata.obs["cell_type"].cat.add_categories(["CT3"])
    with pytest.warns(UserWarning, match="CT3"):
        df = qs.tl.cellchat(adata, groupby="cell_type", pairs=[("g3", "g5")], n_perms=20, rng=0)
    assert len(df) == 9
    with_ct3 = (df["source"] == "CT3") | (df["target"] == "CT3")
    assert df.loc[with_ct3, ["prob", "pval"]].isna().all().all()
    ref = qs.tl.cellchat(
        small, groupby="cell_type", pairs=[("g3", "g5")], n_perms=20, rng=0, copy=True
    )
    np.testing.assert_array_equal(df.loc[~with_ct3, "prob"], ref["prob"])
    np.testing.assert_array_equal(df.loc[~with_ct3, "pval"], ref["pval"])

    zeroed = small.copy()
    X = zeroed.X.tolil()
    X[:, list(zeroed.var_names).index("g3")] = 0
    zeroed.X = X.tocsr()
    df = qs.tl.cellchat(
        zeroed, groupby="cell_type", pairs=[("g3", "g5"), ("g7", "g0")], n_perms=20, rng=0
    )
    g3 = df[df["ligand"] == "g3"]
    assert (g3["prob"] == 0).all() and (g3["pval"] == 1.0).all()  # no evidence
    assert df.loc[df["ligand"] == "g7", "prob"].max() > 0


# -- bad input --------------------------------------------------------------------------------


def _nan_counts(adata):
    adata.X = adata.X.astype(np.float64)
    adata.X.data[0] = np.nan


def _negative_counts(adata):
    adata.X = adata.X.astype(np.float64)
    adata.X.data[0] = -1


def _zero_counts(adata):
    adata.X = sparse.csr_matrix(adata.shape, dtype=np.float64)


def _stored_zero_counts(adata):
    adata.X = adata.X.astype(np.float64)
    adata.X.data[:] = 0  # explicit zeros: nnz > 0, yet every count is zero


def _missing_labels(adata):
    adata.obs.loc[adata.obs_names[:3], "cell_type"] = np.nan


@pytest.mark.parametrize(
    ("kwargs", "prepare", "error", "match"),
    [
        ({"groupby": "nope"}, None, KeyError, "cell_type"),
        ({"pairs": [("g3", "nope"), ("nix", "g5")]}, None, KeyError, r"nope.*nix|nix.*nope"),
        ({"pairs": pd.DataFrame({"lig": ["g3"], "rec": ["g5"]})}, None, ValueError, "ligand"),
        ({"pairs": "g3"}, None, TypeError, "pairs"),
        (
            {
                "pairs": [("g3", "g5")],
                "resource": pd.DataFrame({"ligand": ["g3"], "receptor": ["g5"]}),
            },
            None,
            ValueError,
            "not both",
        ),
        (
            {"resource": pd.DataFrame({"ligand": ["x"], "receptor": ["y"]})},
            None,
            ValueError,
            "resource",
        ),
        ({"mean": "median"}, None, ValueError, "mean"),
        ({"trim": 0.5}, None, ValueError, "trim"),
        ({"trim": -0.1}, None, ValueError, "trim"),
        ({"k": 0}, None, ValueError, "k"),
        ({"k": -1.0}, None, ValueError, "k"),
        ({"n_perms": -1}, None, ValueError, "n_perms"),
        ({"n_perms": 2.5}, None, TypeError, "n_perms"),
        ({"rng": "seed"}, None, TypeError, "rng"),
        ({"layer": "nope"}, None, KeyError, "layer"),
        ({}, _nan_counts, ValueError, "NaN"),
        ({}, _negative_counts, ValueError, "negative"),
        ({}, _zero_counts, ValueError, "every count is zero"),
        ({}, _stored_zero_counts, ValueError, "every count is zero"),
        ({}, _missing_labels, ValueError, r"groupby: obs\['cell_type'\] has 3 missing labels"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    small, kwargs, prepare, error, match
) -> None:
    qs.tl.cellchat(small, groupby="cell_type", n_perms=5, rng=0)
    previous = small.uns["cellchat"]
    before = dict(small.uns)
    if prepare is not None:
        prepare(small)
    with pytest.raises(error, match=match):
        qs.tl.cellchat(small, **{"groupby": "cell_type", **kwargs})
    assert set(small.uns) == set(before)
    assert all(small.uns[key] is value for key, value in before.items())
    assert small.uns["cellchat"] is previous


def test_control_design_has_no_lr_edges() -> None:
    adata = qs.sim.simulate(qs.sim.presets.romero2025(False), 100, rng=0)
    with pytest.raises(ValueError, match="no ligand-receptor edges"):
        qs.tl.cellchat(adata, groupby="cell_type")
    bare = ad.AnnData(X=adata.X, obs=adata.obs)
    with pytest.raises(ValueError, match="pairs"):
        qs.tl.cellchat(bare, groupby="cell_type")
    assert "cellchat" not in adata.uns and "cellchat" not in bare.uns


# -- communication_shift ----------------------------------------------------------------------


def test_communication_shift_edge_cases(small) -> None:
    base = pd.DataFrame(
        {
            "source": ["a", "a", "b"],
            "target": ["b", "b", "a"],
            "ligand": ["x", "y", "x"],
            "receptor": ["r", "r", "r"],
            "prob": [0.0, 0.0, 0.2],
            "pval": [1.0, 1.0, 0.0],
        }
    )
    alt = base.assign(prob=[0.1, 0.0, 0.0], pval=[0.0, 1.0, 1.0])
    shift = qs.tl.communication_shift(base, alt)
    assert list(shift.columns) == [
        *KEYS,
        "prob_ref",
        "prob_alt",
        "pval_ref",
        "pval_alt",
        "fold_change",
        "log2_fold_change",
    ]
    assert shift["fold_change"].iloc[0] == np.inf  # 0.1 / 0
    assert np.isnan(shift["fold_change"].iloc[1])  # 0 / 0
    assert shift["fold_change"].iloc[2] == 0 and shift["log2_fold_change"].iloc[2] == -np.inf
    assert len(qs.tl.communication_shift(base, alt, min_prob=0.05)) == 2
    assert len(qs.tl.communication_shift(base, alt.iloc[:1])) == 1  # inner merge
    with pytest.raises(KeyError, match="'cc_missing'"):
        qs.tl.communication_shift(small, base, key="cc_missing")
    with pytest.raises(ValueError, match="prob"):
        qs.tl.communication_shift(base.drop(columns="prob"), alt)
