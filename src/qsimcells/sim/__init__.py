"""Simulation: qSimCells designs, presets and ``simulate`` (AnnData out, in memory or as dask),
``simulate_to_zarr`` (atlas-sized, out of core), ``read_backed`` (a store with ``X`` on disk)
and design files (``read_design`` / ``write_design``, JSON)."""

from __future__ import annotations

from . import presets
from .backed import read_backed
from .calibrate import CalibratedDesign, fit_design
from .design import CellCircuit
from .design_file import check_design, read_design, write_design
from .generators import generate
from .screen import (
    downstream_genes,
    exact_activation,
    perturbation_screen,
    preset_screen,
    true_response,
)
from .simulate import simulate
from .tissue import Tissue
from .zarr_store import simulate_to_zarr

__all__ = [
    "CalibratedDesign",
    "CellCircuit",
    "Tissue",
    "check_design",
    "downstream_genes",
    "exact_activation",
    "fit_design",
    "generate",
    "perturbation_screen",
    "preset_screen",
    "presets",
    "read_backed",
    "read_design",
    "simulate",
    "simulate_to_zarr",
    "true_response",
    "write_design",
]
