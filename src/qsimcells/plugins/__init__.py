"""The plugin registry: samplers and generators are pluggy plugins.

Builtins are registered first, then every entry point in the group ``qsimcells``. A plugin module
implements one or more of the hooks in :mod:`qsimcells.plugins.hookspecs` with :data:`hookimpl`
and returns *descriptions* (:class:`CircuitSamplerSpec`, :class:`IsingSamplerSpec`,
:class:`GeneratorSpec`), so listing plugins imports nothing heavy. Set the environment variable
``QSIMCELLS_DISABLE_PLUGINS=1`` to skip entry points (or give a comma-separated list of entry-point
names to skip only those). :class:`CircuitSampler` and :class:`IsingSampler` are the typing
protocols of the objects a plugin's factory returns.
"""

from __future__ import annotations

from .hookspecs import hookimpl, hookspec
from .protocols import CircuitSampler, IsingSampler
from .registry import (
    DISABLE_ENV,
    ENTRY_POINT_GROUP,
    PluginError,
    PluginRegistry,
    available,
    get_circuit_sampler,
    get_generator,
    get_ising_sampler,
    get_registry,
    reset_registry,
)
from .specs import CircuitSamplerSpec, GeneratorSpec, IsingSamplerSpec

__all__ = [
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "CircuitSampler",
    "CircuitSamplerSpec",
    "GeneratorSpec",
    "IsingSampler",
    "IsingSamplerSpec",
    "PluginError",
    "PluginRegistry",
    "available",
    "get_circuit_sampler",
    "get_generator",
    "get_ising_sampler",
    "get_registry",
    "hookimpl",
    "hookspec",
    "reset_registry",
]
