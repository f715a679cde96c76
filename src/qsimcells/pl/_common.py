"""Shared plumbing of the plotting functions: axes for several panels, saving and showing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def figure_of(ax: Any) -> Any:
    """The whole figure ``ax`` draws in (also for an axes in a subfigure), which ``save=``
    writes; an axes in no figure is refused."""
    fig = ax.get_figure(root=True)
    if fig is None:
        raise ValueError("ax: the axes belong to no figure; create them with plt.subplots")
    return fig


def panel_axes(ax: Any, n: int, *, what: str, size: tuple[float, float]) -> tuple[Any, list]:
    """``(figure, axes)`` for ``n`` panels side by side: a new figure of ``n`` axes of ``size``
    inches each when ``ax`` is ``None``, else the axes given (one, or a sequence of ``n``)."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, grid = plt.subplots(1, n, figsize=(size[0] * n, size[1]), squeeze=False)
        return fig, list(grid[0])
    axes = [ax] if not isinstance(ax, Sequence) else list(ax)
    if len(axes) != n:
        raise ValueError(f"ax: expected {n} axes (one per {what}), got {len(axes)}")
    return axes[0].figure, axes


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
