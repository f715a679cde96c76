"""The torch quantum engine: a batched statevector and the ``QuantumLayer`` built on it.

``qs.nn.zero_state`` makes a batch of ``|0...0>`` states; the gates (``rx``, ``ry``, ``rz`` with
shared or per-sample angles, ``cnot``, ``cz``) return new states, so autograd flows through
them; ``expectation``, ``probabilities``, ``marginal_ones`` and ``to_amplitudes`` read them out
in Qiskit's bit order. ``qs.nn.QuantumLayer`` is the re-uploading PQC of the hybrid perturbation
model as a ``torch.nn.Module``; ``to_qiskit`` exports it and ``expectations_from_sampler``
evaluates the export with shots on a registered circuit sampler.

Importing this namespace imports no torch: each name loads its module on first touch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_ENGINE = (
    "zero_state",
    "rx",
    "ry",
    "rz",
    "cnot",
    "cz",
    "apply_matrix",
    "apply_product",
    "apply_permutation",
    "permutation_of_cnots",
    "expectation",
    "expectations_xyz",
    "marginal_ones",
    "probabilities",
    "to_amplitudes",
    "n_qubits_of",
    "z_signs",
)
_LAYER = ("QuantumLayer", "expectations_from_sampler", "entangling_pairs")

__all__: list[str] = [*_ENGINE, *_LAYER]

_LAZY = {**dict.fromkeys(_ENGINE, ".statevector"), **dict.fromkeys(_LAYER, ".layer")}

if TYPE_CHECKING:  # pragma: no cover - for static type checkers and IDEs only
    # "x as x": re-exported names (the lazy __getattr__ below provides them at run time)
    from .layer import (
        QuantumLayer as QuantumLayer,
        entangling_pairs as entangling_pairs,
        expectations_from_sampler as expectations_from_sampler,
    )
    from .statevector import (
        apply_matrix as apply_matrix,
        apply_permutation as apply_permutation,
        apply_product as apply_product,
        cnot as cnot,
        cz as cz,
        expectation as expectation,
        expectations_xyz as expectations_xyz,
        marginal_ones as marginal_ones,
        n_qubits_of as n_qubits_of,
        permutation_of_cnots as permutation_of_cnots,
        probabilities as probabilities,
        rx as rx,
        ry as ry,
        rz as rz,
        to_amplitudes as to_amplitudes,
        z_signs as z_signs,
        zero_state as zero_state,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'qsimcells.nn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
