"""Benchmark of ``qs.sim.simulate`` and the circuit samplers, with ratios against peers run in
the same process (DESIGN.md section 7).

Part 1, samplers: time to draw ``--shots`` shots of the paper circuit (10 qubits) and of random
RY + CX designs (20, 24, 28 qubits) with ``qs.samplers.sample_bits(sampler="exact")``, the
``statevector`` sampler (up to its 24 qubits) and Qiskit Aer's ``SamplerV2`` (methods
``automatic`` and ``matrix_product_state``). Every (circuit, sampler) pair runs in its own child
process under a time limit; that child also times the exact sampler, so each ratio
``time / exact_time`` compares two runs in one process. The child also checks that the per-qubit
means of the two samples agree within sampling noise.

Part 2, ``qs.sim.simulate``: 1,000 circuit genes (2 cell types) + 50 housekeeping genes, at
``--cells`` cells in total. Each size runs in its own child process, which records wall time and
peak RSS of the ``simulate`` call, then times the peer: numpy drawing the same negative-binomial
variates (``rng.negative_binomial(r_g, p_g, size=k_g)`` gene by gene, ``k_g`` = ON entries of gene
``g`` in the result; ``n_obs`` draws for every housekeeping gene). Target: simulate <= 1.2x numpy.

Usage: ``.venv/bin/python benchmarks/simulate.py`` (full run, also ``make bench``; writes
``docs/benchmarks/simulate.md``) or ``--quick`` (small smoke run, prints only unless ``--out``).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from _common import (
    REPO,
    command as _command_line,
    gib as _gib,
    machine as _machine,
    source_state as _source_state,
    timed as _timed,
)

DEFAULT_OUT = REPO / "docs" / "benchmarks" / "simulate.md"
TARGET = 1.2
RESULT_TAG = "@@RESULT "
STATEVECTOR_MAX_QUBITS = 24
SIM_GENES, SIM_TYPES = 1000, 2


# --------------------------------------------------------------------------------------------
# small helpers


def _proc_status(field: str) -> int:
    """A ``/proc/self/status`` memory field in bytes (0 where unavailable)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    hwm = _proc_status("VmHWM")
    if hwm:
        return hwm
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _emit(record: dict) -> None:
    print(RESULT_TAG + json.dumps(record), flush=True)


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def _fmt_ratio(x: float | None) -> str:
    return "-" if x is None else (f"{x:.2f}x" if x < 100 else f"{x:.0f}x")


def _circuit(spec: str):
    """``paper`` (Romero 2025 case 1) or ``randomN`` (random_network(N, 2, N, rng=0))."""
    import qsimcells as qs

    if spec == "paper":
        return qs.sim.presets.romero2025(True).to_qiskit()
    n = int(spec.removeprefix("random"))
    return qs.sim.presets.random_network(n, 2, n, rng=0).to_qiskit()


def _circuit_label(spec: str, n_qubits: int) -> str:
    return "paper (romero2025)" if spec == "paper" else f"random RY+CX ({n_qubits} genes)"


def _aer_bits(circuit, result) -> np.ndarray:
    """Aer SamplerV2 result -> (shots, n_qubits) uint8 in qubit order, through the circuit's
    measurements (each classical bit is mapped back to the qubit measured into it)."""
    data = result.data
    arrays = {
        reg.name: getattr(data, reg.name).to_bool_array(order="little") for reg in circuit.cregs
    }
    shots = next(iter(arrays.values())).shape[0]
    out = np.zeros((shots, circuit.num_qubits), dtype=np.uint8)
    seen = set()
    for instruction in circuit.data:
        if instruction.operation.name != "measure":
            continue
        q = circuit.find_bit(instruction.qubits[0]).index
        reg, idx = circuit.find_bit(instruction.clbits[0]).registers[0]
        out[:, q] = arrays[reg.name][:, idx]
        seen.add(q)
    if len(seen) != circuit.num_qubits:
        raise RuntimeError("not every qubit is measured")
    return out


# --------------------------------------------------------------------------------------------
# child processes


def child_sampler(spec: str, sampler: str, shots: int) -> None:
    """One (circuit, sampler) pair: exact peer, then the sampler, in this process."""
    import qsimcells as qs

    circuit = _circuit(spec)
    n = circuit.num_qubits
    record = {"part": "sampler", "circuit": spec, "qubits": n, "sampler": sampler, "shots": shots}
    # warm-up of lazy imports and first-call costs on a tiny run
    qs.samplers.sample_bits(circuit, 16, sampler="exact", rng=1)
    t_exact, exact_bits = _timed(
        lambda: qs.samplers.sample_bits(circuit, shots, sampler="exact", rng=0)
    )
    record["exact_s"] = t_exact
    if sampler == "statevector":
        qs.samplers.sample_bits(_circuit("paper"), 16, sampler="statevector", rng=1)
        t, bits = _timed(
            lambda: qs.samplers.sample_bits(circuit, shots, sampler="statevector", rng=0),
            max_repeats=3,
        )
    elif sampler.startswith("aer:"):
        from qiskit_aer.primitives import SamplerV2

        method = sampler.split(":", 1)[1]
        aer = SamplerV2(seed=0, options={"backend_options": {"method": method}})
        aer.run([_circuit("paper")], shots=16).result()  # warm-up on a small circuit
        t, result = _timed(lambda: aer.run([circuit], shots=shots).result()[0], max_repeats=3)
        bits = _aer_bits(circuit, result)
    else:
        raise ValueError(sampler)
    record["time_s"] = t
    record["ratio"] = t / t_exact
    diff = np.abs(bits.mean(axis=0) - exact_bits.mean(axis=0))
    record["max_abs_mean_diff"] = float(diff.max())
    # two independent means of N Bernoulli draws: sd of the difference <= sqrt(0.5 / N)
    record["tolerance"] = 5 * math.sqrt(0.5 / shots)
    record["agree"] = bool(diff.max() <= record["tolerance"])
    _emit(record)


def child_simulate(total_cells: int, chunk_size: int | None, repeats: int) -> None:
    """One simulate size: time + peak RSS of simulate, then the numpy NB peer, then the exact
    sampler alone on the same shots and chunks."""
    import qsimcells as qs
    from qsimcells.sim.simulate import DEFAULT_CHUNK_SIZE

    chunk = chunk_size or DEFAULT_CHUNK_SIZE
    design = qs.sim.presets.random_network(SIM_GENES, SIM_TYPES, SIM_GENES, rng=0)
    n_types = len(design.cell_types)
    per_type = total_cells // n_types
    qs.sim.simulate(design, 200, rng=1, chunk_size=chunk)  # warm-up: lazy imports, first calls
    gc.collect()
    base_rss = _proc_status("VmRSS")
    hwm_reset = _reset_peak_rss()
    t0 = time.perf_counter()
    adata = qs.sim.simulate(design, per_type, rng=0, chunk_size=chunk, progress=False)
    t_sim = time.perf_counter() - t0
    peak = _peak_rss()  # of the first run only
    X, B = adata.X, adata.layers["binary"]
    x_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    b_bytes = B.data.nbytes + B.indices.nbytes + B.indptr.nbytes

    # peer: the same NB variates drawn gene by gene by numpy
    var = adata.var
    n_obs, n_vars = adata.shape
    k = np.bincount(B.indices, minlength=n_vars).astype(np.int64)
    ungated = (var["housekeeping"] | var["background"]).to_numpy()
    k[ungated] = n_obs
    mu, r = var["mu"].to_numpy(), var["r"].to_numpy()
    p = r / (r + mu)
    genes = np.flatnonzero(k)

    def peer(keep: bool) -> float:
        """numpy's draws; ``keep`` holds them all in memory until the end, as simulate must
        hold its output (without it numpy reuses one gene's freed buffer for the next)."""
        rng = np.random.default_rng(0)
        kept = []
        t0 = time.perf_counter()
        for g in genes:
            draws = rng.negative_binomial(r[g], p[g], size=int(k[g]))
            if keep:
                kept.append(draws)
        seconds = time.perf_counter() - t0
        del kept
        gc.collect()
        return seconds

    t_nb = peer(False)
    t_nb_kept = peer(True)
    # further rounds (simulate, then peer again): best time of each, interleaved so that a
    # slow phase of the machine hits both
    for _ in range(repeats - 1):
        del adata, X, B
        gc.collect()
        t0 = time.perf_counter()
        adata = qs.sim.simulate(design, per_type, rng=0, chunk_size=chunk, progress=False)
        t_sim = min(t_sim, time.perf_counter() - t0)
        X, B = adata.X, adata.layers["binary"]
        t_nb = min(t_nb, peer(False))
        t_nb_kept = min(t_nb_kept, peer(True))

    record = {
        "part": "simulate",
        "total_cells": int(n_obs),
        "cells_per_type": per_type,
        "n_vars": int(n_vars),
        "chunk_size": chunk,
        "sampler": adata.uns["qsimcells"]["sampler"],
        "simulate_s": t_sim,
        "numpy_nb_s": t_nb,
        "ratio": t_sim / t_nb,
        "repeats": repeats,
        "numpy_nb_kept_s": t_nb_kept,
        "ratio_kept": t_sim / t_nb_kept,
        "nb_variates": int(k.sum()),
        "x_nnz": int(X.nnz),
        "binary_nnz": int(B.nnz),
        "x_bytes": int(x_bytes),
        "binary_bytes": int(b_bytes),
        "output_bytes": int(x_bytes + b_bytes),
        "base_rss": base_rss,
        "peak_rss": peak,
        "peak_is_simulate_only": hwm_reset,
    }
    del adata, X, B
    gc.collect()

    # the exact sampler alone, on the same circuit, shots and chunks as simulate
    circuit = design.to_qiskit(measure=True)
    t0 = time.perf_counter()
    for start in range(0, per_type, chunk):
        qs.samplers.sample_bits(circuit, min(chunk, per_type - start), sampler="exact", rng=start)
    record["sampler_s"] = time.perf_counter() - t0
    record["sampler_share"] = record["sampler_s"] / t_sim
    _emit(record)


# --------------------------------------------------------------------------------------------
# parent


def _run_child(args: list[str], timeout: float) -> tuple[list[dict], str | None]:
    """Run this script as a child with ``args``; returns its result records and an error note."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    records: list[dict] = []
    err_lines: list[str] = []

    def read_out() -> None:
        for line in proc.stdout:
            if line.startswith(RESULT_TAG):
                records.append(json.loads(line[len(RESULT_TAG) :]))

    def read_err() -> None:
        for line in proc.stderr:
            err_lines.append(line.rstrip())

    threads = [
        threading.Thread(target=read_out, daemon=True),
        threading.Thread(target=read_err, daemon=True),
    ]
    for th in threads:
        th.start()
    note = None
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # our own child, by its handle
        proc.wait()
        note = f"timed out after {timeout:.0f} s"
    for th in threads:
        th.join(timeout=5)
    if note is None and proc.returncode != 0:
        tail = [line for line in err_lines if line.strip()][-3:]
        note = f"failed (exit {proc.returncode}): " + " | ".join(tail)
    return records, note


def _aer_available() -> bool:
    try:
        import qiskit_aer  # noqa: F401
    except ImportError:
        return False
    return True


def part_samplers(specs: list[str], shots: int, timeout: float, use_aer: bool) -> list[dict]:
    samplers = ["statevector"] + (["aer:automatic", "aer:matrix_product_state"] if use_aer else [])
    rows = []
    for spec in specs:
        n = 10 if spec == "paper" else int(spec.removeprefix("random"))
        for sampler in samplers:
            row = {"circuit": spec, "qubits": n, "sampler": sampler, "shots": shots}
            if sampler == "statevector" and n > STATEVECTOR_MAX_QUBITS:
                row["note"] = (
                    f"skipped: statevector sampler takes at most {STATEVECTOR_MAX_QUBITS} qubits"
                )
            else:
                t0 = time.perf_counter()
                records, note = _run_child(
                    [
                        "--_child",
                        "sampler",
                        "--_spec",
                        spec,
                        "--_sampler",
                        sampler,
                        "--shots",
                        str(shots),
                    ],
                    timeout,
                )
                if records:
                    row.update(records[-1])
                if note:
                    row["note"] = note
                row["wall_s"] = time.perf_counter() - t0
            rows.append(row)
            _print_sampler_row(row)
    return rows


def part_simulate(
    sizes: list[int], timeout: float, chunk_size: int | None, repeats: int
) -> list[dict]:
    rows = []
    for total in sizes:
        args = ["--_child", "simulate", "--_total", str(total), "--repeats", str(repeats)]
        if chunk_size:
            args += ["--chunk-size", str(chunk_size)]
        records, note = _run_child(args, timeout)
        row = {"total_cells": total}
        if records:
            row.update(records[-1])
        if note:
            row["note"] = note
        rows.append(row)
        _print_simulate_row(row)
    return rows


def _sampler_name(s: str) -> str:
    return {
        "statevector": "qsimcells statevector",
        "aer:automatic": "Aer SamplerV2 automatic",
        "aer:matrix_product_state": "Aer SamplerV2 matrix_product_state",
    }.get(s, s)


def _print_sampler_row(r: dict) -> None:
    if "time_s" in r:
        print(
            f"  {r['circuit']:>9} {r['qubits']:>3}q  {_sampler_name(r['sampler']):<36} "
            f"{r['time_s']:9.4f} s   exact {r['exact_s']:8.4f} s   "
            f"ratio {_fmt_ratio(r['ratio']):>8}"
            f"   max|dmean| {r['max_abs_mean_diff']:.4f} (tol {r['tolerance']:.4f}, "
            f"{'agree' if r['agree'] else 'DISAGREE'})",
            flush=True,
        )
    else:
        exact = f"   exact {r['exact_s']:8.4f} s" if "exact_s" in r else ""
        print(
            f"  {r['circuit']:>9} {r['qubits']:>3}q  {_sampler_name(r['sampler']):<36} "
            f"{r.get('note', '')}{exact}",
            flush=True,
        )


def _print_simulate_row(r: dict) -> None:
    if "simulate_s" not in r:
        print(f"  {r['total_cells']:>9,} cells: {r.get('note', 'no result')}", flush=True)
        return
    print(
        f"  {r['total_cells']:>9,} cells x {r['n_vars']} genes: "
        f"simulate {r['simulate_s']:.2f} s, "
        f"numpy NB {r['numpy_nb_s']:.2f} s ({r['nb_variates']:,} variates), "
        f"ratio {r['ratio']:.2f}x (target <= {TARGET}x: "
        f"{'met' if r['ratio'] <= TARGET else 'not met'}); numpy NB kept in memory "
        f"{r['numpy_nb_kept_s']:.2f} s, ratio {r['ratio_kept']:.2f}x "
        f"({'met' if r['ratio_kept'] <= TARGET else 'not met'}); exact sampler "
        f"{r['sampler_s']:.2f} s = {100 * r['sampler_share']:.0f}% of simulate",
        flush=True,
    )
    print(
        f"  {'':>9}        peak RSS {_gib(r['peak_rss'])} (baseline {_gib(r['base_rss'])}, "
        f"+{_gib(r['peak_rss'] - r['base_rss'])}) vs output {_gib(r['output_bytes'])} "
        f"(X {_gib(r['x_bytes'])} + binary {_gib(r['binary_bytes'])}): "
        f"(peak - baseline) / output = {(r['peak_rss'] - r['base_rss']) / r['output_bytes']:.2f}",
        flush=True,
    )


def _markdown(
    machine: dict,
    command: str,
    shots: int,
    sampler_rows: list[dict],
    sim_rows: list[dict],
    quick: bool,
    source: str,
) -> str:
    lines = [
        "# Benchmark: `qs.sim.simulate` and the circuit samplers",
        "",
        "Generated by `benchmarks/simulate.py` (`make bench` runs it); every number below comes "
        "from that run. Each ratio compares two timings taken in the same process.",
        "",
        f"- Command: `{command}`" + (" (quick smoke run)" if quick else ""),
        f"- Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory']} RAM; "
        f"Python {machine['python']}, numpy {machine['numpy']}, scipy {machine['scipy']}, "
        f"qiskit {machine['qiskit']}, qiskit-aer {machine['qiskit_aer']}",
        f"- Date: {machine['date']}",
        f"- Source: {source}",
        "",
        "## Samplers",
        "",
        f"Time to draw {shots:,} shots with `qs.samplers.sample_bits(circuit, shots, sampler=...)`"
        " or Aer's `SamplerV2(...).run([circuit], shots=shots).result()` (the measured circuit as "
        "built by `to_qiskit()`, no transpilation), best of up to 3-5 runs after a warm-up. "
        "Circuits: the paper's design (`romero2025(True)`, 10 qubits) and "
        "`random_network(n, 2, n, rng=0)` (RY per gene + n random CX). Ratio = sampler time / "
        "exact time, both measured in one child process per row. max abs diff = largest "
        "difference of per-qubit means between that sampler's shots and the exact sampler's "
        "(tolerance: 5 standard deviations of the difference of two independent means).",
        "",
        "| circuit | qubits | sampler | time (s) | exact (s) | ratio | max abs diff of means | "
        "agree |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in sampler_rows:
        label = _circuit_label(r["circuit"], r["qubits"])
        if "time_s" in r:
            lines.append(
                f"| {label} | {r['qubits']} | {_sampler_name(r['sampler'])} | "
                f"{_fmt_s(r['time_s'])} | {_fmt_s(r['exact_s'])} | "
                f"{_fmt_ratio(r['ratio'])} | {r['max_abs_mean_diff']:.4f} "
                f"(tol {r['tolerance']:.4f}) | {'yes' if r['agree'] else 'NO'} |"
            )
        else:
            exact = _fmt_s(r.get("exact_s"))
            lines.append(
                f"| {label} | {r['qubits']} | {_sampler_name(r['sampler'])} | "
                f"{r.get('note', '-')} | {exact} | - | - | - |"
            )
    lines += [
        "",
        "## `qs.sim.simulate`",
        "",
        f"Design: `random_network({SIM_GENES}, {SIM_TYPES}, {SIM_GENES}, rng=0)` "
        f"({SIM_GENES} circuit genes in {SIM_TYPES} cell types + 50 housekeeping genes), exact "
        "sampler, default `chunk_size`, no batches or library-size effects; `n_cells` per type = "
        "total / 2. Peer: numpy drawing the same negative-binomial variates, "
        "`rng.negative_binomial(r_g, p_g, size=k_g)` gene by gene, with `k_g` the ON entries of "
        "gene g in the result (`n_obs` for each housekeeping gene), once discarding each gene's "
        "draws (numpy then reuses the freed buffer) and once keeping all of them in memory, as "
        "simulate keeps its output (on this VM the first write to fresh memory is slow, so the "
        "two differ). Peak RSS is the high-water "
        "mark of the child process during the first `simulate` call (reset just before it); "
        "times are the best of `--repeats` runs of each, interleaved; output = "
        "`X` + `layers['binary']` (data + indices + indptr). Exact-sampler share: "
        "`sample_bits` alone on the same circuit, shots and chunks.",
        "",
        "| cells (total) | simulate (s) | numpy NB (s) | ratio | numpy NB kept (s) | ratio | "
        "NB variates | exact sampler share | peak RSS (baseline) | output size | "
        "(peak - baseline) / output |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    met, met_kept = [], []
    for r in sim_rows:
        if "simulate_s" not in r:
            lines.append(
                f"| {r['total_cells']:,} | {r.get('note', 'no result')} | - | - | - | "
                "- | - | - | - | - | - |"
            )
            continue
        met.append(r["ratio"] <= TARGET)
        met_kept.append(r["ratio_kept"] <= TARGET)
        lines.append(
            f"| {r['total_cells']:,} | {_fmt_s(r['simulate_s'])} | {_fmt_s(r['numpy_nb_s'])} | "
            f"{_fmt_ratio(r['ratio'])} | {_fmt_s(r['numpy_nb_kept_s'])} | "
            f"{_fmt_ratio(r['ratio_kept'])} | {r['nb_variates']:,} | "
            f"{100 * r['sampler_share']:.0f}% ({_fmt_s(r['sampler_s'])} s) | "
            f"{_gib(r['peak_rss'])} ({_gib(r['base_rss'])}) | {_gib(r['output_bytes'])} | "
            f"{(r['peak_rss'] - r['base_rss']) / r['output_bytes']:.2f} |"
        )

    def verdict(flags: list[bool]) -> str:
        return (
            "no result"
            if not flags
            else "met"
            if all(flags)
            else "not met"
            if not any(flags)
            else "met for some sizes only"
        )

    lines += [
        "",
        f"**Target: simulate time <= {TARGET}x the numpy NB draws — against draws "
        f"kept in memory: {verdict(met_kept)}; against draws discarded as they are made: "
        f"{verdict(met)}.**",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument(
        "--shots",
        type=int,
        default=None,
        help="shots per sampler run (default 100,000; 10,000 with --quick)",
    )
    parser.add_argument(
        "--qubits",
        type=int,
        nargs="*",
        default=None,
        help="sizes of the random circuits (default 20 24 28; 20 with --quick)",
    )
    parser.add_argument(
        "--cells",
        type=int,
        nargs="*",
        default=None,
        help="total cells for simulate (default 200000 1000000; 20000 100000 with --quick)",
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="simulate's chunk_size (default: simulate's default)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="simulate runs (and numpy peer runs) per size; best time kept",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per child run (default 240; 60 with --quick)",
    )
    parser.add_argument("--no-aer", action="store_true", help="leave Qiskit Aer out")
    parser.add_argument("--skip-samplers", action="store_true", help="leave part 1 out")
    parser.add_argument("--skip-simulate", action="store_true", help="leave part 2 out")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"markdown output (default {DEFAULT_OUT.relative_to(REPO)}; none with --quick)",
    )
    parser.add_argument("--_child", choices=["sampler", "simulate"], help=argparse.SUPPRESS)
    parser.add_argument("--_spec", help=argparse.SUPPRESS)
    parser.add_argument("--_sampler", help=argparse.SUPPRESS)
    parser.add_argument("--_total", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    shots = args.shots or (10_000 if args.quick else 100_000)
    if args._child == "sampler":
        child_sampler(args._spec, args._sampler, shots)
        return 0
    if args._child == "simulate":
        child_simulate(args._total, args.chunk_size, args.repeats)
        return 0

    qubits = args.qubits if args.qubits is not None else ([20] if args.quick else [20, 24, 28])
    cells = (
        args.cells
        if args.cells is not None
        else ([20_000, 100_000] if args.quick else [200_000, 1_000_000])
    )
    timeout = args.timeout or (60.0 if args.quick else 240.0)
    use_aer = not args.no_aer and _aer_available()
    machine = _machine()
    command = _command_line(__file__, argv)
    print(f"qsimcells simulate benchmark — {machine['date']}")
    print(
        f"machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory']} RAM, "
        f"numpy {machine['numpy']}, qiskit {machine['qiskit']}, qiskit-aer "
        f"{machine['qiskit_aer']}"
    )
    print(f"command: {command}")
    source = _source_state()
    print(f"source: {source}")
    t_start = time.perf_counter()

    sampler_rows: list[dict] = []
    if not args.skip_samplers:
        print(
            f"\n[1] samplers: {shots:,} shots; ratio = time / exact time (same process)"
            + ("" if use_aer else "; qiskit_aer not importable: Aer rows left out")
        )
        specs = ["paper"] + [f"random{n}" for n in qubits]
        sampler_rows = part_samplers(specs, shots, timeout, use_aer)
        bad = [r for r in sampler_rows if "agree" in r and not r["agree"]]
        print(
            "  marginals: "
            + (
                "all samplers agree with exact within tolerance"
                if not bad
                else f"{len(bad)} row(s) DISAGREE with exact"
            )
        )

    sim_rows: list[dict] = []
    if not args.skip_simulate:
        print(
            f"\n[2] simulate: {SIM_GENES} circuit genes ({SIM_TYPES} types) + 50 HKG; ratio = "
            f"simulate / numpy NB draws (same process); target <= {TARGET}x"
        )
        sim_rows = part_simulate(
            cells,
            timeout if args.quick else max(timeout, 600.0),
            args.chunk_size,
            max(1, args.repeats),
        )

    print(f"\ntotal benchmark time {time.perf_counter() - t_start:.0f} s")
    source_after = _source_state()
    if source_after != source:
        print(
            f"WARNING: the package source changed during the run (now: {source_after}); "
            "the numbers mix versions — run again"
        )
        source = f"{source} at the start, {source_after} at the end (changed during the run)"
    out = args.out if args.out is not None else (None if args.quick else DEFAULT_OUT)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            _markdown(machine, command, shots, sampler_rows, sim_rows, args.quick, source)
        )
        print(f"wrote {out}")
    failed = any("agree" in r and not r["agree"] for r in sampler_rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
