"""qsimcells plugin: the ``ibm`` circuit sampler (IBM Quantum through qiskit-ibm-runtime)."""

__version__ = "0.1.0"
