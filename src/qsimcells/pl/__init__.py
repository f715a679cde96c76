"""Plots (matplotlib): every function takes ``ax=``, ``save=`` and ``show=``."""

from __future__ import annotations

from .circuit import bit_histogram, circuit

__all__ = ["bit_histogram", "circuit"]
