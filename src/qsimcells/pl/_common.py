"""Shared plumbing of the plotting functions: saving and showing."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def finish(fig: Any, save: str | Path | None, show: bool | None) -> None:
    """Save ``fig`` to ``save`` (parent folders created) and show it when asked; by scanpy's
    convention ``show=None`` shows only when nothing is saved."""
    import matplotlib.pyplot as plt

    if save is not None:
        path = Path(save)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, bbox_inches="tight")
    if show or (show is None and save is None and plt.isinteractive()):
        plt.show()
