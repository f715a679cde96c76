"""The torch quantum engine (batched statevector layers).

The engine lands here as it is built; importing this namespace imports no torch.
"""

__all__: list[str] = []
