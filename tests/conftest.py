"""Shared fixtures and statistical helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def test_plugins_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder with the test plugins installed by pip (``make test`` prepares it)."""
    ready = os.environ.get("QSIMCELLS_TEST_PLUGINS")
    if ready and (Path(ready) / ".stamp").exists():
        return Path(ready)
    target = tmp_path_factory.mktemp("test-plugins")
    sources = sorted(str(p) for p in (ROOT / "tests" / "plugins").iterdir() if p.is_dir())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            *sources,
        ],
        check=True,
    )
    return target


@pytest.fixture
def scvi_quiet_seeded():
    """One torch thread, scvi-tools seed 0, warnings off, for the small scvi-tools models: on a
    busy 2-core machine torch's thread pool oversubscribes the cores (10x slower training), and
    the statistical bounds of those tests assume one thread."""
    import warnings

    import scvi
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    scvi.settings.seed = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.set_num_threads(threads)


def run_python(
    code: str, *, extra_path: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (optionally with plugins on its path)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("QSIMCELLS_DISABLE")}
    if extra_path is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(extra_path), *filter(None, [full_env.get("PYTHONPATH")])]
        )
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300
    )
