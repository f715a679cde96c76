"""Command line: ``qsimcells demo`` (the main job: the paper reproduced into ``results/``),
``qsimcells simulate DESIGN`` (a design file or a preset to .h5ad / .zarr), ``qsimcells design``
(write a preset as a design file, or check one) and ``qsimcells plugins``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

logger = logging.getLogger("qsimcells")


#: The paper's ligand-receptor database (Table 2): two programmed pairs and two decoys.
PAPER_PAIRS = [
    ("g3", "g5", "Simulated1"),
    ("g7", "g0", "Simulated2"),
    ("g8", "g4", "Simulated3"),
    ("g9", "g4", "Simulated4"),
]
#: Table 3 of the paper, for the comparison written next to ours.
PAPER_TABLE3 = {
    ("g3", "g5"): (0.0148, 0.1135),
    ("g7", "g0"): (0.0011, 0.0830),
    ("g8", "g4"): (0.1133, 0.1008),
    ("g9", "g4"): (0.0726, 0.0638),
}
CASES = ((True, "case1_interacting"), (False, "case2_control"))


def demo(
    out: Path, n_cells: int = 2000, seed: int = 0, sampler: str = "auto", n_perms: int = 1000
) -> dict:
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
        marginals = adata.var.assign(on=adata.layers["binary"].sum(0).A1 / n_cells).loc[
            design.gene_names, ["cell_type", "p_on", "on"]
        ]
        marginals.to_csv(out / f"{case}_marginals.csv")

        # Fig. 4: the paper's correlation networks against the programmed CX gates
        fig, axes = plt.subplots(2, 2, figsize=(10, 9.6))
        networks = {}
        for row, method in enumerate(("pearson", "spearman")):
            tl.correlation_network(adata, method=method, threshold=0.5)
            key = f"{method}_network"
            score = tl.score_network(adata, key)
            score["edges"].to_csv(out / f"{case}_{method}_edges.csv", index=False)
            networks[method] = {
                m: _plain(score[m])
                for m in ("precision", "recall", "recall_within_types", "f1", "aupr", "auroc")
            }
            networks[method]["edges"] = {
                status: [f"{a}-{b}" for a, b in zip(part["source"], part["target"], strict=True)]
                for status, part in score["edges"].groupby("status")
            }
            pl.network(adata, key, ax=axes[row], show=False)
        fig.suptitle(f"{case}: programmed vs correlation networks (|r| > 0.5)")
        fig.savefig(out / f"{case}_fig4_networks.png", dpi=150, bbox_inches="tight")

        # Table 3: CellChat with the paper's custom database, 1% truncated mean
        tl.cellchat(
            adata,
            groupby="cell_type",
            pairs=pairs,
            mean="truncated",
            trim=0.01,
            n_perms=n_perms,
            rng=seed,
        )
        adata.write_h5ad(out / f"{case}.h5ad")
        plt.close("all")
        data[case] = adata
        summary[case] = {
            "cells": adata.n_obs,
            "genes": adata.n_vars,
            "sampler": adata.uns["qsimcells"]["sampler"]["name"],
            "design": repr(design),
            "networks": networks,
        }
        logger.info("%s: %s", case, summary[case])

    shift = tl.communication_shift(data["case2_control"], data["case1_interacting"])
    # the paper lists only the pairs in the direction of its database (Table 3)
    directed = {
        ("CT1", "CT2", "g3", "g5"),
        ("CT2", "CT1", "g7", "g0"),
        ("CT2", "CT1", "g8", "g4"),
        ("CT2", "CT1", "g9", "g4"),
    }
    table3 = shift[
        [
            tuple(r) in directed
            for r in shift[["source", "target", "ligand", "receptor"]].itertuples(index=False)
        ]
    ]
    table3 = table3.assign(
        paper_prob_ref=[PAPER_TABLE3[(r.ligand, r.receptor)][0] for r in table3.itertuples()],
        paper_prob_alt=[PAPER_TABLE3[(r.ligand, r.receptor)][1] for r in table3.itertuples()],
    )
    table3 = table3.assign(paper_fold_change=table3["paper_prob_alt"] / table3["paper_prob_ref"])
    table3.to_csv(out / "table3.csv", index=False)
    pl.communication(
        table3,
        labels=("non-interacting", "interacting"),
        save=out / "table3_communication.png",
        show=False,
    )
    summary["table3"] = [
        {k: _plain(v) for k, v in row.items()} for row in table3.to_dict("records")
    ]

    # Fig. 3: both cases in one UMAP, coloured by case and cell type
    both = ad.concat(
        {
            "case 1 (interacting)": data["case1_interacting"],
            "case 2 (control)": data["case2_control"],
        },
        label="case",
        index_unique="-",
    )
    both.obs["case_cell_type"] = (
        both.obs["case"].astype(str) + " " + both.obs["cell_type"].astype(str)
    ).astype("category")
    pl.umap(
        both,
        color="case_cell_type",
        rng=seed,
        title="qSimCells: both cases",
        save=out / "fig3_umap.png",
        show=False,
    )
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
        raise ValueError(
            f"--out: {str(existing)!r} is a file, so {str(out)!r} cannot be created; give a folder"
        )
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

    columns = [
        "source",
        "target",
        "ligand",
        "receptor",
        "prob_ref",
        "prob_alt",
        "fold_change",
        "paper_prob_ref",
        "paper_prob_alt",
        "paper_fold_change",
    ]
    with pd.option_context("display.width", 200, "display.precision", 4):
        return "Table 3 (ref = case 2 control, alt = case 1 interacting)\n" + pd.DataFrame(rows)[
            columns
        ].to_string(index=False)


class _OneLineParser(argparse.ArgumentParser):
    """argparse with pipeline-friendly errors: one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(_field_first(message))


class UsageError(ValueError):
    """A bad argument: reported as ``qsimcells: error: <field>: <what is allowed>``."""


def _field_first(message: str) -> str:
    """argparse's ``argument --x: ...`` and ``the following arguments are required: --x`` in
    the ``<field>: <what>`` form of every other error."""
    if message.startswith("argument "):
        return message[len("argument ") :]
    required = "the following arguments are required: "
    if message.startswith(required):
        return f"{message[len(required) :]}: required"
    return message


def _positive(field: str, value: int) -> int:
    if value < 1:
        raise UsageError(f"{field}: must be a whole number >= 1, got {value}")
    return value


def _check_seed(value: int) -> int:
    if value < 0:
        raise UsageError(f"--seed: must be a whole number >= 0, got {value}")
    return value


def _check_sampler(name: str) -> str:
    """``auto`` or a registered circuit sampler, checked before any work."""
    from .plugins import get_registry

    if name == "auto":
        return name
    try:
        get_registry().get("circuit_sampler", name)
    except Exception as err:  # unknown, or ambiguous between two plugins
        raise UsageError(f"--sampler: {err}; or 'auto'") from None
    return name


def _check_output(out: Path, overwrite: bool) -> Path:
    """``--out``: ``.h5ad`` or ``.zarr``, in a writable folder, not already there unless
    ``--overwrite``; all before any work."""
    out = Path(out).expanduser().absolute()
    if out.suffix not in (".h5ad", ".zarr"):
        raise UsageError(
            f"--out: {str(out)!r} must end in .h5ad (an AnnData file) or .zarr "
            "(a zarr store written chunk by chunk)"
        )
    if out.exists() and not overwrite:
        raise UsageError(f"--out: {str(out)!r} exists; pass --overwrite to replace it")
    if out.exists() and (out.is_dir() != (out.suffix == ".zarr")):
        raise UsageError(
            f"--out: {str(out)!r} exists and is a "
            f"{'folder' if out.is_dir() else 'file'}; choose another path"
        )
    parent = out.parent
    if not parent.is_dir():
        raise UsageError(f"--out: the folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out: the folder {str(parent)!r} is not writable")
    return out


def _design(spec: str):
    """DESIGN: a design file, or a preset spec (``romero2025``, ``random_network:200:4``)."""
    from .sim import presets, read_design

    if Path(spec).is_file():
        return read_design(spec)
    name = spec.split(":", 1)[0]
    if name not in presets.NAMES:
        raise UsageError(
            f"DESIGN: {spec!r} is neither a design file nor a preset; presets: "
            f"{sorted(presets.NAMES)} (e.g. romero2025, random_network:200:4)"
        )
    return presets.from_spec(spec)


def simulate_command(args: argparse.Namespace) -> Path:
    """``qsimcells simulate``: the same data as ``qs.sim.simulate(design, n_cells,
    rng=seed, sampler=...)``, written atomically to ``.h5ad`` or chunk by chunk to ``.zarr``."""
    from ._atomic import atomic_file
    from .sim import simulate, simulate_to_zarr

    _positive("--n-cells", args.n_cells)
    _check_seed(args.seed)
    if args.batches is not None:
        _positive("--batches", args.batches)
    if args.chunk_size is not None:
        _positive("--chunk-size", args.chunk_size)
    _check_sampler(args.sampler)
    out = _check_output(args.out, args.overwrite)
    design = _design(args.design)
    progress = False if args.quiet else None  # None: a bar only on an interactive terminal
    options = {
        "sampler": args.sampler,
        "rng": args.seed,
        "batches": args.batches,
        "progress": progress,
    }
    if args.chunk_size is not None:
        options["chunk_size"] = args.chunk_size
    if out.suffix == ".zarr":
        simulate_to_zarr(design, args.n_cells, out, overwrite=args.overwrite, **options)
    else:
        adata = simulate(design, args.n_cells, **options)
        with atomic_file(out, True, field="--out") as tmp:
            adata.write_h5ad(tmp)
    return out


def design_command(args: argparse.Namespace) -> int:
    """``qsimcells design PRESET [--out FILE]`` and ``qsimcells design --check FILE``."""
    from .sim import design_file, read_design
    from .sim.design_file import DesignFileError

    if args.check is not None:
        if args.preset is not None:
            raise UsageError("PRESET: give a preset or --check FILE, not both")
        path = Path(args.check)
        if not path.is_file():
            raise UsageError(f"--check: no file at {str(path)!r}")
        try:
            design = read_design(path)
        except DesignFileError as err:
            for problem in err.problems:
                print(f"qsimcells: error: {path}: {problem}", file=sys.stderr)
            return 2
        print(
            f"{path}: a valid design: {len(design.gene_names)} genes in "
            f"{len(design.cell_types)} cell types, {len(design.edges)} edges"
        )
        return 0
    if args.preset is None:
        raise UsageError(
            "PRESET: required (e.g. romero2025, random_network:200:4), or --check FILE"
        )
    design = _design(args.preset)
    if args.out is None:
        print(json.dumps(design_file.design_to_json(design), indent=1))
        return 0
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UsageError(f"--out: {str(out)!r} exists; pass --overwrite to replace it")
    design_file.write_design(design, out, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {out}", file=sys.stderr)
    return 0


def _parser() -> argparse.ArgumentParser:
    from ._version import __version__

    def common(default: object) -> _OneLineParser:
        """--debug and --quiet, before or after the command (``default`` SUPPRESS after it,
        so that the command's copy does not undo the one given before it)."""
        options = _OneLineParser(add_help=False)
        options.add_argument(
            "--debug",
            action="store_true",
            default=default,
            help="show the Python traceback of an error",
        )
        options.add_argument(
            "--quiet", action="store_true", default=default, help="no progress bars, no log lines"
        )
        return options

    parser = _OneLineParser(prog="qsimcells", description=__doc__, parents=[common(False)])
    parser.add_argument("--version", action="version", version=f"qsimcells {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    after = common(argparse.SUPPRESS)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[after])  # every command takes them

    p_demo = command("demo", help="simulate the paper's two cases into a folder")
    p_demo.add_argument("--out", type=Path, default=Path("results"))
    p_demo.add_argument("--n-cells", type=int, default=2000, help="cells per cell type")
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--sampler", default="auto")
    p_demo.add_argument(
        "--n-perms",
        type=int,
        default=1000,
        help="CellChat permutations for the p-values (at least 1)",
    )
    p_sim = command("simulate", help="simulate a design file or a preset to .h5ad or .zarr")
    p_sim.add_argument(
        "design",
        metavar="DESIGN",
        help="a design file (qsimcells design) or a preset: romero2025, "
        "romero2025:false, random_network:200:4, random_dag:50:2, ...",
    )
    p_sim.add_argument(
        "--n-cells",
        type=int,
        required=True,
        help="cells (niches) per cell type, as qs.sim.simulate's n_cells",
    )
    p_sim.add_argument("--seed", type=int, default=0, help="seed of the simulation (default 0)")
    p_sim.add_argument(
        "--sampler", default="auto", help="a circuit sampler (qsimcells plugins) or auto (default)"
    )
    p_sim.add_argument("--batches", type=int, default=None, help="technical batches")
    p_sim.add_argument(
        "--chunk-size", type=int, default=None, help="niches per chunk (default: qs.sim's)"
    )
    p_sim.add_argument(
        "--out",
        type=Path,
        default=Path("simulated.h5ad"),
        help="FILE.h5ad or FILE.zarr (default simulated.h5ad)",
    )
    p_sim.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p_design = command("design", help="write a preset as a design file, or check one")
    p_design.add_argument(
        "preset",
        metavar="PRESET",
        nargs="?",
        help="romero2025, random_network:200:4, ... (see qsimcells simulate)",
    )
    p_design.add_argument(
        "--out", type=Path, default=None, help="design file to write (default: print it)"
    )
    p_design.add_argument("--overwrite", action="store_true")
    p_design.add_argument(
        "--check",
        metavar="FILE",
        default=None,
        help="validate FILE and report every problem with its field",
    )
    command("plugins", help="list the registered samplers and generators")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; errors print one line on stderr and return exit code 2
    (``--debug`` raises them with their traceback)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        return _run(_parser().parse_args(argv))
    except Exception as err:  # argparse's --help / --version exit with SystemExit, untouched
        if debug:
            raise
        from .plugins import PluginError

        expected = (ValueError, TypeError, KeyError, PluginError, OSError)
        text = (
            str(err)
            if isinstance(err, expected)
            else f"{type(err).__name__}: {err} (an internal error; --debug shows the traceback)"
        )
        print(
            f"qsimcells: error: {text.splitlines()[0] if text else type(err).__name__}",
            file=sys.stderr,
        )
        return 2 if isinstance(err, expected) else 1


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command == "demo":
        _positive("--n-cells", args.n_cells)
        _check_seed(args.seed)
        if args.n_perms < 1:
            raise UsageError(
                f"--n-perms: CellChat's p-values need permutations; give 1 or "
                f"more (default 1000), got {args.n_perms}"
            )
        _check_sampler(args.sampler)
        try:
            check_out(args.out)
        except ValueError as err:
            raise UsageError(str(err)) from None
        summary = demo(args.out, args.n_cells, args.seed, args.sampler, args.n_perms)
        print(
            json.dumps(
                {
                    case: {k: v for k, v in summary[case].items() if k != "networks"}
                    for _, case in CASES
                },
                indent=2,
            )
        )
        print(pd_table(summary["table3"]))
        print(f"results written to {args.out}/")
    elif args.command == "simulate":
        out = simulate_command(args)
        if not args.quiet:
            print(f"wrote {out}", file=sys.stderr)
    elif args.command == "design":
        return design_command(args)
    else:
        import pandas as pd

        from .plugins import available

        with pd.option_context("display.max_colwidth", 60, "display.width", 200):
            print(available().drop(columns=["capabilities"]).to_string(index=False))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
