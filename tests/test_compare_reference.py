"""qs.tl.compare_to_reference and its panel: a second draw of the same design is close, a
wrong design is far, and bad inputs name their field."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import qsimcells as qs


@pytest.fixture(scope="module")
def draws():
    design = qs.sim.presets.random_network(16, 2, rng=4, n_housekeeping=10)
    a = qs.sim.simulate(design, 800, rng=1, library_size=0.3, progress=False)
    b = qs.sim.simulate(design, 800, rng=2, library_size=0.3, progress=False)
    other = qs.sim.simulate(
        qs.sim.presets.random_network(16, 2, rng=9, n_housekeeping=10),
        800,
        rng=3,
        library_size=0.8,
        progress=False,
    )
    return a, b, other


def test_same_design_is_close_and_another_is_far(draws) -> None:
    a, b, other = draws
    same = qs.tl.compare_to_reference(b, a)
    far = qs.tl.compare_to_reference(other, a)
    # two draws of one design: the kNN two-sample AUC is 0.5 up to noise (1,600 cells a
    # side: its sd under the null is about 0.01), types are recognised as well as in the
    # reference itself
    assert abs(same.value("knn", "auc") - 0.5) < 0.05
    assert (
        same.value("knn", "cell_type_accuracy")
        >= same.value("knn", "cell_type_accuracy_reference") - 0.03
    )
    assert same.value("knn", "cell_type_accuracy_gap") == pytest.approx(
        abs(
            same.value("knn", "cell_type_accuracy")
            - same.value("knn", "cell_type_accuracy_reference")
        )
    )
    assert far.value("knn", "auc") > 0.7  # measured 0.78
    for stat, metric in [
        ("mean", "mae"),
        ("zero_fraction", "mae"),
        ("library_size", "ks"),
        ("correlation", "mae"),
        ("correlation_within_types", "mae"),
    ]:
        assert same.value(stat, metric) < far.value(stat, metric), (stat, metric)
    table = same.table
    assert {"statistic", "metric", "value"} == set(table.columns)
    assert table["value"].notna().all()
    assert list(same.per_gene.index) == list(a.var_names)


def test_ks_and_library_against_scipy(draws) -> None:
    from scipy import stats

    a, b, _ = draws
    result = qs.tl.compare_to_reference(b, a, groupby=None)
    la = np.log10(np.asarray(b.X.sum(1)).ravel() + 1)
    lb = np.log10(np.asarray(a.X.sum(1)).ravel() + 1)
    assert result.value("library_size", "ks") == pytest.approx(stats.ks_2samp(la, lb).statistic)
    assert "correlation_within_types" not in set(result.table["statistic"])


def test_only_shared_genes_and_bad_inputs(draws) -> None:
    a, b, _ = draws
    part = qs.tl.compare_to_reference(b[:, :5].copy(), a)
    assert len(part.per_gene) == 5
    with pytest.raises(ValueError, match="reference: shares 1 genes with adata"):
        qs.tl.compare_to_reference(b[:, :1].copy(), a)
    with pytest.raises(ValueError, match=r"groupby: 'kind' is not a column of adata\.obs"):
        qs.tl.compare_to_reference(b, a, groupby="kind")
    with pytest.raises(TypeError, match="reference: expected an AnnData"):
        qs.tl.compare_to_reference(b, a.X)
    with pytest.raises(ValueError, match="n_neighbors: must be a positive integer"):
        qs.tl.compare_to_reference(b, a, n_neighbors=0)
    with pytest.raises(ValueError, match=r"statistic, metric: \('mean', 'auc'\) is not"):
        qs.tl.compare_to_reference(b, a).value("mean", "auc")


def test_panel(draws, tmp_path) -> None:
    import matplotlib.pyplot as plt

    a, b, other = draws
    results = {
        "same": qs.tl.compare_to_reference(b, a),
        "other": qs.tl.compare_to_reference(other, a),
    }
    axes = qs.pl.compare_to_reference(results, save=tmp_path / "panel.png")
    assert len(axes) == 4 and (tmp_path / "panel.png").stat().st_size > 0
    assert axes[0].get_xscale() == "log" and len(axes[3].collections) == 2
    _fig, ax = plt.subplots()
    assert qs.pl.compare_to_reference(results["same"], panels=["library_size"], ax=ax) == [ax]
    with pytest.raises(ValueError, match=r"panels: .* choose from"):
        qs.pl.compare_to_reference(results["same"], panels=["umap"])
    with pytest.raises(TypeError, match="comparison: expected the result"):
        qs.pl.compare_to_reference(a)
    plt.close("all")
