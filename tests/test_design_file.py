"""Design files (issue 27): any design survives the JSON round trip, and any damaged file gets
a list of problems by field, never a traceback (hypothesis, derandomised)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import qsimcells as qs
from qsimcells.sim.design_file import DesignFileError, design_from_json, design_to_json

SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@SETTINGS
@given(
    per_type=st.integers(3, 10),
    n_types=st.integers(1, 3),
    seed=st.integers(0, 10**6),
    knockout=st.booleans(),
    housekeeping=st.integers(0, 5),
)
def test_every_design_survives_the_json_round_trip(
    per_type, n_types, seed, knockout, housekeeping
) -> None:
    n_genes = per_type * n_types
    design = qs.sim.presets.random_network(n_genes, n_types, rng=seed, n_housekeeping=housekeeping)
    if knockout:
        design = design.knockout(design.gene_names[seed % n_genes])
    content = json.loads(json.dumps(design_to_json(design)))  # what a file holds
    assert qs.sim.check_design(content) == []
    again = design_from_json(content)
    assert again == design and again.digest() == design.digest()


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(content, prefix=()):
    """Every place in a design file's content a value sits."""
    yield prefix
    if isinstance(content, dict):
        for key, value in content.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(content, list):
        for i, value in enumerate(content):
            yield from _paths(value, (*prefix, i))


BASE = design_to_json(qs.sim.presets.romero2025(True, n_housekeeping=3))
PLACES = [p for p in _paths(json.loads(json.dumps(BASE))) if p]


@SETTINGS
@given(place=st.sampled_from(PLACES), value=JSON_VALUES)
def test_a_damaged_file_gets_problems_by_field_not_a_traceback(place, value) -> None:
    content = json.loads(json.dumps(BASE))
    target = content
    for key in place[:-1]:
        target = target[key]
    target[place[-1]] = value
    problems = qs.sim.check_design(content)
    assert isinstance(problems, list) and all(isinstance(p, str) and ": " in p for p in problems)
    if problems:
        with pytest.raises(DesignFileError) as caught:
            design_from_json(content, "f.json")
        assert caught.value.problems == problems and isinstance(caught.value, ValueError)
    else:  # a change the design accepts builds
        assert isinstance(design_from_json(content), qs.sim.CellCircuit)


def test_write_and_read_a_design_file(tmp_path) -> None:
    design = qs.sim.presets.romero2025(False)
    path = qs.sim.write_design(design, tmp_path / "d.json")
    assert qs.sim.read_design(path) == design
    with pytest.raises(FileExistsError, match="overwrite=True"):
        qs.sim.write_design(design, path)
    qs.sim.write_design(qs.sim.presets.romero2025(True), path, overwrite=True)
    assert qs.sim.read_design(path) == qs.sim.presets.romero2025(True)
    with pytest.raises(FileNotFoundError, match="design: no file"):
        qs.sim.read_design(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(DesignFileError, match="design: expected a JSON object"):
        qs.sim.read_design(tmp_path / "bad.json")
    with pytest.raises(TypeError, match="design: expected a CellCircuit"):
        qs.sim.write_design("romero2025", tmp_path / "x.json")
