"""Analyses of simulated or real data (GRN inference, cell-cell communication, scoring).

The analyses land here as they are built; the namespace exists so that ``qs.tl`` resolves.
"""

__all__: list[str] = []
