"""Package conventions: a light import, lazy submodules and scanpy-style signatures."""

from __future__ import annotations

import inspect
import json

import pytest

import qsimcells as qs
from conftest import run_python

HEAVY = (
    "scvi",
    "scanpy",
    "torch",
    "qiskit_aer",
    "qiskit_ibm_runtime",
    "lightning",
    "jax",
    "dwave",
    "dimod",
)


def test_import_is_light_and_submodules_are_lazy() -> None:
    code = f"""
import json, sys, time
t = time.perf_counter()
import qsimcells as qs
seconds = time.perf_counter() - t
loaded_before = sorted(m for m in ("qsimcells.sim", "qsimcells.samplers", "qiskit", "anndata",
                                   "pandas") if m in sys.modules)
qs.plugins.available()
after_listing = sorted(m for m in ("qiskit", "qsimcells_aer.sampler", "qsimcells_ibm.sampler",
                                  "qsimcells_neal.sampler") if m in sys.modules)
qs.sim, qs.tl, qs.pl, qs.model, qs.nn, qs.samplers
heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
print(json.dumps({{"seconds": seconds, "loaded_before": loaded_before,
                   "after_listing": after_listing, "heavy": heavy}}))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["loaded_before"] == []  # nothing but the package itself at import
    assert out["after_listing"] == []  # listing plugins imports no sampler code
    assert out["heavy"] == []  # touching every namespace pulls in none of the heavy stacks
    assert out["seconds"] < 1.0


def test_dir_and_unknown_attribute() -> None:
    assert {"sim", "tl", "pl", "model", "nn", "samplers", "plugins"} <= set(dir(qs))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        qs.nope  # noqa: B018


def _public_functions():
    modules = [qs.sim, qs.samplers, qs.pl, qs.tl, qs.plugins, qs.circuits]
    for module in modules:
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                yield f"{module.__name__}.{name}", obj


@pytest.mark.parametrize(("name", "func"), list(_public_functions()))
def test_public_functions_follow_scverse_conventions(name, func) -> None:
    sig = inspect.signature(func)
    params = list(sig.parameters.values())
    doc = inspect.getdoc(func) or ""
    assert doc, f"{name} has no docstring"
    assert func.__annotations__.get("return") is not None, f"{name} has no return type hint"
    documented = {"Parameters", "Returns"} & set(doc.split())
    if len([p for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]) > 1:
        assert "Parameters" in documented, f"{name}: numpy-style docstring without Parameters"
    # randomness is always called rng; adata comes first; plots take ax/save/show keyword-only
    assert not {"seed", "random_state", "random_seed"} & set(sig.parameters), name
    if "adata" in sig.parameters:
        assert params[0].name == "adata", f"{name}: adata must be the first parameter"
    if name.startswith("qsimcells.pl."):
        for key in ("ax", "save", "show"):
            assert sig.parameters[key].kind is inspect.Parameter.KEYWORD_ONLY, (name, key)
    for key in ("rng", "key_added", "copy", "sampler", "chunk_size", "batches"):
        if key in sig.parameters and params[0].name != key:
            assert sig.parameters[key].kind is inspect.Parameter.KEYWORD_ONLY, (name, key)


#: the package's layers, low to high: a module imports only from lower layers (and pl from
#: tl), so data flow one way: plugins -> samplers -> sim -> tl/pl -> model
LAYERS = {
    "_utils": 0,
    "_atomic": 0,
    "_version": 0,
    "plugins": 1,
    "samplers": 2,
    "circuits": 3,
    "datasets": 3,
    "nn": 3,
    "sim": 4,
    "tl": 5,
    "pl": 5,
    "model": 6,
    "cli": 7,
    "testing": 7,
    "__init__": 7,
}
ALLOWED_SIDEWAYS = {("pl", "tl")}


def _imported_packages(path, rel) -> set[tuple[str, int]]:
    """The qsimcells subpackages a source file imports (anywhere in it), with line numbers."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names = [node.module or ""]
            else:  # relative: resolve against the file's package
                package = list(rel.parts[:-1])
                base = package[: len(package) - (node.level - 1)]
                module = [p for p in (node.module or "").split(".") if p]
                names = (
                    [".".join(["qsimcells", *base, *module])]
                    if base or module
                    else [f"qsimcells.{a.name}" for a in node.names]
                )
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "qsimcells" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def test_layers_import_only_downwards() -> None:
    from pathlib import Path

    root = Path(qs.__file__).parent
    wrong = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        own = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        assert own in LAYERS, f"{rel}: add its package to LAYERS"
        for target, line in _imported_packages(path, rel):
            if target == own or target not in LAYERS:
                continue
            if LAYERS[target] >= LAYERS[own] and (own, target) not in ALLOWED_SIDEWAYS:
                wrong.append(f"{rel}:{line} imports qsimcells.{target}")
    assert wrong == [], wrong
    # the tools and generators that need a model are named by module path, not imported
    assert qs.tl.qbmvae.__module__ == "qsimcells.model._qbmvae_tool"
    specs = {e.spec.name: e.spec.factory for e in qs.plugins.get_registry().entries("generator")}
    assert specs["qbmvae"] == "qsimcells.model.qbmvae:qbmvae_generator"
    assert specs["spiqgan"] == "qsimcells.model.spiqgan:spiqgan_generator"
