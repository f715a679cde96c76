"""Benchmark of communication in space (issue 16): ``simulate(..., tissue=Tissue(...,
interaction_length=...))`` against the plain ``simulate`` of the same design, in the same process.

Designs: the paper's (``romero2025(True)``, 2 ligand-receptor gates) and
``random_network(200, 4, 200, rng=0)`` (40 ligand-receptor gates), at ``--cells`` cells in total,
exact sampler (per-shot switch qubits). Times are the best of ``--repeats`` runs, interleaved.
Also one row with the statevector sampler on the paper's design, which samples one circuit per
pattern of acting gates. Target (issue 16): 100,000 cells with communication in space under 60 s.

Not yet here: how well squidpy's ligrec and ``qs.tl.cellchat`` recover the true spatial pairs
(needs the scoring of issue 16, still to build).

Usage: ``.venv/bin/python benchmarks/spatial.py`` (also ``make bench``; writes
``docs/benchmarks/spatial.md``), ``--quick`` (prints only unless ``--out``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import REPO, best_of, machine, report, source_state
from _common import command as command_line

DEFAULT_OUT = REPO / "docs" / "benchmarks" / "spatial.md"
TARGET_S = 60.0


def main(argv: list[str] | None = None) -> int:
    import qsimcells as qs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.cells, args.repeats = 10_000, 1
    out = args.out if args.out is not None else (None if args.quick else DEFAULT_OUT)

    tissue = qs.sim.Tissue("hex", spacing=40.0, contact_radius=30.0, interaction_length=8.0)
    designs = {"romero2025(True)": qs.sim.presets.romero2025(True),
               "random_network(200, 4, 200)": qs.sim.presets.random_network(200, 4, 200, rng=0)}
    qs.sim.simulate(designs["romero2025(True)"], 100, rng=1, tissue=tissue)  # warm-up
    rows = []
    for label, design in designs.items():
        n_types = len(design.cell_types)
        n = args.cells // n_types
        samplers = ["exact", "statevector"] if design.n_qubits <= 12 else ["exact"]
        for sampler in samplers:
            plain, _ = best_of(lambda d=design, s=sampler: qs.sim.simulate(
                d, n, rng=0, sampler=s, progress=False), args.repeats)
            spatial, adata = best_of(lambda d=design, s=sampler: qs.sim.simulate(
                d, n, rng=0, sampler=s, tissue=tissue, progress=False), args.repeats)
            active = adata.obsm["lr_active"][::n_types]
            rows.append({"design": label, "sampler": sampler, "cells": adata.n_obs,
                         "gates": active.shape[1], "plain": plain, "spatial": spatial,
                         "acting": float(active.mean()),
                         "how": adata.uns["qsimcells"]["lr_sampling"]})
            print(rows[-1], file=sys.stderr, flush=True)

    info, state = machine(("numpy", "scipy", "qiskit")), source_state()
    lines = [
        "# Communication in space: `simulate(tissue=...)` vs the plain `simulate`",
        "",
        f"Command: `{command_line(__file__, argv if argv is not None else sys.argv[1:])}`. "
        f"Source: {state}.",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "",
        "Tissue: `Tissue(\"hex\", spacing=40, contact_radius=30, interaction_length=8)`: each "
        "ligand-receptor gate acts in a niche with probability exp(-d / 8 um). Best of "
        f"{args.repeats} runs. Ratio: time with the tissue / time of the plain `simulate` of "
        "the same design and sampler.",
        "",
        "| design | sampler | cells | LR gates | plain (s) | with tissue (s) | ratio | gates acting | "
        "how the gates are sampled |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| `{r['design']}` | {r['sampler']} | {r['cells']:,} | {r['gates']} | "
                     f"{r['plain']:.2f} | {r['spatial']:.2f} | {r['spatial'] / r['plain']:.2f}x "
                     f"| {r['acting']:.0%} | {r['how']} |")
    slowest = max(r["spatial"] for r in rows)
    lines += ["", f"**{args.cells:,} cells with communication in space under {TARGET_S:.0f} s: "
                  f"{'met' if slowest < TARGET_S else 'not met'}** (slowest row "
                  f"{slowest:.2f} s).", ""]
    report("\n".join(lines), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
