"""The plugin manager: builtins first, then entry points, one name per plugin kind."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from .._version import __version__
from . import hookspecs
from .specs import CircuitSamplerSpec, GeneratorSpec, IsingSamplerSpec, _Spec

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

ENTRY_POINT_GROUP = "qsimcells"
#: Environment variable: ``1``/``true`` skips all entry points; a comma list skips those names.
DISABLE_ENV = "QSIMCELLS_DISABLE_PLUGINS"

_HOOKS = {
    "circuit_sampler": ("qsimcells_circuit_samplers", CircuitSamplerSpec),
    "ising_sampler": ("qsimcells_ising_samplers", IsingSamplerSpec),
    "generator": ("qsimcells_generators", GeneratorSpec),
}
KINDS = tuple(_HOOKS)
# how messages about a plugin's options name its kind
_OPTION_LABEL = {
    "circuit_sampler": "sampler",
    "ising_sampler": "Ising sampler",
    "generator": "generator",
}


BUILTIN_DISTRIBUTION = "qsimcells"


class PluginError(RuntimeError):
    """A plugin conflict, an unknown plugin name or a plugin whose factory cannot be loaded."""


SpecT = TypeVar("SpecT", bound=_Spec)


@dataclass(frozen=True)
class Registered(Generic[SpecT]):
    """A description together with the distribution that provided it.

    ``entry_point`` is the name ``QSIMCELLS_DISABLE_PLUGINS`` skips it by.
    """

    spec: SpecT
    distribution: str
    version: str
    entry_point: str = ""

    def describe(self) -> str:
        """``circuit sampler 'name' from distribution 'dist' (version)``, for messages."""
        return (
            f"{self.spec.kind.replace('_', ' ')} {self.spec.name!r} from distribution "
            f"{self.distribution!r} ({self.version})"
        )

    def load(self) -> Callable[..., Any]:
        """Import and return the factory; a failure names the plugin and its distribution."""
        try:
            return self.spec.load()
        except Exception as err:
            raise PluginError(
                f"{self.describe()}: cannot load its factory "
                f"{self.spec.factory!r} ({type(err).__name__}: {err})"
            ) from err

    def create(self, **options: Any) -> Any:
        """The factory called with ``options``. A ``TypeError`` (a wrong option) is re-raised
        naming the options; any other error gets a note naming the plugin."""
        factory = self.load()
        try:
            return factory(**options)
        except TypeError as err:
            raise TypeError(
                f"options for {_OPTION_LABEL[self.spec.kind]} {self.spec.name!r}: {err}"
            ) from None
        except Exception as err:
            err.add_note(f"raised by {self.describe()}")
            raise

    def problem(self) -> str | None:
        """Why the factory cannot load, found without running any plugin code (the factory's
        module is looked up, not imported); ``None`` when it is found or is a callable."""
        factory = self.spec.factory
        if callable(factory) or self.distribution == BUILTIN_DISTRIBUTION:
            return None
        module = factory.partition(":")[0]
        return None if _module_exists(module) else f"factory module {module!r} not found"

    def provenance(self, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """What produced a result: the name, distribution, version and options, in plain
        values (so that it stores in ``uns`` and survives h5ad)."""
        return {
            "name": self.spec.name,
            "distribution": self.distribution,
            "version": self.version,
            "options": plain_options(options or {}),
        }


def plain_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options as h5ad can store them: numbers, strings and booleans as they are, other values
    as their ``repr``."""
    return {
        str(k): v if isinstance(v, (bool, int, float, str)) else repr(v) for k, v in options.items()
    }


def _module_exists(module: str) -> bool:
    """Whether ``module`` can be imported, looked up without executing it or its parent
    packages: the top level through every finder (editable installs have their own), the
    submodules by path inside the parent's locations."""
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
        for i in range(1, len(parts)):
            if spec is None or spec.submodule_search_locations is None:
                return False
            parent = sys.modules.get(".".join(parts[:i]))
            locations = list(getattr(parent, "__path__", None) or spec.submodule_search_locations)
            spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), locations)
    except (ImportError, ValueError):
        return False
    return spec is not None


class PluginRegistry:
    """Collects sampler and generator descriptions from the builtins and installed plugins.

    Parameters
    ----------
    load_entry_points
        Load plugins from the entry-point group ``qsimcells``; ``None`` reads
        ``QSIMCELLS_DISABLE_PLUGINS``.
    extra_plugins
        Further plugin objects ``(object, distribution, version)`` registered after the
        builtins, as if they came from entry points (for applications and tests).
    """

    def __init__(
        self,
        *,
        load_entry_points: bool | None = None,
        extra_plugins: list[tuple[Any, str, str]] | None = None,
    ) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        # plugin key "distribution:entry point" -> (distribution, version, entry point), in
        # registration order
        self._origin: dict[str, tuple[str, str, str]] = {}
        #: ``"distribution:entry point"`` -> why that plugin was skipped
        self.broken: dict[str, str] = {}
        self._ambiguous: dict[str, dict[str, list[Registered]]] = {}

        from . import builtins

        self._register(builtins, "builtins", BUILTIN_DISTRIBUTION, __version__)
        for obj, dist, version in extra_plugins or []:
            self._register(obj, str(getattr(obj, "__name__", id(obj))), dist, version)
        skip = _skipped_entry_points()
        if load_entry_points is None:
            load_entry_points = skip is not True
        if load_entry_points:
            self._load_entry_points(skip if isinstance(skip, set) else set())
        self._entries = {kind: self._collect(kind) for kind in KINDS}

    # -- loading ----------------------------------------------------------------------------
    def _register(self, obj: Any, entry_point: str, dist: str, version: str) -> None:
        key = f"{dist}:{entry_point}"  # unique across distributions
        try:
            self._pm.register(obj, name=key)
            self._pm.check_pending()  # a misspelled qsimcells_* hook is an error, not ignored
        except Exception as err:  # a bad or unknown hook, a second registration, ...
            if self._pm.is_registered(obj):
                self._pm.unregister(obj)
            self._warn_broken(key, dist, err)
            return
        self._origin[key] = (dist, version, entry_point)

    def _load_entry_points(self, skip: set[str]) -> None:
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in skip:
                continue
            dist = ep.dist.name if ep.dist is not None else "unknown"
            version = ep.dist.version if ep.dist is not None else ""
            try:
                obj = ep.load()
            except Exception as err:  # isolate the broken plugin; the rest keeps working
                self._warn_broken(f"{dist}:{ep.name}", dist, err)
                continue
            self._register(obj, ep.name, dist, version)

    def _warn_broken(self, key: str, dist: str, err: BaseException) -> None:
        self.broken[key] = f"{type(err).__name__}: {err}"
        entry_point = key.partition(":")[2]
        warnings.warn(
            f"qsimcells plugin {entry_point!r} from distribution {dist!r} could not be loaded "
            f"and is skipped ({type(err).__name__}: {err})",
            RuntimeWarning,
            stacklevel=4,
        )

    def _collect(self, kind: str) -> dict[str, Registered]:
        hook_name, spec_type = _HOOKS[kind]
        found: dict[str, Registered] = {}
        position = {name: i for i, name in enumerate(self._origin)}
        impls = sorted(
            getattr(self._pm.hook, hook_name).get_hookimpls(),
            key=lambda impl: position[impl.plugin_name],
        )  # builtins first
        ambiguous: dict[str, list[Registered]] = {}
        for impl in impls:
            dist, version, entry_point = self._origin[impl.plugin_name]
            try:
                specs = list(impl.function() or [])
                for spec in specs:
                    if not isinstance(spec, spec_type):
                        raise TypeError(
                            f"{hook_name}() returned {type(spec).__name__}, "
                            f"expected {spec_type.__name__}"
                        )
            except Exception as err:
                self._warn_broken(impl.plugin_name, dist, err)
                continue
            for spec in specs:
                entry = Registered(spec, dist, version, entry_point)
                if spec.name in ambiguous:
                    ambiguous[spec.name].append(entry)
                elif spec.name not in found:
                    found[spec.name] = entry
                elif found[spec.name].distribution == BUILTIN_DISTRIBUTION:
                    # a plugin cannot replace a builtin that users and results rely on
                    warnings.warn(
                        f"qsimcells plugin {entry_point!r} from distribution {dist!r} "
                        f"registers {kind.replace('_', ' ')} {spec.name!r}, a builtin of "
                        "qsimcells; the builtin is kept and the plugin's is ignored (rename it)",
                        RuntimeWarning,
                        stacklevel=4,
                    )
                else:  # two plugins: neither wins, only this name stops working
                    ambiguous[spec.name] = [found.pop(spec.name), entry]
        for name, providers in ambiguous.items():
            by, advice = _ambiguity(kind, name, providers)
            warnings.warn(
                f"{kind.replace('_', ' ')} {name!r} is provided by {by}, so it is "
                f"disabled: {advice}",
                RuntimeWarning,
                stacklevel=4,
            )
        self._ambiguous[kind] = ambiguous
        return found

    @property
    def ambiguous(self) -> dict[str, dict[str, list[str]]]:
        """Kind -> name -> the distributions that all register it (so the name is disabled);
        only kinds with such a name."""
        return {
            kind: {name: [p.distribution for p in providers] for name, providers in names.items()}
            for kind, names in self._ambiguous.items()
            if names
        }

    # -- queries ----------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        """Names registered for ``kind`` (builtins first)."""
        return list(self._entries[_check_kind(kind)])

    def get(self, kind: str, name: str) -> Registered:
        """The registered description of ``name``; unknown names list the available ones."""
        entries = self._entries[_check_kind(kind)]
        if name in self._ambiguous[kind]:
            by, advice = _ambiguity(kind, name, self._ambiguous[kind][name])
            raise PluginError(
                f"{kind.replace('_', ' ')} {name!r} is ambiguous: provided by {by}; {advice}"
            )
        if name not in entries:
            broken = f"; skipped broken plugins: {sorted(self.broken)}" if self.broken else ""
            raise PluginError(
                f"unknown {kind.replace('_', ' ')} {name!r}; available: {sorted(entries)}{broken}"
            )
        return entries[name]

    def entries(self, kind: str) -> list[Registered]:
        return list(self._entries[_check_kind(kind)].values())

    def table(self, kind: str | None = None) -> pd.DataFrame:
        """All registered plugins as a table (see :func:`available`)."""
        import pandas as pd

        rows = []
        for k in [_check_kind(kind)] if kind else KINDS:
            listed = [(r, r.problem() or "ok") for r in self._entries[k].values()]
            for providers in self._ambiguous[k].values():
                for r in providers:
                    others = [p.distribution for p in providers if p is not r]
                    listed.append((r, f"disabled: also provided by {others}"))
            rows += [
                {
                    "name": r.spec.name,
                    "kind": k,
                    "distribution": r.distribution,
                    "version": r.version,
                    "status": status,
                    "capabilities": r.spec.capabilities,
                    "description": r.spec.description,
                }
                for r, status in listed
            ]
        columns = [
            "name",
            "kind",
            "distribution",
            "version",
            "status",
            "capabilities",
            "description",
        ]
        return pd.DataFrame(rows, columns=columns)


def _ambiguity(kind: str, name: str, providers: list[Registered]) -> tuple[str, str]:
    """Who provides an ambiguous name, and how to resolve it."""
    by = " and by ".join(f"{p.distribution!r} ({p.version})" for p in providers)
    skip = " or ".join(f"{DISABLE_ENV}={p.entry_point}" for p in providers)
    return by, f"uninstall one of the distributions, or skip one plugin with {skip}"


def _check_kind(kind: str) -> str:
    if kind not in _HOOKS:
        raise ValueError(f"kind: {kind!r} is not a plugin kind; choose one of {list(KINDS)}")
    return kind


def _skipped_entry_points() -> bool | set[str]:
    value = os.environ.get(DISABLE_ENV, "").strip()
    if value.lower() in {"", "0", "false", "no"}:
        return set()
    if value.lower() in {"1", "true", "yes", "all"}:
        return True
    return {part.strip() for part in value.split(",") if part.strip()}


_registry: PluginRegistry | None = None


def get_registry() -> PluginRegistry:
    """The process-wide registry, built on first use."""
    global _registry
    if _registry is None:
        _registry = PluginRegistry()
    return _registry


def reset_registry() -> None:
    """Forget the registry so the next use rescans entry points (after installing a plugin)."""
    global _registry
    _registry = None


def available(kind: str | None = None) -> pd.DataFrame:
    """Table of the registered samplers and generators.

    Parameters
    ----------
    kind
        ``"circuit_sampler"``, ``"ising_sampler"`` or ``"generator"``; ``None`` lists all.

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``kind``, ``distribution``, ``version``, ``status``,
        ``capabilities``, ``description``. ``status`` is ``"ok"``, ``"factory module '...' not
        found"`` (the plugin's factory cannot be imported; found without importing it) or
        ``"disabled: also provided by [...]"`` (two distributions register the name, so
        neither is used). No plugin code runs to build it.
    """
    return get_registry().table(kind)


def get_circuit_sampler(name: str) -> Registered[CircuitSamplerSpec]:
    """The registered circuit sampler ``name``."""
    return get_registry().get("circuit_sampler", name)


def get_ising_sampler(name: str) -> Registered[IsingSamplerSpec]:
    """The registered Ising sampler ``name``."""
    return get_registry().get("ising_sampler", name)


def get_generator(name: str) -> Registered[GeneratorSpec]:
    """The registered generator ``name``."""
    return get_registry().get("generator", name)
