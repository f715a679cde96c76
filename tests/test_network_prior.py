"""The gene-network prior of QPerturb and the linear baseline (issue 17)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import qsimcells as qs
from qsimcells.model._network_prior import NetworkPrior
from qsimcells.tl._preprocess import counts, log_normalize

torch = pytest.importorskip("torch")


def test_one_cx_edge_gives_the_exact_knockout_response() -> None:
    """A CX s -> t: the prior's change of P(t ON) under do(s = 0) is p_s (2 p_t - 1), within
    the binomial noise of the slope estimate (counts with mu = 200, so ON means a count > 0)."""
    design = qs.sim.CellCircuit(
        {"A": ["s", "t", "u"]},
        p=[0.7, 0.2, 0.1],
        edges=[("s", "t"), ("t", "u")],
        mu=200.0,
        r=5.0,
        n_housekeeping=5,
    )
    n = 20_000
    adata = qs.sim.simulate(design, n, rng=0, progress=False)
    X = counts(adata)
    prior = NetworkPrior(
        X, log_normalize(X).toarray(), (np.array([0, 1]), np.array([1, 2])), directed=True, n_hops=2
    )
    change = prior.on_change([0], "knockout")
    exact = (
        qs.sim.exact_activation(design.knockout(["s"])).to_numpy()
        - qs.sim.exact_activation(design).to_numpy()
    )
    # slopes from n cells: sd of a difference of two proportions, times |d p_s| <= 1
    sd = np.sqrt(0.25 / (0.3 * n) + 0.25 / (0.7 * n)) * 2
    np.testing.assert_allclose(change[:3], exact, atol=4 * sd)
    assert change[0] == pytest.approx(-prior.p_on[0])
    assert abs(change[1]) > 0.3 and abs(change[2]) > 0.1  # two hops down the cascade
    # an undirected graph also moves the parent of a knocked-out target, a directed one not
    both = NetworkPrior(
        X, log_normalize(X).toarray(), (np.array([0]), np.array([1])), directed=False, n_hops=1
    )
    assert abs(both.on_change([1], "knockout")[0]) > 0.1
    assert prior.on_change([1], "knockout")[0] == 0.0
    # the shift of expression: the knocked-out gene goes to 0, others by level when ON
    shift = prior.shift([0], "knockout")
    assert shift[0] == pytest.approx(-log_normalize(X).toarray()[:, 0].mean())
    assert np.sign(shift[1]) == np.sign(exact[1])


@pytest.fixture(scope="module")
def split():
    design, perts = qs.sim.preset_screen("random_50")
    adata = qs.sim.perturbation_screen(design, perts, 80, rng=2, progress=False)
    held_out = perts[3::4]
    train = adata[~adata.obs["perturbation"].isin(held_out)].copy()
    qs.model.QPerturb.setup_anndata(train)
    return adata, train, held_out


def _shift_correlation(model, adata, held_out) -> float:
    """Mean over held-out knockouts of the correlation of predicted and real mean shifts."""
    real = model.normalize(adata)
    labels = real.obs["perturbation"].astype(str).to_numpy()
    X = np.asarray(real.X.toarray())
    control = X[labels == "control"].mean(0)
    pred = model.predict(held_out, n_cells=300, rng=0)
    P = np.asarray(pred.X)
    plabels = pred.obs["perturbation"].astype(str).to_numpy()
    pcontrol = P[plabels == "control"].mean(0)
    out = []
    for g in held_out:
        keep = np.asarray(real.var_names != g)
        out.append(
            np.corrcoef(
                (P[plabels == g].mean(0) - pcontrol)[keep], (X[labels == g].mean(0) - control)[keep]
            )[0, 1]
        )
    return float(np.mean(out))


def test_network_prior_carries_unseen_knockouts(split, tmp_path) -> None:
    adata, train, held_out = split
    plain = qs.model.QPerturb(train, n_components=12, seed=0).train(8, progress=False)
    truth = qs.model.QPerturb(train, n_components=12, network="truth", seed=0).train(
        8, progress=False
    )
    corr = qs.model.QPerturb(train, n_components=12, network="correlation", seed=0).train(
        8, progress=False
    )
    assert truth.network_["source"] == "truth" and truth.network_["directed"]
    assert truth.network_["upper_bound"] and not corr.network_["upper_bound"]
    assert truth.network_["n_edges"] == len(qs.tl.true_network(train))
    assert not corr.network_["directed"] and corr.network_["n_edges"] > 0
    assert truth.module.prior_gain.shape == (train.n_vars,)
    assert plain.module.prior_gain is None
    r_plain, r_truth, r_corr = (
        _shift_correlation(m, adata, held_out) for m in (plain, truth, corr)
    )
    assert r_truth > r_plain + 0.1, (r_plain, r_truth)
    assert r_corr > r_plain, (r_plain, r_corr)
    # a user's table, saved with the model and used again on load
    table = qs.tl.true_network(train)[["source", "target"]]
    user = qs.model.QPerturb(train, n_components=12, network=table, seed=0).train(2, progress=False)
    assert user.network_["source"] == "table"
    before = user.predict(held_out, n_cells=20, rng=3).X
    user.save(tmp_path / "m")
    loaded = qs.model.QPerturb.load(tmp_path / "m", train)
    assert loaded.network_["source"] == "table" and loaded.network_["n_edges"] == len(table)
    np.testing.assert_array_equal(loaded.predict(held_out, n_cells=20, rng=3).X, before)


def test_bad_networks_name_the_field(split) -> None:
    _, train, _ = split
    with pytest.raises(
        ValueError,
        match=r"network: 'graph' is not allowed; choose one of "
        r"\['correlation', 'truth'\]",
    ):
        qs.model.QPerturb(train, network="graph")
    with pytest.raises(ValueError, match="network: the table needs columns source and target"):
        qs.model.QPerturb(train, network=pd.DataFrame({"from": ["G1"], "to": ["G2"]}))
    with pytest.raises(ValueError, match=r"network: genes \['nope'\] are not in var_names"):
        qs.model.QPerturb(train, network=pd.DataFrame({"source": ["G1"], "target": ["nope"]}))
    with pytest.raises(TypeError, match="network: expected 'correlation', 'truth', a DataFrame"):
        qs.model.QPerturb(train, network=[("G1", "G2")])
    with pytest.raises(ValueError, match=r"network_threshold: 1.5 is outside"):
        qs.model.QPerturb(train, network="correlation", network_threshold=1.5)
    real = ad.AnnData(
        np.ones((4, 3)),
        obs=pd.DataFrame({"perturbation": ["control", "control", "a", "a"]}, index=list("wxyz")),
        var=pd.DataFrame(index=["a", "b", "c"]),
    )
    qs.model.QPerturb.setup_anndata(real, kind_key=None)
    with pytest.raises(ValueError, match="network: 'truth' needs a simulated screen"):
        qs.model.QPerturb(real, n_components=2, network="truth")


# -- the linear baseline ----------------------------------------------------------------------


def _linear_screen(rng: np.random.Generator, n_genes: int = 30, k: int = 3):
    """Log1p cells whose perturbation profiles are exactly c + G0 A G0[g]^T, with the training
    genes' embeddings centred (so the row means are c)."""
    G0 = rng.normal(size=(n_genes, k))
    train_genes = [f"g{i}" for i in range(12)]
    G0[:12] -= G0[:12].mean(axis=0)
    A = rng.normal(size=(k, k)) * 0.05
    c = np.full(n_genes, 3.0) + rng.random(n_genes)
    genes = [f"g{i}" for i in range(n_genes)]

    def cells(labels: list[str], reps: int = 2):
        rows, obs = [], []
        for label in labels:
            profile = c if label == "control" else c + G0 @ A @ G0[genes.index(label)]
            rows += [profile] * reps
            obs += [label] * reps
        return ad.AnnData(
            np.array(rows),
            obs=pd.DataFrame({"perturbation": obs}, index=[f"c{i}" for i in range(len(obs))]),
            var=pd.DataFrame(index=genes),
        )

    held = ["g20", "g25"]
    truth = {g: c + G0 @ A @ G0[genes.index(g)] for g in held}
    return cells(["control", *train_genes]), cells(["control", *held]), truth


def test_linear_baseline_recovers_a_linear_screen_exactly() -> None:
    train, like, truth = _linear_screen(np.random.default_rng(0))
    pred = qs.tl.linear_baseline(train, like=like, n_components=3, ridge=0.0)
    labels = pred.obs["perturbation"].astype(str).to_numpy()
    for g, profile in truth.items():
        np.testing.assert_allclose(
            np.asarray(pred.X)[labels == g], np.tile(profile, (2, 1)), rtol=1e-5, atol=1e-5
        )
    assert (labels == "control").sum() == 2 and pred.var_names.equals(like.var_names)
    # ridge shrinks towards the mean profile; zero_knockouts sets the gene itself to 0
    shrunk = qs.tl.linear_baseline(train, like=like, n_components=3, ridge=1e3)
    mean = np.asarray(train.X)[train.obs["perturbation"] != "control"].mean(0)
    assert (
        np.abs(np.asarray(shrunk.X)[labels == "g20"][0] - mean).max()
        < np.abs(truth["g20"] - mean).max()
    )
    zeroed = qs.tl.linear_baseline(train, like=like, n_components=3, zero_knockouts=True)
    assert (np.asarray(zeroed.X)[labels == "g20", 20] == 0).all()
    assert zeroed.uns["linear_baseline"]["n_components"] == 3


def test_linear_baseline_scores_on_a_simulated_screen_and_checks_inputs(split) -> None:
    adata, train, held_out = split
    model = qs.model.QPerturb(train, n_components=6, seed=0)
    real = model.normalize(adata[adata.obs["perturbation"].isin(["control", *held_out])].copy())
    lin = qs.tl.linear_baseline(model.normalize(train), like=real, n_components=5)
    base = qs.tl.cell_mean_baseline(model.normalize(train), like=real)
    result = qs.tl.vcc_metrics(lin, real, baseline=base, progress=False)
    assert np.isfinite(result.summary["pds"]) and result.summary["mae"] > 0
    with pytest.raises(ValueError, match="n_components: 50 is more than the 9 training"):
        qs.tl.linear_baseline(train, like=real, n_components=50)
    with pytest.raises(ValueError, match=r"ridge: -1.0 is outside"):
        qs.tl.linear_baseline(train, like=real, ridge=-1)
    other = real.copy()
    other.obs["perturbation"] = (
        other.obs["perturbation"].astype(str).replace({held_out[0]: "not_a_gene"})
    )
    with pytest.raises(
        ValueError,
        match=r"like.obs\['perturbation'\]: perturbations must name "
        r"genes",
    ):
        qs.tl.linear_baseline(train, like=other)
    with pytest.raises(ValueError, match=r"like\.var_names: the genes differ"):
        qs.tl.linear_baseline(train, like=real[:, ::-1].copy())


def test_early_stopping_on_held_out_perturbations_keeps_the_best_epoch(split) -> None:
    _, train, _ = split
    model = qs.model.QPerturb(train, n_components=12, network="correlation", seed=1)
    model.train(max_epochs=12, validation_fraction=0.25, early_stopping_patience=2, progress=False)
    held = model.validation_perturbations_
    assert len(held) == 2 and set(held) <= set(model.perturbations)  # 9 training knockouts
    losses = [h["validation_loss"] for h in model.history_]
    assert all(np.isfinite(losses)) and len(losses) <= 12
    if len(losses) < 12:  # stopped: the last `patience` epochs did not improve
        assert min(losses[-2:]) >= min(losses)
    # the weights kept are those of the best epoch
    target, features, priors, labels = model._training_tensors()
    validation = model._validation_set(held, target, features, priors, labels)
    assert model._validation_loss(validation) == pytest.approx(min(losses), rel=1e-6)
    again = qs.model.QPerturb(train, n_components=12, network="correlation", seed=1)
    again.train(max_epochs=12, validation_fraction=0.25, early_stopping_patience=2, progress=False)
    assert again.validation_perturbations_ == held  # seeded
    assert [h["validation_loss"] for h in again.history_] == pytest.approx(losses)
    with pytest.raises(ValueError, match=r"validation_fraction: 1.0 is outside"):
        model.train(max_epochs=1, validation_fraction=1.0, progress=False)
    with pytest.raises(ValueError, match="holds out all 9 training perturbations"):
        model.train(max_epochs=1, validation_fraction=0.99, progress=False)
    with pytest.raises(ValueError, match="early_stopping_patience"):
        model.train(
            max_epochs=1, validation_fraction=0.2, early_stopping_patience=0, progress=False
        )
