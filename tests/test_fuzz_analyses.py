"""Fuzzed inputs to the analyses (issue 18): AnnData with missing keys, all-zero genes, one cell,
dense or sparse X, float counts, NaN. Each analysis works, and gives sane output, or raises a
ValueError / TypeError whose message starts with the field it is about; never an IndexError, a
KeyError that is not also a ValueError, a ZeroDivisionError or a hang."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st
from scipy import sparse

import qsimcells as qs

#: a message that starts with its field: "X: ...", "groupby: ...", "layers['binary']: ..."
FIELD = re.compile(r"^[A-Za-z_]\w*(\[[^\]]*\]|\.[A-Za-z_]\w*)*(, [A-Za-z_]\w*)*: ")

#: how a valid AnnData is spoilt; each case applies up to four of these in turn
MUTATIONS = [
    "dense",
    "csc",
    "int64",
    "float32",
    "fractional",
    "nan",
    "inf",
    "negative",
    "zero_gene",
    "all_zero",
    "one_cell",
    "two_cells",
    "no_cells",
    "one_gene",
    "drop_obs",
    "drop_var",
    "drop_uns",
    "drop_layers",
    "duplicate_genes",
    "nan_label",
    "one_label",
    "non_binary",
]


def _mutate(adata, ops: list[str], rng: np.random.Generator):
    adata = adata.copy()
    for op in ops:
        X = adata.X
        if op == "dense":
            adata.X = X.toarray() if sparse.issparse(X) else np.asarray(X)
        elif op == "csc":
            adata.X = sparse.csc_matrix(X)
        elif op in ("int64", "float32"):
            with np.errstate(invalid="ignore"):  # a NaN cast to int64, on purpose
                adata.X = X.astype(op)
        elif op == "fractional":
            adata.X = X * 0.37
        elif op in ("nan", "inf", "negative") and adata.n_obs and adata.n_vars:
            dense = (X.toarray() if sparse.issparse(X) else np.array(X)).astype(np.float64)
            dense[rng.integers(adata.n_obs), rng.integers(adata.n_vars)] = {
                "nan": np.nan,
                "inf": np.inf,
                "negative": -1.0,
            }[op]
            adata.X = dense
        elif op == "zero_gene" and adata.n_vars:
            dense = X.toarray() if sparse.issparse(X) else np.array(X)
            dense[:, rng.integers(adata.n_vars)] = 0
            adata.X = dense
        elif op == "all_zero":
            adata.X = np.zeros(adata.shape)
        elif op == "one_cell":
            adata = adata[:1].copy()
        elif op == "two_cells":
            adata = adata[[0, adata.n_obs - 1]].copy() if adata.n_obs else adata
        elif op == "no_cells":
            adata = adata[:0].copy()
        elif op == "one_gene":
            adata = adata[:, :1].copy()
        elif op == "drop_obs":
            adata.obs = pd.DataFrame(index=adata.obs_names)
        elif op == "drop_var":
            adata.var = pd.DataFrame(index=adata.var_names)
        elif op == "drop_uns":
            adata.uns.clear()
        elif op == "drop_layers":
            for key in list(adata.layers):
                del adata.layers[key]
        elif op == "duplicate_genes" and adata.n_vars > 1:
            names = adata.var_names.to_numpy().copy()
            names[1] = names[0]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                adata.var_names = names
        elif op in ("nan_label", "one_label"):
            for col in adata.obs.columns:
                values = adata.obs[col].astype(object).to_numpy()
                if op == "nan_label" and len(values):
                    values[0] = np.nan
                elif op == "one_label" and len(values):
                    values[:] = values[0]
                adata.obs[col] = pd.Categorical(values)
        elif op == "non_binary":
            adata.X = X * 2
    return adata


def _cases(n_max: int = 4):
    return st.tuples(st.lists(st.sampled_from(MUTATIONS), max_size=n_max), st.integers(0, 2**16))


def _check(call, *args, **kwargs):
    """Run an analysis; return its result, or None after checking a named ValueError/TypeError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = call(*args, **kwargs)
        event(f"{call.__name__} works")
        return result
    except Exception as err:
        event(f"{call.__name__} refuses: {str(err).split(':')[0]}")
        assert isinstance(err, (ValueError, TypeError)), repr(err)
        assert FIELD.match(str(err)), f"the message does not start with its field: {err!r}"
        return None


SETTINGS = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def cells():
    return qs.sim.simulate(qs.sim.presets.romero2025(n_housekeeping=3), 12, rng=0, progress=False)


@SETTINGS
@given(_cases())
def test_correlation_network_and_score_network(cells, case) -> None:
    ops, seed = case
    adata = _mutate(cells, ops, np.random.default_rng(seed))
    for method in ("pearson", "spearman"):
        out = _check(qs.tl.correlation_network, adata, method=method, copy=True)
        if out is None:
            continue
        key = f"{method}_network"
        r = out.varp[key]
        assert r.shape == (out.n_vars, out.n_vars)
        finite = r[np.isfinite(r)]
        assert (np.abs(finite) <= 1 + 1e-9).all()
        edges = out.uns[key]["edges"]
        assert (edges["abs_weight"] > 0.5).all()
        score = _check(qs.tl.score_network, out, key)
        if score is not None:
            for name in ("precision", "recall"):
                value = score[name]
                assert np.isnan(value) or 0.0 <= value <= 1.0, (name, value)


@SETTINGS
@given(_cases())
def test_cellchat(cells, case) -> None:
    ops, seed = case
    adata = _mutate(cells, ops, np.random.default_rng(seed))
    table = _check(qs.tl.cellchat, adata, groupby="cell_type", n_perms=4, rng=0, copy=True)
    if table is not None:
        assert table["prob"].between(0.0, 1.0).all()
        assert table["pval"].between(0.0, 1.0).all()


@pytest.fixture(scope="module")
def screens():
    design, perturbations = qs.sim.preset_screen("random_50")
    real = qs.sim.perturbation_screen(design, perturbations[:3], 20, rng=0)
    pred = qs.sim.perturbation_screen(design, perturbations[:3], 20, rng=1)
    return real, pred


@settings(SETTINGS, max_examples=300)
@given(_cases(3), st.booleans())
def test_vcc_metrics(screens, case, spoil_real) -> None:
    ops, seed = case
    real, pred = screens
    if spoil_real:
        real = _mutate(real, ops, np.random.default_rng(seed))
    else:
        pred = _mutate(pred, ops, np.random.default_rng(seed))
    result = _check(qs.tl.vcc_metrics, pred, real, progress=False)
    if result is not None:
        table = result.per_perturbation
        for name in ("des", "pds"):
            values = table[name].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            assert ((values >= 0) & (values <= 1)).all(), (name, values)
        assert (table["mae"].dropna() >= 0).all()


@pytest.fixture(scope="module")
def activity():
    return (
        qs.datasets.ising_population(3, 60, n_timesteps=2, rng=0),
        qs.datasets.ising_population(3, 40, n_timesteps=2, rng=1),
    )


@SETTINGS
@given(_cases(3), st.booleans())
def test_spike_statistics(activity, case, spoil_real) -> None:
    ops, seed = case
    real, generated = activity
    if spoil_real:
        real = _mutate(real, ops, np.random.default_rng(seed))
    else:
        generated = _mutate(generated, ops, np.random.default_rng(seed))
    stats = _check(qs.tl.spike_statistics, real, generated)
    if stats is not None:
        js = stats["js"]
        assert np.isnan(js) or 0.0 <= js <= 1.0 + 1e-12


def test_mutations_are_real() -> None:
    """Each mutation changes the data it is given (a silent no-op would test nothing)."""
    base = qs.sim.simulate(qs.sim.presets.romero2025(n_housekeeping=3), 6, rng=0, progress=False)
    for op in MUTATIONS:
        out = _mutate(base, [op], np.random.default_rng(0))
        X0 = base.X.toarray()
        X1 = out.X.toarray() if sparse.issparse(out.X) else np.asarray(out.X)
        changed = (
            type(out.X) is not type(base.X)
            or out.X.dtype != base.X.dtype
            or out.shape != base.shape
            or not np.array_equal(X0, X1, equal_nan=True)
            or list(out.obs.columns) != list(base.obs.columns)
            or list(out.var.columns) != list(base.var.columns)
            or set(out.uns) != set(base.uns)
            or set(out.layers) != set(base.layers)
            or not out.var_names.equals(base.var_names)
            or not out.obs.equals(base.obs)
        )
        assert changed, op
