"""Helpers shared by the benchmark scripts: timing, machine description, source state."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def timed(fn, *, min_time: float = 0.5, max_repeats: int = 5):
    """Run ``fn`` once; when it is fast, repeat it (up to ``max_repeats`` runs in all or until
    ``min_time`` seconds were spent) and keep the best time. Returns (best seconds, last result)."""
    t0 = time.perf_counter()
    result = fn()
    best = time.perf_counter() - t0
    spent, runs = best, 1
    while spent < min_time and runs < max_repeats:
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        best, spent, runs = min(best, dt), spent + dt, runs + 1
    return best, result


def best_of(fn, repeats: int):
    """Run ``fn`` ``repeats`` times; returns (best seconds, last result)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def report(text: str, out: Path | None) -> None:
    """Print a benchmark's markdown report and write it to ``out`` (when given)."""
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


def _markers(key: str) -> tuple[str, str]:
    return f"<!-- begin {key}: written by benchmarks/{key}.py -->", f"<!-- end {key} -->"


def section(page: Path, key: str) -> str:
    """The section ``key`` of ``page`` (markers included) that :func:`splice_section` wrote,
    or "" when there is none; a script that regenerates ``page`` keeps it this way."""
    begin, end = _markers(key)
    text = page.read_text() if page.exists() else ""
    if begin not in text or end not in text:
        return ""
    return text[text.index(begin) : text.index(end) + len(end)]


def splice_section(page: Path, key: str, body: str) -> None:
    """Write ``body`` into ``page`` as its section ``key``: replace the section another run
    wrote, or append it. Lets a second benchmark report on a page a first one generates."""
    begin, end = _markers(key)
    text = page.read_text() if page.exists() else ""
    block = f"{begin}\n{body.strip()}\n{end}"
    old = section(page, key)
    text = text.replace(old, block) if old else text.rstrip("\n") + "\n\n" + block + "\n"
    page.write_text(text)


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def machine(packages: tuple[str, ...] = ("numpy", "scipy", "qiskit", "qiskit_aer")) -> dict:
    """Cores, CPU, memory, date and the versions of ``packages`` (\"not installed\" if absent)."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as fh:
            mem = int(fh.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = {}
    for name in packages:
        try:
            module = importlib.import_module(name)
        except ImportError:
            versions[name] = "not installed"
            continue
        try:  # a package without __version__ (scdesigner) still has its distribution's
            versions[name] = getattr(module, "__version__", None) or importlib.metadata.version(
                name
            )
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "?"
    return {
        "cores": cores,
        "cpu": cpu,
        "memory": gib(mem) if mem else "?",
        "python": platform.python_version(),
        **versions,
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }


def source_state() -> str:
    """The git commit of the checkout plus a fingerprint of the package source as it is on disk
    (others may edit it while a benchmark runs; the fingerprint is taken before and after)."""
    digest = hashlib.sha1()
    for path in sorted((REPO / "src").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode())
        digest.update(path.read_bytes())
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return (
        f"commit {commit or '?'}"
        + (" + uncommitted changes in src/" if dirty else "")
        + f", src fingerprint {digest.hexdigest()[:10]}"
    )


def command(script: str, argv: list[str]) -> str:
    """The command line that ran ``script``, with paths relative to the repository."""

    def rel(p: str) -> str:
        return os.path.relpath(p, REPO) if Path(p).is_relative_to(REPO) else p

    return " ".join([rel(sys.executable), rel(str(Path(script).resolve())), *argv])


#: the cell-type column of scanpy's pbmc68k_reduced
PBMC_LABEL = "bulk_labels"


def _dense(X) -> np.ndarray:
    return np.asarray(X.toarray() if hasattr(X, "toarray") else X)


def load_pbmc() -> tuple:
    """pbmc68k_reduced with integer counts rebuilt from ``.raw`` and ``obs["n_counts"]``."""
    import anndata as ad
    import scanpy as sc

    src = sc.datasets.pbmc68k_reduced()
    raw = _dense(src.raw.X).astype(np.float64)
    values = np.expm1(raw) * src.obs["n_counts"].to_numpy(np.float64)[:, None] / 1e4
    counts = np.round(values)
    off = np.abs(values - counts)
    info = {
        "max_off": float(off.max()),
        "mean_off_nonzero": float(off[counts > 0].mean()),
        "share_of_n_counts": float(np.median(counts.sum(1) / src.obs["n_counts"].to_numpy())),
        "nonzero": float((counts > 0).mean()),
    }
    if info["max_off"] > 0.25:
        raise RuntimeError(
            f"pbmc68k_reduced: rebuilt counts are not whole numbers "
            f"(largest distance {info['max_off']:.3f})"
        )
    adata = ad.AnnData(
        counts.astype(np.float32), obs=src.obs[[PBMC_LABEL]].copy(), var=src.raw.var[[]].copy()
    )
    adata.obs_names = src.obs_names
    return adata, info
