"""QPerturb: set-up checks, training, prediction for unseen genes, cores, save/load."""

from __future__ import annotations

import numpy as np
import pytest

import qsimcells as qs

torch = pytest.importorskip("torch")

from qsimcells.model._backbone import PCABackbone, perturbation_features  # noqa: E402


@pytest.fixture(scope="module")
def screen():
    design, perts = qs.sim.preset_screen("random_50")
    adata = qs.sim.perturbation_screen(design, perts, 60, rng=1)
    return adata, perts


@pytest.fixture(scope="module")
def split(screen):
    """Train on all but 3 perturbations; the 3 held out are unseen genes."""
    adata, perts = screen
    held_out = perts[-3:]
    train = adata[~adata.obs["perturbation"].isin(held_out)].copy()
    qs.model.QPerturb.setup_anndata(train)
    return train, held_out


@pytest.fixture(scope="module")
def trained(split):
    train, _ = split
    model = qs.model.QPerturb(train, n_components=12, seed=0)
    model.train(max_epochs=8, batch_size=128, progress=False)
    return model


def _mean_profiles(adata, key="perturbation"):
    X = np.asarray(adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X)
    labels = adata.obs[key].astype(str).to_numpy()
    return {lab: X[labels == lab].mean(0) for lab in np.unique(labels)}


def test_setup_rejects_bad_input(screen):
    adata, _ = screen
    ad = adata.copy()
    with pytest.raises(KeyError, match="perturbation_key: 'guide'"):
        qs.model.QPerturb.setup_anndata(ad, perturbation_key="guide")
    with pytest.raises(ValueError, match="control: no cell has perturbation == 'ctrl'"):
        qs.model.QPerturb.setup_anndata(ad, control="ctrl")
    with pytest.raises(ValueError, match="adata: not set up"):
        qs.model.QPerturb(adata[:10].copy())
    bad = ad.copy()
    bad.obs["perturbation"] = bad.obs["perturbation"].astype(str).replace("G0", "NOTAGENE")
    with pytest.raises(ValueError, match=r"not genes: \['NOTAGENE'\]"):
        qs.model.QPerturb.setup_anndata(bad)
    only_control = ad[ad.obs["perturbation"] == "control"].copy()
    with pytest.raises(ValueError, match="no perturbed cells"):
        qs.model.QPerturb.setup_anndata(only_control)
    negative = ad.copy()
    negative.X = negative.X.toarray() - 1.0
    with pytest.raises(ValueError, match="negative values"):
        qs.model.QPerturb.setup_anndata(negative)
    qs.model.QPerturb.setup_anndata(ad)
    with pytest.raises(ValueError, match="core: 'classical' is not allowed"):
        qs.model.QPerturb(ad, core="classical")
    with pytest.raises(ValueError, match="backbone: 'umap' is not allowed"):
        qs.model.QPerturb(ad, backbone="umap")
    with pytest.raises(TypeError, match="backbone: expected 'pca'"):
        qs.model.QPerturb(ad, backbone=object())


def test_parameters_and_skip_connection(split):
    train, _ = split
    quantum = qs.model.QPerturb(train, n_components=12)
    mlp = qs.model.QPerturb(train, n_components=12, core="mlp")
    both = qs.model.QPerturb(train, n_components=12, bypass=True, bypass_hidden=16)
    n_genes = train.n_vars
    decoder = 24 * n_genes + n_genes
    projection = 24 * 8 + 8
    assert quantum.n_parameters == projection + 3 * 8 * 3 + decoder
    assert mlp.n_parameters == projection + (8 * 24 + 24) + (24 * 24 + 24) + decoder
    assert both.n_parameters == quantum.n_parameters + (24 * 16 + 16) + (16 * n_genes + n_genes)
    # an untrained model predicts "no change": the output is the control cell itself
    x = torch.rand(5, n_genes)
    z, f = torch.randn(5, 12), torch.randn(5, 12)
    assert torch.equal(quantum.module(x, z, f), x)
    with pytest.raises(ValueError, match="not trained"):
        quantum.predict(["G0"])


def test_training_learns_the_shift_and_predicts_unseen_genes(split, screen, trained):
    adata, _ = screen
    _, held_out = split
    losses = [h["loss"] for h in trained.history_]
    assert losses[-1] < losses[0]
    pred = trained.predict(held_out, n_cells=100, rng=0)
    assert pred.n_obs == 100 * (len(held_out) + 1)
    assert list(pred.obs["perturbation"].cat.categories) == ["control", *held_out]
    assert pred.var_names.tolist() == adata.var_names.tolist()
    assert np.isfinite(pred.X).all() and (pred.X >= 0).all()
    # seen perturbations: the predicted mean profile is closer to the truth than "no change"
    seen = trained.predict(n_cells=200, rng=1, zero_knockouts=False)  # the learnt delta only
    real = _mean_profiles(trained.normalize(adata))
    predicted = _mean_profiles(seen)
    control = real["control"]
    gains = []
    for label in trained.perturbations:
        gains.append(
            np.abs(real[label] - control).mean() - np.abs(real[label] - predicted[label]).mean()
        )
    assert np.mean(gains) > 0, gains
    scaled = trained.normalize(adata)
    assert "log1p" in scaled.uns and scaled.shape == adata.shape
    with pytest.raises(ValueError, match="genes differ"):
        trained.normalize(adata[:, ::-1].copy())


def test_seeded_and_saved_models_agree(split, screen, trained, tmp_path):
    train, held_out = split
    first, again = (
        qs.model.QPerturb(train, n_components=6, seed=3).train(
            max_epochs=1, batch_size=256, progress=False
        )
        for _ in range(2)
    )
    np.testing.assert_allclose(
        again.predict(held_out, n_cells=30, rng=5).X,
        first.predict(held_out, n_cells=30, rng=5).X,
        atol=1e-5,
    )
    a = trained.predict(held_out, n_cells=30, rng=5).X
    trained.save(tmp_path / "m")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        trained.save(tmp_path / "m")
    loaded = qs.model.QPerturb.load(tmp_path / "m", train)
    np.testing.assert_array_equal(loaded.predict(held_out, n_cells=30, rng=5).X, a)
    assert loaded.history_ == trained.history_
    fresh = train.copy()
    del fresh.uns["_qperturb"]  # set up again from the saved set-up
    np.testing.assert_array_equal(
        qs.model.QPerturb.load(tmp_path / "m", fresh).predict(held_out, n_cells=30, rng=5).X, a
    )
    # another screen (here: the held-out perturbations too) is refused, not silently used
    full, _ = screen
    with pytest.raises(ValueError, match="not the screen the model was trained on"):
        qs.model.QPerturb.load(tmp_path / "m", full.copy())
    other = train.copy()
    qs.model.QPerturb.setup_anndata(other, kind_key=None)
    with pytest.raises(ValueError, match="the model was trained with"):
        qs.model.QPerturb.load(tmp_path / "m", other)
    with pytest.raises(FileNotFoundError, match="no saved QPerturb"):
        qs.model.QPerturb.load(tmp_path / "nothing", train)


def test_predict_rejects_bad_perturbations(trained):
    with pytest.raises(ValueError, match="'NOPE' is not a gene of the screen"):
        trained.predict(["NOPE"])
    with pytest.raises(ValueError, match="'control' is not a gene"):
        trained.predict(["control"])
    with pytest.raises(ValueError, match=r"perturbations\['G1'\]: 'activate' is not allowed"):
        trained.predict({"G1": "activate"})
    with pytest.raises(ValueError, match="kind: 'silence' is not allowed"):
        trained.predict(["G1"], kind="silence")
    # the knockout rule: a knocked-out gene's own prediction is 0 unless turned off
    assert (trained.predict(["G1"], n_cells=20, rng=0)[:, "G1"].X[20:] == 0).all()
    raw = trained.predict(["G1"], n_cells=20, rng=0, zero_knockouts=False)
    assert (raw[:, "G1"].X[20:] > 0).any()
    # combinations and overexpression are predicted too
    out = trained.predict(
        {"G1+G2": "knockout", "G3": "overexpress"}, n_cells=10, rng=0, include_control=False
    )
    assert out.obs["perturbation"].value_counts().to_dict() == {"G1+G2": 10, "G3": 10}
    assert (
        out.obs["perturbation_kind"].astype(str).tolist()
        == ["knockout"] * 10 + ["overexpress"] * 10
    )
    assert not np.allclose(
        trained._feature("G3", "overexpress"), trained._feature("G3", "knockout")
    )
    np.testing.assert_allclose(
        trained._feature("G1+G2", "knockout"),
        trained._feature("G1", "knockout") + trained._feature("G2", "knockout"),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match=r"repeated: \['G1'\]"):
        trained.predict(["G1", "G1"])
    with pytest.raises(ValueError, match=r"not genes: \['NOPE'\]"):
        trained.predict(["G1+NOPE"])
    with pytest.raises(ValueError, match="kind: 'silence' is not allowed"):
        trained.predict(kind="silence")


def test_mlp_core_and_bypass_train(split):
    train, held_out = split
    for kwargs in ({"core": "mlp"}, {"bypass": True, "bypass_hidden": 16}):
        model = qs.model.QPerturb(train, n_components=8, **kwargs)
        model.train(max_epochs=2, batch_size=256, progress=False)
        assert model.history_[-1]["loss"] < model.history_[0]["loss"]
        assert np.isfinite(model.predict(held_out, n_cells=20, rng=0).X).all()
    outputs = model.quantum_outputs(held_out, n_cells=20, rng=0)
    assert outputs.shape == (60, 24) and np.abs(outputs).max() <= 1 + 1e-6


def test_knockout_feature_is_an_in_silico_knockout(split):
    train, _ = split
    X = qs.tl._preprocess.counts(train)[:60]
    pca = PCABackbone(6).fit(X)
    reference = pca.encode(X)
    silent = (
        int(np.flatnonzero(np.asarray(X.sum(0)).ravel() == 0)[0])
        if (np.asarray(X.sum(0)).ravel() == 0).any()
        else None
    )
    if silent is not None:  # a gene no control cell expresses: knocking it out changes nothing
        np.testing.assert_allclose(
            perturbation_features(pca, X, silent, "knockout", reference), 0, atol=1e-12
        )
    g = int(np.argmax(np.asarray(X.sum(0)).ravel()))
    Y = X.tolil()
    Y[:, g] = 0
    expected = (pca.encode(Y.tocsr()) - reference).mean(0)
    np.testing.assert_allclose(perturbation_features(pca, X, g, "knockout", reference), expected)
    assert np.abs(expected).max() > 0


def test_scvi_backbone(split):
    pytest.importorskip("scvi")
    train, held_out = split
    backbone_data = train.copy()
    qs.model.QBMVAE.setup_anndata(backbone_data)
    qbm = qs.model.QBMVAE(backbone_data, n_latent=8, n_hidden=32, n_layers=1)
    qbm.train(max_epochs=2, enable_progress_bar=False, accelerator="cpu")
    model = qs.model.QPerturb(train, backbone=qbm, seed=0)
    assert model._control_latent.shape[1] == 8
    model.train(max_epochs=2, progress=False)
    assert np.isfinite(model.predict(held_out, n_cells=10, rng=0).X).all()
    # a model set up with labels is encoded too; genes out of order are refused
    labelled = train.copy()
    qs.model.QBMVAE.setup_anndata(labelled, labels_key="cell_type")
    qbm2 = qs.model.QBMVAE(labelled, n_latent=4, n_hidden=16, n_layers=1)
    qbm2.train(max_epochs=1, enable_progress_bar=False, accelerator="cpu")
    assert qs.model.QPerturb(train, backbone=qbm2)._control_latent.shape[1] == 4
    shuffled = train[:, ::-1].copy()
    qs.model.QPerturb.setup_anndata(shuffled)
    with pytest.raises(ValueError, match="not the screen's genes"):
        qs.model.QPerturb(shuffled, backbone=qbm)


def test_overexpression_screens_and_kind_checks(screen):
    _adata, perts = screen
    design = qs.sim.preset_screen("random_50")[0]
    mixed = qs.sim.perturbation_screen(
        design, {perts[0]: "knockout", perts[1]: "overexpress"}, 40, rng=2
    )
    with pytest.raises(KeyError, match="kind_key: 'kindd' is not an obs column"):
        qs.model.QPerturb.setup_anndata(mixed.copy(), kind_key="kindd")
    clash = mixed.copy()
    kinds = clash.obs["perturbation_kind"].astype(str).to_numpy().copy()
    kinds[np.flatnonzero(clash.obs["perturbation"] == perts[1])[0]] = "knockout"
    clash.obs["perturbation_kind"] = kinds
    with pytest.raises(ValueError, match=f"perturbation {perts[1]!r} is labelled both"):
        qs.model.QPerturb.setup_anndata(clash)
    bad = mixed.copy()
    bad.obs["perturbation_kind"] = (
        bad.obs["perturbation_kind"].astype(str).replace("overexpress", "activate")
    )
    with pytest.raises(ValueError, match="kind_key: obs\\['perturbation_kind'\\] must be one"):
        qs.model.QPerturb.setup_anndata(bad)
    qs.model.QPerturb.setup_anndata(mixed)
    model = qs.model.QPerturb(mixed, n_components=6, seed=0)
    assert model.perturbations == {perts[0]: "knockout", perts[1]: "overexpress"}
    model.train(max_epochs=1, batch_size=256, progress=False)
    pred = model.predict(n_cells=10, rng=0, include_control=False)  # the training kinds
    assert pred.obs.groupby("perturbation", observed=True)["perturbation_kind"].first().astype(
        str
    ).to_dict() == {perts[0]: "knockout", perts[1]: "overexpress"}
    # an overexpressed gene is not zeroed by the knockout rule
    assert (pred[pred.obs["perturbation"] == perts[1], perts[1]].X > 0).any()
    with pytest.raises(ValueError, match="seed: expected a non-negative integer"):
        qs.model.QPerturb(mixed, seed=-1)
    with pytest.raises(ValueError, match="entanglement: 'star' is not allowed"):
        qs.model.QPerturb(mixed, entanglement="star", core="mlp")
    state = torch.random.get_rng_state()
    qs.model.QPerturb(mixed, n_components=6, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)  # the user's torch RNG untouched
