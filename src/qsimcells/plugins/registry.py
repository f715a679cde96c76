"""The plugin manager: builtins first, then entry points, one name per plugin kind."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

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


class PluginError(RuntimeError):
    """A plugin conflict or an unknown plugin name."""


@dataclass(frozen=True)
class Registered:
    """A description together with the distribution that provided it."""

    spec: _Spec
    distribution: str
    version: str


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

    def __init__(self, *, load_entry_points: bool | None = None,
                 extra_plugins: list[tuple[Any, str, str]] | None = None) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        # plugin name -> (distribution, version), in registration order
        self._origin: dict[str, tuple[str, str]] = {}
        self.broken: dict[str, str] = {}  # plugin name -> why it was skipped

        from . import builtins

        self._register(builtins, "qsimcells-builtins", "qsimcells", __version__)
        for obj, dist, version in extra_plugins or []:
            self._register(obj, f"{dist}:{getattr(obj, '__name__', id(obj))}", dist, version)
        skip = _skipped_entry_points()
        if load_entry_points is None:
            load_entry_points = skip is not True
        if load_entry_points:
            self._load_entry_points(skip if isinstance(skip, set) else set())
        self._entries = {kind: self._collect(kind) for kind in KINDS}

    # -- loading ----------------------------------------------------------------------------
    def _register(self, obj: Any, name: str, dist: str, version: str) -> None:
        try:
            self._pm.register(obj, name=name)
            self._pm.check_pending()  # a misspelled qsimcells_* hook is an error, not ignored
        except Exception as err:  # a bad or unknown hook, a second registration, ...
            if self._pm.is_registered(obj):
                self._pm.unregister(obj)
            self._warn_broken(name, dist, err)
            return
        self._origin[name] = (dist, version)

    def _load_entry_points(self, skip: set[str]) -> None:
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in skip:
                continue
            dist = ep.dist.name if ep.dist is not None else "unknown"
            version = ep.dist.version if ep.dist is not None else ""
            try:
                obj = ep.load()
            except Exception as err:  # isolate the broken plugin; the rest keeps working
                self._warn_broken(ep.name, dist, err)
                continue
            self._register(obj, f"{dist}:{ep.name}", dist, version)  # unique across packages

    def _warn_broken(self, name: str, dist: str, err: BaseException) -> None:
        self.broken[name] = f"{type(err).__name__}: {err}"
        warnings.warn(
            f"qsimcells plugin {name!r} from distribution {dist!r} could not be loaded and is "
            f"skipped ({type(err).__name__}: {err})",
            RuntimeWarning,
            stacklevel=4,
        )

    def _collect(self, kind: str) -> dict[str, Registered]:
        hook_name, spec_type = _HOOKS[kind]
        found: dict[str, Registered] = {}
        position = {name: i for i, name in enumerate(self._origin)}
        impls = sorted(getattr(self._pm.hook, hook_name).get_hookimpls(),
                       key=lambda impl: position[impl.plugin_name])  # builtins first
        for impl in impls:
            dist, version = self._origin[impl.plugin_name]
            try:
                specs = list(impl.function() or [])
                for spec in specs:
                    if not isinstance(spec, spec_type):
                        raise TypeError(f"{hook_name}() returned {type(spec).__name__}, "
                                        f"expected {spec_type.__name__}")
            except Exception as err:
                self._warn_broken(impl.plugin_name, dist, err)
                continue
            for spec in specs:
                if spec.name in found:
                    other = found[spec.name]
                    raise PluginError(
                        f"{kind.replace('_', ' ')} {spec.name!r} is provided twice: by "
                        f"{other.distribution!r} ({other.version}) and by {dist!r} ({version}); "
                        "uninstall one of the two distributions"
                    )
                found[spec.name] = Registered(spec, dist, version)
        return found

    # -- queries ----------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        """Names registered for ``kind`` (builtins first)."""
        return list(self._entries[_check_kind(kind)])

    def get(self, kind: str, name: str) -> Registered:
        """The registered description of ``name``; unknown names list the available ones."""
        entries = self._entries[_check_kind(kind)]
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

        rows = [
            {"name": r.spec.name, "kind": k, "distribution": r.distribution,
             "version": r.version, "capabilities": r.spec.capabilities,
             "description": r.spec.description}
            for k in ([_check_kind(kind)] if kind else KINDS)
            for r in self._entries[k].values()
        ]
        columns = ["name", "kind", "distribution", "version", "capabilities", "description"]
        return pd.DataFrame(rows, columns=columns)


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
        Columns ``name``, ``kind``, ``distribution``, ``version``, ``capabilities``,
        ``description``. Nothing heavy is imported to build it.
    """
    return get_registry().table(kind)


def get_circuit_sampler(name: str) -> Registered:
    """The registered circuit sampler ``name``."""
    return get_registry().get("circuit_sampler", name)


def get_ising_sampler(name: str) -> Registered:
    """The registered Ising sampler ``name``."""
    return get_registry().get("ising_sampler", name)


def get_generator(name: str) -> Registered:
    """The registered generator ``name``."""
    return get_registry().get("generator", name)
