"""The plugin guide's example package (tests/plugins/qsimcells-example), installed by pip and
found through its entry point, works as the guide says."""

from __future__ import annotations

import json
import re

import numpy as np

from conftest import ROOT, run_python
from qsimcells.samplers import boltzmann_probabilities
from qsimcells.testing import assert_distribution_matches


def test_example_ising_sampler_is_discovered_and_samples_boltzmann(test_plugins_path) -> None:
    code = """
import json
import numpy as np
import qsimcells as qs
table = qs.plugins.available("ising_sampler").set_index("name")
rng = np.random.default_rng(0)
W = np.triu(rng.normal(0, 0.7, (6, 6)), 1)
h, W = rng.normal(0, 1, 6), W + W.T
z = qs.samplers.sample_ising(h, W, 8000, sampler="metropolis", rng=1)
again = qs.samplers.sample_ising(h, W, 8000, sampler="metropolis", rng=1, initial_states=z,
                                 num_steps=50)
# a barrier that 10 steps cannot cross: the chains must stay in the mode they were given
from qsimcells.testing import two_mode_ising
stay = [float((qs.samplers.sample_ising(*two_mode_ising(), 2000, sampler="metropolis", rng=2,
                                        initial_states=np.full((2000, 10), v, np.uint8),
                                        num_steps=10) == v).all(1).mean()) for v in (0, 1)]
print(json.dumps({"distribution": table.loc["metropolis", "distribution"],
                  "h": h.tolist(), "W": W.tolist(), "z": z.tolist(), "again": again.tolist(),
                  "stay": stay}))
"""
    result = run_python(
        code,
        extra_path=test_plugins_path,
        env={"QSIMCELLS_DISABLE_PLUGINS": "broken-import,broken-hook"},
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["distribution"] == "qsimcells-example"
    probs = boltzmann_probabilities(np.array(out["h"]), np.array(out["W"]))
    assert_distribution_matches(np.array(out["z"], np.uint8), probs)
    assert_distribution_matches(np.array(out["again"], np.uint8), probs)  # warm start
    # staying has probability ~0.95 from either mode (sd ~0.005 at 2,000 chains)
    assert min(out["stay"]) > 0.9


def test_guide_shows_the_real_example_files_inline() -> None:
    """Each code block marked with a file is that file, byte for byte (the guide shows the
    code inline, so it reads on a forge, and cannot drift from the package that is tested)."""
    guide = (ROOT / "docs" / "write_a_plugin.md").read_text()
    shown = re.findall(
        r"<!-- the file (\S+), checked by tests/test_plugin_guide.py -->\n"
        r"```\w+\n(.*?)\n```",
        guide,
        flags=re.S,
    )
    assert [path for path, _ in shown] == [
        "tests/plugins/qsimcells-example/pyproject.toml",
        "tests/plugins/qsimcells-example/src/qsimcells_example/plugin.py",
        "tests/plugins/qsimcells-example/src/qsimcells_example/sampler.py",
        "tests/plugins/qsimcells-example/src/qsimcells_example/ising.py",
    ]
    for path, code in shown:
        assert code == (ROOT / path).read_text().rstrip("\n"), path
    assert "literalinclude" not in guide
