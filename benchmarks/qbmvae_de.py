"""Differential expression with a known truth (issue 20): QBM-VAE's ``differential_expression``
(scvi-tools' own, through ``RNASeqMixin``) next to SCVI's, on simulated data whose
differentially expressed genes are programmed.

Data: ``qs.sim.fit_design`` fitted to scanpy's ``pbmc68k_reduced`` (the 200 most variable
genes, ``n_states=1``), simulated twice, as a control and as a treated condition in which
``--de-genes`` random genes of the ``CD14+ Monocyte`` type have their NB mean multiplied by
``--fold`` (half up, half down). Each model is trained on both conditions together (condition
as the batch covariate is *not* given: the condition is what DE must find), then
``differential_expression(groupby="condition", group1="treated", group2="control",
mode="change")`` runs on the monocytes; the score of a gene is its ``proba_de``. Reported:
AUROC and average precision of the score against the programmed genes (housekeeping of the
others), and the sign agreement of ``lfc_mean`` on the true genes, mean ± sd over ``--seeds``.

Usage: ``.venv/bin/python benchmarks/qbmvae_de.py`` (writes ``docs/benchmarks/qbmvae_de.md``),
``--quick`` (prints only unless ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
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
    splice_section,
)

DEFAULT_OUT = REPO / "docs" / "benchmarks" / "qbmvae_de.md"
# The page of benchmarks/qbmvae.py, which gets a short DE section from each full run.
QBMVAE_PAGE = REPO / "docs" / "benchmarks" / "qbmvae.md"
CELL_TYPE = "CD14+ Monocyte"


def main(argv: list[str] | None = None) -> int:
    import qsimcells as qs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cells", type=int, default=2000, help="cells per condition")
    parser.add_argument("--de-genes", type=int, default=20)
    parser.add_argument("--fold", type=float, default=2.0)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.cells, args.epochs = 1, 600, 20
    out = args.out if args.out is not None else (None if args.quick else DEFAULT_OUT)
    warnings.filterwarnings("ignore")

    pbmc, _ = load_pbmc()
    pbmc.X = pbmc.X.astype(np.float64)
    fitted = qs.sim.fit_design(
        pbmc, groupby=PBMC_LABEL, n_genes=200, key_added=None, rng=0, progress=False
    )
    rows = []
    for seed in range(args.seeds):
        data, truth = screen(qs, fitted, args, seed)
        for name in ("QBM-VAE", "SCVI"):
            start = time.perf_counter()
            de = run_de(name, data, args.epochs, seed)
            elapsed = time.perf_counter() - start
            rows.append(
                {"model": name, "seed": seed, "time": elapsed, **score(de, data.var_names, truth)}
            )
            print(rows[-1], file=sys.stderr, flush=True)

    info, state = machine(("numpy", "torch", "scvi")), source_state()
    lines = [
        "# Differential expression with a known truth: QBM-VAE next to SCVI",
        "",
        f"Command: `{command_line(__file__, argv if argv is not None else sys.argv[1:])}`. "
        f"Source: {state}.",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "",
        f"A design fitted to `pbmc68k_reduced` (200 genes) simulated as a control and a "
        f"treated condition ({args.cells:,} cells each) in which {args.de_genes} genes of "
        f"the `{CELL_TYPE}` type have their NB mean multiplied or divided by {args.fold:g}. "
        f"Each model trains {args.epochs} epochs on both conditions (the condition is not a "
        'covariate), then scvi-tools\' `differential_expression(mode="change")` compares '
        "treated with control monocytes. Mean ± sd over "
        f"{args.seeds} seeds (the seed draws the genes, the data and the training).",
        "",
    ]
    table_start = len(lines)
    lines += [
        "| model | AUROC (proba_de) | average precision | LFC sign right on true genes | "
        "train + DE (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("QBM-VAE", "SCVI"):
        mine = [r for r in rows if r["model"] == name]
        lines.append(
            f"| {name} | {_cell([r['auroc'] for r in mine])} | "
            f"{_cell([r['ap'] for r in mine])} | {_cell([r['sign'] for r in mine])} | "
            f"{np.mean([r['time'] for r in mine]):.0f} |"
        )
    lines.append("")
    report("\n".join(lines), out)
    if out == DEFAULT_OUT:
        table = lines[table_start:]
        splice_section(
            QBMVAE_PAGE,
            "qbmvae_de",
            "\n".join(
                [
                    "## Differential expression with a known truth",
                    "",
                    f"From `benchmarks/qbmvae_de.py` ({state}; details and method in "
                    "[qbmvae_de.md](qbmvae_de.md)): scvi-tools' `differential_expression` "
                    f"(mode `change`) on {args.de_genes} genes programmed to change "
                    f"{args.fold:g}-fold in `{CELL_TYPE}` cells between two simulated conditions; "
                    f"mean ± sd over {args.seeds} seeds.",
                    "",
                    *table,
                ]
            ),
        )
    return 0


def screen(qs, fitted, args, seed: int):
    """Control and treated simulations, and the programmed DE genes."""
    import anndata as ad
    import pandas as pd

    gen = np.random.default_rng(seed)
    marg = fitted.fit["marginals"]
    mono = marg[(marg["cell_type"] == CELL_TYPE) & (marg["p_on"] > 0.2)]
    chosen = gen.choice(mono.index.to_numpy(), args.de_genes, replace=False)
    state = fitted.circuit.to_dict()
    factor = np.where(np.arange(args.de_genes) % 2 == 0, args.fold, 1 / args.fold)
    state["genes"].loc[chosen, "mu"] = state["genes"].loc[chosen, "mu"] * factor
    treated_design = dataclasses.replace(fitted, circuit=qs.sim.CellCircuit.from_dict(state))
    control = fitted.simulate(args.cells, rng=seed * 10 + 1, progress=False)
    treated = treated_design.simulate(args.cells, rng=seed * 10 + 2, progress=False)
    data = ad.concat({"control": control, "treated": treated}, label="condition", index_unique="-")
    data.obs["condition"] = pd.Categorical(data.obs["condition"])
    truth = set(marg.loc[chosen, "gene"])
    signs = dict(zip(marg.loc[chosen, "gene"], np.sign(np.log(factor)), strict=True))
    return data, {"genes": truth, "signs": signs}


def run_de(name: str, data, epochs: int, seed: int):
    import scvi

    import qsimcells as qs

    scvi.settings.seed = seed
    adata = data.copy()
    kwargs = {"max_epochs": epochs, "enable_progress_bar": False, "accelerator": "cpu"}
    if name == "QBM-VAE":
        qs.model.QBMVAE.setup_anndata(adata)
        model = qs.model.QBMVAE(adata, n_latent=32, n_hidden=128, seed=seed)
    else:
        scvi.model.SCVI.setup_anndata(adata)
        model = scvi.model.SCVI(adata, n_latent=10)
    model.train(**kwargs)
    mono = adata.obs["cell_type"] == CELL_TYPE
    return model.differential_expression(
        adata,
        idx1=(mono & (adata.obs["condition"] == "treated")).to_numpy(),
        idx2=(mono & (adata.obs["condition"] == "control")).to_numpy(),
        mode="change",
        silent=True,
    )


def score(de, genes, truth) -> dict:
    from qsimcells.tl.grn import _average_precision, _roc_auc

    y = np.array([g in truth["genes"] for g in genes])
    proba = de.loc[list(genes), "proba_de"].to_numpy(dtype=float)
    lfc = de.loc[list(genes), "lfc_mean"].to_numpy(dtype=float)
    signs = np.array([truth["signs"][g] for g in genes if g in truth["genes"]])
    return {
        "auroc": _roc_auc(y, proba),
        "ap": _average_precision(y, proba),
        "sign": float((np.sign(lfc[y]) == signs).mean()),
    }


def _cell(values) -> str:
    values = np.asarray(values, dtype=float)
    return (
        f"{values[0]:.3f}"
        if len(values) == 1
        else f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
