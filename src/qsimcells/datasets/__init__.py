"""Binary activity data sets: loaders for recorded spike trains and a synthetic population.

- :func:`read_spike_times` / :func:`write_spike_times`: spike-time files (CSV, TSV, text or
  NPZ; one spike per row with ``unit``, ``time`` and optionally ``trial``).
- :func:`bin_spike_times`: spikes to a binary AnnData of windows of ``n_timesteps`` bins
  (timestep-major columns), the input of :class:`qsimcells.model.SpiQGAN` and
  :func:`qsimcells.tl.spike_statistics`.
- :func:`ising_population`: a correlated population from an exact pairwise maximum-entropy
  (Ising) model in space and time, for tests and demos.

Nothing heavy loads here: torch only if a Gibbs sampler is asked for.
"""

from __future__ import annotations

from .ising import ising_population
from .spikes import bin_spike_times, read_spike_times, write_spike_times

__all__ = ["bin_spike_times", "ising_population", "read_spike_times", "write_spike_times"]
