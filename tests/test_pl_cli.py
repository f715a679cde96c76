"""Plots render to files; the demo command writes the paper's data and Fig. 2."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import qsimcells as qs
from qsimcells.cli import main


@pytest.mark.parametrize("interacting", [True, False])
def test_circuit_and_histogram_render(tmp_path, interacting: bool) -> None:
    design = qs.sim.presets.romero2025(interacting)
    qs.pl.circuit(design, save=tmp_path / "circuit.png", show=False)
    adata = qs.sim.simulate(design, 500, rng=0)
    axes = qs.pl.bit_histogram(adata, save=tmp_path / "hist.png", show=False)
    assert len(axes) == 2 and axes[0].get_title().startswith("CT1")
    assert len(axes[0].patches) == 32  # every 5-bit state of the register
    for name in ("circuit.png", "hist.png"):
        size = (tmp_path / name).stat().st_size
        assert size > 10_000, name
    image = plt.imread(tmp_path / "hist.png")
    assert image.shape[0] > 300 and image.shape[1] > 600
    plt.close("all")


def test_histogram_into_given_axes_and_bad_input() -> None:
    adata = qs.sim.simulate(qs.sim.presets.romero2025(True), 200, rng=0)
    _fig, ax = plt.subplots()
    out = qs.pl.bit_histogram(adata, cell_types=["CT2"], ax=ax, top=4, show=False)
    assert out == [ax] and len(ax.patches) == 4
    with pytest.raises(ValueError, match=r"cell_types: unknown cell type 'CT9'.*\['CT1', 'CT2'\]"):
        qs.pl.bit_histogram(adata, cell_types=["CT9"], show=False)
    with pytest.raises(ValueError, match="ax: expected 2 axes"):
        qs.pl.bit_histogram(adata, ax=ax, show=False)
    with pytest.raises(ValueError, match="layers\\['binary'\\]"):
        qs.pl.bit_histogram(ad.AnnData(np.zeros((2, 2))), show=False)
    with pytest.raises(TypeError, match="design: expected a CellCircuit"):
        qs.pl.circuit("nope", show=False)
    plt.close("all")


def test_demo_command_writes_results(tmp_path, capsys) -> None:
    assert (
        main(["demo", "--out", str(tmp_path), "--n-cells", "300", "--seed", "1", "--n-perms", "20"])
        == 0
    )
    for case in ("case1_interacting", "case2_control"):
        adata = ad.read_h5ad(tmp_path / f"{case}.h5ad")
        assert adata.n_obs == 600 and adata.uns["qsimcells"]["seed"] == 1
        assert {"pearson_network", "spearman_network", "cellchat"} <= set(adata.uns)
        for suffix in (
            "_circuit.png",
            "_bit_histogram.png",
            "_marginals.csv",
            "_fig4_networks.png",
            "_pearson_edges.csv",
            "_spearman_edges.csv",
        ):
            assert (tmp_path / f"{case}{suffix}").stat().st_size > 100
    for name in ("fig3_umap.png", "table3_communication.png"):
        assert (tmp_path / name).stat().st_size > 5_000
    table3 = pd.read_csv(tmp_path / "table3.csv")
    assert list(zip(table3["ligand"], table3["receptor"], strict=True)) == [
        ("g3", "g5"),
        ("g7", "g0"),
        ("g8", "g4"),
        ("g9", "g4"),
    ]
    assert table3.loc[0, "paper_prob_alt"] == 0.1135
    assert (table3["fold_change"].iloc[:2] > 2).all()  # the programmed pairs rise
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["case1_interacting"]["sampler"] == "exact"
    assert set(summary["case2_control"]["networks"]) == {"pearson", "spearman"}
    assert main(["plugins"]) == 0
    assert "statevector" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["file", "under_a_file", "read_only"])
def test_demo_refuses_a_bad_output_folder_before_any_work(
    tmp_path, capsys, monkeypatch, where: str
) -> None:
    import os

    from qsimcells import cli

    file = tmp_path / "notes.txt"
    file.write_text("keep me")
    locked = tmp_path / "locked"
    locked.mkdir()
    out = {"file": file, "under_a_file": file / "results", "read_only": locked / "results"}[where]
    if where == "read_only":
        if os.geteuid() == 0:
            # root writes anywhere; stand in for a folder the user cannot write
            monkeypatch.setattr(cli.os, "access", lambda path, mode: False)
        else:
            locked.chmod(0o500)
    monkeypatch.setattr(qs.sim, "simulate", lambda *a, **k: pytest.fail("work started"))
    assert cli.main(["demo", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--out:" in err and "Traceback" not in err
    assert file.read_text() == "keep me" and not (locked / "results").exists()
    with pytest.raises(ValueError, match="--out:"):
        cli.demo(out)
