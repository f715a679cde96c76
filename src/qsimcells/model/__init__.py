"""Trainable hybrid quantum-classical models (QBM-VAE, QPerturb, SpiQGAN).

Models land here as they are built; importing this namespace imports no torch or scvi-tools.
"""

__all__: list[str] = []
