"""Descriptions returned by plugin hooks: cheap records that name a factory by import path."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def _load(factory: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(factory):
        return factory
    module, _, attr = factory.partition(":")
    if not module or not attr:
        raise ValueError(f"factory: expected 'package.module:attribute', got {factory!r}")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class _Spec:
    """Common part of all descriptions."""

    kind: ClassVar[str] = ""
    name: str
    factory: str | Callable[..., Any]
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or not set(self.name) <= _NAME_CHARS:
            raise ValueError(
                f"name: {self.name!r} is not a valid {self.kind} name; use lower-case letters, "
                "digits, '-', '_' and '.'"
            )
        if not (callable(self.factory) or (isinstance(self.factory, str) and ":" in self.factory)):
            raise ValueError(
                f"factory of {self.kind} {self.name!r}: expected a callable or "
                f"'package.module:attribute', got {self.factory!r}"
            )

    def load(self) -> Callable[..., Any]:
        """Import and return the factory."""
        return _load(self.factory)

    @property
    def capabilities(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class CircuitSamplerSpec(_Spec):
    """A circuit sampler.

    Parameters
    ----------
    name
        The name users pass as ``sampler=``.
    factory
        ``"package.module:Class"`` or a callable; called with the sampler options.
    description
        One line for ``qs.plugins.available()``.
    max_qubits
        Largest circuit it can take (``None``: no fixed limit).
    noisy
        Whether samples carry hardware or model noise (``auto`` never picks a noisy sampler).
    needs_credentials
        Whether it needs an account (``auto`` never picks one that does).
    exact
        Whether it samples the ideal distribution without approximation.
    priority
        Rank among the samplers ``auto`` may fall back to; higher is preferred.
    """

    kind: ClassVar[str] = "circuit_sampler"
    max_qubits: int | None = None
    noisy: bool = False
    needs_credentials: bool = False
    exact: bool = True
    priority: int = 0

    @property
    def capabilities(self) -> dict[str, Any]:
        return {
            "max_qubits": self.max_qubits,
            "noisy": self.noisy,
            "needs_credentials": self.needs_credentials,
            "exact": self.exact,
            "priority": self.priority,
        }


@dataclass(frozen=True)
class IsingSamplerSpec(_Spec):
    """An Ising (Boltzmann) sampler over ``{0, 1}^n``.

    Parameters
    ----------
    max_variables
        Largest number of spins it can take (``None``: no fixed limit).
    warm_start
        Whether it continues from given states (persistent chains).
    """

    kind: ClassVar[str] = "ising_sampler"
    max_variables: int | None = None
    warm_start: bool = False

    @property
    def capabilities(self) -> dict[str, Any]:
        return {"max_variables": self.max_variables, "warm_start": self.warm_start}


@dataclass(frozen=True)
class GeneratorSpec(_Spec):
    """A data generator: its factory is a function ``(**params) -> AnnData``."""

    kind: ClassVar[str] = "generator"
    tags: tuple[str, ...] = field(default=())

    @property
    def capabilities(self) -> dict[str, Any]:
        return {"tags": list(self.tags)}
