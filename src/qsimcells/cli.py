"""Command line: ``qsimcells demo`` (the main job: the paper reproduced into ``results/``) and
``qsimcells plugins``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger("qsimcells")


#: The paper's ligand-receptor database (Table 2): two programmed pairs and two decoys.
PAPER_PAIRS = [("g3", "g5", "Simulated1"), ("g7", "g0", "Simulated2"),
               ("g8", "g4", "Simulated3"), ("g9", "g4", "Simulated4")]
#: Table 3 of the paper, for the comparison written next to ours.
PAPER_TABLE3 = {("g3", "g5"): (0.0148, 0.1135), ("g7", "g0"): (0.0011, 0.0830),
                ("g8", "g4"): (0.1133, 0.1008), ("g9", "g4"): (0.0726, 0.0638)}
CASES = ((True, "case1_interacting"), (False, "case2_control"))


def demo(out: Path, n_cells: int = 2000, seed: int = 0, sampler: str = "auto",
         n_perms: int = 1000) -> dict:
    """Reproduce Romero et al. into ``out``: both cases simulated (h5ad, circuits, Fig. 2
    histograms, ON fractions), the UMAP of Fig. 3, the correlation networks of Fig. 4 scored
    against the programmed ones, and CellChat's Table 3 with the paper's numbers beside ours."""
    import matplotlib

    matplotlib.use("Agg")
    import anndata as ad
    import matplotlib.pyplot as plt
    import pandas as pd

    from . import pl, sim, tl

    check_out(out)  # before any work: a bad folder is refused at once
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    data = {}
    pairs = pd.DataFrame(PAPER_PAIRS, columns=["ligand", "receptor", "pathway"])
    for interacting, case in CASES:
        design = sim.presets.romero2025(interacting)
        adata = sim.simulate(design, n_cells, sampler=sampler, rng=seed)
        pl.circuit(design, save=out / f"{case}_circuit.png", show=False)
        pl.bit_histogram(adata, save=out / f"{case}_bit_histogram.png", show=False)
        marginals = (adata.var.assign(on=adata.layers["binary"].sum(0).A1 / n_cells)
                     .loc[design.gene_names, ["cell_type", "p_on", "on"]])
        marginals.to_csv(out / f"{case}_marginals.csv")

        # Fig. 4: the paper's correlation networks against the programmed CX gates
        fig, axes = plt.subplots(2, 2, figsize=(10, 9.6))
        networks = {}
        for row, method in enumerate(("pearson", "spearman")):
            tl.correlation_network(adata, method=method, threshold=0.5)
            key = f"{method}_network"
            score = tl.score_network(adata, key)
            score["edges"].to_csv(out / f"{case}_{method}_edges.csv", index=False)
            networks[method] = {m: _plain(score[m]) for m in
                                ("precision", "recall", "recall_within_types", "f1", "aupr",
                                 "auroc")}
            networks[method]["edges"] = {
                status: [f"{a}-{b}" for a, b in zip(part["source"], part["target"])]
                for status, part in score["edges"].groupby("status")}
            pl.network(adata, key, ax=axes[row], show=False)
        fig.suptitle(f"{case}: programmed vs correlation networks (|r| > 0.5)")
        fig.savefig(out / f"{case}_fig4_networks.png", dpi=150, bbox_inches="tight")

        # Table 3: CellChat with the paper's custom database, 1% truncated mean
        tl.cellchat(adata, groupby="cell_type", pairs=pairs, mean="truncated", trim=0.01,
                    n_perms=n_perms, rng=seed)
        adata.write_h5ad(out / f"{case}.h5ad")
        plt.close("all")
        data[case] = adata
        summary[case] = {"cells": adata.n_obs, "genes": adata.n_vars,
                         "sampler": adata.uns["qsimcells"]["sampler"]["name"],
                         "design": repr(design), "networks": networks}
        logger.info("%s: %s", case, summary[case])

    shift = tl.communication_shift(data["case2_control"], data["case1_interacting"])
    # the paper lists only the pairs in the direction of its database (Table 3)
    directed = {("CT1", "CT2", "g3", "g5"), ("CT2", "CT1", "g7", "g0"),
                ("CT2", "CT1", "g8", "g4"), ("CT2", "CT1", "g9", "g4")}
    table3 = shift[[tuple(r) in directed for r in
                    shift[["source", "target", "ligand", "receptor"]].itertuples(index=False)]]
    table3 = table3.assign(
        paper_prob_ref=[PAPER_TABLE3[(r.ligand, r.receptor)][0] for r in table3.itertuples()],
        paper_prob_alt=[PAPER_TABLE3[(r.ligand, r.receptor)][1] for r in table3.itertuples()])
    table3 = table3.assign(paper_fold_change=table3["paper_prob_alt"] / table3["paper_prob_ref"])
    table3.to_csv(out / "table3.csv", index=False)
    pl.communication(table3, labels=("non-interacting", "interacting"),
                     save=out / "table3_communication.png", show=False)
    summary["table3"] = [{k: _plain(v) for k, v in row.items()}
                         for row in table3.to_dict("records")]

    # Fig. 3: both cases in one UMAP, coloured by case and cell type
    both = ad.concat({"case 1 (interacting)": data["case1_interacting"],
                      "case 2 (control)": data["case2_control"]}, label="case",
                     index_unique="-")
    both.obs["case_cell_type"] = (both.obs["case"].astype(str) + " "
                                  + both.obs["cell_type"].astype(str)).astype("category")
    pl.umap(both, color="case_cell_type", rng=seed, title="qSimCells: both cases",
            save=out / "fig3_umap.png", show=False)
    plt.close("all")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def check_out(out: Path) -> None:
    """Refuse an output folder that is a file, sits under a file or cannot be written."""
    out = Path(out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {str(out)!r} is an existing file; give a folder")
    existing = next(p for p in [out, *out.parents] if p.exists())
    if not existing.is_dir():
        raise ValueError(f"--out: {str(existing)!r} is a file, so {str(out)!r} cannot be "
                         "created; give a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--out: {str(existing)!r} is not writable")


def _plain(value: object) -> object:
    """JSON-friendly numbers (NaN as None)."""
    import math

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    if hasattr(value, "item"):
        return _plain(value.item())
    return value


def pd_table(rows: list[dict]) -> str:
    """Table 3 as text for the terminal."""
    import pandas as pd

    columns = ["source", "target", "ligand", "receptor", "prob_ref", "prob_alt", "fold_change",
               "paper_prob_ref", "paper_prob_alt", "paper_fold_change"]
    with pd.option_context("display.width", 200, "display.precision", 4):
        return "Table 3 (ref = case 2 control, alt = case 1 interacting)\n" + \
            pd.DataFrame(rows)[columns].to_string(index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qsimcells", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="simulate the paper's two cases into a folder")
    p_demo.add_argument("--out", type=Path, default=Path("results"))
    p_demo.add_argument("--n-cells", type=int, default=2000, help="cells per cell type")
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--sampler", default="auto")
    p_demo.add_argument("--n-perms", type=int, default=1000,
                        help="CellChat permutations for the p-values")
    sub.add_parser("plugins", help="list the registered samplers and generators")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "demo":
        try:
            check_out(args.out)
        except ValueError as err:
            parser.error(str(err))  # one line on stderr, exit code 2, nothing computed
        summary = demo(args.out, args.n_cells, args.seed, args.sampler, args.n_perms)
        print(json.dumps({case: {k: v for k, v in summary[case].items() if k != "networks"}
                          for _, case in CASES}, indent=2))
        print(pd_table(summary["table3"]))
        print(f"results written to {args.out}/")
    else:
        from .plugins import available

        import pandas as pd

        with pd.option_context("display.max_colwidth", 60, "display.width", 200):
            print(available().drop(columns=["capabilities"]).to_string(index=False))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
