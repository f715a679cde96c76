"""Command line: ``qsimcells demo`` (the main job) and ``qsimcells plugins``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

logger = logging.getLogger("qsimcells")


def demo(out: Path, n_cells: int = 2000, seed: int = 0, sampler: str = "auto") -> dict:
    """Simulate both cases of Romero et al. and write data and Fig. 2 to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import pl, sim

    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for interacting, case in ((True, "case1_interacting"), (False, "case2_control")):
        design = sim.presets.romero2025(interacting)
        adata = sim.simulate(design, n_cells, sampler=sampler, rng=seed)
        adata.write_h5ad(out / f"{case}.h5ad")
        pl.circuit(design, save=out / f"{case}_circuit.png", show=False)
        pl.bit_histogram(adata, save=out / f"{case}_bit_histogram.png", show=False)
        plt.close("all")
        marginals = (adata.var.assign(on=adata.layers["binary"].sum(0).A1 / n_cells)
                     .loc[design.gene_names, ["cell_type", "p_on", "on"]])
        marginals.to_csv(out / f"{case}_marginals.csv")
        summary[case] = {"cells": adata.n_obs, "genes": adata.n_vars,
                         "sampler": adata.uns["qsimcells"]["sampler"]["name"],
                         "design": repr(design)}
        logger.info("%s: %s", case, summary[case])
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qsimcells", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="simulate the paper's two cases into a folder")
    p_demo.add_argument("--out", type=Path, default=Path("results"))
    p_demo.add_argument("--n-cells", type=int, default=2000, help="cells per cell type")
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--sampler", default="auto")
    sub.add_parser("plugins", help="list the registered samplers and generators")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "demo":
        summary = demo(args.out, args.n_cells, args.seed, args.sampler)
        print(json.dumps(summary, indent=2))
        print(f"results written to {args.out}/")
    else:
        from .plugins import available

        import pandas as pd

        with pd.option_context("display.max_colwidth", 60, "display.width", 200):
            print(available().drop(columns=["capabilities"]).to_string(index=False))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
