"""Benchmark of the Ising (Boltzmann) samplers: ``gibbs`` (builtin, torch) against ``neal``
(plugin qsimcells-neal, dwave-samplers) in the same process (DESIGN.md section 7).

Part 1, accuracy at 10 spins: a random model (``h ~ N(0, 1)``, ``W_lm ~ N(0, 0.7^2)``), ``--reads``
reads per sampler and setting; samples per second and the total variation distance (TVD) of the
empirical state distribution to the exact Boltzmann probabilities at beta = 1, next to the TVD
that sampling noise alone gives: mean and sd over 200 multinomial draws of as many reads from
the exact probabilities (a perfect sampler), and the row's z-score against that.

Part 2, QBM-VAE sizes: dense models of 64, 128 and 256 spins (``W_lm ~ N(0, 1/n)``), seconds
per 256 reads from random states (100 sweeps) and per persistent-chain step (10 sweeps from the
previous states, what a QBM-VAE training step does), best of 3; ratio = neal / gibbs. Both
samplers run the same number of sweeps; the mean energy of their samples (with its standard
error) shows whether they agree on the distribution.

Usage: ``.venv/bin/python benchmarks/ising.py`` (writes ``docs/benchmarks/ising.md``; also run by
``make bench``) or ``--quick`` (smaller, prints only unless ``--out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import qsimcells as qs
from _common import REPO, best_of, command, machine, source_state
from qsimcells.samplers import boltzmann_probabilities, ising_energy, sample_ising
from qsimcells.testing import random_ising

DEFAULT_OUT = REPO / "docs" / "benchmarks" / "ising.md"
#: Multinomial draws from the exact probabilities that give the TVD of a perfect sampler.
NULL_DRAWS = 200


def tvd(z: np.ndarray, probs: np.ndarray) -> float:
    index = z.astype(np.int64) @ (1 << np.arange(z.shape[1]))
    return 0.5 * float(np.abs(np.bincount(index, minlength=probs.size) / len(z) - probs).sum())


def part_accuracy(reads: int) -> list[dict]:
    h, W = random_ising(10, 0, coupling=0.7)
    probs = boltzmann_probabilities(h, W)
    perfect = 0.5 * np.abs(
        np.random.default_rng(99).multinomial(reads, probs, NULL_DRAWS) / reads - probs
    ).sum(1)
    noise, noise_sd = float(perfect.mean()), float(perfect.std(ddof=1))
    settings = [
        ("exact", {}),
        ("gibbs", {"num_sweeps": 20}),
        ("gibbs", {"num_sweeps": 100}),
        ("gibbs", {"num_sweeps": 100, "n_replicas": 4}),
        ("neal", {"num_sweeps": 100}),
        ("neal", {"num_sweeps": 1000}),
    ]
    rows = []
    for name, options in settings:
        sample_ising(h, W, 16, sampler=name, rng=0, **options)  # warm-up (imports, caches)
        t0 = time.perf_counter()
        z = sample_ising(h, W, reads, sampler=name, rng=1, **options)
        seconds = time.perf_counter() - t0
        distance = tvd(z, probs)
        rows.append(
            {
                "sampler": name,
                "options": options,
                "seconds": seconds,
                "per_s": reads / seconds,
                "tvd": distance,
                "noise": noise,
                "noise_sd": noise_sd,
                "z": (distance - noise) / noise_sd,
            }
        )
        print(
            f"  10 spins  {name:6s} {options!s:38s} {reads / seconds:>11,.0f} samples/s  "
            f"TVD {distance:.4f} (perfect sampler {noise:.4f} +- {noise_sd:.4f}, "
            f"z = {rows[-1]['z']:+.1f})",
            flush=True,
        )
    return rows


def part_sizes(sizes: list[int], reads: int, repeats: int) -> list[dict]:
    rows = []
    for n in sizes:
        h, W = random_ising(n, n, coupling=1 / np.sqrt(n))
        row: dict = {"n": n}
        for name in ("gibbs", "neal"):
            cold_s, start = best_of(
                lambda h=h, W=W, name=name: sample_ising(
                    h, W, reads, sampler=name, rng=2, num_sweeps=100
                ),
                repeats,
            )
            warm_s, z = best_of(
                lambda h=h, W=W, name=name, start=start: sample_ising(
                    h, W, reads, sampler=name, rng=3, initial_states=start, num_sweeps=10
                ),
                repeats,
            )
            energy = ising_energy(z, h, W)
            row[name] = {
                "cold_s": cold_s,
                "warm_s": warm_s,
                "energy": float(energy.mean()),
                "energy_se": float(energy.std(ddof=1) / np.sqrt(reads)),
            }
        row["cold_ratio"] = row["neal"]["cold_s"] / row["gibbs"]["cold_s"]
        row["warm_ratio"] = row["neal"]["warm_s"] / row["gibbs"]["warm_s"]
        rows.append(row)
        g, m = row["gibbs"], row["neal"]
        print(
            f"  {n:>4} spins, {reads} reads: 100 sweeps gibbs {g['cold_s']:.3f} s, neal "
            f"{m['cold_s']:.3f} s (neal/gibbs {row['cold_ratio']:.2f}x); 10-sweep persistent "
            f"step gibbs {g['warm_s']:.4f} s, neal {m['warm_s']:.4f} s "
            f"({row['warm_ratio']:.2f}x); mean energy {g['energy']:.2f} +- {g['energy_se']:.2f}"
            f" vs {m['energy']:.2f} +- {m['energy_se']:.2f}",
            flush=True,
        )
    return rows


def markdown(
    info: dict,
    cmd: str,
    source: str,
    reads: int,
    accuracy: list[dict],
    sizes: list[dict],
    size_reads: int,
    quick: bool,
) -> str:
    lines = [
        "# Benchmark: Ising samplers (`gibbs` vs `neal`)",
        "",
        "Generated by `benchmarks/ising.py` (`make bench` runs it); every number below comes from "
        "that run, and each ratio compares two timings taken in the same process.",
        "",
        f"- Command: `{cmd}`" + (" (quick smoke run)" if quick else ""),
        f"- Machine: {info['cores']} cores ({info['cpu']}), {info['memory']} RAM; Python "
        f"{info['python']}, numpy {info['numpy']}, torch {info['torch']}, dwave-samplers "
        f"{info['dwave.samplers']}",
        f"- Date: {info['date']}",
        f"- Source: {source}",
        "",
        "## Accuracy at 10 spins",
        "",
        f"Random model `h ~ N(0, 1)`, `W_lm ~ N(0, 0.7^2)`, beta = 1, {reads:,} reads per row "
        "(one independent chain per read, from random states). TVD = total variation distance "
        "of the sampled state frequencies to the exact Boltzmann probabilities (enumeration). "
        f"*Perfect sampler*: mean +- sd of the TVD of {NULL_DRAWS} multinomial draws of as many "
        "reads from the exact probabilities, i.e. what sampling noise alone gives; *z* = (TVD - "
        "that mean) / sd. A sampler is accurate when |z| stays within about 3; a bias shows as "
        "a large positive z.",
        "",
        "| sampler | options | samples / s | TVD | perfect sampler | z |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in accuracy:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "-"
        lines.append(
            f"| {r['sampler']} | {opts} | {r['per_s']:,.0f} | {r['tvd']:.4f} | "
            f"{r['noise']:.4f} +- {r['noise_sd']:.4f} | {r['z']:+.1f} |"
        )
    lines += [
        "",
        "## QBM-VAE sizes",
        "",
        f"Dense random models (`h ~ N(0, 1)`, `W_lm ~ N(0, 1/n)`), {size_reads} reads, beta = 1, "
        "best of 3. *Cold*: 100 sweeps from random states (neal: geometric anneal to beta over "
        "the first half, then at beta). *Persistent step*: 10 sweeps continuing from the cold "
        "states (neal: constant beta), what one QBM-VAE training step costs. Mean energy "
        "(+- standard error) of the persistent-step samples: both samplers target the same "
        "distribution, so they should agree within a few standard errors.",
        "",
        "| spins | gibbs cold (s) | neal cold (s) | neal / gibbs | gibbs step (s) | "
        "neal step (s) | neal / gibbs | mean energy gibbs | mean energy neal |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sizes:
        g, m = r["gibbs"], r["neal"]
        lines.append(
            f"| {r['n']} | {g['cold_s']:.3f} | {m['cold_s']:.3f} | "
            f"{r['cold_ratio']:.2f}x | {g['warm_s']:.4f} | {m['warm_s']:.4f} | "
            f"{r['warm_ratio']:.2f}x | {g['energy']:.2f} +- {g['energy_se']:.2f} | "
            f"{m['energy']:.2f} +- {m['energy_se']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--reads", type=int, default=None, help="reads at 10 spins")
    parser.add_argument("--out", type=Path, default=None, help="markdown output")
    args = parser.parse_args(argv)
    reads = args.reads or (5_000 if args.quick else 50_000)
    sizes = [64] if args.quick else [64, 128, 256]
    if "neal" not in qs.plugins.available("ising_sampler").name.tolist():
        sys.exit("the neal sampler is not installed (pip install ./plugins/qsimcells-neal)")
    source = source_state()
    print(f"[1] accuracy at 10 spins, {reads:,} reads", flush=True)
    accuracy = part_accuracy(reads)
    print("[2] QBM-VAE sizes, 256 reads", flush=True)
    size_rows = part_sizes(sizes, 256, 1 if args.quick else 3)
    out = args.out or (None if args.quick else DEFAULT_OUT)
    if out is not None:
        info = machine(("numpy", "torch", "dwave.samplers"))
        text = markdown(
            info, command(__file__, argv), source, reads, accuracy, size_rows, 256, args.quick
        )
        out.write_text(text)
        print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")


if __name__ == "__main__":
    main(sys.argv[1:])
