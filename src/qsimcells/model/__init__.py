"""Trainable hybrid quantum-classical models (QBM-VAE, QPerturb, SpiQGAN).

Models land here as they are built; importing this namespace imports no torch or scvi-tools:
each model's module loads on first touch (``qs.model.QBMVAE``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__: list[str] = ["QBMVAE", "QPerturb", "SpiQGAN", "UnsafeFileError"]

_LAZY = {
    "QBMVAE": ".qbmvae",
    "QPerturb": ".qperturb",
    "SpiQGAN": ".spiqgan",
    "UnsafeFileError": "._persist",
}

if TYPE_CHECKING:  # pragma: no cover - for static type checkers and IDEs only
    from ._persist import UnsafeFileError
    from .qbmvae import QBMVAE
    from .qperturb import QPerturb
    from .spiqgan import SpiQGAN


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'qsimcells.model' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
