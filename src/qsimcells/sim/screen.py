"""Perturbation screens: knockouts and overexpression of a design, simulated, with the exact
response of every gene.

A perturbation is a do-intervention on the design (:meth:`CellCircuit.knockout` holds the gene
OFF, :meth:`CellCircuit.overexpress` holds it ON, and both drop the edges into it), so its effect
cascades through the gates that read the gene. Because the design is known, so is the truth:
:func:`exact_activation` gives every gene's probability of being ON after all gates, exactly,
and :func:`downstream_genes` the genes the intervention can reach. A gene that is not
downstream keeps exactly the activation probability it has in the control.

Exact activation, by design structure:

- ``"affine"`` (any width; every edge a CX, activation or repression): the gates only permute
  basis states, so the measured bits are XORs of independent basal coins,
  ``y_i = c_i xor (xor_{j in S_i} x_j)`` with ``x_j ~ Bernoulli(p_j)``, and
  ``P(y_i = 1) = (1 - (-1)^c_i prod_{j in S_i} (1 - 2 p_j)) / 2``.
- ``"statevector"`` (up to ``max_qubits``, any edges): Qiskit's statevector, marginalised.
- ``"cone"`` (CRY edges, wider designs): when no CRY acts on a gene after the gene has been read
  by a later gate's control, the design is a classical probabilistic program (the exact
  sampler's rule, DESIGN §5), so a gene's marginal depends only on its time-ordered ancestors;
  each gene's ancestor sub-circuit is solved by statevector (at most ``max_qubits`` genes).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._utils import RngLike, check_choice, check_positive_int, seed_sequence
from .design import INTERVENTIONS, CellCircuit, _short

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

logger = logging.getLogger(__name__)

__all__ = [
    "SCREEN_PRESETS",
    "downstream_genes",
    "exact_activation",
    "perturbation_screen",
    "preset_screen",
    "true_response",
]

EXACT_METHODS = ("auto", "affine", "statevector", "cone")
#: a gene whose exact activation moves by less than this counts as unchanged (float round-off)
CHANGE_TOL = 1e-12
#: preset screens: the design's parameters and how many perturbations to pick
SCREEN_PRESETS: dict[str, dict[str, Any]] = {
    "random_200": {"n_genes": 200, "n_edges": 200, "rng": 0, "n_perturbations": 48},
    "random_50": {"n_genes": 50, "n_edges": 50, "rng": 0, "n_perturbations": 12},
    "random_500": {"n_genes": 500, "n_edges": 500, "rng": 0, "n_perturbations": 96},
}


# -- exact activation --------------------------------------------------------------------------
def _edge_arrays(design: CellCircuit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source qubits, target qubits and repression flags of the edges, in gate order."""
    qubit = {g: i for i, g in enumerate(design.gene_names)}
    edges = design.edges
    return (
        np.array([qubit[g] for g in edges["source"]], dtype=np.int64),
        np.array([qubit[g] for g in edges["target"]], dtype=np.int64),
        (edges["sign"] == "repression").to_numpy(),
    )


def _affine_activation(
    p_on: np.ndarray, sources: np.ndarray, targets: np.ndarray, repression: np.ndarray
) -> np.ndarray:
    """Exact P(ON) of a CX-only circuit: each bit is an XOR of basal coins (module notes)."""
    n = p_on.size
    support = np.eye(n, dtype=bool)  # support[i, j]: bit i XORs in basal coin j
    flipped = np.zeros(n, dtype=bool)  # constant term of bit i
    for s, t, rep in zip(sources.tolist(), targets.tolist(), repression.tolist(), strict=True):
        support[t] ^= support[s]
        # an open control (repression) fires when the source is OFF: t ^= (1 xor s)
        flipped[t] ^= flipped[s] ^ rep
    bias = 1.0 - 2.0 * p_on
    prod = np.prod(np.where(support, bias[None, :], 1.0), axis=1)
    return (1.0 - np.where(flipped, -1.0, 1.0) * prod) / 2.0


def _circuit(design: CellCircuit, genes: list[str], edges: pd.DataFrame) -> Any:
    """RY for ``genes`` and ``edges`` in order, on qubits numbered as in ``genes``."""
    from qiskit import QuantumCircuit

    local = {g: k for k, g in enumerate(genes)}
    theta = design.genes["theta"]
    qc = QuantumCircuit(len(genes))
    for g in genes:
        qc.ry(float(theta[g]), local[g])
    for edge in edges.itertuples(index=False):
        state = 1 if edge.sign == "activation" else 0
        c, t = local[edge.source], local[edge.target]
        if math.isnan(edge.weight):
            qc.cx(c, t, ctrl_state=state)
        else:
            qc.cry(float(edge.weight), c, t, ctrl_state=state)
    return qc


def _on_probabilities(circuit: Any) -> np.ndarray:
    """P(qubit i measures 1) for every qubit of a unitary circuit."""
    from qiskit.quantum_info import Statevector

    probs = np.asarray(Statevector(circuit).probabilities(), dtype=np.float64)
    n = circuit.num_qubits
    index = np.arange(probs.size)
    return np.array([probs[(index >> i) & 1 == 1].sum() for i in range(n)])


def _classical_obstacle(design: CellCircuit) -> str | None:
    """Why the design is not a classical probabilistic program (None when it is)."""
    read: set[str] = set()
    for k, edge in enumerate(design.edges.itertuples(index=False)):
        if not math.isnan(edge.weight) and edge.target in read:
            return (
                f"edge {k} ({edge.source} -> {edge.target}) is a CRY on a gene that an "
                "earlier gate already read as a control"
            )
        read.add(edge.source)
    return None


def _ancestor_edges(edges: pd.DataFrame, gene: str) -> tuple[list[str], pd.DataFrame]:
    """The genes and gates that can influence ``gene``'s final bit, in gate order."""
    cone = {gene}
    keep = np.zeros(len(edges), dtype=bool)
    sources, targets = edges["source"].to_numpy(), edges["target"].to_numpy()
    for k in range(len(edges) - 1, -1, -1):  # backwards: a gate matters if it writes the cone
        if targets[k] in cone:
            keep[k] = True
            cone.add(sources[k])
    return sorted(cone), edges[keep]


def exact_activation(
    design: CellCircuit, *, method: str = "auto", max_qubits: int = 20
) -> pd.Series:
    """Exact probability that each circuit gene is ON after every gate (its measured bit).

    Parameters
    ----------
    design
        The design (with its interventions, if any).
    method
        ``"affine"`` (every edge a CX: closed form at any width), ``"statevector"`` (at most
        ``max_qubits`` genes), ``"cone"`` (each gene's time-ordered ancestors by statevector;
        for designs with CRY edges that are classical programs), or ``"auto"``: affine when it
        applies, else statevector when the width allows, else cone. See the module notes.
    max_qubits
        Largest statevector solved (memory ``16 * 2**max_qubits`` bytes).

    Returns
    -------
    pandas.Series
        ``P(ON)`` per circuit gene, in qubit order, named ``"p_on"``; ``attrs["method"]`` says
        which method ran.
    """
    if not isinstance(design, CellCircuit):
        raise TypeError(f"design: expected a qs.sim.CellCircuit, got {type(design).__name__}")
    check_choice("method", method, EXACT_METHODS)
    max_qubits = check_positive_int("max_qubits", max_qubits)
    edges = design.edges
    cx_only = bool(edges["weight"].isna().all())
    if method == "auto":
        method = "affine" if cx_only else "statevector" if design.n_qubits <= max_qubits else "cone"
    genes = design.gene_names
    if method == "affine":
        if not cx_only:
            raise ValueError(
                "method: 'affine' needs every edge to be a CX (no weight); this "
                "design has CRY edges, use 'statevector' or 'cone'"
            )
        values = _affine_activation(design.genes["p_on"].to_numpy(), *_edge_arrays(design))
    elif method == "statevector":
        if design.n_qubits > max_qubits:
            raise ValueError(
                f"method: 'statevector' of {design.n_qubits} genes exceeds "
                f"max_qubits={max_qubits}; use 'cone' (or 'affine' for CX-only "
                "designs)"
            )
        values = _on_probabilities(_circuit(design, genes, edges))
    else:
        obstacle = _classical_obstacle(design)
        if obstacle:
            raise ValueError(
                f"method: 'cone' needs a design that is a classical program, but "
                f"{obstacle}; only 'statevector' is exact here (at most "
                f"max_qubits={max_qubits} genes)"
            )
        values = np.empty(len(genes))
        for i, gene in enumerate(genes):
            cone, sub = _ancestor_edges(edges, gene)
            if len(cone) > max_qubits:
                raise ValueError(
                    f"method: 'cone': gene {gene!r} has {len(cone)} ancestor "
                    f"genes, more than max_qubits={max_qubits}"
                )
            values[i] = _on_probabilities(_circuit(design, cone, sub))[cone.index(gene)]
    out = pd.Series(np.clip(values, 0.0, 1.0), index=pd.Index(genes, name="gene"), name="p_on")
    out.attrs["method"] = method
    return out


def downstream_genes(design: CellCircuit, genes: str | Iterable[str]) -> list[str]:
    """Genes that an intervention on ``genes`` can reach through the gates, in qubit order.

    A gene is downstream when a time-respecting chain of gates leads to it: a gate whose
    control is an intervened gene, or a gene already reached at that point of the gate order,
    reaches its target. With gates in random order this is a subset of the graph's
    descendants; a gene that is not downstream keeps exactly its control activation. The
    intervened genes themselves are not listed.

    Parameters
    ----------
    design
        The design (usually the unperturbed one; the edges into ``genes`` are ignored, as an
        intervention removes them).
    genes
        Intervened gene name(s).
    """
    if not isinstance(design, CellCircuit):
        raise TypeError(f"design: expected a qs.sim.CellCircuit, got {type(design).__name__}")
    held = [genes] if isinstance(genes, str) else list(genes)
    if not held:
        raise ValueError("genes: give at least one gene")
    unknown = [g for g in held if g not in design.gene_names]
    if unknown:
        raise ValueError(
            f"genes: unknown circuit genes {unknown}; circuit genes: {_short(design.gene_names)}"
        )
    reached = set(held)
    for edge in design.edges.itertuples(index=False):
        if edge.source in reached and edge.target not in held:
            reached.add(edge.target)
    return [g for g in design.gene_names if g in reached and g not in held]


def _graph_descendants(design: CellCircuit, genes: list[str]) -> set[str]:
    children: dict[str, list[str]] = {}
    for edge in design.edges.itertuples(index=False):
        if edge.target not in genes:
            children.setdefault(edge.source, []).append(edge.target)
    seen: set[str] = set()
    stack = list(genes)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen - set(genes)


# -- the screen --------------------------------------------------------------------------------
def _parse_perturbations(
    design: CellCircuit, perturbations: Any, kind: str, control: str
) -> list[tuple[str, str, list[str]]]:
    """``(label, kind, genes)`` per perturbation; a label ``"G1+G5"`` is a combination."""
    check_choice("kind", kind, INTERVENTIONS)
    if isinstance(perturbations, str):
        raise TypeError(
            "perturbations: expected a list of gene names or a mapping gene -> "
            f"'knockout' | 'overexpress', got the string {perturbations!r} (wrap "
            "a single perturbation in a list)"
        )
    if isinstance(perturbations, Mapping):
        items = list(perturbations.items())
    elif isinstance(perturbations, Iterable):
        items = [(label, kind) for label in perturbations]
    else:
        raise TypeError(
            "perturbations: expected a list of gene names or a mapping gene -> "
            f"'knockout' | 'overexpress', got {type(perturbations).__name__}"
        )
    if not items:
        raise ValueError("perturbations: give at least one perturbation")
    known = set(design.gene_names)
    out, seen = [], set()
    for i, (label, what) in enumerate(items):
        where = (
            f"perturbations[{label!r}]"
            if isinstance(perturbations, Mapping)
            else f"perturbations[{i}]"
        )
        if not isinstance(label, str) or not label:
            raise TypeError(
                f"{where}: expected a gene name (or 'G1+G2' for a combination), got {label!r}"
            )
        check_choice(where, what, INTERVENTIONS)
        if label == control:
            raise ValueError(
                f"{where}: {label!r} is the control label; choose another control name"
            )
        if label in seen:
            raise ValueError(f"{where}: {label!r} is listed twice")
        seen.add(label)
        genes = label.split("+")
        unknown = [g for g in genes if g not in known]
        if unknown:
            raise ValueError(
                f"{where}: unknown circuit gene(s) {unknown} in {label!r}; "
                f"circuit genes: {_short(design.gene_names)}"
            )
        if len(set(genes)) != len(genes):
            raise ValueError(f"{where}: {label!r} repeats a gene")
        out.append((label, what, genes))
    return out


def perturbation_screen(
    design: CellCircuit,
    perturbations: Iterable[str] | Mapping[str, str],
    n_cells: int,
    *,
    rng: RngLike = None,
    control: str = "control",
    kind: str = "knockout",
    n_control: int | None = None,
    response_method: str = "auto",
    progress: bool | None = None,
    **simulate_kwargs: Any,
) -> AnnData:
    """Simulate a perturbation screen of a design: control cells plus cells of every
    knockout / overexpression, with the exact response of every gene.

    Each perturbation is a do-intervention (:meth:`CellCircuit.knockout` /
    :meth:`CellCircuit.overexpress`), simulated with :func:`qsimcells.sim.simulate` from its own
    independent seed stream, so its effect cascades through the gates downstream of the gene.

    Parameters
    ----------
    design
        The unperturbed design (the control).
    perturbations
        Gene names (each perturbed by ``kind``), ``"G1+G5"`` for a combination of genes, or a
        mapping label -> ``"knockout"`` | ``"overexpress"``. Labels are unique; a label is the
        perturbation's name in ``obs["perturbation"]``.
    n_cells
        Niches (circuit shots) per perturbation; each niche gives one cell per cell type, so a
        perturbation has ``n_cells * n_cell_types`` cells.
    rng
        Seed or generator; a fixed seed gives the same screen bit for bit.
    control
        Label of the unperturbed cells.
    kind
        Intervention applied to the genes of a list (``"knockout"`` or ``"overexpress"``).
    n_control
        Niches of control cells (default ``n_cells``).
    response_method
        How :func:`exact_activation` computes the true response (default ``"auto"``).
    progress
        Show a progress bar over perturbations; ``None`` only in an interactive terminal.
    **simulate_kwargs
        Passed to :func:`~qsimcells.sim.simulate` for every perturbation (``sampler``,
        ``library_size``, ``chunk_size``, sampler options). ``batches`` is refused: each run
        would draw its own batch factors, so a batch would mean different things in different
        perturbations.

    Returns
    -------
    anndata.AnnData
        The cells of all runs, control first, with the control design's ``var`` and, as in
        :func:`~qsimcells.sim.simulate`, ``X`` counts (CSR) and ``layers["binary"]``.
        ``obs`` adds ``perturbation`` (categorical, the control first) and
        ``perturbation_kind`` (``"control"``, ``"knockout"``, ``"overexpress"``); ``niche`` is
        unique across the screen. ``uns["qsimcells"]`` is the control run's record (so
        :func:`qsimcells.tl.true_network` works on the screen) and
        ``uns["perturbation_screen"]`` holds the truth:

        - ``control``, ``n_cells``, ``n_control``, ``seed``, ``method`` (exact method used);
        - ``design``: the unperturbed design (:meth:`CellCircuit.to_dict`);
        - ``perturbations``: table indexed by label (control first) with ``kind``, ``genes``
          (``"G1+G5"``), ``n_cells`` (niches), ``n_obs`` (cells), ``n_downstream`` and
          ``n_changed`` (downstream genes whose exact activation moves by more than 1e-12);
        - ``p_on``: exact ``P(ON)`` of every circuit gene (columns) under every label (rows,
          the control first); the expected count of an ON gene is ``mu``, so a gene's expected
          mean count in cells of its type is ``p_on * mu``;
        - ``downstream``: boolean table perturbation x gene (:func:`downstream_genes`);
        - ``graph_descendant``: boolean table, descendants in the edge graph (a superset of
          ``downstream`` when gates are not in cascade order).

        :func:`true_response` reads the response ``p_on - p_on[control]`` back.
    """
    from scipy import sparse
    from tqdm.auto import tqdm

    from .simulate import simulate

    if not isinstance(design, CellCircuit):
        raise TypeError(f"design: expected a qs.sim.CellCircuit, got {type(design).__name__}")
    if not isinstance(control, str) or not control:
        raise ValueError(f"control: expected a non-empty label, got {control!r}")
    n_cells = check_positive_int("n_cells", n_cells)
    n_control = n_cells if n_control is None else check_positive_int("n_control", n_control)
    check_choice("response_method", response_method, EXACT_METHODS)
    if "batches" in simulate_kwargs:
        raise ValueError(
            "batches: not supported in a screen (each perturbation's run would "
            "draw its own batch factors); simulate batches of a screen's cells "
            "separately"
        )
    runs = [(control, "control", []), *_parse_perturbations(design, perturbations, kind, control)]
    logger.info(
        "perturbation_screen: %d perturbations x %d niches, %d control niches",
        len(runs) - 1,
        n_cells,
        n_control,
    )

    root = seed_sequence(rng)
    root = np.random.SeedSequence(root.entropy, spawn_key=root.spawn_key)  # fresh counter
    seeds = root.spawn(len(runs))

    blocks, p_on, down, graph_down, table = [], {}, {}, {}, []
    method_used = None
    genes = design.gene_names
    for (label, what, held), seed in tqdm(
        list(zip(runs, seeds, strict=True)),
        desc="perturbation_screen",
        unit="perturbation",
        disable=(not progress) if progress is not None else None,
    ):
        run_design = (
            design
            if what == "control"
            else (design.knockout(held) if what == "knockout" else design.overexpress(held))
        )
        truth = exact_activation(run_design, method=response_method)
        method_used = method_used or truth.attrs["method"]
        p_on[label] = truth.to_numpy()
        n_niches = n_control if what == "control" else n_cells
        adata = simulate(run_design, n_niches, rng=seed, progress=False, **simulate_kwargs)
        blocks.append(adata)
        if what == "control":
            reach: list[str] = []
        else:
            reach = downstream_genes(design, held)
            down[label] = np.isin(genes, reach)
            graph_down[label] = np.isin(genes, sorted(_graph_descendants(design, held)))
        changed = np.abs(p_on[label] - p_on[control]) > CHANGE_TOL
        changed[np.isin(genes, held)] = False
        table.append(
            {
                "perturbation": label,
                "kind": what,
                "genes": "+".join(held),
                "n_cells": n_niches,
                "n_obs": adata.n_obs,
                "n_downstream": len(reach),
                "n_changed": int(changed.sum()),
            }
        )

    labels = [label for label, _, _ in runs]
    kinds = [what for _, what, _ in runs]
    obs_parts, offset = [], 0
    for adata, label, what in zip(blocks, labels, kinds, strict=True):
        obs = adata.obs.copy()
        obs["niche"] = obs["niche"].to_numpy() + offset
        offset += int(adata.uns["qsimcells"]["n_cells"])
        obs.index = pd.Index([f"{label}_{name}" for name in obs.index])
        obs["perturbation"] = label
        obs["perturbation_kind"] = what
        obs_parts.append(obs)
    obs = pd.concat(obs_parts)
    if not obs.index.is_unique:  # a label like "G1_CT1" could collide with "G1" + "_CT1_0"
        obs.index = pd.Index([f"{name}-{i}" for i, name in enumerate(obs.index)])
    obs["cell_type"] = pd.Categorical(
        obs["cell_type"].astype(str), categories=list(design.cell_types)
    )
    obs["perturbation"] = pd.Categorical(obs["perturbation"], categories=labels)
    obs["perturbation_kind"] = pd.Categorical(
        obs["perturbation_kind"],
        categories=[k for k in ("control", *INTERVENTIONS) if k in set(kinds)],
    )

    import anndata as ad

    record = dict(blocks[0].uns["qsimcells"])
    entropy = root.entropy
    record["generator"] = "perturbation_screen"
    record["seed"] = int(entropy) if isinstance(entropy, int) and entropy < 2**63 else str(entropy)
    perturbed = labels[1:]
    screen = {
        "control": control,
        "n_cells": n_cells,
        "n_control": n_control,
        "seed": record["seed"],
        "method": method_used,
        "design": design.to_dict(),
        "perturbations": pd.DataFrame(table).set_index("perturbation"),
        "p_on": pd.DataFrame(
            np.vstack([p_on[k] for k in labels]),
            index=pd.Index(labels, name="perturbation"),
            columns=pd.Index(genes),
        ),
        "downstream": pd.DataFrame(
            np.vstack([down[k] for k in perturbed]),
            index=pd.Index(perturbed, name="perturbation"),
            columns=pd.Index(genes),
        ),
        "graph_descendant": pd.DataFrame(
            np.vstack([graph_down[k] for k in perturbed]),
            index=pd.Index(perturbed, name="perturbation"),
            columns=pd.Index(genes),
        ),
    }
    return ad.AnnData(
        X=sparse.vstack([a.X for a in blocks], format="csr"),
        obs=obs,
        var=blocks[0].var.copy(),
        layers={"binary": sparse.vstack([a.layers["binary"] for a in blocks], format="csr")},
        uns={"qsimcells": record, "perturbation_screen": screen},
    )


def true_response(adata: AnnData, *, delta: bool = True) -> pd.DataFrame:
    """The exact response of a screen made by :func:`perturbation_screen`.

    Parameters
    ----------
    adata
        The screen (also after an h5ad round trip).
    delta
        ``True``: ``p_on`` under each perturbation minus the control's (perturbations x circuit
        genes, the control row left out); ``False``: ``p_on`` itself, the control row first.

    Returns
    -------
    pandas.DataFrame
        Rows perturbation labels, columns circuit genes.
    """
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        raise TypeError(f"adata: expected an AnnData, got {type(adata).__name__}")
    screen = adata.uns.get("perturbation_screen")
    if not isinstance(screen, Mapping) or "p_on" not in screen:
        raise ValueError(
            "adata: uns['perturbation_screen'] not found; make the screen with "
            "qs.sim.perturbation_screen"
        )
    p_on = pd.DataFrame(screen["p_on"])
    if not delta:
        return p_on
    control = str(screen["control"])
    return p_on.drop(index=control) - p_on.loc[control]


def preset_screen(name: str = "random_200") -> tuple[CellCircuit, list[str]]:
    """A ready-made screen: a design and the genes to knock out.

    ``"random_200"``: :func:`~qsimcells.sim.presets.random_dag` with 200 genes and 200 edges
    (seed 0, one cell type, 50 housekeeping genes) and 48 knockouts; ``"random_500"``: 500
    genes, 500 edges, 96 knockouts (the larger benchmark screen); ``"random_50"``: 50 genes,
    50 edges, 12 knockouts (for quick runs). The perturbed genes are the regulators with the
    strongest exact knockout response (the largest sum of ``|delta p_on|`` over the other
    genes), listed in qubit order, so a benchmark can hold out a quarter of them and still
    score genes that really change.

    Parameters
    ----------
    name
        One of :data:`SCREEN_PRESETS`.

    Returns
    -------
    design, perturbations
        Pass them to :func:`perturbation_screen`.
    """
    from .presets import random_dag

    check_choice("name", name, sorted(SCREEN_PRESETS))
    params = dict(SCREEN_PRESETS[name])
    n_perturbations = params.pop("n_perturbations")
    design = random_dag(**params)
    p_on = design.genes["p_on"].to_numpy()
    sources, targets, repression = _edge_arrays(design)
    base = _affine_activation(p_on, sources, targets, repression)
    regulators = np.unique(sources)  # qubit order
    strength = []
    for g in regulators.tolist():  # a knockout: p_on = 0 and the edges into the gene dropped
        keep = targets != g
        moved = np.abs(
            _affine_activation(
                np.where(np.arange(p_on.size) == g, 0.0, p_on),
                sources[keep],
                targets[keep],
                repression[keep],
            )
            - base
        )
        moved[g] = 0.0
        strength.append(moved.sum())
    if len(regulators) < n_perturbations:  # pragma: no cover - fixed presets have enough
        raise ValueError(f"name: preset {name!r} has only {len(regulators)} regulators")
    best = np.sort(regulators[np.argsort(-np.asarray(strength), kind="stable")[:n_perturbations]])
    return design, [design.gene_names[i] for i in best.tolist()]
