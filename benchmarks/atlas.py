"""Benchmark of the out-of-core path: ``qs.sim.simulate_to_zarr`` against the in-memory
``qs.sim.simulate``, measured in the same run (issue 15).

Design: the 1,000-gene benchmark design of ``benchmarks/simulate.py``
(``random_network(1000, 2, 1000, rng=0)`` + 50 housekeeping genes), exact sampler, default
``chunk_size``. "Cells" are cells in total (two per niche). Every measurement runs in its own child
process so that peak memory is its own: the peak is the largest sum of the resident memory of the
child and all its descendants (dask workers included), sampled every 0.1 s, and never below the
child's own high-water mark (``VmHWM``).

Rows:

1. ``simulate`` in memory at ``--memory-cells`` (the peer of every ratio);
2. ``simulate_to_zarr`` on local threads at ``--cells`` (the atlas run; target: peak
   RSS < 2 GiB, throughput >= 0.8x the in-memory path); the store is checked afterwards by
   recomputing three chunks and comparing them with what ``read_backed`` reads, bit for bit;
3. ``simulate_to_zarr`` on a ``LocalCluster`` of 1 and of 2 single-threaded worker processes at
   ``--memory-cells`` (the scaling ratio).

Usage: ``.venv/bin/python benchmarks/atlas.py`` (full run, also ``make bench``; writes
``docs/benchmarks/atlas.md``), ``--quick`` (small sizes, prints only unless ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import REPO, command as command_line, gib, machine, report, source_state

DEFAULT_OUT = REPO / "docs" / "benchmarks" / "atlas.md"
RESULT_TAG = "@@RESULT "
GENES, TYPES = 1000, 2
RSS_TARGET = 2 * 2**30
RATIO_TARGET = 0.8


def _design():
    import qsimcells as qs

    return qs.sim.presets.random_network(GENES, TYPES, GENES, rng=0)


class _PeakTreeRSS:
    """Largest summed RSS of this process and its descendants, sampled in a thread."""

    def __init__(self, interval: float = 0.1) -> None:
        import psutil

        self._me = psutil.Process()
        self.peak = 0
        self.samples: list[int] = []  # summed RSS, every interval
        self.child_peak = 0  # the largest single descendant (a dask worker)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _sample(self) -> int:
        import psutil

        total = self._me.memory_info().rss
        for proc in self._me.children(recursive=True):
            try:
                rss = proc.memory_info().rss
            except psutil.Error:
                continue
            total += rss
            self.child_peak = max(self.child_peak, rss)
        return total

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            self.samples.append(self._sample())
            self.peak = max(self.peak, self.samples[-1])
            self._stop.wait(interval)

    def __enter__(self) -> _PeakTreeRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _own_hwm())


def _own_hwm() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _store_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _emit(record: dict) -> None:
    print(RESULT_TAG + json.dumps(record), flush=True)


# --------------------------------------------------------------------------------------------
# children


def child_memory(cells: int) -> None:
    import qsimcells as qs

    design = _design()
    qs.sim.simulate(design, 200, rng=1)  # warm-up: lazy imports, first calls
    with _PeakTreeRSS() as rss:
        t0 = time.perf_counter()
        adata = qs.sim.simulate(design, cells // TYPES, rng=0, progress=False)
        seconds = time.perf_counter() - t0
    _emit(
        {
            "kind": "memory",
            "cells": adata.n_obs,
            "seconds": seconds,
            "peak_rss": rss.peak,
            "nnz": int(adata.X.nnz),
        }
    )


def child_zarr(cells: int, store: str, workers: int) -> None:
    import qsimcells as qs

    design = _design()
    client = cluster = None
    if workers:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    warm = Path(store).with_name("warm-up.zarr")
    qs.sim.simulate_to_zarr(design, 200, warm, rng=1, progress=False)  # warm-up, workers too
    shutil.rmtree(warm)
    with _PeakTreeRSS() as rss:
        t0 = time.perf_counter()
        qs.sim.simulate_to_zarr(design, cells // TYPES, store, rng=0, progress=False)
        seconds = time.perf_counter() - t0
    record = {
        "kind": "zarr",
        "workers": workers,
        "cells": cells // TYPES * TYPES,
        "seconds": seconds,
        "peak_rss": rss.peak,
        "worker_peak_rss": rss.child_peak,
        # flat memory: the peak of the run's first and of its last quarter
        "first_quarter_rss": max(rss.samples[: max(1, len(rss.samples) // 4)]),
        "last_quarter_rss": max(rss.samples[-max(1, len(rss.samples) // 4) :]),
        "store_bytes": _store_bytes(Path(store)),
    }
    if client is not None:
        client.close()
        cluster.close()
    record["check"] = _check_store(design, cells // TYPES, store)
    _emit(record)


def _check_store(design, n_cells: int, store: str) -> str:
    """Recompute the first, a middle and the last chunk; compare with the store, bit for bit."""
    import numpy as np

    import qsimcells as qs
    from qsimcells.sim.simulate import Simulation

    run = Simulation(design, n_cells, rng=0)
    backed = qs.sim.read_backed(store)
    assert backed.shape == (n_cells * run.n_types, run.layout.n_vars)
    for chunk in sorted({0, run.n_chunks // 2, run.n_chunks - 1}):
        start, stop = (i * run.n_types for i in run.niches(chunk))
        X, binary = run.chunk(chunk)
        for got, want in ((backed.X[start:stop], X), (backed.layers["binary"][start:stop], binary)):
            for field in ("indptr", "indices", "data"):
                np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
    return f"chunks {sorted({0, run.n_chunks // 2, run.n_chunks - 1})} of {run.n_chunks} equal"


# --------------------------------------------------------------------------------------------
# parent


def _run_child(args: list[str], timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    tail = " | ".join([ln for ln in proc.stderr.splitlines() if ln.strip()][-3:])
    return {"error": f"failed (exit {proc.returncode}): {tail}"}


def _rate(r: dict) -> float | None:
    return r["cells"] / r["seconds"] if "seconds" in r else None


def _row(label: str, r: dict, peer: float | None) -> str:
    if "error" in r:
        return f"| {label} | - | - | - | - | - | {r['error']} |"
    rate = _rate(r)
    ratio = f"{rate / peer:.2f}x" if peer else "-"
    store = gib(r["store_bytes"]) if "store_bytes" in r else "-"
    return (
        f"| {label} | {r['cells']:,} | {r['seconds']:.1f} | {rate:,.0f} | {ratio} | "
        f"{gib(r['peak_rss'])} | {store} |"
    )


def _projection(atlas: dict, per_worker_rss: int | None) -> list[str]:
    """What 10^8 cells need, scaled from the measured atlas run."""
    from qsimcells.sim.simulate import DEFAULT_CHUNK_SIZE

    if "error" in atlas:
        return []
    cells = 10**8
    per_cell = atlas["store_bytes"] / atlas["cells"]
    chunks = -(-cells // TYPES // DEFAULT_CHUNK_SIZE)
    wall_here = cells / _rate(atlas)  # this machine: 2 cores, local threads, one writer
    core_hours = wall_here * 2 / 3600
    lines = [
        "## 10^8 cells on a cluster (on paper, scaled from the measurements above)",
        "",
        f"- Store: {per_cell:.0f} bytes per cell on disk here, so about "
        f"{gib(per_cell * cells)} for 10^8 cells of this design; {chunks:,} chunks of "
        f"{DEFAULT_CHUNK_SIZE:,} niches ({DEFAULT_CHUNK_SIZE * TYPES:,} cells) each.",
        f"- Compute: at the atlas row's rate, 10^8 cells take {wall_here / 60:.0f} minutes on "
        f"these 2 cores ({core_hours:.1f} core-hours, simulation and writing together).",
    ]
    if per_worker_rss:
        lines.append(
            f"- Memory per worker: {gib(per_worker_rss)} measured for a "
            "single-threaded worker process (one chunk in flight plus the plan: the "
            "sampler and the design), measured in the 1,000,000-cell run; each worker holds its "
            "chunks only until the writer has them."
        )
    lines += [
        "- The writer: one process appends the chunks in order (anndata's writers, one zarr "
        "store), holding `n_ahead + 1` chunks; it compresses and writes every byte, so at "
        "10^8 cells its own rate bounds the run. Past that point, split the atlas into several "
        "stores (one `simulate_to_zarr` per seed range or per batch of niches), each written "
        "by its own client, and read them together with `anndata.experimental.AnnCollection` or "
        "`anndata.concat` on lazy stores.",
        "- The store path must be reachable from the writing (client) process only; the "
        "workers need no access to it. The design and the sampler travel to each worker once "
        "(`client.scatter(..., broadcast=True)`), each task carries only its chunk's rows of the "
        "cell-level effects.",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=10_000_000)
    parser.add_argument("--memory-cells", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="small sizes; prints only")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "memory":
            child_memory(int(rest[0]))
        else:
            child_zarr(int(rest[0]), rest[1], int(rest[2]))
        return 0
    if args.quick:
        args.cells, args.memory_cells = 200_000, 100_000
    out = args.out if args.out is not None else (None if args.quick else DEFAULT_OUT)

    info, state = machine(("numpy", "anndata", "zarr", "dask", "distributed")), source_state()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(
        prefix="qsimcells-atlas-", dir=REPO / "build" if (REPO / "build").is_dir() else None
    ) as tmp:
        plan = [
            ("memory", ["memory", str(args.memory_cells)]),
            ("atlas", ["zarr", str(args.cells), f"{tmp}/atlas.zarr", "0"]),
            ("threads", ["zarr", str(args.memory_cells), f"{tmp}/threads.zarr", "0"]),
            ("workers1", ["zarr", str(args.memory_cells), f"{tmp}/w1.zarr", "1"]),
            ("workers2", ["zarr", str(args.memory_cells), f"{tmp}/w2.zarr", "2"]),
        ]
        for name, child in plan:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results[name] = _run_child(["--child", *child], args.timeout)
            print(f"  {results[name]}", file=sys.stderr, flush=True)
            for store in Path(tmp).glob("*.zarr"):
                shutil.rmtree(store)

    peer = _rate(results["memory"])
    atlas = results["atlas"]
    w1, w2 = results["workers1"], results["workers2"]
    scaling = f"{_rate(w2) / _rate(w1):.2f}x" if "seconds" in w1 and "seconds" in w2 else "-"
    rss_ok = "error" not in atlas and atlas["peak_rss"] < RSS_TARGET
    ratio = _rate(atlas) / peer if peer and "seconds" in atlas else None
    lines = [
        "# Out-of-core simulation: `simulate_to_zarr` vs the in-memory `simulate`",
        "",
        f"Command: `{command_line(__file__, argv if argv is not None else sys.argv[1:])}`. "
        f"Source: {state}.",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "",
        f"Design: `random_network({GENES}, {TYPES}, {GENES}, rng=0)` ({GENES} circuit genes in "
        f"{TYPES} cell types + 50 housekeeping genes), exact sampler, default `chunk_size`. "
        "Cells in total (two per niche). Each row runs in its own process; peak RSS is the "
        "largest summed resident memory of that process and its descendants (dask workers "
        "included), sampled every 0.1 s. Ratio: cells/s against the in-memory row. The atlas "
        "store is checked after the run: three chunks recomputed and compared with the store "
        "bit for bit.",
        "",
        "| run | cells | seconds | cells/s | ratio | peak RSS | store |",
        "|---|---:|---:|---:|---:|---:|---:|",
        _row("`simulate` in memory (peer)", results["memory"], None),
        _row("`simulate_to_zarr`, local threads (atlas)", atlas, peer),
        _row("`simulate_to_zarr`, local threads", results["threads"], peer),
        _row("`simulate_to_zarr`, LocalCluster 1 worker", w1, peer),
        _row("`simulate_to_zarr`, LocalCluster 2 workers", w2, peer),
        "",
        f"Atlas store check: {atlas.get('check', atlas.get('error'))}.",
        "",
        f"- **Peak RSS of the atlas run < 2 GiB: {'met' if rss_ok else 'not met'}** "
        f"({gib(atlas['peak_rss']) if 'peak_rss' in atlas else '-'}; peak of the run's first "
        f"quarter {gib(atlas.get('first_quarter_rss', 0))}, of its last quarter "
        f"{gib(atlas.get('last_quarter_rss', 0))}: memory does not grow with the cells written).",
        f"- **Throughput >= {RATIO_TARGET}x the in-memory path: "
        f"{'met' if ratio and ratio >= RATIO_TARGET else 'not met'}** "
        f"({ratio:.2f}x)."
        if ratio
        else "- Throughput: -",
        f"- Scaling, 2 workers / 1 worker: {scaling}. The cluster rows pay what the "
        "local-thread rows do not: every chunk travels from its worker process to the writing "
        "client by pickle, and on 2 cores the client shares the cores with the workers.",
        "",
    ]
    lines += _projection(atlas, w2.get("worker_peak_rss"))
    report("\n".join(lines), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
