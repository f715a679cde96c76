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
    result = run_python(code, extra_path=test_plugins_path,
                        env={"QSIMCELLS_DISABLE_PLUGINS": "broken-import,broken-hook"})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["distribution"] == "qsimcells-example"
    probs = boltzmann_probabilities(np.array(out["h"]), np.array(out["W"]))
    assert_distribution_matches(np.array(out["z"], np.uint8), probs)
    assert_distribution_matches(np.array(out["again"], np.uint8), probs)  # warm start
    # staying has probability ~0.95 from either mode (sd ~0.005 at 2,000 chains)
    assert min(out["stay"]) > 0.9


def test_guide_includes_the_real_example_files() -> None:
    guide = (ROOT / "docs" / "write_a_plugin.md").read_text()
    included = re.findall(r"```\{literalinclude\} (\S+)", guide)
    assert len(included) >= 4
    for path in included:
        assert (ROOT / "docs" / path).resolve().is_file(), path
    assert "qsimcells-example/pyproject.toml" in " ".join(included)
