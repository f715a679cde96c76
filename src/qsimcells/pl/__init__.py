"""Plots (matplotlib): every function takes ``ax=``, ``save=`` and ``show=``.

``circuit`` and ``bit_histogram`` (Romero et al., Fig. 2), ``umap`` (Fig. 3, through scanpy,
imported on first use), ``network`` (Fig. 4: programmed against inferred networks) and
``communication`` (Table 3 as bars or dots); ``spike_statistics`` and ``raster`` (SpiQGAN,
Fig. 2-3: generated against real activity statistics, spike trains); ``spatial`` (cells in
tissue with their true couplings); ``compare_to_reference`` (a simulation against the real
data it imitates).
"""

from __future__ import annotations

from .circuit import bit_histogram, circuit
from .communication import communication
from .embedding import umap
from .network import network
from .reference import compare_to_reference
from .spatial import spatial
from .spikes import raster, spike_statistics

__all__ = [
    "bit_histogram",
    "circuit",
    "communication",
    "compare_to_reference",
    "network",
    "raster",
    "spatial",
    "spike_statistics",
    "umap",
]
