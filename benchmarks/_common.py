"""Helpers shared by the benchmark scripts: timing, machine description, source state."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

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
            versions[name] = importlib.import_module(name).__version__
        except ImportError:
            versions[name] = "not installed"
    return {"cores": cores, "cpu": cpu, "memory": gib(mem) if mem else "?",
            "python": platform.python_version(), **versions,
            "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}


def source_state() -> str:
    """The git commit of the checkout plus a fingerprint of the package source as it is on disk
    (others may edit it while a benchmark runs; the fingerprint is taken before and after)."""
    digest = hashlib.sha1()
    for path in sorted((REPO / "src").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode())
        digest.update(path.read_bytes())
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return (f"commit {commit or '?'}" + (" + uncommitted changes in src/" if dirty else "")
            + f", src fingerprint {digest.hexdigest()[:10]}")


def command(script: str, argv: list[str]) -> str:
    """The command line that ran ``script``, with paths relative to the repository."""
    def rel(p: str) -> str:
        return os.path.relpath(p, REPO) if Path(p).is_relative_to(REPO) else p

    return " ".join([rel(sys.executable), rel(str(Path(script).resolve())), *argv])
