"""The README's Python blocks run (issue 27): the quick start exactly as pasted, in a fresh
interpreter, in an empty folder; the atlas-sized blocks with their cell counts scaled down
(the only change, listed in SCALED)."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT

#: cell counts of the out-of-core examples -> the sizes the test runs (code otherwise unchanged)
SCALED = {"1_000_000": "20_000", "5_000_000": "20_000"}


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_the_readme_python_blocks_run(tmp_path) -> None:
    blocks = _blocks()
    assert len(blocks) >= 3 and "import qsimcells as qs" in blocks[0]
    assert not any(size in blocks[0] for size in SCALED)  # the quick start runs as pasted
    script = []
    for i, block in enumerate(blocks, 1):
        for size, small in SCALED.items():
            block = block.replace(size, small)
        script.append(f"exec(compile({block!r}, 'README.md python block {i}', 'exec'))")
    result = subprocess.run(
        [sys.executable, "-c", "\n".join(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "fig2.png").stat().st_size > 1000  # the quick start's figures
    assert (tmp_path / "fig4.png").stat().st_size > 1000
    assert (tmp_path / "atlas.zarr").is_dir()
