"""Plots render to files; the demo command writes the paper's data and Fig. 2."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
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
    fig, ax = plt.subplots()
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
    assert main(["demo", "--out", str(tmp_path), "--n-cells", "300", "--seed", "1"]) == 0
    for case in ("case1_interacting", "case2_control"):
        adata = ad.read_h5ad(tmp_path / f"{case}.h5ad")
        assert adata.n_obs == 600 and adata.uns["qsimcells"]["seed"] == 1
        for suffix in ("_circuit.png", "_bit_histogram.png", "_marginals.csv"):
            assert (tmp_path / f"{case}{suffix}").stat().st_size > 100
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["case1_interacting"]["sampler"] == "exact"
    assert main(["plugins"]) == 0
    assert "statevector" in capsys.readouterr().out
