"""``CellCircuit``: a qSimCells design (cell types, genes, regulation and communication edges).

Genes are qubits, numbered in the order the cell types and their genes are given. RY(theta) sets a
gene's basal activation, ``p = sin^2(theta / 2)``. Edges become controlled gates in the order
given (the order matters: the gates do not commute): a plain edge is a CX, an edge with a
``weight`` is a CRY(weight), and a repression edge fires when its source is OFF (open control).
Edges within a cell type are gene regulation; edges between cell types are ligand -> receptor
communication.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._utils import check_choice, check_finite

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx
    from qiskit import QuantumCircuit

SIGNS = ("activation", "repression")
INTERVENTIONS = ("knockout", "overexpress")
#: accepted NB parameters: counts are stored as int32, and a smaller r or larger mu gives tails
#: that no single-cell count reaches
MU_MAX = 1e6
R_RANGE = (1e-2, 1e6)
_SIGN_ALIASES = {
    "activation": "activation",
    "+": "activation",
    1: "activation",
    "repression": "repression",
    "-": "repression",
    -1: "repression",
}
EDGE_COLUMNS = ["source", "target", "weight", "sign", "kind"]


def _short(names: Sequence[str], limit: int = 12) -> str:
    names = list(names)
    return str(names) if len(names) <= limit else f"{names[:limit]} ... ({len(names)} in all)"


@dataclass(frozen=True)
class NBParams:
    """Negative-binomial parameters (mean ``mu``, dispersion ``r``) of a gene block."""

    n: int
    mu: float
    r: float


class CellCircuit:
    """A qSimCells design.

    Parameters
    ----------
    cell_types
        Cell type name -> its genes, in qubit order: ``{"CT1": ["g0", "g1"], "CT2": ["g2"]}``.
    theta
        RY angle per gene in ``[0, pi]``: one number for all, a sequence in qubit order, or a
        mapping gene -> angle. Give ``theta`` or ``p``, not both.
    p
        Activation probability per gene in ``[0, 1]`` (``theta = 2 asin(sqrt(p))``).
    edges
        Ordered edges (gate order): tuples ``(source, target[, weight[, sign]])``, dicts with those
        keys, a :class:`pandas.DataFrame` with columns ``source``, ``target`` and optional
        ``weight``, ``sign``, or a :class:`networkx.DiGraph` whose edges carry an ``order``
        attribute (a graph does not keep insertion order). Genes are names or qubit indices.
        ``weight`` (radians, ``0 < weight <= pi``) makes a CRY instead of a CX; ``sign`` is
        ``"activation"`` (default) or ``"repression"`` (open control).
    mu, r
        Negative-binomial mean (``0 <= mu <= 1e6``) and dispersion (``0.01 <= r <= 1e6``) of each
        gene's counts when ON: a number, a sequence in qubit order or a mapping.
    n_housekeeping, housekeeping_mu, housekeeping_r
        Housekeeping genes (always ON in every cell, NB counts).
    n_background, background_mu, background_r
        Background genes outside the circuit (NB counts in every cell, no gating).
    interventions
        Gene -> ``"knockout"`` or ``"overexpress"``, applied as do-interventions (the gene is
        held OFF / ON and edges into it are dropped); usually set through :meth:`knockout` and
        :meth:`overexpress`.
    name
        A label stored with simulated data.
    """

    def __init__(
        self,
        cell_types: Mapping[str, Sequence[str]],
        *,
        theta: float | Sequence[float] | np.ndarray | Mapping[str, float] | None = None,
        p: float | Sequence[float] | np.ndarray | Mapping[str, float] | None = None,
        edges: Any = (),
        mu: float | Sequence[float] | np.ndarray | Mapping[str, float] = 5.0,
        r: float | Sequence[float] | np.ndarray | Mapping[str, float] = 1.0,
        n_housekeeping: int = 50,
        housekeeping_mu: float = 80.0,
        housekeeping_r: float = 6.0,
        n_background: int = 0,
        background_mu: float = 0.5,
        background_r: float = 0.5,
        interventions: Mapping[str, str] | None = None,
        name: str = "design",
    ) -> None:
        genes, types = self._parse_cell_types(cell_types)
        if theta is not None and p is not None:
            raise ValueError("theta, p: give the activation as theta or as p, not both")
        if theta is None and p is None:
            raise ValueError("theta: give each gene's activation as theta (radians) or p")
        if theta is not None:
            angles = self._per_gene("theta", theta, genes, low=0.0, high=math.pi)
        else:
            probs = self._per_gene("p", p, genes, low=0.0, high=1.0)
            angles = 2.0 * np.arcsin(np.sqrt(probs))
        table = pd.DataFrame(
            {
                "cell_type": types,
                "qubit": np.arange(len(genes)),
                "theta": angles,
                "mu": self._per_gene("mu", mu, genes, low=0.0, high=MU_MAX),
                "r": self._per_gene("r", r, genes, low=R_RANGE[0], high=R_RANGE[1]),
                "intervention": "",
            },
            index=pd.Index(genes, name="gene"),
        )
        for gene, what in dict(interventions or {}).items():
            check_choice(f"interventions[{gene!r}]", what, INTERVENTIONS)
            if gene not in table.index:
                raise ValueError(
                    f"interventions: unknown gene {gene!r}; known genes: {_short(genes)}"
                )
            table.loc[gene, "intervention"] = what
        self._genes = table
        self._edges = self._parse_edges(edges)
        held = table.index[table["intervention"] != ""]
        if len(held):  # do-interventions: the gene is held OFF / ON, nothing upstream acts on it
            table.loc[held, "theta"] = np.where(
                table.loc[held, "intervention"] == "knockout", 0.0, math.pi
            )
            self._edges = self._edges[~self._edges["target"].isin(held)].reset_index(drop=True)
        self.housekeeping = self._block(
            "housekeeping", n_housekeeping, housekeeping_mu, housekeeping_r
        )
        self.background = self._block("background", n_background, background_mu, background_r)
        clash = set(genes) & (set(self.housekeeping_names) | set(self.background_names))
        if clash:
            raise ValueError(
                f"cell_types: gene names {sorted(clash)} clash with the names of "
                "housekeeping (HKG*) or background (BG*) genes"
            )
        if not isinstance(name, str):
            raise TypeError(f"name: expected a string, got {type(name).__name__}")
        self.name = name

    # -- parsing and validation -------------------------------------------------------------
    @staticmethod
    def _parse_cell_types(cell_types: Mapping[str, Sequence[str]]) -> tuple[list[str], list[str]]:
        if not isinstance(cell_types, Mapping) or not cell_types:
            raise ValueError("cell_types: expected a non-empty mapping cell type -> gene names")
        genes: list[str] = []
        types: list[str] = []
        for cell_type, members in cell_types.items():
            if not isinstance(cell_type, str) or not cell_type:
                raise ValueError(
                    f"cell_types: cell type names must be non-empty strings, got {cell_type!r}"
                )
            if cell_type in ("housekeeping", "background"):
                raise ValueError(
                    f"cell_types: {cell_type!r} is reserved for the genes outside "
                    "the circuit; choose another cell type name"
                )
            if isinstance(members, str) or not isinstance(members, Iterable):
                raise ValueError(f"cell_types[{cell_type!r}]: expected a list of gene names")
            members = list(members)
            if not members:
                raise ValueError(f"cell_types[{cell_type!r}]: a cell type needs at least one gene")
            for gene in members:
                if not isinstance(gene, str) or not gene:
                    raise ValueError(
                        f"cell_types[{cell_type!r}]: gene names must be non-empty "
                        f"strings, got {gene!r}"
                    )
            genes += members
            types += [cell_type] * len(members)
        dupes = sorted(g for g, count in Counter(genes).items() if count > 1)
        if dupes:
            raise ValueError(
                f"cell_types: gene names must be unique across cell types; repeated: {dupes}"
            )
        return genes, types

    @staticmethod
    def _per_gene(field: str, value: Any, genes: list[str], **bounds: Any) -> np.ndarray:
        if isinstance(value, pd.Series):  # by gene name, never by position
            value = value.to_dict()
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(genes))
            if unknown:
                raise ValueError(f"{field}: unknown genes {unknown}; known genes: {_short(genes)}")
            missing = [g for g in genes if g not in value]
            if missing:
                raise ValueError(f"{field}: no value for genes {_short(missing)}")
            items = [(f"{field}[{g!r}]", value[g]) for g in genes]
        elif isinstance(value, (str, bytes)):
            raise TypeError(f"{field}: expected a number, a sequence or a mapping, got {value!r}")
        elif np.ndim(value) == 0:
            items = [(field, value)] * len(genes)
        else:
            values = list(np.ravel(np.asarray(value, dtype=object)))
            if len(values) != len(genes):
                raise ValueError(
                    f"{field}: expected {len(genes)} values (one per gene in qubit "
                    f"order), got {len(values)}"
                )
            items = [(f"{field}[{g!r}]", v) for g, v in zip(genes, values, strict=True)]
        return np.array([check_finite(name, v, **bounds) for name, v in items], dtype=np.float64)

    def _gene_ref(self, field: str, ref: Any) -> str:
        names = self._genes.index
        if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
            if not 0 <= ref < len(names):
                raise ValueError(f"{field}: qubit index {ref} out of range 0..{len(names) - 1}")
            return str(names[int(ref)])
        if isinstance(ref, str):
            if ref not in names:
                raise ValueError(
                    f"{field}: unknown gene {ref!r}; known genes: {_short(list(names))}"
                )
            return ref
        raise TypeError(f"{field}: expected a gene name or a qubit index, got {ref!r}")

    def _parse_edges(self, edges: Any) -> pd.DataFrame:
        rows = list(_edge_records(edges))
        records = []
        for i, rec in enumerate(rows):
            where = f"edges[{i}]"
            source = self._gene_ref(f"{where}.source", rec.get("source"))
            target = self._gene_ref(f"{where}.target", rec.get("target"))
            if source == target:
                raise ValueError(f"{where}: control and target are the same gene {source!r}")
            weight = rec.get("weight")
            if isinstance(weight, (bool, np.bool_)):
                raise TypeError(
                    f"{where}.weight: expected an angle in radians or None, got {weight!r}"
                )
            if weight is None or (isinstance(weight, float) and math.isnan(weight)):
                weight = math.nan  # a full CX
            else:
                weight = check_finite(
                    f"{where}.weight", weight, low=0.0, high=math.pi, low_open=True
                )
            sign_raw = rec.get("sign", "activation")
            sign_raw = (
                "activation"
                if sign_raw is None or (isinstance(sign_raw, float) and math.isnan(sign_raw))
                else sign_raw
            )
            if isinstance(sign_raw, np.integer):
                sign_raw = int(sign_raw)
            sign = _SIGN_ALIASES.get(sign_raw) if isinstance(sign_raw, (str, int)) else None
            if sign is None:
                raise ValueError(
                    f"{where}.sign: {sign_raw!r} is not allowed; choose one of {list(SIGNS)}"
                )
            same = self._genes.at[source, "cell_type"] == self._genes.at[target, "cell_type"]
            records.append(
                (source, target, weight, sign, "regulation" if same else "ligand_receptor")
            )
        return pd.DataFrame.from_records(records, columns=EDGE_COLUMNS).astype(
            {"source": object, "target": object, "weight": float, "sign": object, "kind": object}
        )

    @staticmethod
    def _block(field: str, n: int, mu: float, r: float) -> NBParams:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n_{field}: expected an integer >= 0, got {n!r}")
        return NBParams(
            int(n),
            check_finite(f"{field}_mu", mu, low=0.0, high=MU_MAX),
            check_finite(f"{field}_r", r, low=R_RANGE[0], high=R_RANGE[1]),
        )

    # -- views ------------------------------------------------------------------------------
    @property
    def genes(self) -> pd.DataFrame:
        """Circuit genes in qubit order, with ``cell_type``, ``qubit``, ``theta``, ``p_on``, ``mu``,
        ``r``, ``intervention``."""
        table = self._genes.copy()
        table.insert(3, "p_on", np.sin(table["theta"].to_numpy() / 2.0) ** 2)
        return table

    @property
    def edges(self) -> pd.DataFrame:
        """Edges in gate order, with ``source``, ``target``, ``weight`` (NaN for a CX), ``sign``,
        ``kind`` (``regulation`` or ``ligand_receptor``)."""
        return self._edges.copy()

    @property
    def gene_names(self) -> list[str]:
        return list(self._genes.index)

    @property
    def cell_types(self) -> dict[str, list[str]]:
        """Cell type -> genes, in qubit order."""
        groups: dict[str, list[str]] = {}
        for gene, cell_type in self._genes["cell_type"].items():
            groups.setdefault(cell_type, []).append(gene)
        return groups

    @property
    def n_qubits(self) -> int:
        return len(self._genes)

    @property
    def housekeeping_names(self) -> list[str]:
        return [f"HKG{i}" for i in range(self.housekeeping.n)]

    @property
    def background_names(self) -> list[str]:
        return [f"BG{i}" for i in range(self.background.n)]

    def activation_probability(self) -> pd.Series:
        """``p = sin^2(theta / 2)`` per gene (before any regulation)."""
        return self.genes["p_on"]

    def __repr__(self) -> str:
        kinds = self._edges["kind"].value_counts()
        return (
            f"CellCircuit({self.name!r}: {len(self.cell_types)} cell types, "
            f"{self.n_qubits} circuit genes, {kinds.get('regulation', 0)} regulation and "
            f"{kinds.get('ligand_receptor', 0)} ligand-receptor edges, "
            f"{self.housekeeping.n} housekeeping, {self.background.n} background genes)"
        )

    # -- the circuit ------------------------------------------------------------------------
    def to_qiskit(self, *, measure: bool = True, switches: bool = False) -> QuantumCircuit:
        """The Qiskit circuit: one quantum (and classical) register per cell type, RY per gene,
        then the edges in order; measured into the cell type's register when ``measure``.

        ``switches`` adds a register ``lr_switch`` of one qubit per ligand-receptor edge (after
        the genes, in edge order, never measured) as a further control of that edge's gate: the
        gate acts only where its switch is 1 (how a tissue turns communication on per niche).
        """
        from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
        from qiskit.circuit.library import RYGate, XGate

        groups = self.cell_types
        qregs = [QuantumRegister(len(g), name=t) for t, g in groups.items()]
        cregs = [ClassicalRegister(len(g), name=f"c_{t}") for t, g in groups.items()]
        lr = (self._edges["kind"] == "ligand_receptor").to_numpy()
        extra = [QuantumRegister(int(lr.sum()), name="lr_switch")] if switches and lr.any() else []
        qc = QuantumCircuit(*qregs, *extra, *(cregs if measure else []), name=self.name)
        for q, theta in enumerate(self._genes["theta"].to_numpy()):
            qc.ry(float(theta), q)
        qc.barrier()
        qubit = self._genes["qubit"]
        switch = iter(extra[0]) if extra else None
        for edge, is_lr in zip(self._edges.itertuples(index=False), lr, strict=True):
            control, target = int(qubit[edge.source]), int(qubit[edge.target])
            state = 1 if edge.sign == "activation" else 0
            base = XGate() if math.isnan(edge.weight) else RYGate(float(edge.weight))
            if switch is not None and is_lr:  # the switch is the second control, state 1
                qc.append(base.control(2, ctrl_state=state | 2), [control, next(switch), target])
            elif math.isnan(edge.weight):
                qc.cx(control, target, ctrl_state=state)
            else:
                qc.cry(float(edge.weight), control, target, ctrl_state=state)
        if measure:
            qc.barrier()
            for qreg, creg in zip(qregs, cregs, strict=True):
                qc.measure(qreg, creg)
        return qc

    # -- interventions ----------------------------------------------------------------------
    def _intervene(self, genes: str | Iterable[str], what: str) -> CellCircuit:
        genes = [genes] if isinstance(genes, (str, int, np.integer)) else list(genes)
        if not genes:
            raise ValueError(f"genes: give at least one gene to {what}")
        names = list(dict.fromkeys(self._gene_ref(f"genes[{i}]", g) for i, g in enumerate(genes)))
        state = self.to_dict()
        state["genes"].loc[names, "intervention"] = what  # the constructor applies it
        state["name"] = f"{self.name}|{what}:{','.join(names)}"
        return CellCircuit.from_dict(state)

    def knockout(self, genes: str | Iterable[str]) -> CellCircuit:
        """A new design with ``genes`` held OFF (theta = 0) and the edges into them removed."""
        return self._intervene(genes, "knockout")

    def overexpress(self, genes: str | Iterable[str]) -> CellCircuit:
        """A new design with ``genes`` held ON (theta = pi) and the edges into them removed."""
        return self._intervene(genes, "overexpress")

    def without_edges(self, rows: Iterable[int] | None = None) -> CellCircuit:
        """The same genes without the edges at positions ``rows`` of :attr:`edges` (gate
        order), or with no entangling gates at all (``None``: the classical, independent
        control)."""
        state = self.to_dict()
        edges = state["edges"]
        if rows is None:
            state["edges"], state["name"] = edges.iloc[0:0], f"{self.name}|independent"
        else:
            state["edges"] = edges.drop(index=edges.index[np.asarray(list(rows), dtype=int)])
        return CellCircuit.from_dict(state)

    # -- serialisation (stored in ``uns["qsimcells"]["design"]``) ----------------------------
    def to_dict(self) -> dict[str, Any]:
        """Tables and numbers (h5ad-safe) that :meth:`from_dict` turns back into an equal design.

        ``genes`` is a table indexed by gene (``cell_type``, ``theta``, ``mu``, ``r``,
        ``intervention``) and ``edges`` the edge table in gate order.
        """
        return {
            "name": self.name,
            "genes": self._genes.drop(columns=["qubit"]).copy(),
            "edges": self.edges,
            "n_housekeeping": self.housekeeping.n,
            "housekeeping_mu": self.housekeeping.mu,
            "housekeeping_r": self.housekeeping.r,
            "n_background": self.background.n,
            "background_mu": self.background.mu,
            "background_r": self.background.r,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> CellCircuit:
        """Rebuild a design from :meth:`to_dict` output (also after an h5ad round trip)."""
        state = dict(state)
        missing = {"genes", "edges"} - set(state)
        if missing:
            raise ValueError(
                f"state: missing {sorted(missing)}; expected the output of "
                "CellCircuit.to_dict() (or uns['qsimcells']['design'])"
            )
        table = pd.DataFrame(state.pop("genes"))
        table.index = table.index.astype(str)
        cell_types: dict[str, list[str]] = {}
        for gene, cell_type in table["cell_type"].astype(str).items():
            cell_types.setdefault(cell_type, []).append(gene)
        edges = pd.DataFrame(state.pop("edges")).drop(columns=["kind"], errors="ignore")
        interventions = {g: str(v) for g, v in table["intervention"].items() if str(v)}
        return cls(
            cell_types,
            edges=edges,
            theta=table["theta"].to_dict(),
            mu=table["mu"].to_dict(),
            r=table["r"].to_dict(),
            interventions=interventions,
            **state,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CellCircuit):
            return NotImplemented
        a, b = self.to_dict(), other.to_dict()
        tables = ("genes", "edges")
        return all(a.pop(k).equals(b.pop(k)) for k in tables) and a == b

    # equal by value but mutable-looking (tables): unhashable, as dataclasses with eq do it
    __hash__ = None  # type: ignore[assignment]  # mypy: object.__hash__ is a method

    def digest(self) -> str:
        """A hex digest of every value of :meth:`to_dict`: equal designs give equal digests
        (``repr`` of the tables would not do: pandas truncates it past 60 rows)."""
        import hashlib
        import json

        state = self.to_dict()
        tables = {
            key: state.pop(key).to_json(orient="split", double_precision=15)
            for key in ("genes", "edges")
        }
        payload = json.dumps({"tables": tables, **state}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    @classmethod
    def from_networkx(cls, graph: nx.DiGraph, **kwargs: Any) -> CellCircuit:
        """A design from a :class:`networkx.DiGraph` whose nodes carry ``cell_type`` and
        ``theta`` or ``p`` (optionally ``mu``, ``r``); edges as in the ``edges`` parameter.
        Node order is qubit order within each cell type."""
        cell_types: dict[str, list[str]] = {}
        values: dict[str, dict[str, float]] = {"theta": {}, "p": {}, "mu": {}, "r": {}}
        for node, data in graph.nodes(data=True):
            if "cell_type" not in data:
                raise ValueError(f"graph node {node!r}: missing the 'cell_type' attribute")
            cell_types.setdefault(str(data["cell_type"]), []).append(str(node))
            for key, store in values.items():
                if key in data:
                    store[str(node)] = data[key]
        for key in ("theta", "p"):
            if values[key]:
                kwargs.setdefault(key, values[key])
        for key in ("mu", "r"):
            if values[key]:
                if len(values[key]) != graph.number_of_nodes():
                    raise ValueError(f"graph nodes: '{key}' must be set on all nodes or none")
                kwargs.setdefault(key, values[key])
        relabelled = (
            graph if all(isinstance(n, str) for n in graph.nodes) else _relabel_to_str(graph)
        )
        return cls(cell_types, edges=relabelled, **kwargs)


def _relabel_to_str(graph: nx.DiGraph) -> nx.DiGraph:
    """The graph with node labels as strings (gene names), so integer labels are not read as
    qubit indices."""
    import networkx as nx

    return nx.relabel_nodes(graph, {n: str(n) for n in graph.nodes}, copy=True)


def _edge_records(edges: Any) -> Iterable[dict[str, Any]]:
    """Normalise the accepted edge inputs to dicts with source, target, weight, sign."""
    if edges is None:
        return []
    if isinstance(edges, pd.DataFrame):
        missing = {"source", "target"} - set(edges.columns)
        if missing:
            raise ValueError(
                f"edges: the table needs columns 'source' and 'target' "
                f"(optional 'weight', 'sign'); missing {sorted(missing)}"
            )
        extra = set(edges.columns) - {"source", "target", "weight", "sign", "kind"}
        if extra:
            raise ValueError(
                f"edges: unknown columns {sorted(extra)}; allowed: source, target, weight, sign"
            )
        return edges.to_dict("records")
    try:
        import networkx as nx
    except ImportError:  # pragma: no cover - networkx is a dependency
        nx = None
    if nx is not None and isinstance(edges, nx.Graph):
        if not edges.is_directed():
            raise ValueError("edges: a regulation graph must be a networkx.DiGraph (directed)")
        items = list(edges.edges(data=True))
        if len(items) > 1:
            if not all("order" in d for _, _, d in items):
                raise ValueError(
                    "edges: a networkx graph does not keep the order in which edges "
                    "were added, and gate order changes the circuit; give every "
                    "edge an 'order' attribute (G.add_edge(s, t, order=k))"
                )
            items.sort(key=lambda e: e[2]["order"])
        return [
            {"source": s, "target": t, "weight": d.get("weight"), "sign": d.get("sign")}
            for s, t, d in items
        ]
    if isinstance(edges, (str, bytes)) or not isinstance(edges, Iterable):
        raise TypeError(
            "edges: expected a list of (source, target[, weight[, sign]]), a pandas "
            f"DataFrame or a networkx DiGraph, got {type(edges).__name__}"
        )
    records = []
    for i, item in enumerate(edges):
        if isinstance(item, Mapping):
            unknown = set(item) - {"source", "target", "weight", "sign"}
            if unknown:
                raise ValueError(
                    f"edges[{i}]: unknown keys {sorted(unknown)}; allowed: "
                    "source, target, weight, sign"
                )
            records.append(dict(item))
        elif isinstance(item, Sequence) and not isinstance(item, str) and 2 <= len(item) <= 4:
            records.append(dict(zip(("source", "target", "weight", "sign"), item, strict=False)))
        else:
            raise ValueError(
                f"edges[{i}]: expected (source, target[, weight[, sign]]) or a dict, got {item!r}"
            )
    return records
