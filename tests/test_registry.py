"""The pluggy registry: builtins, entry points, broken and conflicting plugins."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from conftest import run_python
from qiskit import QuantumCircuit

import qsimcells as qs
from qsimcells.plugins import CircuitSamplerSpec, GeneratorSpec, PluginError, PluginRegistry, hookimpl


def _plugin(name: str, specs: list) -> types.SimpleNamespace:
    @hookimpl
    def qsimcells_circuit_samplers():
        return specs

    return types.SimpleNamespace(__name__=name, qsimcells_circuit_samplers=qsimcells_circuit_samplers)


def test_available_lists_builtins_first_with_capabilities() -> None:
    table = PluginRegistry(load_entry_points=False).table()
    assert list(table.columns) == ["name", "kind", "distribution", "version", "capabilities",
                                   "description"]
    samplers = table[table.kind == "circuit_sampler"]
    assert list(samplers.name[:2]) == ["exact", "statevector"]
    assert set(samplers.distribution[:2]) == {"qsimcells"}
    assert samplers.iloc[1].capabilities["max_qubits"] == 24
    generators = table[table.kind == "generator"]
    assert {"qsimcells", "independent", "qbmvae"} <= set(generators.name)
    with pytest.raises(ValueError, match="kind: 'nope'.*circuit_sampler"):
        qs.plugins.available("nope")


def test_duplicate_names_name_both_distributions() -> None:
    dup = _plugin("dup", [CircuitSamplerSpec("exact", factory="x.y:Z")])
    with pytest.raises(PluginError, match=r"'exact' is provided twice.*'qsimcells'.*'acme-q'"):
        PluginRegistry(load_entry_points=False, extra_plugins=[(dup, "acme-q", "1.0")])


def test_hook_that_raises_is_isolated_with_a_warning() -> None:
    class Bad:
        __name__ = "bad"

        @hookimpl
        def qsimcells_circuit_samplers(self):
            raise RuntimeError("boom")

    good = _plugin("good", [CircuitSamplerSpec("good-one", factory="x.y:Z")])
    with pytest.warns(RuntimeWarning, match=r"'bad-dist'.*boom"):
        reg = PluginRegistry(load_entry_points=False,
                             extra_plugins=[(Bad(), "bad-dist", "0"), (good, "good-dist", "1")])
    assert "good-one" in reg.names("circuit_sampler")
    assert "exact" in reg.names("circuit_sampler")


def test_wrong_return_type_is_isolated() -> None:
    wrong = _plugin("wrong", [GeneratorSpec("g", factory="x.y:Z")])  # a generator from the sampler hook
    with pytest.warns(RuntimeWarning, match="expected CircuitSamplerSpec"):
        reg = PluginRegistry(load_entry_points=False, extra_plugins=[(wrong, "w", "0")])
    assert "g" not in reg.names("circuit_sampler")


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="name: 'Bad Name'"):
        CircuitSamplerSpec("Bad Name", factory="a.b:C")
    with pytest.raises(ValueError, match="factory of circuit_sampler 'x'"):
        CircuitSamplerSpec("x", factory="no_colon")


def test_unknown_name_lists_available() -> None:
    reg = PluginRegistry(load_entry_points=False)
    with pytest.raises(PluginError, match=r"unknown generator 'nope'; available: \['independent', 'qbmvae', 'qsimcells', 'spiqgan'\]"):
        reg.get("generator", "nope")


def test_installed_plugin_is_discovered_and_broken_ones_are_isolated(test_plugins_path) -> None:
    code = """
import json, sys, warnings
import numpy as np
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import qsimcells as qs
    table = qs.plugins.available()
heavy = [m for m in ("qsimcells_example.sampler", "qiskit", "torch") if m in sys.modules]
from qiskit import QuantumCircuit
qc = QuantumCircuit(3); qc.ry(1.0, 0); qc.cx(0, 1); qc.h(2); qc.cx(1, 2)
bits = qs.samplers.sample_bits(qc, 20000, sampler="numpy-dense", rng=0)
print(json.dumps({
    "rows": table[["name", "distribution"]].values.tolist(),
    "warnings": [str(w.message) for w in caught],
    "heavy_after_listing": heavy,
    "means": bits.mean(0).tolist(),
}))
"""
    result = run_python(code, extra_path=test_plugins_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert ["numpy-dense", "qsimcells-example"] in out["rows"]
    assert out["heavy_after_listing"] == []  # listing imports no plugin code and no qiskit
    messages = " ".join(out["warnings"])
    assert "'broken-import' from distribution 'qsimcells-broken'" in messages
    assert "broken-hook' from distribution 'qsimcells-broken'" in messages
    # the example plugin's dense statevector agrees with the exact marginals
    from qsimcells.samplers.statevector import StatevectorSampler

    qc = QuantumCircuit(3)
    qc.ry(1.0, 0)
    qc.cx(0, 1)
    qc.h(2)
    qc.cx(1, 2)
    probs = StatevectorSampler().probabilities(qc)
    index = np.arange(8)
    marginals = [probs[(index >> q) & 1 == 1].sum() for q in range(3)]
    assert np.allclose(out["means"], marginals, atol=5 * 0.5 / np.sqrt(20000))


def test_environment_variable_disables_entry_points(test_plugins_path) -> None:
    code = """
import json, warnings
warnings.simplefilter("error")
import qsimcells as qs
print(json.dumps(sorted(qs.plugins.available("circuit_sampler").name)))
"""
    off = run_python(code, extra_path=test_plugins_path, env={"QSIMCELLS_DISABLE_PLUGINS": "1"})
    assert off.returncode == 0, off.stderr
    assert json.loads(off.stdout) == ["exact", "statevector"]
    # skip the broken test plugins and the project's own plugins installed in the venv
    some = run_python(code, extra_path=test_plugins_path,
                      env={"QSIMCELLS_DISABLE_PLUGINS": "broken-import,broken-hook,aer,ibm,neal"})
    assert some.returncode == 0, some.stderr
    assert json.loads(some.stdout) == ["exact", "numpy-dense", "statevector"]


def test_auto_never_picks_noisy_or_credentialed_samplers() -> None:
    class Fast:
        def sample(self, circuit, shots, *, rng):
            return np.zeros((shots, circuit.num_qubits), np.uint8)

    noisy = _plugin("noisy", [CircuitSamplerSpec("hw", factory=Fast, noisy=True, priority=999),
                              CircuitSamplerSpec("cloud", factory=Fast, needs_credentials=True,
                                                 priority=999)])
    reg = PluginRegistry(load_entry_points=False, extra_plugins=[(noisy, "n", "0")])
    qs.plugins.registry._registry = reg
    try:
        qc = QuantumCircuit(2)
        qc.h(0)
        qc.cx(0, 1)
        qc.h(0)
        _, info = qs.samplers.sample_bits(qc, 10, rng=0, return_info=True)
        assert info.name == "statevector"
        bits = qs.samplers.sample_bits(qc, 10, sampler="hw", rng=0)  # by name it runs
        assert bits.sum() == 0
    finally:
        qs.plugins.reset_registry()


def test_sampler_returning_wrong_shape_is_a_clear_error() -> None:
    class Wrong:
        def sample(self, circuit, shots, *, rng):
            return np.zeros((shots, circuit.num_qubits + 1), np.uint8)

    reg = PluginRegistry(load_entry_points=False,
                         extra_plugins=[(_plugin("w", [CircuitSamplerSpec("wrong", factory=Wrong)]),
                                         "w", "0")])
    qs.plugins.registry._registry = reg
    try:
        with pytest.raises(ValueError, match=r"sampler 'wrong' returned shape \(4, 3\)"):
            qs.samplers.sample_bits(QuantumCircuit(2), 4, sampler="wrong")
    finally:
        qs.plugins.reset_registry()


def test_auto_skips_a_plugin_whose_factory_fails() -> None:
    broken = _plugin("b", [CircuitSamplerSpec("ghost", factory="no_such_module_xyz:Sampler",
                                              priority=50)])
    qs.plugins.registry._registry = PluginRegistry(load_entry_points=False,
                                                   extra_plugins=[(broken, "ghost-dist", "0")])
    try:
        qc = QuantumCircuit(2)
        qc.h(0)
        qc.cx(0, 1)
        qc.h(0)  # not exact: auto must go past the broken plugin to the statevector
        _, info = qs.samplers.sample_bits(qc, 10, rng=0, return_info=True)
        assert info.name == "statevector" and "ghost: failed: ModuleNotFoundError" in info.reason
    finally:
        qs.plugins.reset_registry()


def test_misspelled_hook_is_reported() -> None:
    @hookimpl
    def qsimcells_circuit_sampler():  # missing the final s
        return []

    typo = types.SimpleNamespace(__name__="typo", qsimcells_circuit_sampler=qsimcells_circuit_sampler)
    with pytest.warns(RuntimeWarning, match="'typo-dist'"):
        reg = PluginRegistry(load_entry_points=False, extra_plugins=[(typo, "typo-dist", "0")])
    assert reg.names("circuit_sampler") == ["exact", "statevector"]
