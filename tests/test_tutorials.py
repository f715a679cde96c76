"""The tutorials whose code cells run as they stand: executed in order in a temporary folder."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "docs" / "tutorials"
CELL = re.compile(r"^```\{code-cell\} ipython3\n(.*?)^```", re.S | re.M)


def code_cells(page: Path) -> list[str]:
    return CELL.findall(page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["spatial", "calibration", "reference_mapping"])
def test_tutorial_runs_and_draws_its_figures(name: str, tmp_path, monkeypatch) -> None:
    pytest.importorskip(
        {"spatial": "squidpy", "calibration": "torch", "reference_mapping": "scvi"}[name]
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    page = TUTORIALS / f"{name}.md"
    cells = code_cells(page)
    assert len(cells) >= 3
    figures = re.findall(rf"\]\(({name}_files/[^)]+)\)", page.read_text(encoding="utf-8"))
    (tmp_path / f"{name}_files").mkdir()
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"tutorial_{name}"}
    try:
        for i, cell in enumerate(cells):
            exec(compile(cell, f"{page.name} cell {i}", "exec"), namespace)
    finally:
        plt.close("all")
    for figure in figures:  # every figure the page shows, drawn by its own code
        assert (tmp_path / figure).stat().st_size > 1000, figure
    if os.environ.get("QSIMCELLS_WRITE_TUTORIAL_FIGURES"):  # refresh the copies in docs/
        for figure in figures:
            (TUTORIALS / figure).write_bytes((tmp_path / figure).read_bytes())
    if name == "spatial":
        scores = namespace["scores"]
        for s in scores.values():
            assert (
                s["aupr"] == 1.0 and s["precision"] == pytest.approx(1 / 3) and s["recall"] == 1.0
            )
    if name == "calibration":
        comparison, score = namespace["comparison"], namespace["score"]
        # the figures the page discusses: a look-alike (not a perfect) simulation, and the
        # known circuit's edges found with high precision
        assert comparison.value("knn", "auc") < 0.8
        assert comparison.value("zero_fraction", "mae") < 0.03
        assert score["precision"] >= 0.6 and score["recall"] >= 0.2
    if name == "reference_mapping":
        transfer = namespace["transfer"]
        # labels transfer about as well as within the reference, for both models; the query
        # training raises the query's ELBO, and the decoder learns part of the true batch effect
        assert (transfer["query accuracy"] > 0.8).all()
        assert (transfer["query accuracy"] > transfer["within reference (3-fold)"] - 0.05).all()
        assert (transfer["query ELBO after"] > transfer["query ELBO before"]).all()
        assert (transfer["batch effect learned (r)"] > 0.15).all()
