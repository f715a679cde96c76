"""qsimcells plugin: the ``aer`` circuit sampler (Qiskit Aer SamplerV2)."""

__version__ = "0.1.0"
