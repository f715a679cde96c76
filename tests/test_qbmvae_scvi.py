"""QBM-VAE through scvi-tools' own RNASeqMixin: differential expression against a known truth,
feature correlations, likelihood parameters, library sizes and batch-transformed expression."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import qsimcells as qs
from qsimcells.tl.grn import _roc_auc

pytest.importorskip("scvi")
import scvi
import torch
from scvi.model.base import RNASeqMixin

pytestmark = pytest.mark.usefixtures("scvi_quiet_seeded")


@pytest.fixture(scope="module")
def model():
    """The paper's design with 20 housekeeping genes and two batches: the circuit genes of
    CT1 are expressed only in CT1 and those of CT2 only in CT2 (differentially expressed by
    construction), the housekeeping genes everywhere alike."""
    scvi.settings.seed = 0
    adata = qs.sim.simulate(
        qs.sim.presets.romero2025(True, n_housekeeping=20), 300, rng=0, batches=2
    )
    qs.model.QBMVAE.setup_anndata(adata, batch_key="batch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = qs.model.QBMVAE(adata, n_latent=8, n_hidden=32)
            m.train(max_epochs=30, enable_progress_bar=False, accelerator="cpu")
    finally:
        torch.set_num_threads(threads)
    return m


def test_scvi_tools_mixin_is_used(model, monkeypatch) -> None:
    """The DE is scvi-tools' own: QBMVAE's method only checks its arguments and calls it."""
    assert isinstance(model, RNASeqMixin)
    calls = []
    original = RNASeqMixin.differential_expression

    def spy(self, *args, **kwargs):
        calls.append(kwargs["mode"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RNASeqMixin, "differential_expression", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.differential_expression(groupby="cell_type", group1="CT1", group2="CT2", silent=True)
    assert calls == ["vanilla"]
    with pytest.raises(ValueError, match="weights: 'importance' is not allowed"):
        model.differential_expression(groupby="cell_type", group1="CT1", weights="importance")
    with pytest.raises(NotImplementedError, match="get_importance_weights: not available"):
        model.get_importance_weights(model.adata, indices=[0])
    with pytest.raises(ValueError, match="mode: 'bayes' is not allowed"):
        model.differential_expression(groupby="cell_type", group1="CT1", mode="bayes")


@pytest.mark.parametrize("mode", ["change", "vanilla"])
def test_differential_expression_finds_the_programmed_genes(model, mode) -> None:
    """AUROC of the DE score against the truth (circuit genes DE, housekeeping genes not)."""
    adata = model.adata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        de = model.differential_expression(
            groupby="cell_type", group1="CT1", group2="CT2", mode=mode
        )
    assert set(de.index) == set(adata.var_names)
    truth = ~adata.var["housekeeping"].to_numpy()
    score = de.loc[adata.var_names, "proba_de" if mode == "change" else "bayes_factor"]
    score = np.abs(score.to_numpy(dtype=float))
    assert _roc_auc(truth, score) >= 0.9
    if mode == "change":  # the direction too: CT1's genes are up in CT1
        lfc = de.loc[adata.var_names, "lfc_mean"].to_numpy()
        ct1 = (adata.var["cell_type"] == "CT1").to_numpy()
        assert (lfc[ct1] > 1).all() and (
            lfc[(adata.var["cell_type"] == "CT2").to_numpy()] < -1
        ).all()


def test_feature_correlation_matrix(model) -> None:
    corr = model.get_feature_correlation_matrix(n_samples=3)
    genes = model.adata.var_names
    assert corr.shape == (len(genes), len(genes)) and list(corr.index) == list(genes)
    values = corr.to_numpy()
    assert np.allclose(np.diag(values), 1) and np.allclose(values, values.T)
    # genes of one cell type are zero together in the other type: a gene of CT1 correlates
    # more with another gene of CT1 than with one of CT2
    assert corr.loc["g0", "g1"] > 0 > corr.loc["g0", "g5"]
    pearson = model.get_feature_correlation_matrix(
        n_samples=2, correlation_type="pearson", transform_batch=["batch0", "batch1"]
    )
    assert pearson.shape == corr.shape
    with pytest.raises(ValueError, match="correlation_type: 'kendall' is not allowed"):
        model.get_feature_correlation_matrix(correlation_type="kendall")


def test_likelihood_parameters_and_library_sizes(model) -> None:
    cells = [0, 1, 5]
    params = model.get_likelihood_parameters(indices=cells)
    observed = np.asarray(model.adata.X[cells].sum(1)).ravel()
    assert params["mean"].shape == (3, model.adata.n_vars)
    # the NB mean is library * scale: each row sums to the cell's library size
    np.testing.assert_allclose(params["mean"].sum(1), observed, rtol=1e-4)
    assert (params["dispersions"] > 0).all()
    library = model.get_latent_library_size()
    np.testing.assert_allclose(library.ravel(), np.asarray(model.adata.X.sum(1)).ravel())


def test_normalized_expression_with_scvi_tools_arguments(model) -> None:
    cells = [0, 2, 4]
    own = model.get_normalized_expression(indices=cells, n_samples=20)
    torch.manual_seed(0)
    as_b0 = model.get_normalized_expression(indices=cells, transform_batch="batch0", n_samples=20)
    torch.manual_seed(0)
    as_b1 = model.get_normalized_expression(indices=cells, transform_batch="batch1", n_samples=20)
    assert not np.allclose(as_b0.to_numpy(), as_b1.to_numpy())
    assert own.shape == as_b0.shape
    torch.manual_seed(0)
    both = model.get_normalized_expression(
        indices=cells, n_samples=20, transform_batch=["batch0", "batch1"]
    )
    np.testing.assert_allclose(both.sum(1), 1, rtol=1e-4)
    sub = model.get_normalized_expression(indices=cells, gene_list=["g3", "g0"])
    assert list(sub.columns) == ["g3", "g0"]
    latent = model.get_normalized_expression(indices=cells, library_size="latent")
    np.testing.assert_allclose(
        latent.sum(1), np.asarray(model.adata.X[cells].sum(1)).ravel(), rtol=1e-4
    )
    overall = model.get_normalized_expression(indices=cells, n_samples_overall=7)
    assert isinstance(overall, np.ndarray) and overall.shape == (7, model.adata.n_vars)
    with pytest.raises(ValueError, match="weights: 'importance' is not allowed"):
        model.get_normalized_expression(weights="importance")
    with pytest.raises(ValueError, match=r"gene_list: \['nope'\] not in"):
        model.get_normalized_expression(gene_list=["nope"])
    with pytest.raises(ValueError, match="batch: unknown batch 'b9'"):
        model.get_normalized_expression(transform_batch="b9")
    with pytest.raises(ValueError, match="library_size: 'observed' is not allowed"):
        model.get_normalized_expression(library_size="observed")


def test_reference_mapping_with_scvi_tools_arches(tmp_path) -> None:
    """scArches through scvi-tools' ArchesMixin: train on two batches, map a held-out third
    with load_query_data (encoder and expression decoder frozen, the new batch's decoder
    input trained), transfer the cell-type labels by kNN, and save / load the query model."""
    from scipy.spatial import cKDTree

    scvi.settings.seed = 0
    adata = qs.sim.simulate(
        qs.sim.presets.random_network(40, 3, rng=0, n_housekeeping=10), 200, rng=0, batches=3
    )
    ref = adata[adata.obs["batch"] != "batch2"].copy()
    query = adata[adata.obs["batch"] == "batch2"].copy()
    qs.model.QBMVAE.setup_anndata(ref, batch_key="batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = qs.model.QBMVAE(ref, n_latent=8, n_hidden=32)
        reference.train(max_epochs=30, enable_progress_bar=False, accelerator="cpu")
        reference.save(tmp_path / "ref")
        qs.model.QBMVAE.prepare_query_anndata(query, str(tmp_path / "ref"))
        mapped = qs.model.QBMVAE.load_query_data(query, str(tmp_path / "ref"))
        assert isinstance(mapped, qs.model.QBMVAE) and mapped.module.n_batch == 3
        before = {k: v.clone() for k, v in mapped.module.state_dict().items()}
        mapped.train(max_epochs=10, enable_progress_bar=False, accelerator="cpu")
    after = mapped.module.state_dict()
    encoder = [k for k in before if k.startswith("encoder")]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)  # frozen
    first = next(k for k in before if k.startswith("decoder") and k.endswith("weight"))
    changed = (before[first] != after[first]).any(dim=0)
    assert changed.any() and not changed[:8].any()  # only the new batch's one-hot column
    z_ref = reference.get_latent_representation(ref)
    z_query = mapped.get_latent_representation(query)
    _, nearest = cKDTree(z_ref).query(z_query, k=10)
    labels = ref.obs["cell_type"].to_numpy()[nearest]
    votes = [max(set(row), key=list(row).count) for row in labels]
    accuracy = np.mean(np.array(votes) == query.obs["cell_type"].to_numpy())
    assert accuracy >= 0.9, accuracy
    mapped.save(tmp_path / "query")
    again = qs.model.QBMVAE.load(str(tmp_path / "query"), adata=query)
    np.testing.assert_allclose(again.get_latent_representation(query), z_query, rtol=1e-5)
    # the reference's batches keep the rows they learned; the query batch has its own
    rows_ref = reference.get_batch_representation(ref)
    rows_mapped = mapped.get_batch_representation(adata)
    in_ref = (adata.obs["batch"] != "batch2").to_numpy()
    np.testing.assert_array_equal(rows_mapped[in_ref], rows_ref)
    assert not np.allclose(rows_mapped[~in_ref][0], rows_ref[0])


def test_batch_representation_is_the_decoders_learned_batch_input(model) -> None:
    rows = model.get_batch_representation()
    assert rows.shape == (model.adata.n_obs, 32) and rows.dtype == np.float32
    batch = model.adata.obs["batch"].to_numpy()
    weight = model.module.decoder.fc_layers[0][0].weight.detach().numpy()
    for code, label in enumerate(["batch0", "batch1"]):
        mine = rows[batch == label]
        np.testing.assert_array_equal(mine, np.broadcast_to(weight[:, 8 + code], mine.shape))
    assert not np.allclose(rows[batch == "batch0"][0], rows[batch == "batch1"][0])
    sub = model.get_batch_representation(indices=[3, 1])
    np.testing.assert_array_equal(sub, rows[[3, 1]])
    single = model.adata.copy()
    qs.model.QBMVAE.setup_anndata(single)
    with pytest.raises(ValueError, match="batch_key: the model was set up with one batch"):
        qs.model.QBMVAE(single, n_latent=8, n_hidden=32).get_batch_representation()


def _copy_of(model, tmp_path):
    """A fresh copy of the trained model (minifying changes a model in place)."""
    model.save(tmp_path / "full")
    return qs.model.QBMVAE.load(str(tmp_path / "full"), adata=model.adata.copy())


def test_a_minified_model_answers_from_the_stored_posterior(model, tmp_path) -> None:
    full = _copy_of(model, tmp_path)
    mini = _copy_of(model, tmp_path / "b")
    adata = mini.adata
    qzm, qzv = mini.get_latent_representation(return_dist=True)
    np.testing.assert_allclose(qzv, qzm * (1 - qzm))
    adata.obsm["X_latent_qzm"], adata.obsm["X_latent_qzv"] = qzm, qzv
    mini.minify_adata()
    assert mini.minified_data_type == "latent_posterior_parameters"
    assert mini.adata is not adata and mini.adata.X.nnz == 0  # the counts are gone
    np.testing.assert_allclose(mini.get_latent_representation(), qzm, rtol=1e-6)
    np.testing.assert_allclose(mini.get_latent_library_size(), full.get_latent_library_size())
    # the same relaxation draws decode the same expression as on the full data
    torch.manual_seed(3)
    expected = full.get_normalized_expression(indices=[0, 7, 9], n_samples=5)
    torch.manual_seed(3)
    got = mini.get_normalized_expression(indices=[0, 7, 9], n_samples=5)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-4, atol=1e-7)
    counts = mini.posterior_predictive_sample(indices=[0, 1])
    np.testing.assert_allclose(
        np.asarray(counts.sum(1)).ravel(), np.asarray(full.adata.X[[0, 1]].sum(1)).ravel(), rtol=0.5
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        de = mini.differential_expression(
            groupby="cell_type", group1="CT1", group2="CT2", mode="change", silent=True
        )
    truth = ~mini.adata.var["housekeeping"].to_numpy()
    score = de.loc[mini.adata.var_names, "proba_de"].to_numpy(dtype=float)
    assert _roc_auc(truth, score) >= 0.9
    assert mini.sample_prior(5, rng=0).n_obs == 5  # library sizes from the stored ones
    with pytest.raises(ValueError, match="adata: this model's AnnData is minified"):
        mini.train(max_epochs=1)
    with pytest.raises(ValueError, match="does not support minified data"):
        mini.get_elbo()
    with pytest.raises(ValueError, match="minified already"):
        mini.minify_adata()
    # a minified model saves with its minified AnnData and loads minified
    mini.save(tmp_path / "mini", save_anndata=True)
    again = qs.model.QBMVAE.load(str(tmp_path / "mini"))
    assert again.minified_data_type == "latent_posterior_parameters"
    assert again.module.minified_data_type == "latent_posterior_parameters"
    np.testing.assert_allclose(again.get_latent_representation(), qzm, rtol=1e-6)


def test_minifying_with_counts_keeps_them_and_the_elbo(model, tmp_path) -> None:
    mini = _copy_of(model, tmp_path)
    adata = mini.adata
    adata.obsm["X_latent_qzm"], adata.obsm["X_latent_qzv"] = mini.get_latent_representation(
        return_dist=True
    )
    mini.minify_adata("latent_posterior_parameters_with_counts")
    assert mini.adata.X.nnz == model.adata.X.nnz
    assert np.isfinite(mini.get_elbo())


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (
            {"drop": "X_latent_qzm"},
            KeyError,
            r"use_latent_qzm_key: adata.obsm\['X_latent_qzm'\] is "
            "missing",
        ),
        ({"drop": "X_latent_qzv"}, KeyError, "use_latent_qzv_key: .* is missing"),
        ({"qzm": "narrow"}, ValueError, r"use_latent_qzm_key: .* has shape \(600, 3\)"),
        ({"qzm": "logits"}, ValueError, r"must hold Bernoulli means and variances in \[0, 1\]"),
        ({"type": "posterior"}, ValueError, "minified_data_type: 'posterior' is not allowed"),
    ],
)
def test_minify_refuses_what_is_not_a_stored_binary_posterior(
    model, tmp_path, change, error, match
) -> None:
    mini = _copy_of(model, tmp_path)
    adata = mini.adata
    qzm, qzv = mini.get_latent_representation(return_dist=True)
    adata.obsm["X_latent_qzm"], adata.obsm["X_latent_qzv"] = qzm, qzv
    if "drop" in change:
        del adata.obsm[change["drop"]]
    if change.get("qzm") == "narrow":
        adata.obsm["X_latent_qzm"] = qzm[:, :3]
    if change.get("qzm") == "logits":
        adata.obsm["X_latent_qzm"] = mini.get_latent_representation(representation="logit")
    with pytest.raises(error, match=match):
        mini.minify_adata(change.get("type", "latent_posterior_parameters"))
    assert mini.minified_data_type is None and mini.adata is adata  # nothing changed
