"""The analysis plots (Figs. 3 and 4, Table 3) render for both paper presets, into files of a
real size, into given axes, and refuse bad input clearly."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.image import imread

import qsimcells as qs

PAIRS = [("g3", "g5"), ("g7", "g0"), ("g8", "g4"), ("g9", "g4")]


@pytest.fixture(scope="module")
def cases():
    data = {}
    for interacting in (True, False):
        adata = qs.sim.simulate(qs.sim.presets.romero2025(interacting), 400, rng=3)
        qs.tl.correlation_network(adata, method="pearson")
        qs.tl.cellchat(adata, groupby="cell_type", pairs=PAIRS, n_perms=20, rng=0)
        data[interacting] = adata
    return data


def assert_image(path, min_px: int = 200) -> None:
    assert path.stat().st_size > 5_000
    height, width = imread(path).shape[:2]
    assert min(height, width) >= min_px, (height, width)


@pytest.mark.parametrize("interacting", [True, False])
def test_network_renders_both_panels(cases, tmp_path, interacting: bool) -> None:
    path = tmp_path / "net.png"
    fig = qs.pl.network(cases[interacting], "pearson_network", save=path, show=False)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_title().startswith("programmed (")
    assert "precision" in fig.axes[1].get_title()
    assert_image(path)
    plt.close("all")


def test_network_into_one_given_axes(cases) -> None:
    fig, ax = plt.subplots()
    assert qs.pl.network(cases[True], "pearson_network", ax=ax, show=False) is fig
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "missed" in legend  # with one panel the missed programmed edges are drawn dashed
    with pytest.raises(ValueError, match="ax: expected one axes or two"):
        qs.pl.network(cases[True], "pearson_network", ax=[ax, ax, ax], show=False)
    with pytest.raises(ValueError, match="layout: 'grid' is not allowed"):
        qs.pl.network(cases[True], "pearson_network", layout="grid", show=False)
    plt.close("all")


@pytest.mark.parametrize("kind", ["bar", "dot"])
def test_communication_renders_table3(cases, tmp_path, kind: str) -> None:
    shift = qs.tl.communication_shift(cases[False], cases[True])
    path = tmp_path / f"{kind}.png"
    fig = qs.pl.communication(
        shift, kind=kind, labels=("control", "interacting"), save=path, show=False
    )
    assert fig.axes[0].get_title().startswith("communication probability")
    assert_image(path)
    with pytest.raises(ValueError, match=r"shift: missing column\(s\) \['prob_alt'"):
        qs.pl.communication(shift.drop(columns="prob_alt"), show=False)
    with pytest.raises(ValueError, match="kind: 'pie' is not allowed"):
        qs.pl.communication(shift, kind="pie", show=False)
    plt.close("all")


def test_umap_of_both_cases(cases, tmp_path) -> None:
    import anndata as ad

    both = ad.concat({"case1": cases[True], "case2": cases[False]}, label="case", index_unique="-")
    path = tmp_path / "umap.png"
    before = set(both.obsm)
    qs.pl.umap(both, color="case", rng=0, save=path, show=False)
    assert_image(path)
    assert set(both.obsm) == before  # computed on a copy
    with pytest.raises(KeyError, match="color: 'nope' is not a column"):
        qs.pl.umap(both, color="nope", show=False)
    plt.close("all")


def test_umap_without_scanpy_says_what_to_install() -> None:
    from conftest import run_python

    code = (
        "import sys; sys.modules['scanpy'] = None\n"
        "import qsimcells as qs\n"
        "adata = qs.sim.simulate(qs.sim.presets.romero2025(True), 20, rng=0)\n"
        "qs.pl.umap(adata, show=False)\n"
    )
    out = run_python(code)
    assert "ImportError: qs.pl.umap needs scanpy: pip install 'qsimcells[analysis]'" in out.stderr


def test_umap_uses_a_stored_embedding() -> None:
    adata = qs.sim.simulate(qs.sim.presets.romero2025(True), 50, rng=0)
    adata.obsm["X_umap"] = np.column_stack([np.arange(adata.n_obs), np.zeros(adata.n_obs)])
    fig = qs.pl.umap(adata, show=False)
    offsets = fig.axes[0].collections[0].get_offsets()
    assert np.allclose(np.sort(np.asarray(offsets)[:, 0]), np.arange(adata.n_obs))
    plt.close("all")
