"""QBM-VAE as a scvi-tools model: training, the latent, save/load, the optimiser and bad input."""

from __future__ import annotations

import json
import types
import warnings

import numpy as np
import pytest
from conftest import run_python

import qsimcells as qs

pytest.importorskip("scvi")
import scvi  # noqa: E402
from scvi.model.base import BaseModelClass  # noqa: E402

FAST = {"enable_progress_bar": False, "accelerator": "cpu"}
SMALL = {"n_latent": 8, "n_hidden": 32}


@pytest.fixture(autouse=True)
def _quiet_and_seeded():
    scvi.settings.seed = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _data(n_cells: int = 150, batches: int = 2):
    return qs.sim.simulate(qs.sim.presets.random_network(30, 2, rng=0), n_cells, rng=0,
                           batches=batches)


def _losses(model) -> np.ndarray:
    """Per-epoch training loss (scvi-tools 1.4 logs it as ``train_loss``, object dtype)."""
    return model.history["train_loss"].to_numpy(dtype=np.float64).ravel()


def _model(batch_key: str | None = "batch", **kwargs):
    adata = _data()
    qs.model.QBMVAE.setup_anndata(adata, batch_key=batch_key)
    return qs.model.QBMVAE(adata, **{**SMALL, **kwargs})


@pytest.mark.parametrize("likelihood", ["nb", "mse"])
@pytest.mark.parametrize("batch_key", [None, "batch"])
def test_trains_with_and_without_batches(likelihood: str, batch_key: str | None) -> None:
    model = _model(batch_key, likelihood=likelihood)
    assert isinstance(model, BaseModelClass)
    model.train(max_epochs=2, **FAST)
    assert model.is_trained
    loss = _losses(model)
    assert loss.shape == (2,) and np.isfinite(loss).all()
    q = model.get_latent_representation()
    assert q.shape == (model.adata.n_obs, 8) and q.dtype == np.float32
    assert ((q > 0) & (q < 1)).all()
    z = model.get_latent_representation(give_mean=False, rng=0)
    assert set(np.unique(z)) <= {0.0, 1.0} and z.dtype == np.float32
    np.testing.assert_array_equal(z, model.get_latent_representation(give_mean=False, rng=0))
    assert np.isfinite(float(model.get_elbo()))
    assert np.isfinite(float(model.get_reconstruction_error()["reconstruction_loss"]))
    new = model.sample_prior(5, rng=0)
    assert new.shape == (5, model.adata.n_vars) and np.isfinite(new).all()


def test_training_loss_decreases() -> None:
    model = _model(likelihood="nb")
    model.train(max_epochs=10, **FAST)
    loss = _losses(model)
    assert loss[-1] < 0.9 * loss[0], loss


def test_the_batch_one_hot_reaches_the_decoder() -> None:
    model = _model("batch")
    assert model.summary_stats.n_batch == 2
    first = model.module.decoder.fc_layers[0][0]
    assert first.in_features == 8 + 2  # zeta and the batch one-hot


def test_honest_elbo_with_exact_log_partition_has_a_nonnegative_kl() -> None:
    model = _model(likelihood="mse")
    model.train(max_epochs=1, **FAST)
    loader = model._make_data_loader(model.adata, batch_size=64)
    tensors = next(iter(loader))
    log_z = model.log_partition("exact")
    _, _, out = model.module(tensors, loss_kwargs={"log_z": log_z})
    assert (out.kl_local["kl_local"] >= -1e-4).all()
    honest = float(model.get_elbo(log_z_method="exact"))
    assert np.isfinite(honest)


def test_save_load_round_trip_gives_the_same_latent(tmp_path) -> None:
    model = _model(prior_sampler_kwargs={"num_sweeps": 2})
    model.train(max_epochs=1, **FAST)
    before = model.get_latent_representation()
    model.save(str(tmp_path / "m"), save_anndata=True)
    loaded = qs.model.QBMVAE.load(str(tmp_path / "m"))
    assert loaded.init_params_["non_kwargs"]["prior_sampler"] == "gibbs"
    np.testing.assert_array_equal(before, loaded.get_latent_representation())
    np.testing.assert_array_equal(model.module.prior.chains.numpy(),
                                  loaded.module.prior.chains.numpy())


def test_two_adam_groups_with_their_own_learning_rates_and_eps() -> None:
    from qsimcells.model._qbmvae_plan import QBMVAETrainingPlan

    model = _model()
    model.train(max_epochs=1, **FAST)
    optimizer = model.trainer.optimizers[0]
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert set(groups) == {"vae", "prior"}
    assert groups["vae"]["lr"] == 1e-2 and groups["prior"]["lr"] == 1e-3
    assert groups["vae"]["eps"] == 1e-8 and groups["prior"]["eps"] == 1e-8
    prior_params = {id(p) for p in model.module.prior.parameters()}
    assert {id(p) for p in groups["prior"]["params"]} == prior_params
    assert not prior_params & {id(p) for p in groups["vae"]["params"]}
    plan = QBMVAETrainingPlan(model.module, lr=0.05, lr_prior=0.002)
    assert [g["lr"] for g in plan.configure_optimizers()["optimizer"].param_groups] == [0.05,
                                                                                       0.002]
    assert "kl_weight" not in plan.loss_kwargs  # no silent KL warm-up
    with pytest.raises(ValueError, match="plan_kwargs"):
        model.train(max_epochs=1, plan_kwargs={"lr": 0.1}, **FAST)


def test_one_negative_phase_per_training_step(monkeypatch) -> None:
    model = _model()
    calls = []
    original = model.module.prior.negative_samples

    def counting():
        calls.append(1)
        return original()

    monkeypatch.setattr(model.module.prior, "negative_samples", counting)
    model.train(max_epochs=1, batch_size=100, train_size=1.0, **FAST)
    assert len(calls) == 3  # 300 cells in batches of 100
    assert bool(model.module.prior.warm)


def test_early_stopping_monitors_the_validation_elbo() -> None:
    model = _model()
    model.train(max_epochs=2, early_stopping=True, **FAST)
    stops = [c for c in model.trainer.callbacks if type(c).__name__ == "LoudEarlyStopping"
             or "EarlyStopping" in type(c).__name__]
    assert stops and stops[0].monitor == "elbo_validation" and stops[0].patience == 10
    assert "elbo_validation" in model.history


def test_trains_with_the_exact_sampler() -> None:
    model = _model(prior_sampler="exact")
    model.train(max_epochs=1, **FAST)
    assert np.isfinite(_losses(model)).all()


def test_trains_with_neal() -> None:
    pytest.importorskip("qsimcells_neal")
    model = _model(prior_sampler="neal", num_reads=32)
    model.train(max_epochs=1, **FAST)
    assert np.isfinite(_losses(model)).all()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"likelihood": "poisson"}, "likelihood"),
    ({"n_latent": 0}, "n_latent"),
    ({"prior_sampler": "nope"}, r"prior_sampler: unknown ising sampler 'nope'; available"),
    ({"prior_sampler": "exact", "n_latent": 25}, "prior_sampler: 'exact' takes at most 20"),
])
def test_bad_arguments(kwargs: dict, match: str) -> None:
    adata = _data()
    qs.model.QBMVAE.setup_anndata(adata)
    with pytest.raises(ValueError, match=match):
        qs.model.QBMVAE(adata, **{**SMALL, **kwargs})


def test_non_integer_counts_fail_for_nb_but_not_for_mse() -> None:
    adata = _data()
    adata.X = adata.X.toarray().astype(np.float64) * 0.5
    qs.model.QBMVAE.setup_anndata(adata)
    with pytest.raises(ValueError, match="likelihood='nb' needs integer counts"):
        qs.model.QBMVAE(adata, **SMALL)
    qs.model.QBMVAE(adata, likelihood="mse", **SMALL)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_fail(bad: float) -> None:
    adata = _data()
    adata.X = adata.X.toarray().astype(np.float64)
    adata.X[0, 0] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        qs.model.QBMVAE.setup_anndata(adata)
        qs.model.QBMVAE(adata, likelihood="mse", **SMALL)


def test_unknown_batch_key_is_scvis_error() -> None:
    adata = _data()
    with pytest.raises(KeyError, match="nope"):
        qs.model.QBMVAE.setup_anndata(adata, batch_key="nope")


def test_a_sampler_returning_the_wrong_shape_fails_before_training(monkeypatch) -> None:
    from qsimcells.plugins import IsingSamplerSpec, hookimpl, registry

    class Broken:
        def sample(self, h, W, num_reads, *, beta, rng, initial_states):
            return np.zeros((num_reads, h.size + 1), np.uint8)

    plugin = types.SimpleNamespace(qsimcells_ising_samplers=hookimpl(
        lambda: [IsingSamplerSpec(name="broken-shape", factory=Broken)]))
    plugin.__name__ = "broken_shape_plugin"
    monkeypatch.setattr(registry, "_registry", registry.PluginRegistry(
        load_entry_points=False, extra_plugins=[(plugin, "test-broken", "0")]))
    model = _model(prior_sampler="broken-shape")
    with pytest.raises(ValueError, match=r"returned shape \(2, 9\), expected \(2, 8\)"):
        model.train(max_epochs=1, **FAST)
    assert not model.is_trained


def test_the_model_namespace_is_lazy() -> None:
    code = """
import json, sys
import qsimcells as qs
qs.model
before = sorted(m for m in ("scvi", "torch", "lightning") if m in sys.modules)
dir(qs.model)
qs.model.QBMVAE
after = sorted(m for m in ("scvi", "torch") if m in sys.modules)
print(json.dumps({"before": before, "after": after}))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"before": [], "after": ["scvi", "torch"]}
