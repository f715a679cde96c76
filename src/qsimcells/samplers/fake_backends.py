"""IBM fake backends by name (offline device snapshots from qiskit-ibm-runtime).

Shared by the ``aer`` plugin (borrowing a device's noise) and the ``ibm`` plugin (local testing
mode), so that both accept the same names, such as ``"fake_manila"`` or ``"fake_brisbane"``.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

__all__ = ["fake_backend", "fake_backend_names"]


@lru_cache(maxsize=1)
def _provider() -> Any:
    try:
        from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2
    except ImportError:
        raise ImportError(
            "fake backends come from qiskit-ibm-runtime; install it "
            "(pip install qiskit-ibm-runtime, or the qsimcells-ibm plugin)"
        ) from None
    return FakeProviderForBackendV2()


@lru_cache(maxsize=1)
def fake_backend_names() -> tuple[str, ...]:
    """Names of the fake backends shipped with qiskit-ibm-runtime (``"fake_manila"``, ...)."""
    with warnings.catch_warnings():  # some snapshots warn that their errors are not typical
        warnings.simplefilter("ignore", UserWarning)
        return tuple(sorted(backend.name for backend in _provider().backends()))


def fake_backend(name: str) -> Any:
    """The fake backend ``name`` (a fresh ``FakeBackendV2`` instance).

    Raises
    ------
    ValueError
        When no fake backend has that name; the message lists the available ones.
    """
    if not isinstance(name, str) or name not in fake_backend_names():
        raise ValueError(
            f"backend: {name!r} is not a fake backend; available: {list(fake_backend_names())}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _provider().backend(name)
