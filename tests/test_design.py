"""CellCircuit: construction, the Qiskit circuit, interventions and validation."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from qiskit.quantum_info import Statevector

import qsimcells as qs
from qsimcells.sim import CellCircuit

TYPES = {"A": ["a0", "a1", "a2"], "B": ["b0", "b1"]}


def test_lists_dataframe_and_digraph_give_the_same_design() -> None:
    edges = [("a0", "a1"), ("a1", "b0", 1.2), ("b1", "a2", None, "repression")]
    from_list = CellCircuit(TYPES, p=0.3, edges=edges)
    table = pd.DataFrame(
        {
            "source": ["a0", "a1", "b1"],
            "target": ["a1", "b0", "a2"],
            "weight": [np.nan, 1.2, np.nan],
            "sign": ["activation", "activation", "repression"],
        }
    )
    from_table = CellCircuit(TYPES, p=0.3, edges=table)
    graph = nx.DiGraph()
    graph.add_edge("b1", "a2", sign="repression", order=2)
    graph.add_edge("a0", "a1", order=0)
    graph.add_edge("a1", "b0", weight=1.2, order=1)
    from_graph = CellCircuit(TYPES, p=0.3, edges=graph)
    from_dicts = CellCircuit(
        TYPES,
        p=0.3,
        edges=[
            {"source": 0, "target": 1},
            {"source": 1, "target": 3, "weight": 1.2},
            {"source": "b1", "target": "a2", "sign": -1},
        ],
    )
    assert from_list == from_table == from_graph == from_dicts
    assert list(from_list.edges["kind"]) == ["regulation", "ligand_receptor", "ligand_receptor"]


def test_from_networkx_with_node_attributes() -> None:
    graph = nx.DiGraph()
    for i, (t, p) in enumerate([("A", 0.2), ("A", 0.9), ("B", 0.5)]):
        graph.add_node(f"n{i}", cell_type=t, p=p, mu=3.0 + i, r=2.0)
    graph.add_edge("n1", "n2")
    design = CellCircuit.from_networkx(graph, n_housekeeping=0)
    assert design.cell_types == {"A": ["n0", "n1"], "B": ["n2"]}
    assert np.allclose(design.genes["p_on"], [0.2, 0.9, 0.5])
    assert list(design.genes["mu"]) == [3.0, 4.0, 5.0]


def test_theta_and_p_agree_and_p_is_sin_squared() -> None:
    by_theta = CellCircuit({"A": ["g"]}, theta=0.9 * math.pi)
    assert by_theta.genes.at["g", "p_on"] == pytest.approx(0.97553, abs=1e-5)
    by_p = CellCircuit({"A": ["g"]}, p=by_theta.genes.at["g", "p_on"])
    assert by_p.genes.at["g", "theta"] == pytest.approx(0.9 * math.pi)


def test_to_qiskit_registers_gate_order_and_statevector() -> None:
    design = CellCircuit(
        TYPES,
        theta=[0.3, 1.0, 2.0, 0.5, 2.5],
        edges=[("a0", "b0"), ("b0", "a0"), ("a2", "b1", 0.7, "repression")],
    )
    qc = design.to_qiskit()
    assert [r.name for r in qc.qregs] == ["A", "B"] and [r.name for r in qc.cregs] == ["c_A", "c_B"]
    ops = [
        (i.operation.name, [qc.find_bit(q).index for q in i.qubits])
        for i in qc.data
        if i.operation.name in {"cx", "cry", "cry_o0"}
    ]
    assert ops == [("cx", [0, 3]), ("cx", [3, 0]), ("cry_o0", [2, 4])]
    # gate order matters: swapping the two CX gives a different distribution
    swapped = CellCircuit(
        TYPES,
        theta=[0.3, 1.0, 2.0, 0.5, 2.5],
        edges=[("b0", "a0"), ("a0", "b0"), ("a2", "b1", 0.7, "repression")],
    )
    p1 = Statevector(qc.remove_final_measurements(inplace=False)).probabilities()
    p2 = Statevector(swapped.to_qiskit(measure=False)).probabilities()
    assert not np.allclose(p1, p2)


def test_knockout_and_overexpress_are_do_interventions() -> None:
    design = qs.sim.presets.romero2025(True)
    ko = design.knockout("g5")
    assert ko.genes.at["g5", "theta"] == 0 and ko.genes.at["g5", "intervention"] == "knockout"
    assert next(iter(ko.edges.itertuples(index=False, name=None)))[:2] == ("g5", "g7")
    assert ("g3", "g5") not in set(zip(ko.edges.source, ko.edges.target, strict=True))
    assert design.genes.at["g5", "theta"] > 0  # the original is untouched
    bits = qs.samplers.sample_bits(ko.to_qiskit(), 5000, rng=0)
    assert bits[:, 5].sum() == 0  # held OFF despite g3 being ON in ~98% of shots
    oe = design.overexpress(["g5", "g1"])
    bits = qs.samplers.sample_bits(oe.to_qiskit(), 5000, rng=0)
    assert bits[:, 5].all() and bits[:, 1].all()
    # downstream genes still respond: g7 = g7_basal XOR g5 = NOT g7_basal
    assert bits[:, 7].mean() == pytest.approx(1 - np.sin(0.1 * np.pi) ** 2, abs=0.02)
    assert oe.knockout("g1").genes.at["g1", "intervention"] == "knockout"


def test_dict_round_trip_and_without_edges() -> None:
    design = qs.sim.presets.random_network(30, 3, 40, rng=1)
    assert CellCircuit.from_dict(design.to_dict()) == design
    bare = design.without_edges()
    assert bare.edges.empty and bare.n_qubits == 30
    some = design.without_edges([0, 5, 39])
    kept = design.edges.drop(index=design.edges.index[[0, 5, 39]]).reset_index(drop=True)
    pd.testing.assert_frame_equal(some.edges.reset_index(drop=True), kept)
    assert some.name == design.name and len(design.edges) == 40


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"edges": [("a0", 7)]},
            ValueError,
            r"edges\[0\]\.target: qubit index 7 out of range 0\.\.4",
        ),
        ({"edges": [("a0", "a0")]}, ValueError, r"edges\[0\]: control and target are the same"),
        ({"edges": [("a0", "zz")]}, ValueError, r"edges\[0\]\.target: unknown gene 'zz'"),
        ({"edges": [("a0", "a1", -1.0)]}, ValueError, r"edges\[0\]\.weight"),
        (
            {"edges": [("a0", "a1", None, "maybe")]},
            ValueError,
            r"edges\[0\]\.sign: 'maybe'.*\['activation', 'repression'\]",
        ),
        ({"edges": [("a0",)]}, ValueError, r"edges\[0\]: expected"),
        (
            {"edges": pd.DataFrame({"src": ["a0"], "target": ["a1"]})},
            ValueError,
            "missing \\['source'\\]",
        ),
        ({"mu": -1.0}, ValueError, r"mu: -1\.0 is outside the allowed range \[0\.0"),
        ({"r": 0.0}, ValueError, r"r: 0\.0 is outside the allowed range \[0\.01"),
        (
            {"mu": 1e12},
            ValueError,
            r"mu: 1000000000000\.0 is outside the allowed range \[0\.0, 1000000\.0\]",
        ),
        ({"mu": {"a0": 1.0}}, ValueError, r"mu: no value for genes"),
        ({"mu": {"zz": 1.0}}, ValueError, r"mu: unknown genes \['zz'\]"),
        ({"mu": [1.0, 2.0]}, ValueError, r"mu: expected 5 values"),
        ({"n_housekeeping": -1}, ValueError, r"n_housekeeping"),
        ({"housekeeping_r": 0}, ValueError, r"housekeeping_r"),
        ({"interventions": {"a0": "silence"}}, ValueError, r"interventions\['a0'\].*knockout"),
    ],
)
def test_bad_designs_name_the_field(kwargs, error, match) -> None:
    kwargs = {"p": 0.5, **kwargs}
    with pytest.raises(error, match=match):
        CellCircuit(TYPES, **kwargs)


@pytest.mark.parametrize(
    ("theta", "match"),
    [
        (float("nan"), r"theta\['a0'\]: must be a finite number"),
        (4.0, r"theta\['a0'\]: 4\.0 is outside the allowed range \[0\.0, 3\.14"),
        ("x", r"theta: expected a number"),
    ],
)
def test_bad_theta(theta, match) -> None:
    values = theta if isinstance(theta, str) else {"a0": theta, "a1": 1, "a2": 1, "b0": 1, "b1": 1}
    with pytest.raises((ValueError, TypeError), match=match):
        CellCircuit(TYPES, theta=values)


def test_bad_cell_types_and_activation() -> None:
    with pytest.raises(ValueError, match="cell_types: expected a non-empty mapping"):
        CellCircuit({}, p=0.5)
    with pytest.raises(ValueError, match=r"repeated: \['a0'\]"):
        CellCircuit({"A": ["a0"], "B": ["a0"]}, p=0.5)
    with pytest.raises(ValueError, match=r"cell_types\['A'\]: a cell type needs at least one"):
        CellCircuit({"A": []}, p=0.5)
    with pytest.raises(ValueError, match="not both"):
        CellCircuit(TYPES, p=0.5, theta=1.0)
    with pytest.raises(ValueError, match="theta"):
        CellCircuit(TYPES)
    with pytest.raises(ValueError, match=r"p\['a0'\]: 1\.5 is outside"):
        CellCircuit(TYPES, p=[1.5, 0.1, 0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="clash"):
        CellCircuit({"A": ["HKG0"]}, p=0.5)
    design = CellCircuit(TYPES, p=0.5)
    with pytest.raises(ValueError, match=r"genes\[0\]: unknown gene 'zz'"):
        design.knockout("zz")
    with pytest.raises(ValueError, match="at least one gene"):
        design.overexpress([])
    with pytest.raises(ValueError, match=r"must be a networkx\.DiGraph"):
        CellCircuit(TYPES, p=0.5, edges=nx.Graph([("a0", "a1")]))


def test_presets() -> None:
    case1, case2 = qs.sim.presets.romero2025(True), qs.sim.presets.romero2025(False)
    assert case1.gene_names == [f"g{i}" for i in range(10)]
    assert np.allclose(
        case1.genes["theta"] / np.pi, [0.2, 0.1, 0.4, 0.9, 0.8, 0.2, 0.3, 0.2, 0.7, 0.5]
    )
    assert list(zip(case1.edges.source, case1.edges.target, strict=True)) == [
        ("g3", "g5"),
        ("g5", "g7"),
        ("g7", "g0"),
    ]
    assert list(zip(case2.edges.source, case2.edges.target, strict=True)) == [("g2", "g1")]
    # the paper's runs: NB(100, 5) housekeeping genes in the co-culture, NB(80, 6) in the control
    assert case1.housekeeping.n == 50 and case1.housekeeping.mu == 100 and case1.housekeeping.r == 5
    assert case2.housekeeping.mu == 80 and case2.housekeeping.r == 6
    earlier = qs.sim.presets.romero2025(True, housekeeping=(80.0, 6.0))
    assert earlier.housekeeping.mu == 80 and earlier.housekeeping.r == 6
    assert earlier.edges.equals(case1.edges)
    with pytest.raises(TypeError, match=r"housekeeping: expected \(mu, r\) or None"):
        qs.sim.presets.romero2025(True, housekeeping=80.0)
    with pytest.raises(ValueError, match="housekeeping_r"):
        qs.sim.presets.romero2025(True, housekeeping=(80.0, -1.0))
    assert set(case1.genes["mu"]) == {5.0} and set(case1.genes["r"]) == {1.0}
    net = qs.sim.presets.random_network(100, 4, 150, rng=3)
    assert net.n_qubits == 100 and len(net.edges) == 150 and len(net.cell_types) == 4
    assert (net.edges["kind"] == "ligand_receptor").sum() == 30
    assert net == qs.sim.presets.random_network(100, 4, 150, rng=3)
    with pytest.raises(ValueError, match="n_edges: 10 regulation edges requested but only 4"):
        qs.sim.presets.random_network(4, 2, 10, rng=0, lr_fraction=0.0)
    with pytest.raises(ValueError, match="n_cell_types"):
        qs.sim.presets.random_network(2, 3)
    with pytest.raises(ValueError, match=r"mu_range\[0\]: 0\.0 is outside"):
        qs.sim.presets.random_network(5, 1, 2, mu_range=(0, 10))
    with pytest.raises(ValueError, match=r"p_range: low 0\.9 is above high 0\.1"):
        qs.sim.presets.random_network(5, 1, 2, p_range=(0.9, 0.1))
    with pytest.raises(ValueError, match="state: missing"):
        CellCircuit.from_dict({"genes": case1.to_dict()["genes"]})
    assert case1.knockout(0).genes.iloc[0]["intervention"] == "knockout"  # by qubit index


def test_review_cases_series_networkx_labels_and_interventions() -> None:
    # a Series is read by gene name, not by position
    design = CellCircuit({"A": ["a", "b", "c"]}, p=pd.Series({"c": 0.9, "a": 0.1, "b": 0.5}))
    assert np.allclose(design.genes["p_on"], [0.1, 0.5, 0.9])
    # integer node labels are gene names, not qubit indices
    graph = nx.DiGraph()
    graph.add_node(0, cell_type="A", p=0.5)
    graph.add_node(1, cell_type="B", p=0.5)
    graph.add_node(2, cell_type="A", p=0.5)
    graph.add_edge(0, 1)
    by_labels = CellCircuit.from_networkx(graph, n_housekeeping=0)
    assert list(zip(by_labels.edges.source, by_labels.edges.target, strict=True)) == [("0", "1")]
    # a graph with several edges must say their gate order
    graph.add_edge(1, 2)
    with pytest.raises(ValueError, match="'order' attribute"):
        CellCircuit.from_networkx(graph, n_housekeeping=0)
    # interventions given to the constructor are applied, not only labelled
    held = CellCircuit(
        {"A": ["a", "b"]}, p=0.5, edges=[("a", "b")], interventions={"b": "overexpress"}
    )
    assert held.genes.at["b", "theta"] == pytest.approx(np.pi) and held.edges.empty
    with pytest.raises(ValueError, match="'housekeeping' is reserved"):
        CellCircuit({"housekeeping": ["a"]}, p=0.5)
    with pytest.raises(TypeError, match=r"edges\[0\]\.weight: expected an angle"):
        CellCircuit({"A": ["a", "b"]}, p=0.5, edges=[("a", "b", True)])
    assert CellCircuit({"A": ["a"]}, p=0.5).knockout(["a", "a"]).name.endswith("knockout:a")
