"""qsimcells plugin: the ``neal`` Ising sampler (simulated annealing that ends at beta)."""

__version__ = "0.1.0"
