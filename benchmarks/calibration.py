"""Benchmark of designs calibrated to real data (issue 19): ``qs.sim.fit_design`` against an
independent NB per gene (Splatter-like) and a Gaussian copula (scDesign3-like, the package
``scdesigner``), each fitted to the same reference and simulated as many cells, scored with
``qs.tl.compare_to_reference``.

References:

1. scanpy's ``pbmc68k_reduced`` (700 real PBMCs, 10 types in ``obs["bulk_labels"]``), integer
   counts rebuilt from ``.raw`` and ``obs["n_counts"]``; the ``--genes`` most variable genes.
2. A known circuit: ``random_network(40, 3, rng=0)`` with 20 housekeeping genes and library
   sizes (sd 0.3), ``--known-cells`` cells per type: the fit must recover the programmed
   regulation edges (undirected precision and recall).

Methods, all on the same genes and cell types:

- ``qsimcells``: ``fit_design(ref, groupby=..., n_genes=..., n_states=...)`` (edges from
  binarised correlation, BIC), simulated by the exact sampler; ``n_states=4`` on
  pbmc68k_reduced (each labelled type split into up to 4 states by k-means, at least 30 cells
  each), 1 on the known circuit (it has no sub-populations);
- ``qsimcells, no edges``: the same states and marginals without edges (an ablation);
- ``qsimcells, one state``: edges, but ``n_states=1`` (an ablation);
- ``independent NB``: per cell type and gene an NB by the method of moments on size-normalised
  counts, and per type a log-normal library size (Splatter's model without its dropout and
  BCV trend);
- ``Gaussian copula``: ``scdesigner.simulators.NegBinCopula(mean_formula="~ group",
  dispersion_formula="~ group", copula_formula="~ group", estimator="ledoit_wolf")``.

Every statistic is the mean ± sd over ``--seeds`` simulation seeds (one fit per method). Goal
(issue 19): ``qsimcells`` at least as close to the reference as the Gaussian copula on every
statistic, and a kNN two-sample AUC <= 0.6.

Usage: ``.venv/bin/python benchmarks/calibration.py`` (writes
``docs/benchmarks/calibration.md``), ``--quick`` (prints only unless ``--out``).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from _common import (
    PBMC_LABEL,
    REPO,
    command as command_line,
    load_pbmc,
    machine,
    report,
    source_state,
)

DEFAULT_OUT = REPO / "docs" / "benchmarks" / "calibration.md"
AUC_GOAL = 0.6
#: (statistic, metric, label) shown in the table; lower is closer for every one
ROWS = [
    ("mean", "mae", "mean per gene, MAE (log10)"),
    ("mean", "ks", "mean per gene, KS"),
    ("variance", "mae", "variance per gene, MAE (log10)"),
    ("variance", "ks", "variance per gene, KS"),
    ("zero_fraction", "mae", "zero fraction per gene, MAE"),
    ("zero_fraction", "ks", "zero fraction per gene, KS"),
    ("library_size", "ks", "library size, KS"),
    ("library_size", "wasserstein", "library size, Wasserstein (log10)"),
    ("correlation", "mae", "gene-gene correlation, MAE"),
    ("correlation_within_types", "mae", "correlation within cell types, MAE"),
    ("knn", "auc", "kNN two-sample AUC (0.5 = indistinguishable)"),
    (
        "knn",
        "cell_type_accuracy_gap",
        "cell types recognised by kNN: gap to the reference's own accuracy",
    ),
]
METHODS = (
    "qsimcells",
    "qsimcells, no edges",
    "qsimcells, one state",
    "independent NB",
    "Gaussian copula",
)
#: two draws of the qsimcells fit against each other: how close a perfect simulator gets
FLOOR = "noise floor"
#: states per cell type of pbmc68k_reduced's fit (its labels are mixtures: see the docstring)
PBMC_STATES = 4


def main(argv: list[str] | None = None) -> int:
    import qsimcells as qs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genes", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--known-cells", type=int, default=1500)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.genes, args.seeds, args.known_cells = 60, 1, 400
    out = args.out if args.out is not None else (None if args.quick else DEFAULT_OUT)

    pbmc, pbmc_info = load_pbmc()
    pbmc.X = pbmc.X.astype(np.float64)
    real = run_reference("pbmc68k_reduced", pbmc, PBMC_LABEL, args.genes, args.seeds, PBMC_STATES)
    design = qs.sim.presets.random_network(40, 3, rng=0, n_housekeeping=20)
    known_ref = qs.sim.simulate(design, args.known_cells, rng=1, library_size=0.3, progress=False)
    known = run_reference("known circuit", known_ref, "cell_type", None, args.seeds, 1)
    recovery = edge_recovery(design, known["fits"]["qsimcells"])

    info, state = machine(("numpy", "scipy", "torch", "scdesigner")), source_state()
    lines = [
        "# Designs calibrated to real data: `qs.sim.fit_design` against an independent NB and "
        "a Gaussian copula",
        "",
        f"Command: `{command_line(__file__, argv if argv is not None else sys.argv[1:])}`. "
        f"Source: {state}.",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "",
        "Each method is fitted once to the reference and simulates as many cells as the "
        f"reference has, in its cell-type shares; figures are mean ± sd over {args.seeds} "
        "simulation seeds, scored by `qs.tl.compare_to_reference` (lower is closer for every "
        "row). See the docstring of `benchmarks/calibration.py` for the methods.",
        "",
    ]
    lines += reference_section(
        real,
        f"pbmc68k_reduced: {pbmc.n_obs} real PBMCs, the "
        f"{args.genes} most variable of {pbmc.n_vars} genes, 10 cell "
        "types (`bulk_labels`); counts rebuilt from `.raw` (largest "
        f"rounding distance {pbmc_info['max_off']:.3f})",
    )
    lines += reference_section(
        known,
        f"known circuit: `random_network(40, 3, rng=0)` with 20 "
        f"housekeeping genes, {args.known_cells:,} cells per type, "
        "library-size sd 0.3",
    )
    lines += [
        "## Edge recovery on the known circuit",
        "",
        "Regulation edges of the programmed circuit against the edges `fit_design` "
        "kept (undirected: a snapshot of cells does not identify the direction).",
        "",
        "| programmed edges | fitted edges | found | precision | recall |",
        "|---:|---:|---:|---:|---:|",
        f"| {recovery['true']} | {recovery['fitted']} | {recovery['hits']} | "
        f"{recovery['precision']:.2f} | {recovery['recall']:.2f} |",
        "",
    ]
    lines += goal_lines(real, known)
    report("\n".join(lines), out)
    return 0


def run_reference(
    title: str, ref, groupby: str, n_genes: int | None, seeds: int, n_states: int
) -> dict:
    """Fit every method to ``ref`` and score ``seeds`` simulations of each."""
    import qsimcells as qs

    fits, times = {}, {}
    start = time.perf_counter()
    fits["qsimcells"] = qs.sim.fit_design(
        ref, groupby=groupby, n_genes=n_genes, n_states=n_states, key_added=None, progress=False
    )
    times["qsimcells"] = time.perf_counter() - start
    genes = fits["qsimcells"].genes
    for method, kwargs in (
        ("qsimcells, no edges", {"edges": None, "n_states": n_states}),
        ("qsimcells, one state", {"n_states": 1}),
    ):
        start = time.perf_counter()
        fits[method] = qs.sim.fit_design(
            ref, groupby=groupby, genes=genes, key_added=None, progress=False, **kwargs
        )
        times[method] = time.perf_counter() - start
    sub = ref[:, genes].copy()
    start = time.perf_counter()
    fits["independent NB"] = IndependentNB(sub, groupby)
    times["independent NB"] = time.perf_counter() - start
    start = time.perf_counter()
    fits["Gaussian copula"] = copula_fit(sub, groupby)
    times["Gaussian copula"] = time.perf_counter() - start
    print(f"{title}: fits {times}", file=sys.stderr, flush=True)

    scores: dict[str, list] = {m: [] for m in (*METHODS, FLOOR)}
    for seed in range(seeds):
        for method in METHODS:
            sim = simulate_with(method, fits[method], sub, groupby, seed)
            result = qs.tl.compare_to_reference(sim, sub, groupby=groupby, rng=seed)
            scores[method].append({(s, m): result.value(s, m) for s, m, _ in ROWS})
        # the noise floor: two independent draws of one model, as large as the reference
        a, b = (
            simulate_with("qsimcells", fits["qsimcells"], sub, groupby, seed + k * 1000)
            for k in (1, 2)
        )
        result = qs.tl.compare_to_reference(a, b, groupby=groupby, rng=seed)
        scores[FLOOR].append({(s, m): result.value(s, m) for s, m, _ in ROWS})
        print(f"{title}: seed {seed} done", file=sys.stderr, flush=True)
    return {
        "title": title,
        "fits": fits,
        "times": times,
        "scores": scores,
        "n_edges": len(fits["qsimcells"].fit["edges"]),
        "n_cells": ref.n_obs,
        "n_states": len(fits["qsimcells"].proportions),
        "n_states_asked": n_states,
    }


def simulate_with(method: str, fit, sub, groupby: str, seed: int):
    from scipy import sparse

    if method.startswith("qsimcells"):
        return fit.simulate(sub.n_obs, rng=seed, progress=False)
    if method == "independent NB":
        return fit.simulate(seed)
    import torch

    np.random.seed(seed)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = fit.sample()
    sim.X = sparse.csr_matrix(np.asarray(sim.X, dtype=np.float64))
    return sim


class IndependentNB:
    """Splatter-like: per cell type and gene an NB (method of moments on counts divided by
    each cell's size factor), per type a log-normal library size; genes independent."""

    def __init__(self, ref, groupby: str) -> None:
        X = np.asarray(ref.X.toarray() if hasattr(ref.X, "toarray") else ref.X, dtype=float)
        self.obs, self.var, self.groupby = ref.obs[[groupby]].copy(), ref.var[[]].copy(), groupby
        labels = ref.obs[groupby].astype(str).to_numpy()
        self.labels = labels
        self.params = {}
        for t in np.unique(labels):
            Y = X[labels == t]
            total = Y.sum(1)
            size = total / total.mean() if total.mean() > 0 else np.ones(len(Y))
            norm = Y / np.maximum(size, 1e-3)[:, None]
            mean, var = norm.mean(0), norm.var(0)
            excess = np.maximum(var - mean, 1e-6)
            r = np.clip(mean**2 / excess, 1e-2, 1e4)
            positive = size[size > 0]
            sd = float(np.log(positive).std()) if positive.size > 1 else 0.0
            self.params[t] = (mean, r, sd)

    def simulate(self, seed: int):
        import anndata as ad
        from scipy import sparse

        gen = np.random.default_rng(seed)
        X = np.zeros((len(self.labels), len(self.var)))
        for t, (mean, r, sd) in self.params.items():
            rows = np.flatnonzero(self.labels == t)
            size = np.exp(gen.normal(-(sd**2) / 2, sd, size=rows.size))
            mu = size[:, None] * mean[None, :]
            X[rows] = gen.negative_binomial(r, r / (r + np.maximum(mu, 1e-12)))
        return ad.AnnData(X=sparse.csr_matrix(X), obs=self.obs.copy(), var=self.var.copy())


def copula_fit(sub, groupby: str):
    from scdesigner.simulators import NegBinCopula

    formula = f"~ {groupby}"
    model = NegBinCopula(
        mean_formula=formula,
        dispersion_formula=formula,
        copula_formula=formula,
        estimator="ledoit_wolf",
    )
    data = sub.copy()
    data.obs = data.obs[[groupby]].astype({groupby: "category"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # it prints every epoch
            model.fit(data)
    return model


def edge_recovery(design, fitted) -> dict:
    truth = design.edges[design.edges["kind"] == "regulation"]
    true_pairs = {frozenset(p) for p in zip(truth["source"], truth["target"], strict=True)}
    found = {
        frozenset(p)
        for p in zip(fitted.fit["edges"]["source"], fitted.fit["edges"]["target"], strict=True)
    }
    hits = len(true_pairs & found)
    return {
        "true": len(true_pairs),
        "fitted": len(found),
        "hits": hits,
        "precision": hits / len(found) if found else float("nan"),
        "recall": hits / len(true_pairs) if true_pairs else float("nan"),
    }


def _cell(values: list[float]) -> str:
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def reference_section(result: dict, title: str) -> list[str]:
    columns = (*METHODS, FLOOR)
    lines = [
        f"## {title}",
        "",
        "| statistic | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for stat, metric, label in ROWS:
        cells = [_cell([s[(stat, metric)] for s in result["scores"][m]]) for m in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(
        "| fit time (s) | " + " | ".join(f"{result['times'][m]:.1f}" for m in METHODS) + " | |"
    )
    lines += [
        "",
        f"`qsimcells`: `n_states={result['n_states_asked']}` gave "
        f"{result['n_states']} states in all; `fit_design` kept {result['n_edges']} "
        "edges.",
        "",
    ]
    return lines


def goal_lines(*results: dict) -> list[str]:
    """The goal, strictly (every mean no larger than the copula's) and within noise (no mean
    larger than the copula's by more than the larger of the two seed-to-seed sds)."""
    lines = [
        "## Goal",
        "",
        "Strict: every mean at most the copula's. Within noise: no mean above the "
        "copula's by more than the larger of the two seed-to-seed sds. The noise floor "
        "column shows how far two draws of one model are from each other: differences "
        "below it are not evidence.",
        "",
    ]
    for result in results:
        ours, copula = result["scores"]["qsimcells"], result["scores"]["Gaussian copula"]
        strict, noisy = [], []
        for stat, metric, label in ROWS:
            a = np.array([s[(stat, metric)] for s in ours])
            b = np.array([s[(stat, metric)] for s in copula])
            sd = max(a.std(ddof=1), b.std(ddof=1)) if len(a) > 1 else 0.0
            if a.mean() > b.mean():
                strict.append(f"{label} ({a.mean():.3f} vs {b.mean():.3f})")
                if a.mean() - b.mean() > sd:
                    noisy.append(f"{label} ({a.mean():.3f} vs {b.mean():.3f})")
        auc = np.mean([s[("knn", "auc")] for s in ours])
        copula_auc = np.mean([s[("knn", "auc")] for s in copula])
        lines.append(
            f"- **{result['title']}**: at least as close as the Gaussian copula on "
            f"every statistic, strictly: **{'met' if not strict else 'not met'}**"
            + (f" (further on: {'; '.join(strict)})" if strict else "")
            + f"; within noise: **{'met' if not noisy else 'not met'}**"
            + (f" (further on: {'; '.join(noisy)})" if noisy else "")
            + f". kNN two-sample AUC {auc:.3f} (copula {copula_auc:.3f}) <= "
            f"{AUC_GOAL}: **{'met' if auc <= AUC_GOAL else 'not met'}**."
        )
    return [*lines, ""]


if __name__ == "__main__":
    sys.exit(main())
