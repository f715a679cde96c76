"""Ready-made designs: the paper's two cases and random networks for benchmarks."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .._utils import RngLike, as_generator, check_finite, check_positive_int
from .design import CellCircuit

#: theta / pi of g0..g9 in Romero et al., Table 1 (CT1: g0-g4, CT2: g5-g9)
ROMERO2025_THETA_OVER_PI = (0.2, 0.1, 0.4, 0.9, 0.8, 0.2, 0.3, 0.2, 0.7, 0.5)
#: Case 1, the inter-state cascade g3 -> g5 -> g7 -> g0
ROMERO2025_L1 = ((3, 5), (5, 7), (7, 0))
#: Case 2, the non-interacting control g2 -> g1
ROMERO2025_L2 = ((2, 1),)


def romero2025(
    interacting: bool = True,
    *,
    n_housekeeping: int = 50,
    housekeeping: tuple[float, float] | None = None,
) -> CellCircuit:
    """The paper's design (Romero et al., qSimCells).

    Ten genes ``g0..g9`` (CT1: g0-g4, CT2: g5-g9) with ``theta = pi * (0.2, 0.1, 0.4, 0.9, 0.8,
    0.2, 0.3, 0.2, 0.7, 0.5)`` (so ``p = sin^2(theta/2)``, e.g. 0.976 for g3), NB(mu=5, r=1) for
    ON genes and 50 housekeeping genes expressed in every cell.

    Parameters
    ----------
    interacting
        ``True``: case 1, the cascade L1 = (3,5), (5,7), (7,0) across the two cell types;
        ``False``: case 2, the single intra-CT1 edge L2 = (2,1).
    n_housekeeping
        Number of housekeeping genes.
    housekeeping
        ``(mu, r)`` of the housekeeping genes' NB. ``None``: as the paper's runs drew them,
        NB(100, 5) in the interacting case (the co-culture) and NB(80, 6) in the control (the
        monoculture; the value the paper's text gives for both). With NB(100, 5) the CellChat
        probabilities of the interacting case match the paper's Table 3 (they scale with
        ``1 / max`` of the normalised matrix, which the housekeeping genes set); with NB(80, 6)
        they are about 1.2x the paper's. ``(80.0, 6.0)`` gives the earlier preset.
    """
    if not isinstance(interacting, bool):
        raise TypeError(f"interacting: expected True or False, got {interacting!r}")
    if housekeeping is None:
        housekeeping = (100.0, 5.0) if interacting else (80.0, 6.0)
    elif (
        isinstance(housekeeping, (str, bytes))
        or not isinstance(housekeeping, (tuple, list))
        or len(housekeeping) != 2
    ):
        raise TypeError(f"housekeeping: expected (mu, r) or None, got {housekeeping!r}")
    hk_mu, hk_r = housekeeping
    genes = [f"g{i}" for i in range(10)]
    return CellCircuit(
        {"CT1": genes[:5], "CT2": genes[5:]},
        theta=[math.pi * t for t in ROMERO2025_THETA_OVER_PI],
        edges=list(ROMERO2025_L1 if interacting else ROMERO2025_L2),
        mu=5.0,
        r=1.0,
        n_housekeeping=n_housekeeping,
        housekeeping_mu=hk_mu,
        housekeeping_r=hk_r,
        name="romero2025_" + ("interacting" if interacting else "control"),
    )


def random_network(
    n_genes: int,
    n_cell_types: int = 2,
    n_edges: int | None = None,
    rng: RngLike = None,
    *,
    lr_fraction: float = 0.2,
    p_range: tuple[float, float] = (0.05, 0.95),
    mu_range: tuple[float, float] = (1.0, 10.0),
    r: float = 1.0,
    n_housekeeping: int = 50,
) -> CellCircuit:
    """A random design for benchmarks.

    Genes ``G0..`` are split as evenly as possible over cell types ``CT1..``; activation ``p`` is
    uniform in ``p_range`` and ``mu`` log-uniform in ``mu_range``. Edges are distinct random
    ordered pairs in random gate order; a fraction ``lr_fraction`` crosses cell types
    (ligand-receptor), the rest stays within a type (regulation).

    Parameters
    ----------
    n_genes
        Circuit genes (qubits).
    n_cell_types
        Number of cell types (each gets at least one gene).
    n_edges
        Number of edges (default ``n_genes``).
    rng
        Seed or generator.
    """
    n_genes = check_positive_int("n_genes", n_genes)
    n_cell_types = check_positive_int("n_cell_types", n_cell_types)
    if n_cell_types > n_genes:
        raise ValueError(
            f"n_cell_types: {n_cell_types} cell types need at least as many genes, "
            f"got n_genes={n_genes}"
        )
    n_edges = n_genes if n_edges is None else n_edges
    if isinstance(n_edges, bool) or not isinstance(n_edges, (int, np.integer)) or n_edges < 0:
        raise ValueError(f"n_edges: expected an integer >= 0, got {n_edges!r}")
    lr_fraction = check_finite("lr_fraction", lr_fraction, low=0.0, high=1.0)
    p_range = _check_range("p_range", p_range, 0.0, 1.0)
    mu_range = _check_range("mu_range", mu_range, 0.0, 1e6, low_open=True)
    gen = as_generator(rng)
    names = [f"G{i}" for i in range(n_genes)]
    bounds = np.linspace(0, n_genes, n_cell_types + 1).round().astype(int)
    cell_types = {f"CT{k + 1}": names[bounds[k] : bounds[k + 1]] for k in range(n_cell_types)}
    type_of = np.repeat(np.arange(n_cell_types), np.diff(bounds))

    n_lr = round(n_edges * lr_fraction) if n_cell_types > 1 else 0
    edges = _random_pairs(gen, type_of, n_lr, cross=True) + _random_pairs(
        gen, type_of, n_edges - n_lr, cross=False
    )
    order = gen.permutation(len(edges))
    edges = [edges[i] for i in order]
    p = gen.uniform(*p_range, size=n_genes)
    mu = np.exp(gen.uniform(np.log(mu_range[0]), np.log(mu_range[1]), size=n_genes))
    return CellCircuit(
        cell_types,
        p=p,
        edges=edges,
        mu=mu,
        r=r,
        n_housekeeping=n_housekeeping,
        name=f"random_network_{n_genes}g_{n_cell_types}t_{len(edges)}e",
    )


def random_dag(
    n_genes: int,
    n_cell_types: int = 1,
    n_edges: int | None = None,
    rng: RngLike = None,
    *,
    p_range: tuple[float, float] = (0.05, 0.3),
    regulator_p_range: tuple[float, float] = (0.7, 0.95),
    mu_range: tuple[float, float] = (1.0, 10.0),
    r: float = 1.0,
    n_housekeeping: int = 50,
) -> CellCircuit:
    """A random regulatory DAG with hubs, its gates in cascade order (for perturbation screens).

    Gene ``Gi`` can only regulate genes ``Gj`` with ``j > i``. Each edge picks a target uniformly
    and a source among the earlier genes with probability proportional to one plus the source's
    current number of targets (preferential attachment, so a few regulators become hubs, as
    transcription factors are). Gates run sorted by source gene: every edge into a gene acts before
    any edge out of it, so the effect of a knockout reaches every descendant in the graph (in
    :func:`random_network`'s random gate order it often does not). Regulators (genes with targets)
    are active with ``p`` in ``regulator_p_range``, the other genes in ``p_range``: with CX gates a
    target flips when its regulator is ON, so the response of a single-regulator target to its
    regulator's knockout is ``(1 - 2 p_target) P(regulator ON)``, largest for active regulators of
    rarely-ON targets. Genes are split evenly over cell types ``CT1..``; an edge across types is a
    ligand-receptor edge.

    Parameters
    ----------
    n_genes
        Circuit genes (qubits), at least 2.
    n_cell_types
        Number of cell types (each gets at least one gene).
    n_edges
        Number of distinct edges (default ``n_genes``), at most ``n_genes (n_genes - 1) / 2``.
    rng
        Seed or generator.
    p_range, regulator_p_range
        Ranges of the uniform activation probability of target-only genes and of regulators.
    mu_range
        ``mu`` is log-uniform in this range.
    r
        Negative-binomial dispersion of every circuit gene.
    n_housekeeping
        Housekeeping genes.
    """
    n_genes = check_positive_int("n_genes", n_genes)
    if n_genes < 2:
        raise ValueError(f"n_genes: a regulatory DAG needs at least 2 genes, got {n_genes}")
    n_cell_types = check_positive_int("n_cell_types", n_cell_types)
    if n_cell_types > n_genes:
        raise ValueError(
            f"n_cell_types: {n_cell_types} cell types need at least as many genes, "
            f"got n_genes={n_genes}"
        )
    n_edges = n_genes if n_edges is None else n_edges
    if isinstance(n_edges, bool) or not isinstance(n_edges, (int, np.integer)) or n_edges < 0:
        raise ValueError(f"n_edges: expected an integer >= 0, got {n_edges!r}")
    if n_edges > n_genes * (n_genes - 1) // 2:
        raise ValueError(
            f"n_edges: {n_edges} edges requested but a DAG on {n_genes} genes has "
            f"at most {n_genes * (n_genes - 1) // 2}"
        )
    p_range = _check_range("p_range", p_range, 0.0, 1.0)
    regulator_p_range = _check_range("regulator_p_range", regulator_p_range, 0.0, 1.0)
    mu_range = _check_range("mu_range", mu_range, 0.0, 1e6, low_open=True)
    gen = as_generator(rng)
    names = [f"G{i}" for i in range(n_genes)]
    bounds = np.linspace(0, n_genes, n_cell_types + 1).round().astype(int)
    cell_types = {f"CT{k + 1}": names[bounds[k] : bounds[k + 1]] for k in range(n_cell_types)}

    max_pairs = n_genes * (n_genes - 1) // 2
    chosen: set[tuple[int, int]] = set()
    if n_edges > max_pairs // 2:  # dense: drawing pairs one by one would stall, take any pairs
        pairs = [(s, t) for t in range(1, n_genes) for s in range(t)]
        chosen = {pairs[i] for i in gen.choice(max_pairs, size=n_edges, replace=False)}
    out_degree = np.zeros(n_genes)
    for source, _ in chosen:
        out_degree[source] += 1
    while len(chosen) < n_edges:
        target = int(gen.integers(1, n_genes))
        weights = out_degree[:target] + 1.0
        source = int(gen.choice(target, p=weights / weights.sum()))
        if (source, target) not in chosen:
            chosen.add((source, target))
            out_degree[source] += 1
    edges = sorted(chosen)  # by source: a gene's inputs all act before it acts
    regulator = out_degree > 0
    p = gen.uniform(*p_range, size=n_genes)
    p[regulator] = gen.uniform(*regulator_p_range, size=int(regulator.sum()))
    mu = np.exp(gen.uniform(np.log(mu_range[0]), np.log(mu_range[1]), size=n_genes))
    return CellCircuit(
        cell_types,
        p=p,
        edges=edges,
        mu=mu,
        r=r,
        n_housekeeping=n_housekeeping,
        name=f"random_dag_{n_genes}g_{n_cell_types}t_{len(edges)}e",
    )


def _check_range(
    field: str, value: Any, low: float, high: float, low_open: bool = False
) -> tuple[float, float]:
    if isinstance(value, str) or np.ndim(value) != 1 or len(value) != 2:
        raise ValueError(f"{field}: expected (low, high), got {value!r}")
    lo, hi = (
        check_finite(f"{field}[{i}]", v, low=low, high=high, low_open=low_open)
        for i, v in enumerate(value)
    )
    if lo > hi:
        raise ValueError(f"{field}: low {lo} is above high {hi}")
    return lo, hi


def _random_pairs(
    gen: np.random.Generator, type_of: np.ndarray, n: int, cross: bool
) -> list[tuple[int, int]]:
    """``n`` distinct ordered pairs (control != target) within or across cell types."""
    n_genes = type_of.size
    available = int(
        sum(
            ((type_of == t).sum() * ((type_of != t).sum() if cross else (type_of == t).sum() - 1))
            for t in np.unique(type_of)
        )
    )
    if n > available:
        kind = "ligand-receptor" if cross else "regulation"
        raise ValueError(
            f"n_edges: {n} {kind} edges requested but only {available} distinct pairs exist"
        )
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < n:
        a, b = gen.integers(n_genes, size=(2, 2 * (n - len(chosen)) + 8))
        for s, t in zip(a.tolist(), b.tolist(), strict=True):
            if s != t and (type_of[s] != type_of[t]) == cross and (s, t) not in chosen:
                chosen.add((s, t))
                if len(chosen) == n:
                    break
    return sorted(chosen)


_PRESETS: dict[str, Callable[..., CellCircuit]] = {
    "romero2025": romero2025,
    "random_network": random_network,
    "random_dag": random_dag,
}
#: The preset names :func:`get` and :func:`from_spec` take.
NAMES = tuple(sorted(_PRESETS))


def get(name: str, **params: Any) -> CellCircuit:
    """Build the preset ``name`` (``"romero2025"``, ``"random_network"`` or ``"random_dag"``)
    with ``params``."""
    if name not in _PRESETS:
        raise ValueError(f"preset: unknown preset {name!r}; choose one of {sorted(_PRESETS)}")
    return _PRESETS[name](**params)


def _spec_value(text: str) -> Any:
    """A value of a preset spec: a boolean, a whole number, a number or a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def from_spec(spec: str) -> CellCircuit:
    """A preset from a one-string spec, as the command line takes it.

    ``name[:value...][:key=value...]``: the values go to the preset's parameters in order,
    ``key=value`` by name; ``true`` / ``false``, numbers and strings are read as such. A preset
    with an ``rng`` gets ``rng=0`` unless the spec gives one, so a spec names one design.

    Examples
    --------
    >>> qs.sim.presets.from_spec("romero2025")               # the interacting case
    >>> qs.sim.presets.from_spec("romero2025:false")         # the control
    >>> qs.sim.presets.from_spec("random_network:200:4")     # 200 genes, 4 cell types
    >>> qs.sim.presets.from_spec("random_dag:50:n_edges=80:rng=3")
    """
    import inspect

    if not isinstance(spec, str) or not spec:
        raise ValueError(f"preset: expected a spec such as 'random_network:200:4', got {spec!r}")
    name, *parts = spec.split(":")
    if name not in _PRESETS:
        raise ValueError(f"preset: unknown preset {name!r}; choose one of {sorted(_PRESETS)}")
    func = _PRESETS[name]
    args = [_spec_value(p) for p in parts if "=" not in p]
    kwargs = {k: _spec_value(v) for k, _, v in (p.partition("=") for p in parts if "=" in p)}
    signature = inspect.signature(func)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as err:
        allowed = ", ".join(signature.parameters)
        raise ValueError(f"preset: {spec!r} does not fit {name}({allowed}): {err}") from None
    if "rng" in signature.parameters and "rng" not in bound.arguments:
        bound.arguments["rng"] = 0
    return func(*bound.args, **bound.kwargs)
