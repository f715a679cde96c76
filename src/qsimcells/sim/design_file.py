"""Design files: a :class:`~qsimcells.sim.CellCircuit` as JSON, for pipelines and the command
line (``qsimcells design``, ``qsimcells simulate DESIGN``).

The file is :meth:`CellCircuit.to_dict` in plain values::

    {"format": "qsimcells.design", "version": 1, "name": "...",
     "genes": {"g0": {"cell_type": "CT1", "theta": 0.63, "mu": 5.0, "r": 1.0,
                      "intervention": ""}, ...},
     "edges": [{"source": "g3", "target": "g5", "weight": null, "sign": "activation",
                "kind": "ligand_receptor"}, ...],
     "n_housekeeping": 50, "housekeeping_mu": 100.0, "housekeeping_r": 5.0,
     "n_background": 0, "background_mu": 0.5, "background_r": 0.5}

Genes are listed in qubit order within each cell type, edges in gate order; ``weight`` ``null``
is a full CX. :func:`check_design` reports every problem of a file with its field
(``genes.g3.theta: ...``), not only the first.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._atomic import atomic_file
from .._utils import check_finite
from .design import INTERVENTIONS, MU_MAX, R_RANGE, SIGNS, CellCircuit

__all__ = [
    "FORMAT",
    "DesignFileError",
    "check_design",
    "design_from_json",
    "design_to_json",
    "read_design",
    "write_design",
]

FORMAT = "qsimcells.design"
VERSION = 1
_GENE_FIELDS = {"cell_type", "theta", "mu", "r", "intervention"}
_EDGE_FIELDS = {"source", "target", "weight", "sign", "kind"}
_NUMBERS = {  # top-level field -> check_finite bounds
    "n_housekeeping": None,
    "n_background": None,
    "housekeeping_mu": (0.0, MU_MAX),
    "background_mu": (0.0, MU_MAX),
    "housekeeping_r": R_RANGE,
    "background_r": R_RANGE,
}


class DesignFileError(ValueError):
    """A design file with problems; ``problems`` lists each as ``"field: what is allowed"``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def _plain(value: Any) -> Any:
    """A JSON value: numpy scalars as Python numbers, NaN as null."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def design_to_json(design: CellCircuit) -> dict[str, Any]:
    """The design file's content for ``design`` (JSON-ready values)."""
    if not isinstance(design, CellCircuit):
        raise TypeError(f"design: expected a CellCircuit, got {type(design).__name__}")
    state = design.to_dict()
    genes, edges = state.pop("genes"), state.pop("edges")
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": state.pop("name"),
        "genes": {
            str(gene): {col: _plain(v) for col, v in row.items()} for gene, row in genes.iterrows()
        },
        "edges": [{col: _plain(v) for col, v in row.items()} for row in edges.to_dict("records")],
        **{key: _plain(value) for key, value in state.items()},
    }


def _number(problems: list[str], field: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(f"{field}: expected a number, got {json.dumps(value)}")
        return
    try:
        check_finite(field, value, low=low, high=high)
    except (ValueError, TypeError) as err:
        problems.append(str(err))


def _check_genes(genes: Any, problems: list[str]) -> set[str]:
    if not isinstance(genes, Mapping) or not genes:
        problems.append(
            "genes: expected an object of genes (name -> {cell_type, theta, mu, r, "
            "intervention}), at least one"
        )
        return set()
    for gene, entry in genes.items():
        where = f"genes.{gene}"
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: expected an object with cell_type, theta, mu, r")
            continue
        unknown = sorted(set(entry) - _GENE_FIELDS)
        if unknown:
            problems.append(f"{where}: unknown fields {unknown}; allowed: {sorted(_GENE_FIELDS)}")
        for key in ("cell_type", "theta", "mu", "r"):
            if key not in entry:
                problems.append(f"{where}.{key}: missing")
        cell_type = entry.get("cell_type")
        if "cell_type" in entry and (not isinstance(cell_type, str) or not cell_type):
            problems.append(
                f"{where}.cell_type: expected a non-empty string, got {json.dumps(cell_type)}"
            )
        bounds = {"theta": (0.0, math.pi), "mu": (0.0, MU_MAX), "r": R_RANGE}
        for key, (low, high) in bounds.items():
            if key in entry:
                _number(problems, f"{where}.{key}", entry[key], low, high)
        what = entry.get("intervention", "")
        if what not in ("", *INTERVENTIONS):
            problems.append(
                f"{where}.intervention: {json.dumps(what)} is not allowed; choose "
                f'"" (none) or one of {list(INTERVENTIONS)}'
            )
    return {str(g) for g in genes}


def _check_edges(edges: Any, known: set[str], problems: list[str]) -> None:
    if not isinstance(edges, list):
        problems.append(
            "edges: expected a list of edges ({source, target, weight, sign}), possibly empty"
        )
        return
    for i, edge in enumerate(edges):
        where = f"edges[{i}]"
        if not isinstance(edge, Mapping):
            problems.append(f"{where}: expected an object with source and target")
            continue
        unknown = sorted(set(edge) - _EDGE_FIELDS)
        if unknown:
            problems.append(f"{where}: unknown fields {unknown}; allowed: {sorted(_EDGE_FIELDS)}")
        for key in ("source", "target"):
            gene = edge.get(key)
            if gene is None:
                problems.append(f"{where}.{key}: missing")
            elif known and str(gene) not in known:
                problems.append(
                    f"{where}.{key}: unknown gene {json.dumps(gene)}; the genes "
                    "are the keys of 'genes'"
                )
        if edge.get("weight") is not None:
            _number(problems, f"{where}.weight", edge["weight"], 0.0, math.pi)
        if edge.get("sign", "activation") not in SIGNS:
            problems.append(
                f"{where}.sign: {json.dumps(edge.get('sign'))} is not allowed; "
                f"choose one of {list(SIGNS)}"
            )


def _checked(content: Any) -> tuple[list[str], CellCircuit | None]:
    """Every problem of ``content``, and the design it describes when there is none."""
    problems = _field_problems(content)
    if problems:
        return problems, None
    try:  # what only the design itself checks (duplicate genes, ...)
        return [], _build(content)
    except (ValueError, TypeError) as err:
        return [str(err)], None


def check_design(content: Any) -> list[str]:
    """Every problem of a design file's content, each as ``"field: what is allowed"``;
    an empty list when :func:`design_from_json` will build it.

    ``content`` is the parsed JSON (``json.load`` of the file); the genes, edges and numbers
    are all checked, so one call reports every problem, not only the first."""
    return _checked(content)[0]


def _field_problems(content: Any) -> list[str]:
    """The problems each field shows on its own (types, ranges, known genes)."""
    if not isinstance(content, Mapping):
        return [f"design: expected a JSON object, got {type(content).__name__}"]
    problems: list[str] = []
    if content.get("format") != FORMAT:
        problems.append(
            f"format: expected {json.dumps(FORMAT)} (a file written by qsimcells "
            f"design or qs.sim.write_design), got {json.dumps(content.get('format'))}"
        )
    if content.get("version", VERSION) != VERSION:
        problems.append(
            f"version: this qsimcells reads version {VERSION}, got "
            f"{json.dumps(content.get('version'))}"
        )
    allowed = {"format", "version", "name", "genes", "edges", *_NUMBERS}
    unknown = sorted(set(content) - allowed)
    if unknown:
        problems.append(f"design: unknown fields {unknown}; allowed: {sorted(allowed)}")
    if "name" in content and not isinstance(content["name"], str):
        problems.append(f"name: expected a string, got {json.dumps(content['name'])}")
    known = _check_genes(content.get("genes"), problems)
    _check_edges(content.get("edges", []), known, problems)
    for key, bounds in _NUMBERS.items():
        if key not in content:
            continue
        value = content[key]
        if bounds is None:  # a count of genes
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(f"{key}: expected a whole number >= 0, got {json.dumps(value)}")
        else:
            _number(problems, key, value, *bounds)
    return problems


def _build(content: Mapping[str, Any]) -> CellCircuit:
    import pandas as pd

    genes = pd.DataFrame.from_dict(dict(content["genes"]), orient="index")
    genes["intervention"] = genes.get("intervention", "")
    genes["intervention"] = genes["intervention"].fillna("")
    edges = pd.DataFrame(
        [
            {k: (math.nan if k == "weight" and v is None else v) for k, v in dict(e).items()}
            for e in content.get("edges", [])
        ],
        columns=["source", "target", "weight", "sign"],
    )
    state = {key: content[key] for key in ("name", *_NUMBERS) if key in content}
    return CellCircuit.from_dict({"genes": genes, "edges": edges, **state})


def design_from_json(content: Any, source: str = "design") -> CellCircuit:
    """The design a design file's content describes.

    Parameters
    ----------
    content
        The parsed JSON of a design file.
    source
        Where it came from, for the error message (a path).

    Returns
    -------
    CellCircuit

    Raises
    ------
    DesignFileError
        Listing every problem (see :func:`check_design`).
    """
    problems, design = _checked(content)
    if design is None:
        raise DesignFileError(source, problems)
    return design


def read_design(path: str | os.PathLike[str]) -> CellCircuit:
    """The design in the JSON file ``path`` (written by :func:`write_design` or
    ``qsimcells design``).

    Raises
    ------
    DesignFileError
        Listing every problem of the file, each with its field (a ``ValueError``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"design: no file at {str(path)!r}")
    try:
        content = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise DesignFileError(str(path), [f"design: not JSON ({err})"]) from None
    return design_from_json(content, str(path))


def write_design(
    design: CellCircuit, path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write ``design`` as a design file (JSON; see the module docstring for its layout).

    Parameters
    ----------
    design
        The design.
    path
        The file to write: first to a temporary file beside it, renamed into place when
        complete.
    overwrite
        Replace an existing file; without it an existing file is an error.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    content = json.dumps(design_to_json(design), indent=1) + "\n"
    with atomic_file(path, overwrite, field="path") as tmp:
        tmp.write_text(content)
    return Path(path).expanduser().absolute()
