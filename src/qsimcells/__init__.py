"""qsimcells: quantum generative modelling of single-cell data.

Use it as ``import qsimcells as qs``. The submodules load on first touch so that the import
itself stays light (no scanpy, scvi-tools, torch or qiskit-aer until they are needed):

``qs.sim``       simulate scRNA-seq data from quantum circuits (designs, presets, ``simulate``)
``qs.tl``        analyses of simulated or real data
``qs.pl``        plots
``qs.model``     trainable hybrid quantum-classical models
``qs.nn``        the torch quantum engine
``qs.samplers``  circuit and Ising samplers (``sample_bits``)
``qs.datasets``  binary activity data: spike-time loaders, a synthetic Ising population
``qs.plugins``   the pluggy plugin registry (``available()``)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_SUBMODULES = ("sim", "tl", "pl", "model", "nn", "samplers", "plugins", "circuits", "datasets")

__all__ = ["__version__", *_SUBMODULES]

if TYPE_CHECKING:  # pragma: no cover - for static type checkers and IDEs only
    # "x as x": re-exported names (the lazy __getattr__ below provides them at run time)
    from . import (
        circuits as circuits,
        datasets as datasets,
        model as model,
        nn as nn,
        pl as pl,
        plugins as plugins,
        samplers as samplers,
        sim as sim,
        tl as tl,
    )


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'qsimcells' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
