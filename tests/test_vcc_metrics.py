"""Virtual Cell Challenge metrics (DES, PDS, MAE, scaled scores) against cell-eval and by hand,
and the seed paper's diagnostics."""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import qsimcells as qs
from qsimcells.tl.vcc import log_expression


def _adata(X, labels, genes=None) -> ad.AnnData:
    X = np.asarray(X, dtype=np.float64)
    genes = genes or [f"g{i}" for i in range(X.shape[1])]
    obs = pd.DataFrame(
        {"perturbation": pd.Categorical(labels)}, index=[f"c{i}" for i in range(X.shape[0])]
    )
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes))


@pytest.fixture(scope="module")
def screens():
    """A small simulated screen and a 'prediction': an independent run of the same design
    with the labels of two perturbations swapped (so they are mispredicted)."""
    design, perturbations = qs.sim.preset_screen("random_50")
    real = qs.sim.perturbation_screen(design, perturbations[:6], 80, rng=0)
    pred = qs.sim.perturbation_screen(design, perturbations[:6], 60, rng=1)
    labels = pred.obs["perturbation"].astype(str).to_numpy()
    a, b = perturbations[0], perturbations[1]
    swapped = np.where(labels == a, b, np.where(labels == b, a, labels))
    pred.obs["perturbation"] = pd.Categorical(swapped)
    return real, pred, perturbations[:6]


# -- against cell-eval -------------------------------------------------------------------------
def _cell_eval(pred, real, tmp_path):
    from cell_eval import MetricsEvaluator

    evaluator = MetricsEvaluator(
        adata_pred=pred.copy(),
        adata_real=real.copy(),
        control_pert="control",
        pert_col="perturbation",
        num_threads=1,
        outdir=str(tmp_path),
    )
    results, agg = evaluator.compute(profile="vcc", write_csv=False, break_on_error=True)
    table = results.to_pandas().set_index("perturbation").sort_index()
    return table.rename(columns={"overlap_at_N": "des", "discrimination_score_l1": "pds"}), agg


@pytest.mark.slow
def test_matches_cell_eval(screens, tmp_path):
    pytest.importorskip("cell_eval")
    from cell_eval._baseline import build_base_mean_adata
    from cell_eval._score import score_agg_metrics
    from pdex import pdex

    real, pred, _ = screens
    ours = qs.tl.vcc_metrics(pred, real, progress=False)
    theirs, agg = _cell_eval(pred, real, tmp_path)  # counts in: both normalise the same way
    assert ours.per_perturbation.index.tolist() == theirs.index.tolist()
    for metric in ("des", "pds"):
        np.testing.assert_allclose(ours.per_perturbation[metric], theirs[metric], atol=1e-12)
    np.testing.assert_allclose(ours.per_perturbation["mae"], theirs["mae"], rtol=1e-6)
    assert ours.per_perturbation["n_de_real"].sum() > 10  # the DE genes are not all trivial
    assert 0 < ours.summary["des"] < 1 and ours.summary["pds"] < 1

    base = build_base_mean_adata(real.copy(), pert_col="perturbation", control_pert="control")
    theirs_base, agg_base = _cell_eval(base, real, tmp_path)
    for metric in ("des", "pds"):
        np.testing.assert_allclose(ours.baseline[metric], theirs_base[metric], atol=1e-12)
    np.testing.assert_allclose(ours.baseline["mae"], theirs_base["mae"], rtol=1e-6)
    scaled = score_agg_metrics(agg, agg_base).to_pandas().set_index("metric")["from_baseline"]
    for ours_name, theirs_name in (
        ("des_scaled", "overlap_at_N"),
        ("pds_scaled", "discrimination_score_l1"),
        ("mae_scaled", "mae"),
        ("score", "avg_score"),
    ):
        assert ours.summary[ours_name] == pytest.approx(scaled[theirs_name], abs=1e-6)

    # log1p input is taken as is by both; the Wilcoxon p-values, BH FDR and log fold changes
    # of our DE test equal pdex's
    real_log, pred_log = real.copy(), pred.copy()
    real_log.X, pred_log.X = log_expression(real), log_expression(pred)
    ours_log = qs.tl.vcc_metrics(pred_log, real_log, baseline=None, progress=False)
    theirs_log, _ = _cell_eval(pred_log, real_log, tmp_path)
    for metric in ("des", "pds"):
        np.testing.assert_allclose(
            ours_log.per_perturbation[metric], theirs_log[metric], atol=1e-12
        )
    de = pdex(
        real_log,
        groupby="perturbation",
        mode="ref",
        reference="control",
        threads=1,
        is_log1p=True,
        epsilon=0.0,
    ).to_pandas()
    from scipy.stats import false_discovery_control

    from qsimcells.tl.vcc import _mannwhitney_pvalues

    X = real_log.X.toarray()
    labels = real_log.obs["perturbation"].astype(str).to_numpy()
    ctrl = X[labels == "control"]
    for target, rows in de.groupby("target"):
        rows = rows.set_index("feature").loc[real_log.var_names]
        p = _mannwhitney_pvalues(X[labels == target], ctrl)
        np.testing.assert_allclose(p, rows["p_value"], rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(false_discovery_control(p), rows["fdr"], rtol=1e-9, atol=1e-15)


# -- by hand -----------------------------------------------------------------------------------
def test_perfect_prediction(screens):
    real, _, perturbations = screens
    result = qs.tl.vcc_metrics(real, real, progress=False)
    table = result.per_perturbation
    assert sorted(perturbations) == table.index.tolist()
    has_de = table["n_de_real"] > 0
    assert has_de.sum() >= 4
    assert (table.loc[has_de, "des"] == 1.0).all()
    assert (table.loc[~has_de, "des"] == 0.0).all()  # cell-eval: no real DE gene scores 0
    assert (table["pds"] == 1.0).all() and (table["pds_rank"] == 0).all()
    assert (table["mae"] == 0.0).all()
    assert (table["n_de_pred"] == table["n_de_real"]).all()
    assert result.summary["mae_scaled"] == 1.0 and result.summary["pds_scaled"] == 1.0


def test_cell_mean_baseline_scores_zero(screens):
    real, pred, _ = screens
    baseline = qs.tl.cell_mean_baseline(real)
    # every perturbed cell is the mean of the per-perturbation means, control included
    X = log_expression(real)
    labels = real.obs["perturbation"].astype(str).to_numpy()
    means = [np.asarray(X[labels == k].mean(axis=0)).ravel() for k in np.unique(labels)]
    perturbed = baseline.obs["perturbation"].astype(str).to_numpy() != "control"
    np.testing.assert_allclose(
        baseline.X[perturbed], np.tile(np.mean(means, axis=0), (perturbed.sum(), 1))
    )
    np.testing.assert_allclose(baseline.X[~perturbed], X[labels == "control"].toarray())
    assert (
        baseline.obs["perturbation"].value_counts().to_dict()
        == real.obs["perturbation"].value_counts().to_dict()
    )
    result = qs.tl.vcc_metrics(baseline, real, progress=False)
    for name in ("des_scaled", "pds_scaled", "mae_scaled", "score"):
        assert result.summary[name] == 0.0, name
    pd.testing.assert_frame_equal(result.per_perturbation, result.baseline)
    # the default baseline is the same one, built from real
    model = qs.tl.vcc_metrics(pred, real, progress=False)
    pd.testing.assert_frame_equal(model.baseline, result.baseline)
    given = qs.tl.vcc_metrics(pred, real, baseline=baseline, progress=False)
    pd.testing.assert_series_equal(given.summary, model.summary)
    # a baseline from other data, mirroring real's perturbations and controls
    other = qs.tl.cell_mean_baseline(pred, like=real)
    assert other.n_obs == real.n_obs


def test_pds_and_mae_by_hand():
    # control at 1; perturbation deltas a = (+1, 0, 0), b = (0, +1, 0), c = (0, 0, +2) on genes
    # named after no perturbation; the prediction swaps a and b and halves c
    ctrl = np.ones((4, 3)) * 1.5
    real = _adata(
        np.vstack(
            [
                ctrl,
                ctrl + np.array([1, 0, 0]),
                ctrl + np.array([0, 1, 0]),
                ctrl + np.array([0, 0, 2]),
            ]
        )
        + 0.25,
        ["control"] * 4 + ["a"] * 4 + ["b"] * 4 + ["c"] * 4,
    )
    pred = _adata(
        np.vstack(
            [
                ctrl,
                ctrl + np.array([0, 1, 0]),
                ctrl + np.array([1, 0, 0]),
                ctrl + np.array([0, 0, 1]),
            ]
        )
        + 0.25,
        ["control"] * 4 + ["a"] * 4 + ["b"] * 4 + ["c"] * 4,
    )
    table = qs.tl.vcc_metrics(pred, real, baseline=None, progress=False).per_perturbation
    # pred a = (0,1,0): L1 to real a 2, to real b 0, to real c 3 -> rank 1 of 3
    assert table.loc["a", "pds_rank"] == 1 and table.loc["a", "pds"] == pytest.approx(2 / 3)
    assert table.loc["b", "pds_rank"] == 1
    # pred c = (0,0,1): L1 to a 2, to b 2, to c 1 -> rank 0
    assert table.loc["c", "pds"] == 1.0
    assert table.loc["a", "mae"] == pytest.approx(2 / 3)  # |0-1| + |1-0| over 3 genes
    assert table.loc["c", "mae"] == pytest.approx(1 / 3)


def test_pds_leaves_out_the_target_gene():
    # the perturbation's own gene carries the only difference: excluded, every delta is equal
    ctrl = np.full((3, 3), 2.25)
    real = _adata(
        np.vstack([ctrl, ctrl + np.array([1, 0, 0]), ctrl + np.array([0, 1, 0])]),
        ["control"] * 3 + ["A"] * 3 + ["B"] * 3,
        genes=["A", "B", "g"],
    )
    pred = _adata(
        np.vstack([ctrl, ctrl + np.array([0, 0, 0]), ctrl + np.array([1, 0, 0])]),
        ["control"] * 3 + ["A"] * 3 + ["B"] * 3,
        genes=["A", "B", "g"],
    )
    with_gene = qs.tl.vcc_metrics(
        pred, real, baseline=None, exclude_target_gene=False, progress=False
    ).per_perturbation
    without = qs.tl.vcc_metrics(pred, real, baseline=None, progress=False).per_perturbation
    # B's prediction (1, 0, 0) is real A's delta when all genes count, and without gene B its
    # distance to real A is 0 and to real B 0: a tie broken by argsort order
    assert with_gene.loc["B", "pds_rank"] == 1
    assert without.loc["B", "pds_rank"] in (0, 1)
    assert without.loc["A", "pds_rank"] == 0  # without gene A the zero delta matches both


def _de_block(gen, n, shift):
    """Log-expression cells with a known per-gene shift (continuous, so no ties)."""
    return np.clip(gen.normal(2.0, 0.2, (n, len(shift))) + shift, 0, None)


def test_des_by_hand():
    gen = np.random.default_rng(0)
    n, g = 60, 8
    ctrl = _de_block(gen, n, np.zeros(g))
    # real: genes 0, 1, 2 change; prediction: 0, 1 strongly, 4 more than 2, 3 not at all
    real = _adata(
        np.vstack([ctrl, _de_block(gen, n, [2, -1.5, 1, 0, 0, 0, 0, 0])]),
        ["control"] * n + ["p"] * n,
    )
    pred_ctrl = _de_block(gen, n, np.zeros(g))
    pred = _adata(
        np.vstack([pred_ctrl, _de_block(gen, n, [2, -1.5, 0.6, 0, 0.9, 0, 0, 0])]),
        ["control"] * n + ["p"] * n,
    )
    row = qs.tl.vcc_metrics(pred, real, baseline=None, progress=False).per_perturbation.loc["p"]
    assert row["n_de_real"] == 3 and row["n_de_pred"] == 4
    # the 3 predicted genes with the largest |log2 FC| are 0, 1, 4: two of the three real ones
    assert row["des"] == pytest.approx(2 / 3)
    shifted = qs.tl.vcc_metrics(
        _adata(pred.X, pred.obs["perturbation"]),
        real,
        baseline=None,
        fdr_threshold=1e-300,
        progress=False,
    ).per_perturbation
    assert shifted.loc["p", "n_de_real"] == 0 and shifted.loc["p", "des"] == 0.0


def test_scaled_scores():
    scores = qs.tl.vcc_scaled_scores(
        {"des": 0.8, "pds": 0.5, "mae": 0.2}, {"des": 0.5, "pds": 0.5, "mae": 0.1}
    )
    assert scores["des_scaled"] == pytest.approx(0.6)
    assert scores["pds_scaled"] == 0.0
    assert scores["mae_scaled"] == 0.0  # 1 - 0.2 / 0.1 = -1, clipped at 0
    assert scores["score"] == pytest.approx(0.2)
    # the seed paper's numbers: DES 0.8532 scaled to 0.8455, PDS and MAE no better than the
    # baseline, overall 28.18 / 100
    base_des = (0.8532 - 0.8455) / (1 - 0.8455)
    seed = qs.tl.vcc_scaled_scores(
        {"des": 0.8532, "pds": 0.5076, "mae": 0.1433},
        {"des": base_des, "pds": 0.5150, "mae": 0.1300},
    )
    assert seed["des_scaled"] == pytest.approx(0.8455)
    assert seed["score"] * 100 == pytest.approx(28.18, abs=0.005)
    perfect_base = qs.tl.vcc_scaled_scores(
        {"des": 0.4, "pds": 1.0, "mae": 0.0}, {"des": 1.0, "pds": 1.0, "mae": 0.0}
    )
    assert (perfect_base.to_numpy() == 0.0).all()  # undefined ratios count as 0
    with pytest.raises(ValueError, match=r"baseline: missing \['mae'\]"):
        qs.tl.vcc_scaled_scores({"des": 1, "pds": 1, "mae": 1}, {"des": 1, "pds": 1})


def test_normalisation_follows_cell_eval():
    counts = sparse.csr_matrix(np.array([[1, 3, 0], [0, 0, 0], [2, 2, 4]], dtype=np.int32))
    log = log_expression(_adata(counts.toarray(), ["control", "a", "a"]))
    # dense counts: the median over non-empty cells (4 and 8 -> 6)
    np.testing.assert_allclose(
        log, np.log1p(np.array([[1.5, 4.5, 0], [0, 0, 0], [1.5, 1.5, 3]])), rtol=1e-6
    )
    sparse_in = ad.AnnData(X=counts)
    # sparse counts: scanpy's median over all cells (0, 4, 8 -> 4)
    np.testing.assert_allclose(
        log_expression(sparse_in).toarray(),
        np.log1p(np.array([[1, 3, 0], [0, 0, 0], [1, 1, 2]])),
        rtol=1e-6,
    )
    as_is = ad.AnnData(X=np.array([[0.5, 1.25], [2.0, 0.0]]))
    np.testing.assert_array_equal(log_expression(as_is), as_is.X)
    with pytest.raises(ValueError, match="must be >= 0"):
        log_expression(ad.AnnData(X=np.array([[0.5, -0.25]])))
    with pytest.raises(ValueError, match="are not log1p-normalised"):
        log_expression(ad.AnnData(X=np.array([[0.5, 20.5]])))
    with pytest.raises(ValueError, match="NaN or infinite"):
        log_expression(ad.AnnData(X=np.array([[0.5, np.nan]])))
    with pytest.raises(ValueError, match="counts must be >= 0"):
        log_expression(ad.AnnData(X=np.array([[1.0, -2.0]])), normalize=True)


def test_vcc_metrics_bad_input(screens):
    real, pred, perturbations = screens
    with pytest.raises(KeyError, match=r"perturbation_key: 'target' is not a column of real\.obs"):
        qs.tl.vcc_metrics(pred, real, perturbation_key="target")
    with pytest.raises(ValueError, match="control: 'non-targeting' is not a label of real"):
        qs.tl.vcc_metrics(pred, real, control="non-targeting")
    with pytest.raises(ValueError, match=r"pred\.var_names: the genes differ"):
        qs.tl.vcc_metrics(pred[:, 1:], real)
    reordered = pred[:, list(reversed(pred.var_names))]
    with pytest.raises(ValueError, match="same genes as real in another order"):
        qs.tl.vcc_metrics(reordered, real)
    extra = pred.copy()
    extra.obs["perturbation"] = extra.obs["perturbation"].cat.rename_categories(
        {perturbations[2]: "G999"}
    )
    with pytest.raises(ValueError, match=r"pred: perturbations \['G999'\] are not in real"):
        qs.tl.vcc_metrics(extra, real)
    fewer = pred[pred.obs["perturbation"] != perturbations[3]].copy()
    with pytest.raises(ValueError, match="have no predicted cells"):
        qs.tl.vcc_metrics(fewer, real)
    only_control = real[real.obs["perturbation"] == "control"].copy()
    with pytest.raises(ValueError, match="only the control"):
        qs.tl.vcc_metrics(only_control, only_control)
    with pytest.raises(ValueError, match="baseline: 'mean' is not allowed"):
        qs.tl.vcc_metrics(pred, real, baseline="mean")
    with pytest.raises(TypeError, match="baseline: expected an AnnData"):
        qs.tl.vcc_metrics(pred, real, baseline=np.zeros(3))
    with pytest.raises(ValueError, match="fdr_threshold"):
        qs.tl.vcc_metrics(pred, real, fdr_threshold=0.0)
    with pytest.raises(TypeError, match="normalize: expected None, True or False"):
        qs.tl.vcc_metrics(pred, real, normalize="yes")
    with pytest.raises(KeyError, match=r"layer: 'counts' is not in real\.layers"):
        qs.tl.vcc_metrics(pred, real, layer="counts")
    with pytest.raises(TypeError, match="pred: expected an AnnData"):
        qs.tl.vcc_metrics(pred.X, real)
    missing = real.copy()
    missing.obs["perturbation"] = missing.obs["perturbation"].astype(object)
    missing.obs.iloc[0, missing.obs.columns.get_loc("perturbation")] = None
    with pytest.raises(ValueError, match="1 cells have no perturbation label"):
        qs.tl.vcc_metrics(pred, missing)
    negative = pred.copy()
    negative.X = log_expression(pred).toarray() - 0.5
    with pytest.raises(ValueError, match="clip predictions at 0"):
        qs.tl.vcc_metrics(negative, real)


# -- the seed paper's diagnostics --------------------------------------------------------------
def test_participation_ratio():
    k = 3
    basis = np.eye(5)[:k]
    iso = np.vstack([basis, -basis])  # covariance proportional to diag(1, 1, 1, 0, 0)
    assert qs.tl.participation_ratio(iso) == pytest.approx(k)
    scaled = np.vstack([[2, 0], [-2, 0], [0, 1], [0, -1]])  # variances 4 and 1 (times 1/3)
    assert qs.tl.participation_ratio(scaled) == pytest.approx(25 / 17)
    line = np.outer(np.arange(10.0), [1.0, -2.0, 0.5])
    assert qs.tl.participation_ratio(line) == pytest.approx(1.0)
    gen = np.random.default_rng(0)
    rotated = iso @ np.linalg.qr(gen.normal(size=(5, 5)))[0]  # invariant under rotation
    assert qs.tl.participation_ratio(rotated) == pytest.approx(k)
    with pytest.raises(ValueError, match="n_samples >= 2"):
        qs.tl.participation_ratio(np.ones((1, 3)))
    with pytest.raises(ValueError, match="n_samples >= 2"):
        qs.tl.participation_ratio(np.ones(4))
    with pytest.raises(ValueError, match="zero variance"):
        qs.tl.participation_ratio(np.ones((4, 3)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        qs.tl.participation_ratio([[0.0, 1.0], [np.inf, 0.0]])


def test_perturbation_similarity(screens):
    ctrl = np.full((2, 3), 1.5)
    X = (
        np.vstack(
            [
                ctrl,
                ctrl + np.array([1, 0, 0]),
                ctrl + np.array([0, 1, 0]),
                ctrl + np.array([1, 1, 0]),
            ]
        )
        + 0.25
    )
    labels = ["control"] * 2 + ["a"] * 2 + ["b"] * 2 + ["c"] * 2
    adata = _adata(X, labels)
    # pairs (a, b) 0, (a, c) and (b, c) 1 / sqrt(2)
    assert qs.tl.perturbation_similarity(adata) == pytest.approx(math.sqrt(2) / 3)
    # centred deltas: a = (2, -1, -1) / 3, b = (-1, 2, -1) / 3, c = (1, 1, -2) / 3
    a, b, c = np.array([2, -1, -1]), np.array([-1, 2, -1]), np.array([1, 1, -2])

    def cos(u, v):
        return u @ v / np.linalg.norm(u) / np.linalg.norm(v)

    assert qs.tl.perturbation_similarity(adata, metric="pearson") == pytest.approx(
        (cos(a, b) + cos(a, c) + cos(b, c)) / 3
    )
    # the cell-mean baseline predicts one shift for all: total mode collapse
    real, _, _ = screens
    assert qs.tl.perturbation_similarity(qs.tl.cell_mean_baseline(real)) == pytest.approx(1.0)
    assert qs.tl.perturbation_similarity(real) < 0.9
    with pytest.raises(ValueError, match="metric: 'l1' is not allowed"):
        qs.tl.perturbation_similarity(adata, metric="l1")
    with pytest.raises(ValueError, match="at least two perturbations"):
        qs.tl.perturbation_similarity(adata[[0, 1, 2, 3]].copy())
    flat = _adata(np.vstack([ctrl, ctrl, ctrl + np.array([0, 1, 0])]) + 0.25, labels[:6])
    with pytest.raises(ValueError, match=r"perturbations \['a'\] have a constant delta"):
        qs.tl.perturbation_similarity(flat)
