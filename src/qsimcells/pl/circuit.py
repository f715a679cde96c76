"""The circuit drawing and the per-register measurement histograms (Romero et al., Fig. 2)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._common import finish, panel_axes

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from qiskit import QuantumCircuit

    from ..sim import CellCircuit

_MAX_EXPECTED_QUBITS = 20


def circuit(
    design: CellCircuit | QuantumCircuit,
    *,
    ax: Axes | None = None,
    save: str | Path | None = None,
    show: bool | None = None,
    fold: int = -1,
    measure: bool = True,
) -> Figure:
    """Draw a design's circuit with Qiskit's matplotlib drawer.

    Parameters
    ----------
    design
        A :class:`~qsimcells.sim.CellCircuit` or a Qiskit circuit.
    ax
        Axes to draw into; a new figure when ``None``.
    save
        File to write (format from the suffix).
    show
        Show the figure (``None``: only when not saving and interactive).
    fold
        Qiskit's line folding (``-1``: never fold).
    measure
        Draw the measurements (designs only).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from qiskit import QuantumCircuit

    from ..sim import CellCircuit

    if isinstance(design, CellCircuit):
        qc = design.to_qiskit(measure=measure)
    elif isinstance(design, QuantumCircuit):
        qc = design
    else:
        raise TypeError(
            f"design: expected a CellCircuit or a QuantumCircuit, got {type(design).__name__}"
        )
    fig = qc.draw(output="mpl", ax=ax, fold=fold)
    if ax is not None:
        fig = ax.figure
    finish(fig, save, show)
    return fig


def _register_bits(adata: AnnData, cell_type: str) -> tuple[list[str], np.ndarray]:
    var = adata.var
    genes = list(var.index[(var["cell_type"] == cell_type) & (var["qubit"] >= 0)])
    cells = (adata.obs["cell_type"] == cell_type).to_numpy()
    binary = adata[cells, genes].layers["binary"]
    bits = np.asarray(binary.toarray() if hasattr(binary, "toarray") else binary, dtype=np.int64)
    return genes, bits


def _expected(adata: AnnData, cell_type: str, genes: list[str]) -> np.ndarray | None:
    """Exact register distribution from the stored design (statevector), when small enough."""
    from ..samplers.statevector import StatevectorSampler
    from ..sim import CellCircuit

    record = adata.uns.get("qsimcells", {})
    if "design" not in record:
        return None
    design = CellCircuit.from_dict(record["design"])
    if design.n_qubits > _MAX_EXPECTED_QUBITS:
        return None
    probs = StatevectorSampler(_MAX_EXPECTED_QUBITS).probabilities(design.to_qiskit(measure=False))
    qubits = [int(design.genes.at[g, "qubit"]) for g in genes]
    full = np.arange(probs.size)
    local = sum(((full >> q) & 1) << i for i, q in enumerate(qubits))
    return np.bincount(local, weights=probs, minlength=2 ** len(genes))


def bit_histogram(
    adata: AnnData,
    *,
    cell_types: Sequence[str] | None = None,
    expected: bool = True,
    top: int | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    save: str | Path | None = None,
    show: bool | None = None,
) -> list[Axes]:
    """Measurement histogram of each cell type's register (the paper's Fig. 2).

    Bit strings are written in gene order (first gene of the type on the left).

    Parameters
    ----------
    adata
        Output of :func:`qsimcells.sim.simulate` (needs ``layers["binary"]``).
    cell_types
        Registers to draw (default: all cell types).
    expected
        Overlay the exact probabilities of the stored design (statevector, up to 20 qubits).
    top
        Draw only the ``top`` most frequent bit strings (default: all when a register has at
        most 6 genes, else 32).
    ax
        One axes per cell type (or a single axes for one cell type); new figure when ``None``.
    save, show
        As in :func:`circuit`.

    Returns
    -------
    list of matplotlib.axes.Axes
    """
    if "binary" not in adata.layers:
        raise ValueError("adata: no layers['binary']; bit_histogram needs qs.sim.simulate output")
    known = (
        list(adata.obs["cell_type"].cat.categories)
        if hasattr(adata.obs["cell_type"], "cat")
        else sorted(set(adata.obs["cell_type"]))
    )
    cell_types = known if cell_types is None else list(cell_types)
    for t in cell_types:
        if t not in known:
            raise ValueError(f"cell_types: unknown cell type {t!r}; allowed: {known}")
    fig, axes = panel_axes(ax, len(cell_types), what="cell type", size=(5, 3.5))
    for a, t in zip(axes, cell_types, strict=True):
        genes, bits = _register_bits(adata, t)
        n = len(genes)
        k = top if top is not None else (2**n if n <= 6 else 32)
        if n <= 20:
            index = bits @ (1 << np.arange(n))  # gene i is bit i of the index
            freq = np.bincount(index, minlength=2**n) / max(len(bits), 1)
            states = np.arange(2**n) if k >= 2**n else np.sort(np.argsort(-freq)[:k])
            labels = ["".join(str((s >> i) & 1) for i in range(n)) for s in states]
            heights = freq[states]
        else:  # too many states to enumerate: count only those that occur
            observed, counts = np.unique(bits, axis=0, return_counts=True)
            keep = np.argsort(-counts, kind="stable")[:k]
            labels = ["".join(map(str, row)) for row in observed[keep]]
            heights = counts[keep] / max(len(bits), 1)
            states = None
        x = np.arange(len(labels))
        a.bar(x, heights, color="tab:blue", label=f"sampled ({len(bits)} cells)")
        exact = _expected(adata, t, genes) if expected and states is not None else None
        if exact is not None:
            a.plot(x, exact[states], "_", color="tab:red", markersize=10, mew=2, label="exact")
        a.set_xticks(x, labels, rotation=90, fontsize=7, family="monospace")
        a.set_title(f"{t}: {' '.join(genes)}")
        a.set_ylabel("fraction of cells")
        a.legend(fontsize=7)
    fig.tight_layout()
    finish(fig, save, show)
    return axes
