"""Untrusted files (issue 26): loading a model never runs code from the file. Each load path
gets a crafted file whose unpickling would create a marker file; the load is refused with an
error naming what the file would call, and the marker never appears. Real saves still load."""

from __future__ import annotations

import fractions
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import qsimcells as qs

torch = pytest.importorskip("torch")
scvi = pytest.importorskip("scvi")

from qsimcells.model import UnsafeFileError  # noqa: E402
from qsimcells.model._persist import check_scvi_model_file  # noqa: E402

pytestmark = pytest.mark.usefixtures("scvi_quiet_seeded")


class Payload:
    """Unpickling this runs ``touch marker``: what a crafted model file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _rewrite(file: Path, change) -> None:
    """Load a torch file we made ourselves (trusted), change it, write it back."""
    saved = torch.load(file, map_location="cpu", weights_only=False)
    change(saved)
    torch.save(saved, file)


def _copy(folder: Path, to: Path) -> Path:
    shutil.copytree(folder, to)
    return to


@pytest.fixture(scope="module")
def qbmvae(tmp_path_factory):
    adata = qs.sim.simulate(qs.sim.presets.random_network(20, 2, rng=0), 60, rng=0, batches=2)
    qs.model.QBMVAE.setup_anndata(adata, batch_key="batch")
    model = qs.model.QBMVAE(adata, n_latent=4, n_hidden=16)
    model.train(max_epochs=2, enable_progress_bar=False, accelerator="cpu")
    folder = tmp_path_factory.mktemp("qbmvae") / "model"
    model.save(str(folder))
    return model, adata, folder


@pytest.fixture(scope="module")
def spiqgan(tmp_path_factory):
    data = (np.random.default_rng(0).random((64, 6)) < 0.3).astype(np.uint8)
    model = qs.model.SpiQGAN(data, 3, 2, n_layers=1, rng=0)
    model.train(2, 16, progress=False)
    return model, model.save(tmp_path_factory.mktemp("spiqgan") / "gan")


def test_a_crafted_qbmvae_file_is_refused_on_every_load_path(qbmvae, tmp_path) -> None:
    _model, adata, folder = qbmvae
    marker = tmp_path / "ran"
    crafted = _copy(folder, tmp_path / "crafted")
    _rewrite(crafted / "model.pt", lambda d: d["attr_dict"].update(payload_=Payload(marker)))
    query = adata[adata.obs["batch"] == "batch1"].copy()
    attempts = {
        "load": lambda: qs.model.QBMVAE.load(str(crafted), adata=adata),
        "load without adata": lambda: qs.model.QBMVAE.load(crafted),
        "load_registry": lambda: qs.model.QBMVAE.load_registry(str(crafted)),
        "view_setup_args": lambda: qs.model.QBMVAE.view_setup_args(str(crafted)),
        "prepare_query_anndata": lambda: qs.model.QBMVAE.prepare_query_anndata(query, str(crafted)),
        "load_query_data": lambda: qs.model.QBMVAE.load_query_data(query, crafted),
        "the qbmvae generator": lambda: qs.sim.generate(
            "qbmvae", model=str(crafted), n_cells=5, adata=adata
        ),
    }
    for what, attempt in attempts.items():
        with pytest.raises(
            UnsafeFileError,
            match=r"is refused: loading it would call "
            r"posix.system.*trusted=True",
        ) as caught:
            attempt()
        assert isinstance(caught.value, ValueError), what
        assert not marker.exists(), what
    # the payload is live: scvi-tools' own unpickling of the same file runs it
    torch.load(crafted / "model.pt", weights_only=False)
    assert marker.exists()


def test_qbmvae_saves_still_load_with_and_without_the_anndata(qbmvae, tmp_path) -> None:
    model, adata, folder = qbmvae
    latent = model.get_latent_representation()
    loaded = qs.model.QBMVAE.load(str(folder), adata=adata)
    np.testing.assert_allclose(loaded.get_latent_representation(), latent, rtol=1e-5)
    model.save(str(tmp_path / "with"), save_anndata=True)
    alone = qs.model.QBMVAE.load(str(tmp_path / "with"))
    np.testing.assert_allclose(alone.get_latent_representation(), latent, rtol=1e-5)
    assert qs.model.QBMVAE.load_registry(str(folder))["model_name"] == "QBMVAE"


@pytest.mark.parametrize("save_anndata", [False, True])
def test_scvi_tools_own_saves_pass_the_check(tmp_path, save_anndata: bool) -> None:
    """SCVI and SCANVI write the format QBMVAE.save writes: the allow-list covers them."""
    adata = qs.sim.simulate(qs.sim.presets.random_network(20, 2, rng=0), 60, rng=0, batches=2)
    scvi.model.SCVI.setup_anndata(adata, batch_key="batch", labels_key="cell_type")
    vae = scvi.model.SCVI(adata, n_latent=4, n_hidden=16)
    vae.train(max_epochs=2, enable_progress_bar=False, accelerator="cpu")
    vae.save(str(tmp_path / "scvi"), save_anndata=save_anndata)
    check_scvi_model_file(tmp_path / "scvi" / "model.pt", "SCVI", "trusted=True")
    scanvi = scvi.model.SCANVI.from_scvi_model(vae, "Unknown")
    scanvi.train(max_epochs=1, enable_progress_bar=False, accelerator="cpu")
    scanvi.save(str(tmp_path / "scanvi"), save_anndata=save_anndata)
    check_scvi_model_file(tmp_path / "scanvi" / "model.pt", "SCANVI", "trusted=True")


def test_trusted_loads_a_file_with_a_global_outside_the_allow_list(qbmvae, tmp_path) -> None:
    """A harmless global the format does not need (a Fraction) is refused by name; the user
    who trusts the file loads it with trusted=True."""
    _, adata, folder = qbmvae
    odd = _copy(folder, tmp_path / "odd")
    _rewrite(odd / "model.pt", lambda d: d["attr_dict"].update(note_=fractions.Fraction(1, 3)))
    with pytest.raises(UnsafeFileError, match=r"would call fractions\.Fraction,"):
        qs.model.QBMVAE.load(str(odd), adata=adata)
    loaded = qs.model.QBMVAE.load(str(odd), adata=adata, trusted=True)
    assert loaded.note_ == fractions.Fraction(1, 3)
    with pytest.raises(TypeError, match="trusted: expected True or False"):
        qs.model.QBMVAE.load(str(odd), adata=adata, trusted="yes")


def test_a_crafted_spiqgan_file_is_refused(spiqgan, tmp_path) -> None:
    _model, folder = spiqgan
    marker = tmp_path / "ran"
    crafted = _copy(folder, tmp_path / "crafted")
    _rewrite(crafted / "spiqgan.pt", lambda d: d.update(average=Payload(marker)))
    for attempt in (
        lambda: qs.model.SpiQGAN.load(crafted),
        lambda: qs.model.SpiQGAN.load(crafted / "spiqgan.json"),
        lambda: qs.sim.generate("spiqgan", model=crafted, n_cells=5),
    ):
        with pytest.raises(UnsafeFileError, match=r"would call posix\.system"):
            attempt()
    assert not marker.exists()


def _legacy_save(model, folder: Path, extra=None) -> None:
    """A save in the old format (one pickle, version 1), as qsimcells wrote it before."""
    folder.mkdir()
    torch.save(
        {
            "config": model._config(),
            "version": 1,
            "device": "cpu",
            "data": np.packbits(model.data, axis=1),
            "n_samples": model.data.shape[0],
            "unit_names": model.unit_names,
            "seed": 0,
            "generator": model.generator.state_dict(),
            "critic": model.critic.state_dict(),
            "opt_generator": model._opt_g.state_dict(),
            "opt_critic": model._opt_c.state_dict(),
            "history": model._history,
            "average": model._average,
            "average_steps": model._average_steps,
            **(extra or {}),
        },
        folder / "spiqgan.pt",
    )


def test_the_old_spiqgan_format_is_refused_and_converts_when_trusted(spiqgan, tmp_path) -> None:
    model, _ = spiqgan
    marker = tmp_path / "ran"
    _legacy_save(model, tmp_path / "crafted", {"payload": Payload(marker)})
    with pytest.raises(
        UnsafeFileError,
        match=r"old format.*SpiQGAN.load\(path, trusted=True\)"
        r".save\(new_path\)",
    ):
        qs.model.SpiQGAN.load(tmp_path / "crafted")
    assert not marker.exists()
    _legacy_save(model, tmp_path / "old")
    converted = qs.model.SpiQGAN.load(tmp_path / "old", trusted=True)
    converted.save(tmp_path / "new")
    again = qs.model.SpiQGAN.load(tmp_path / "new")
    np.testing.assert_array_equal(again.sample(50, rng=1), model.sample(50, rng=1))
    assert again.history.equals(model.history)


def test_crafted_qperturb_files_are_refused(tmp_path) -> None:
    design, perts = qs.sim.preset_screen("random_50")
    screen = qs.sim.perturbation_screen(design, perts, 30, rng=0, progress=False)
    qs.model.QPerturb.setup_anndata(screen)
    model = qs.model.QPerturb(screen, n_components=4, n_qubits=2, n_layers=1, seed=0)
    model.train(1, progress=False)
    model.save(tmp_path / "good")
    marker = tmp_path / "ran"
    weights = _copy(tmp_path / "good", tmp_path / "weights")
    torch.save({"payload": Payload(marker)}, weights / "module.pt")
    with pytest.raises(UnsafeFileError, match=r"would call posix\.system"):
        qs.model.QPerturb.load(weights, screen)
    backbone = _copy(tmp_path / "good", tmp_path / "backbone")
    payload = np.empty(1, dtype=object)
    payload[0] = Payload(marker)
    np.savez(backbone / "backbone.npz", pca_mean=payload, pca_components=payload)
    with pytest.raises(UnsafeFileError, match="holds pickled objects"):
        qs.model.QPerturb.load(backbone, screen)
    assert not marker.exists()
    qs.model.QPerturb.load(tmp_path / "good", screen)  # a real save still loads


def test_a_zarr_store_with_a_pickled_array_is_refused(tmp_path) -> None:
    """read_backed (and anndata.read_zarr) on a store whose obs column is a zarr v2 object
    array with numcodecs' pickle filter: zarr 3 refuses the codec, so nothing is unpickled."""
    import json
    import pickle

    import anndata as ad
    from numcodecs import Pickle

    marker = tmp_path / "ran"
    adata = qs.sim.simulate(qs.sim.presets.romero2025(True), 5, rng=0)
    store = tmp_path / "cells.zarr"
    with ad.settings.override(zarr_write_format=2):
        adata.write_zarr(store)
    column = store / "obs" / "niche"
    meta = json.loads((column / ".zarray").read_text())
    meta.update(
        dtype="|O",
        filters=[{"id": "pickle", "protocol": 5}],
        compressor=None,
        fill_value=None,
        chunks=meta["shape"],
    )
    (column / ".zarray").write_text(json.dumps(meta))
    consolidated = json.loads((store / ".zmetadata").read_text())
    consolidated["metadata"]["obs/niche/.zarray"] = meta
    (store / ".zmetadata").write_text(json.dumps(consolidated))
    for chunk in column.iterdir():
        if not chunk.name.startswith("."):
            chunk.unlink()
    payload = np.empty(meta["shape"][0], dtype=object)
    payload[:] = [Payload(marker)] * meta["shape"][0]
    (column / "0").write_bytes(Pickle().encode(payload))
    with pytest.raises(ValueError, match="No Zarr data type found that matches"):
        qs.sim.read_backed(store)
    with pytest.raises(ValueError, match="No Zarr data type found that matches"):
        ad.read_zarr(store)
    assert not marker.exists()
    # the payload is live: a plain unpickle runs it (numcodecs' own decode refuses it too)
    pickle.loads((column / "0").read_bytes())
    assert marker.exists()
