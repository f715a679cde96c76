"""The command line as a pipeline runs it (issue 27): ``qsimcells simulate`` / ``design`` /
``demo`` through the installed console script, in a fresh process; every bad argument is one
line on stderr, exit code 2, no traceback, and nothing is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

import qsimcells as qs

SCRIPT = Path(sys.executable).parent / "qsimcells"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def _one_line_error(result: subprocess.CompletedProcess, starts: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"qsimcells: error: {starts}"), lines[0]
    assert "Traceback" not in result.stderr


def test_version_and_plugins() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"qsimcells {qs.__version__}"
    listed = run("plugins")
    assert listed.returncode == 0 and "exact" in listed.stdout and "status" in listed.stdout


def test_simulate_a_preset_gives_the_bytes_of_qs_sim_simulate(tmp_path) -> None:
    out = tmp_path / "cells.h5ad"
    result = run("simulate", "romero2025", "--n-cells", "40", "--seed", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and f"wrote {out}" in result.stderr
    python = tmp_path / "python.h5ad"
    qs.sim.simulate(qs.sim.presets.romero2025(True), 40, rng=3).write_h5ad(python)
    assert out.read_bytes() == python.read_bytes()
    # no temporary file left beside the output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.h5ad", "python.h5ad"]


def test_design_file_round_trip_and_zarr_output(tmp_path) -> None:
    design_file = tmp_path / "design.json"
    result = run("design", "random_network:30:3", "--out", str(design_file))
    assert result.returncode == 0, result.stderr
    expected = qs.sim.presets.random_network(30, 3, rng=0)
    assert qs.sim.read_design(design_file) == expected
    checked = run("design", "--check", str(design_file))
    assert checked.returncode == 0 and "a valid design: 30 genes in 3 cell types" in checked.stdout
    printed = run("design", "random_network:30:3")
    assert json.loads(printed.stdout) == json.loads(design_file.read_text())
    store = tmp_path / "cells.zarr"
    result = run(
        "--quiet",
        "simulate",
        str(design_file),
        "--n-cells",
        "25",
        "--out",
        str(store),
        "--batches",
        "2",
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    on_disk = ad.read_zarr(store)
    in_memory = qs.sim.simulate(expected, 25, rng=0, batches=2)
    np.testing.assert_array_equal(on_disk.X.toarray(), in_memory.X.toarray())
    assert list(on_disk.obs["batch"]) == list(in_memory.obs["batch"])


def test_check_reports_every_problem_with_its_field(tmp_path) -> None:
    content = qs.sim.design_file.design_to_json(qs.sim.presets.romero2025(True))
    content["genes"]["g3"]["theta"] = 9
    content["genes"]["g1"]["mu"] = "many"
    content["edges"][0]["target"] = "nowhere"
    content["edges"][1]["sign"] = "up"
    content["colour"] = "blue"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(content))
    result = run("design", "--check", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    fields = [line.split(": ")[3] for line in lines]  # qsimcells: error: FILE: FIELD: ...
    assert sorted(fields) == sorted(
        ["design", "genes.g1.mu", "genes.g3.theta", "edges[0].target", "edges[1].sign"]
    ), lines
    assert all(line.startswith(f"qsimcells: error: {bad}: ") for line in lines)
    out = tmp_path / "never.h5ad"
    _one_line_error(run("simulate", str(bad), "--n-cells", "5", "--out", str(out)), f"{bad}: ")
    assert not out.exists()
    not_json = tmp_path / "notes.json"
    not_json.write_text("{half")
    _one_line_error(run("design", "--check", str(not_json)), f"{not_json}: design: not JSON")


@pytest.mark.parametrize(
    ("args", "starts"),
    [
        (["demo", "--n-cells", "-5"], "--n-cells: must be a whole number >= 1, got -5"),
        (["demo", "--n-perms", "0"], "--n-perms: CellChat's p-values need permutations"),
        (["demo", "--sampler", "nonsense"], "--sampler: unknown circuit sampler 'nonsense'"),
        (["demo", "--out", "/etc/hostname"], "--out: '/etc/hostname' is an existing file"),
        (["simulate", "romero2025", "--n-cells", "0"], "--n-cells: must be a whole number >= 1"),
        (["simulate", "romero2025", "--n-cells", "x"], "--n-cells: invalid int value: 'x'"),
        (["simulate", "romero2025"], "--n-cells: required"),
        (["simulate", "romero2025", "--n-cells", "5", "--seed", "-1"], "--seed: must be"),
        (
            ["simulate", "romero2025", "--n-cells", "5", "--sampler", "nonsense"],
            "--sampler: unknown circuit sampler 'nonsense'",
        ),
        (["simulate", "romero2025", "--n-cells", "5", "--out", "cells.csv"], "--out: '"),
        (["simulate", "nope", "--n-cells", "5"], "DESIGN: 'nope' is neither a design file nor"),
        (["simulate", "random_network:x:y:z:w:v:u:t:s:r", "--n-cells", "5"], "preset: "),
        (
            ["simulate", "romero2025", "--n-cells", "5", "--out", "/no/such/folder/x.h5ad"],
            "--out: the folder '/no/such/folder' does not exist",
        ),
        (["design"], "PRESET: required"),
        (["design", "--check", "/no/such/file.json"], "--check: no file at"),
        (["frobnicate"], "command: invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_are_one_line_with_exit_code_2(tmp_path, args, starts) -> None:
    result = run(*args, cwd=tmp_path)
    _one_line_error(result, starts)
    assert list(tmp_path.iterdir()) == []  # nothing computed, nothing written


def test_an_existing_output_is_refused_before_any_work_unless_overwrite(tmp_path) -> None:
    out = tmp_path / "cells.h5ad"
    out.write_text("someone's data")
    _one_line_error(
        run("simulate", "romero2025", "--n-cells", "5", "--out", str(out)),
        f"--out: '{out}' exists; pass --overwrite",
    )
    assert out.read_text() == "someone's data"
    assert (
        run("simulate", "romero2025", "--n-cells", "5", "--out", str(out), "--overwrite").returncode
        == 0
    )
    assert ad.read_h5ad(out).n_obs == 10
    design = tmp_path / "design.json"
    design.write_text("mine")
    _one_line_error(run("design", "romero2025", "--out", str(design)), "--out: ")
    assert design.read_text() == "mine"


def test_debug_shows_the_traceback(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "qsimcells.design", "genes": {}}))
    quiet = run("simulate", str(bad), "--n-cells", "5", "--out", str(tmp_path / "x.h5ad"))
    _one_line_error(quiet, f"{bad}: genes: expected an object of genes")
    loud = run("--debug", "simulate", str(bad), "--n-cells", "5", "--out", str(tmp_path / "x.h5ad"))
    assert loud.returncode != 0 and "Traceback" in loud.stderr and "DesignFileError" in loud.stderr
