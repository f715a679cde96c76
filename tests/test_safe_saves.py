"""Saves that lose nothing (issue 18): every model writes to a temporary path and renames it,
refuses to overwrite without overwrite=True, and a truncated or foreign save gets a clear
error on load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qsimcells as qs

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("scvi_quiet_seeded")


def _qperturb():
    design, perts = qs.sim.preset_screen("random_50")
    screen = qs.sim.perturbation_screen(design, perts, 30, rng=0, progress=False)
    qs.model.QPerturb.setup_anndata(screen)
    model = qs.model.QPerturb(screen, n_components=4, n_qubits=2, n_layers=1, seed=0)
    return model.train(1, progress=False), screen


def _spiqgan():
    data = (np.random.default_rng(0).random((64, 6)) < 0.3).astype(np.uint8)
    model = qs.model.SpiQGAN(data, 3, 2, n_layers=1, rng=0)
    model.train(1, 16, progress=False)
    return model, None


def _qbmvae():
    adata = qs.sim.simulate(qs.sim.presets.random_network(20, 2, rng=0), 60, rng=0)
    qs.model.QBMVAE.setup_anndata(adata)
    model = qs.model.QBMVAE(adata, n_latent=4, n_hidden=16)
    model.train(max_epochs=1, enable_progress_bar=False, accelerator="cpu")
    return model, adata


MODELS = {
    "QPerturb": (_qperturb, "qperturb.json", "module.pt"),
    "SpiQGAN": (_spiqgan, "spiqgan.json", "spiqgan.pt"),
    "QBMVAE": (_qbmvae, "model.pt", "model.pt"),
}


def _save(name: str, model, path: Path, **kwargs):
    return model.save(str(path) if name == "QBMVAE" else path, **kwargs)


def _load(name: str, path: Path, adata):
    if name == "QPerturb":
        return qs.model.QPerturb.load(path, adata)
    if name == "SpiQGAN":
        return qs.model.SpiQGAN.load(path)
    return qs.model.QBMVAE.load(str(path), adata)


def _fingerprint(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@pytest.fixture(scope="module", params=list(MODELS))
def saved(request, tmp_path_factory):
    name = request.param
    model, adata = MODELS[name][0]()
    folder = tmp_path_factory.mktemp(name) / "save"
    _save(name, model, folder)
    return name, model, adata, folder


def test_a_save_is_refused_over_an_existing_one_and_replaced_only_on_request(saved) -> None:
    name, model, adata, folder = saved
    before = _fingerprint(folder)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        _save(name, model, folder)
    assert _fingerprint(folder) == before
    _save(name, model, folder, overwrite=True)
    assert set(_fingerprint(folder)) == set(before)
    # nothing temporary is left beside the save
    assert [p.name for p in folder.parent.iterdir()] == ["save"]
    _load(name, folder, adata)


def test_a_failed_save_leaves_the_previous_one_intact(saved, monkeypatch) -> None:
    name, model, adata, folder = saved
    before = _fingerprint(folder)

    def broken(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a model")  # the write starts, then fails
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        _save(name, model, folder, overwrite=True)
    monkeypatch.undo()
    assert _fingerprint(folder) == before
    assert [p.name for p in folder.parent.iterdir()] == ["save"]
    _load(name, folder, adata)


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_a_damaged_save_gets_a_clear_error(saved, tmp_path, damage: str) -> None:
    name, _, adata, folder = saved
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in folder.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    for member in set(MODELS[name][1:]):
        data = (copy / member).read_bytes()
        (copy / member).write_bytes(
            data[: len(data) // 2]
            if damage == "truncated"
            else b"PK\x03\x04 not a model at all" * 10
        )
    with pytest.raises(ValueError, match=rf"is not a readable {name} save"):
        _load(name, copy, adata)


def test_a_file_where_the_save_folder_should_be_is_refused(saved, tmp_path) -> None:
    name, model, _, _ = saved
    file = tmp_path / "taken"
    file.write_text("someone's notes")
    with pytest.raises(FileExistsError, match="is a file"):
        _save(name, model, file, overwrite=True)
    assert file.read_text() == "someone's notes"
    with pytest.raises(FileExistsError, match="a file stands where the folder"):
        _save(name, model, file / "save")
    _save(name, model, tmp_path / "new" / "folders" / "save")  # created, as scvi-tools does
    assert (tmp_path / "new" / "folders" / "save").is_dir()
