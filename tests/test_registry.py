"""The pluggy registry: builtins, entry points, broken and conflicting plugins."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from qiskit import QuantumCircuit

import qsimcells as qs
from conftest import run_python
from qsimcells.plugins import (
    CircuitSamplerSpec,
    GeneratorSpec,
    PluginError,
    PluginRegistry,
    hookimpl,
)


def _plugin(name: str, specs: list) -> types.SimpleNamespace:
    @hookimpl
    def qsimcells_circuit_samplers():
        return specs

    return types.SimpleNamespace(
        __name__=name, qsimcells_circuit_samplers=qsimcells_circuit_samplers
    )


def test_available_lists_builtins_first_with_capabilities() -> None:
    table = PluginRegistry(load_entry_points=False).table()
    assert list(table.columns) == [
        "name",
        "kind",
        "distribution",
        "version",
        "status",
        "capabilities",
        "description",
    ]
    assert set(table.status) == {"ok"}
    samplers = table[table.kind == "circuit_sampler"]
    assert list(samplers.name[:2]) == ["exact", "statevector"]
    assert set(samplers.distribution[:2]) == {"qsimcells"}
    assert samplers.iloc[1].capabilities["max_qubits"] == 24
    generators = table[table.kind == "generator"]
    assert {"qsimcells", "independent", "qbmvae"} <= set(generators.name)
    with pytest.raises(ValueError, match=r"kind: 'nope'.*circuit_sampler"):
        qs.plugins.available("nope")


class _Zeros:
    def sample(self, circuit, shots, *, rng):
        return np.zeros((shots, circuit.num_qubits), np.uint8)


def test_a_duplicate_name_disables_that_name_only() -> None:
    first = _plugin(
        "one",
        [CircuitSamplerSpec("twin", factory=_Zeros), CircuitSamplerSpec("solo", factory=_Zeros)],
    )
    second = _plugin("two", [CircuitSamplerSpec("twin", factory=_Zeros)])
    with pytest.warns(
        RuntimeWarning,
        match=r"circuit sampler 'twin' is provided by 'acme-a' "
        r"\(1.0\) and by 'acme-b' \(2.0\).*disabled.*QSIMCELLS_DISABLE_PLUGINS=two",
    ):
        reg = PluginRegistry(
            load_entry_points=False,
            extra_plugins=[(first, "acme-a", "1.0"), (second, "acme-b", "2.0")],
        )
    assert reg.names("circuit_sampler") == ["exact", "statevector", "solo"]
    assert reg.get("circuit_sampler", "exact").distribution == "qsimcells"
    assert reg.get("circuit_sampler", "solo").distribution == "acme-a"
    with pytest.raises(
        PluginError,
        match=r"circuit sampler 'twin' is ambiguous: provided by "
        r"'acme-a' \(1.0\) and by 'acme-b' \(2.0\); uninstall one of the "
        r"distributions, or skip one .*QSIMCELLS_DISABLE_PLUGINS=one",
    ):
        reg.get("circuit_sampler", "twin")
    table = reg.table("circuit_sampler").set_index("name")
    assert table.loc["solo", "status"] == "ok"
    twins = table.loc[["twin"]]
    assert list(twins.distribution) == ["acme-a", "acme-b"]
    assert all(status.startswith("disabled: also provided by") for status in twins.status)
    assert reg.ambiguous == {"circuit_sampler": {"twin": ["acme-a", "acme-b"]}}


def test_a_plugin_cannot_take_over_a_builtin_name() -> None:
    dup = _plugin("dup", [CircuitSamplerSpec("exact", factory=_Zeros)])
    with pytest.warns(
        RuntimeWarning,
        match=r"'acme-q'.*circuit sampler 'exact', a builtin "
        "of qsimcells; the builtin is kept",
    ):
        reg = PluginRegistry(load_entry_points=False, extra_plugins=[(dup, "acme-q", "1.0")])
    assert reg.get("circuit_sampler", "exact").distribution == "qsimcells"
    assert reg.ambiguous == {}


def test_a_duplicate_leaves_the_builtins_and_the_analyses_working(monkeypatch) -> None:
    plugins = [
        (_plugin(n, [CircuitSamplerSpec("twin", factory=_Zeros)]), f"acme-{n}", "1")
        for n in ("a", "b")
    ]
    with pytest.warns(RuntimeWarning, match="'twin' is provided by"):
        reg = PluginRegistry(load_entry_points=False, extra_plugins=plugins)
    monkeypatch.setattr(qs.plugins.registry, "_registry", reg)
    assert "exact" in set(qs.plugins.available().name)
    adata = qs.sim.simulate(qs.sim.presets.romero2025(True), 20, sampler="exact", rng=0)
    assert adata.uns["qsimcells"]["sampler"]["name"] == "exact"
    z = qs.samplers.sample_ising(np.zeros(3), np.zeros((3, 3)), 5, sampler="gibbs", rng=0)
    assert z.shape == (5, 3)
    qc = QuantumCircuit(1)
    with pytest.raises(PluginError, match="'twin' is ambiguous"):
        qs.samplers.sample_bits(qc, 5, sampler="twin")


def test_a_missing_factory_module_is_reported_when_listing_and_named_on_first_use() -> None:
    ghosts = _plugin(
        "g",
        [
            CircuitSamplerSpec("ghost", factory="no_such_module_xyz:Sampler"),
            CircuitSamplerSpec("deep", factory="qsimcells.no_such_xyz:Sampler"),
            CircuitSamplerSpec("noattr", factory="json:NoSuchSampler"),
        ],
    )
    reg = PluginRegistry(load_entry_points=False, extra_plugins=[(ghosts, "ghost-dist", "0.3")])
    status = reg.table("circuit_sampler").set_index("name").status
    assert status["ghost"] == "factory module 'no_such_module_xyz' not found"
    assert status["deep"] == "factory module 'qsimcells.no_such_xyz' not found"
    assert status["noattr"] == "ok"  # found; the attribute is only known on import
    assert status["exact"] == "ok"
    with pytest.raises(
        PluginError,
        match=r"circuit sampler 'ghost' from distribution "
        r"'ghost-dist' \(0.3\): cannot load its factory "
        r"'no_such_module_xyz:Sampler' \(ModuleNotFoundError: No module named "
        r"'no_such_module_xyz'\)",
    ):
        reg.get("circuit_sampler", "ghost").load()
    with pytest.raises(
        PluginError,
        match=r"'noattr' from distribution 'ghost-dist'.*"
        "AttributeError",
    ):
        reg.get("circuit_sampler", "noattr").load()


def test_errors_raised_by_a_plugin_factory_name_the_plugin(monkeypatch) -> None:
    class Picky:
        def __init__(self, level: int = 0):
            if level < 0:
                raise ValueError("level: must be >= 0")

        def sample(self, circuit, shots, *, rng):
            return np.zeros((shots, circuit.num_qubits), np.uint8)

    plugin = _plugin("p", [CircuitSamplerSpec("picky", factory=Picky)])
    monkeypatch.setattr(
        qs.plugins.registry,
        "_registry",
        PluginRegistry(load_entry_points=False, extra_plugins=[(plugin, "picky-dist", "1.1")]),
    )
    with pytest.raises(ValueError, match="level: must be >= 0") as caught:
        qs.samplers.make_sampler("picky", level=-1)
    assert caught.value.__notes__ == [
        "raised by circuit sampler 'picky' from distribution 'picky-dist' (1.1)"
    ]
    with pytest.raises(TypeError, match="options for sampler 'picky'"):
        qs.samplers.make_sampler("picky", nope=1)


def test_hook_that_raises_is_isolated_with_a_warning() -> None:
    class Bad:
        __name__ = "bad"

        @hookimpl
        def qsimcells_circuit_samplers(self):
            raise RuntimeError("boom")

    good = _plugin("good", [CircuitSamplerSpec("good-one", factory="x.y:Z")])
    with pytest.warns(RuntimeWarning, match=r"'bad-dist'.*boom"):
        reg = PluginRegistry(
            load_entry_points=False,
            extra_plugins=[(Bad(), "bad-dist", "0"), (good, "good-dist", "1")],
        )
    assert "good-one" in reg.names("circuit_sampler")
    assert "exact" in reg.names("circuit_sampler")


def test_wrong_return_type_is_isolated() -> None:
    wrong = _plugin(
        "wrong", [GeneratorSpec("g", factory="x.y:Z")]
    )  # a generator from the sampler hook
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
    with pytest.raises(
        PluginError,
        match=r"unknown generator 'nope'; available: "
        r"\['independent', 'qbmvae', 'qsimcells', 'spiqgan'\]",
    ):
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
    some = run_python(
        code,
        extra_path=test_plugins_path,
        env={"QSIMCELLS_DISABLE_PLUGINS": "broken-import,broken-hook,twin-a,twin-b,aer,ibm,neal"},
    )
    assert some.returncode == 0, some.stderr
    assert json.loads(some.stdout) == ["exact", "numpy-dense", "statevector"]


def test_auto_never_picks_noisy_or_credentialed_samplers() -> None:
    class Fast:
        def sample(self, circuit, shots, *, rng):
            return np.zeros((shots, circuit.num_qubits), np.uint8)

    noisy = _plugin(
        "noisy",
        [
            CircuitSamplerSpec("hw", factory=Fast, noisy=True, priority=999),
            CircuitSamplerSpec("cloud", factory=Fast, needs_credentials=True, priority=999),
        ],
    )
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

    reg = PluginRegistry(
        load_entry_points=False,
        extra_plugins=[(_plugin("w", [CircuitSamplerSpec("wrong", factory=Wrong)]), "w", "0")],
    )
    qs.plugins.registry._registry = reg
    try:
        with pytest.raises(ValueError, match=r"sampler 'wrong' returned shape \(4, 3\)"):
            qs.samplers.sample_bits(QuantumCircuit(2), 4, sampler="wrong")
    finally:
        qs.plugins.reset_registry()


def test_auto_skips_a_plugin_whose_factory_fails() -> None:
    broken = _plugin(
        "b", [CircuitSamplerSpec("ghost", factory="no_such_module_xyz:Sampler", priority=50)]
    )
    qs.plugins.registry._registry = PluginRegistry(
        load_entry_points=False, extra_plugins=[(broken, "ghost-dist", "0")]
    )
    try:
        qc = QuantumCircuit(2)
        qc.h(0)
        qc.cx(0, 1)
        qc.h(0)  # not exact: auto must go past the broken plugin to the statevector
        _, info = qs.samplers.sample_bits(qc, 10, rng=0, return_info=True)
        assert info.name == "statevector"
        assert (
            "ghost: failed: PluginError: circuit sampler 'ghost' from distribution "
            "'ghost-dist' (0): cannot load its factory 'no_such_module_xyz:Sampler' "
            "(ModuleNotFoundError"
        ) in info.reason
    finally:
        qs.plugins.reset_registry()


def test_misspelled_hook_is_reported() -> None:
    @hookimpl
    def qsimcells_circuit_sampler():  # missing the final s
        return []

    typo = types.SimpleNamespace(
        __name__="typo", qsimcells_circuit_sampler=qsimcells_circuit_sampler
    )
    with pytest.warns(RuntimeWarning, match="'typo-dist'"):
        reg = PluginRegistry(load_entry_points=False, extra_plugins=[(typo, "typo-dist", "0")])
    assert reg.names("circuit_sampler") == ["exact", "statevector"]


def test_installed_duplicates_and_a_bad_factory_leave_everything_else_working(
    test_plugins_path,
) -> None:
    """Two separately installed distributions (qsimcells-twin-a, -b) register "twin"; twin-b
    also registers "ghost", whose factory module does not exist; qsimcells-broken is broken."""
    code = """
import json, warnings
from qiskit import QuantumCircuit
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import qsimcells as qs
    table = qs.plugins.available("circuit_sampler")
from qsimcells.plugins import PluginError
errors = {}
for name in ("twin", "ghost"):
    try:
        qs.samplers.sample_bits(QuantumCircuit(1), 3, sampler=name, rng=0)
    except PluginError as err:
        errors[name] = str(err)
adata = qs.sim.simulate(qs.sim.presets.romero2025(True), 10, sampler="exact", rng=0)
z = qs.samplers.sample_ising([0.0, 0.0], [[0, 0], [0, 0]], 4, sampler="gibbs", rng=0)
print(json.dumps({
    "warnings": [str(w.message) for w in caught],
    "status": {f"{r.name}@{r.distribution}": r.status for r in table.itertuples()},
    "errors": errors,
    "broken": sorted(qs.plugins.get_registry().broken),
    "cells": adata.n_obs, "states": list(z.shape),
}))
"""
    result = run_python(code, extra_path=test_plugins_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["cells"] == 20 and out["states"] == [4, 2]
    messages = " ".join(out["warnings"])
    assert (
        "circuit sampler 'twin' is provided by 'qsimcells-twin-a' (0.1.0) and by "
        "'qsimcells-twin-b' (0.2.0)"
    ) in messages
    status = out["status"]
    assert status["twin@qsimcells-twin-a"].startswith("disabled: also provided by")
    assert status["ghost@qsimcells-twin-b"] == "factory module 'qsimcells_twin_b.missing' not found"
    assert status["exact@qsimcells"] == status["numpy-dense@qsimcells-example"] == "ok"
    assert "QSIMCELLS_DISABLE_PLUGINS=twin-a" in out["errors"]["twin"]
    assert (
        "circuit sampler 'ghost' from distribution 'qsimcells-twin-b' (0.2.0): cannot load"
        in out["errors"]["ghost"]
    )
    # one form of key for every broken plugin: distribution:entry point
    assert out["broken"] == ["qsimcells-broken:broken-hook", "qsimcells-broken:broken-import"]
    cli = run_python(
        "from qsimcells.cli import main; main(['plugins'])", extra_path=test_plugins_path
    )
    assert cli.returncode == 0, cli.stderr
    assert "factory module 'qsimcells_twin_b.missing' not found" in cli.stdout


def test_provenance_names_the_plugin_distribution_version_and_options(
    monkeypatch, tmp_path
) -> None:
    import anndata as ad

    from qsimcells.samplers.statevector import StatevectorSampler

    class Flavoured(StatevectorSampler):
        def __init__(self, flavour: str = "plain"):
            super().__init__()
            self.flavour = flavour

    plugin = _plugin("p", [CircuitSamplerSpec("acme-sv", factory=Flavoured)])
    monkeypatch.setattr(
        qs.plugins.registry,
        "_registry",
        PluginRegistry(load_entry_points=False, extra_plugins=[(plugin, "acme-dist", "3.1")]),
    )
    design = qs.sim.presets.romero2025(True)
    adata = qs.sim.simulate(
        design, 20, sampler="acme-sv", sampler_options={"flavour": "spicy"}, rng=0
    )
    expected = {
        "name": "acme-sv",
        "requested": "acme-sv",
        "reason": "requested",
        "options": {"flavour": "spicy"},
        "distribution": "acme-dist",
        "version": "3.1",
    }
    assert adata.uns["qsimcells"]["sampler"] == expected
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad").uns["qsimcells"]["sampler"]
    assert {k: back[k] for k in ("name", "distribution", "version")} == {
        k: expected[k] for k in ("name", "distribution", "version")
    }
    assert dict(back["options"]) == {"flavour": "spicy"}
    builtin = qs.sim.simulate(design, 20, rng=0).uns["qsimcells"]["sampler"]
    assert builtin["distribution"] == "qsimcells" and builtin["version"] == qs.__version__


def test_samplers_satisfy_the_typing_protocols() -> None:
    from qsimcells.plugins import CircuitSampler, IsingSampler

    for name in ("exact", "statevector"):
        assert isinstance(qs.samplers.make_sampler(name), CircuitSampler)
    for name in ("gibbs", "exact"):
        assert isinstance(qs.samplers.make_ising_sampler(name), IsingSampler)
    assert not isinstance(object(), CircuitSampler)
