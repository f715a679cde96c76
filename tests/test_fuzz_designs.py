"""Fuzzed designs (issue 18): whatever a user writes, CellCircuit and simulate either work or
raise a ValueError / TypeError whose message names the field; never an IndexError, KeyError or
another crash. Valid small designs sample the same distribution exactly and by statevector."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import qsimcells as qs

#: gene and cell-type names: plain, unicode, empty, whitespace, and names that collide
NAMES = st.sampled_from(
    [
        "g0",
        "g1",
        "g2",
        "g3",
        "Gène",
        "β-actin",
        "细胞",
        "",
        " ",
        "g0 ",
        "CT1",
        "HKG0",
        "a/b",
        "x" * 40,
    ]
)
#: activation probabilities at, inside and past the bounds, and not numbers at all
PROBS = st.one_of(
    st.floats(0.0, 1.0), st.sampled_from([-0.1, 1.1, math.nan, math.inf, -math.inf, 0.0, 1.0])
)
WEIGHTS = st.one_of(st.none(), st.floats(-1.0, 4.0), st.sampled_from([math.nan, math.inf, True]))
SIGNS = st.sampled_from(["activation", "repression", "+", "-", 1, -1, "up", None])
#: a message that starts with the field it is about: "p", "edges[2].weight", "cell_types['A']"
FIELD = re.compile(r"^[A-Za-z_]\w*(\[[^\]]*\]|\.[A-Za-z_]\w*)*(, [A-Za-z_]\w*)*: ")


@st.composite
def designs(draw):
    """Keyword arguments of CellCircuit, valid or not."""
    n_types = draw(st.integers(0, 3))
    cell_types = {}
    for _ in range(n_types):
        cell_types[draw(NAMES)] = draw(st.lists(NAMES, min_size=0, max_size=4))
    genes = [g for gs in cell_types.values() for g in gs]
    n = max(len(genes), 1)
    p = draw(st.one_of(PROBS, st.lists(PROBS, min_size=max(0, n - 1), max_size=n + 1)))
    candidates = [*genes, "unknown", "g9"]
    edges = draw(
        st.lists(
            st.one_of(
                st.tuples(st.sampled_from(candidates), st.sampled_from(candidates)),
                st.tuples(st.sampled_from(candidates), st.sampled_from(candidates), WEIGHTS),
                st.tuples(st.sampled_from(candidates), st.sampled_from(candidates), WEIGHTS, SIGNS),
                st.just(("g0",)),
                st.just("g0->g1"),
            ),
            max_size=6,
        )
    )
    kwargs = {
        "p": p,
        "edges": edges,
        "mu": draw(st.sampled_from([5.0, 0.0, -1.0, math.nan, 1e9])),
        "r": draw(st.sampled_from([1.0, 0.5, 0.0, -2.0])),
        "n_housekeeping": draw(st.sampled_from([0, 2, -1, 2.5])),
    }
    return cell_types, kwargs


def _assert_named(err: Exception) -> None:
    assert isinstance(err, (ValueError, TypeError)), repr(err)
    assert FIELD.match(str(err)), f"the message does not start with its field: {err}"


@settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(designs())
def test_any_design_works_or_names_the_field(case) -> None:
    cell_types, kwargs = case
    try:
        design = qs.sim.CellCircuit(cell_types, **kwargs)
    except Exception as err:
        _assert_named(err)
        return
    assert design.n_qubits == len(design.gene_names) >= 1
    samplers = ["auto", "exact"] + (["statevector"] if design.n_qubits <= 8 else [])
    for sampler in samplers:
        try:
            adata = qs.sim.simulate(design, 5, sampler=sampler, rng=0, progress=False)
        except Exception as err:
            _assert_named(err)
            continue
        assert adata.n_obs == 5 * len(design.cell_types)
        assert np.isfinite(adata.X.data).all()


@st.composite
def small_valid_designs(draw):
    n = draw(st.integers(1, 5))
    genes = [f"g{i}" for i in range(n)]
    split = draw(st.integers(1, n))
    cell_types = {"A": genes[:split], **({"B": genes[split:]} if split < n else {})}
    p = draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))
    pairs = [(a, b) for a in genes for b in genes if a != b]
    edges = (
        draw(
            st.lists(
                st.tuples(
                    st.sampled_from(pairs) if pairs else st.nothing(),
                    st.one_of(st.none(), st.floats(0.01, math.pi)),
                ),
                max_size=5,
            )
        )
        if pairs
        else []
    )
    return qs.sim.CellCircuit(
        cell_types, p=p, edges=[(s, t, w) for (s, t), w in edges], n_housekeeping=0
    )


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(small_valid_designs())
def test_exact_and_statevector_agree_on_valid_designs(design) -> None:
    """Per-gene ON fractions of 4,000 shots from each sampler differ by less than 5 sd of the
    difference of two binomial proportions (5 genes: a false alarm about 1 in 300,000)."""
    shots = 4000
    on = {}
    for sampler in ("exact", "statevector"):
        try:
            adata = qs.sim.simulate(design, shots, sampler=sampler, rng=1, progress=False)
        except ValueError as err:  # a rotation after a control: no exact classical path
            assert sampler == "exact" and "cannot sample this circuit" in str(err)
            assume(False)
        bits = np.asarray(adata.layers["binary"].todense())
        types = adata.obs["cell_type"].to_numpy()
        on[sampler] = np.array(
            [
                bits[types == design.genes["cell_type"][g], adata.var_names.get_loc(g)].mean()
                for g in design.gene_names
            ]
        )
    p = (on["exact"] + on["statevector"]) / 2
    sd = np.sqrt(2 * p * (1 - p) / shots) + 1e-12
    assert (np.abs(on["exact"] - on["statevector"]) <= 5 * sd + 1e-9).all(), on


def test_the_fuzzer_reaches_both_outcomes() -> None:
    """The strategy is not degenerate: it makes valid designs and invalid ones."""
    from hypothesis import find

    find(designs(), lambda c: _builds(c))
    find(designs(), lambda c: not _builds(c))


def _builds(case) -> bool:
    try:
        qs.sim.CellCircuit(case[0], **case[1])
    except (ValueError, TypeError):
        return False
    return True


@pytest.mark.parametrize("bad", [{"p": [0.5, 0.5]}, {"p": math.nan}])
def test_two_known_bad_inputs_name_their_field(bad) -> None:
    with pytest.raises(ValueError, match=r"^p"):
        qs.sim.CellCircuit({"A": ["x", "y", "z"]}, **bad)
