"""Simulation: qSimCells designs, presets and ``simulate`` (AnnData out)."""

from __future__ import annotations

from . import presets
from .design import CellCircuit
from .generators import generate
from .screen import (downstream_genes, exact_activation, perturbation_screen, preset_screen,
                     true_response)
from .simulate import simulate

__all__ = ["CellCircuit", "downstream_genes", "exact_activation", "generate",
           "perturbation_screen", "preset_screen", "presets", "simulate", "true_response"]
