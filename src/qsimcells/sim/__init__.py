"""Simulation: qSimCells designs, presets and ``simulate`` (AnnData out)."""

from __future__ import annotations

from . import presets
from .design import CellCircuit
from .generators import generate
from .simulate import simulate

__all__ = ["CellCircuit", "generate", "presets", "simulate"]
