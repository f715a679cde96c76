"""``fit_design``: a circuit fitted to a reference count matrix, to simulate look-alike data.

The circuit is a copula over the genes' ON/OFF states whose dependence is known exactly. Every
(cell type, gene) with counts in the reference is a qubit of its own, so a gene is shared by the
cell types that express it, each with its own parameters. The fit has three parts:

1. **Marginals.** Per cell type and gene, counts are zero-inflated negative binomial: the gene
   is ON with probability ``p = sin^2(theta / 2)`` and then draws ``NB(mu * s, r)``, where ``s``
   is the cell's size factor, log-normal with mean 1 and a per-type sd ``sigma`` (the model
   :func:`~qsimcells.sim.simulate` draws from). ``p``, ``mu``, ``r`` and ``sigma`` are
   maximum-likelihood estimates with ``s`` integrated out by Gauss-Hermite quadrature
   (L-BFGS in torch, one cell type at a time). A plug-in size factor (total / mean total)
   would count a cell's ON/OFF pattern as library size.
2. **Candidate edges**, within each cell type: pairs whose binarised expression correlates
   (``|r| >= min_correlation``), or a table the user gives. An edge points from the gene earlier
   in ``var`` order to the later one, so the graph is acyclic and the exact sampler applies; a
   snapshot of cells does not identify the direction.
3. **Edges.** A controlled RY with angle ``phi`` moves the target's angle from ``theta`` to
   ``theta + phi`` when its source is ON (activation) or OFF (repression, for a negative
   correlation). For a target with parents, ``P(ON | parents) = sin^2((theta + sum phi_k
   g_k) / 2)``; the parents' ON states are latent (an ON gene can count zero), so the
   likelihood of the target's counts averages over them with their posterior ON probabilities
   from step 1: the closed form of the exact sampler, fitted by maximum likelihood (damped
   Newton, every target at once; each cell at its posterior mean size factor). Each
   candidate is kept when it raises the log-likelihood by more than ``penalty * log(n) / 2``
   (BIC at ``penalty=1``), at most ``max_parents`` per target (the strongest), and the kept
   parents are then fitted jointly.

Edges between cell types (ligand-receptor gates) are not fitted: the cells of a reference are
not paired in niches, so nothing in it measures them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from .._utils import (
    MissingKeyError,
    RngLike,
    as_generator,
    check_adata,
    check_finite,
    check_positive_int,
    counts as checked_counts,
    group_labels,
    log_normalize,
    seed_sequence,
)
from .design import MU_MAX, R_RANGE, CellCircuit

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

__all__ = ["CalibratedDesign", "fit_design"]

logger = logging.getLogger(__name__)

#: a (cell type, gene) qubit is named "<cell type>:<gene>"
SEPARATOR = ":"
_LOGIT_MAX = 15.0
#: a jointly fitted gate angle below this (radians) changes P(ON) by < 0.0003: no edge
MIN_PHI = 0.02
EDGE_TABLE = [
    "cell_type",
    "state",
    "source",
    "target",
    "weight",
    "sign",
    "delta_loglik",
    "correlation",
]
_P_CLIP = 1e-9


@dataclass
class CalibratedDesign:
    """A circuit fitted to a reference by :func:`fit_design`, and how to map it back to genes.

    Attributes
    ----------
    circuit
        The :class:`~qsimcells.sim.CellCircuit`: one qubit per (cell type, expressed gene),
        named ``"<cell type>:<gene>"``, with the fitted ``theta``, ``mu``, ``r`` and edges.
    genes
        The fitted genes, in the reference's ``var`` order: the columns of a simulation.
    proportions
        Share of each of the circuit's cell types in the reference (the states, with
        ``n_states > 1``).
    library_size
        The circuit's cell types -> sd of the log size factors.
    cell_type_of
        The circuit's cell types (states) -> the reference's cell type.
    fit
        The fit: ``marginals`` (one row per qubit: ``cell_type``, ``state`` (the circuit's
        cell type), ``gene``, ``theta``, ``p_on``, ``mu``, ``r``, ``n_cells``,
        ``nonzero_fraction``), ``edges`` (cell type, state, source, target,
        weight = phi, sign, ``delta_loglik`` of the edge alone, ``correlation``), ``loglik``
        (of the whole fitted model), ``loglik_independent`` (without edges), ``n_candidates``
        and ``params``.
    """

    circuit: CellCircuit
    genes: list[str]
    proportions: pd.Series
    library_size: dict[str, float]
    cell_type_of: dict[str, str]
    fit: dict[str, Any] = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"CalibratedDesign({len(self.genes)} genes, {len(self.proportions)} cell types, "
            f"{self.circuit.n_qubits} qubits, {len(self.fit['edges'])} edges)"
        )

    def gene_of_qubit(self) -> np.ndarray:
        """Column in :attr:`genes` of each qubit of :attr:`circuit`, in qubit order."""
        index = {g: i for i, g in enumerate(self.genes)}
        gene = self.fit["marginals"]["gene"]
        return np.array([index[gene[q]] for q in self.circuit.gene_names], dtype=np.int64)

    def cells_per_type(self, n_cells: int) -> dict[str, int]:
        """``n_cells`` split as the reference's cell types (largest remainders)."""
        n_cells = check_positive_int("n_cells", n_cells)
        share = self.proportions.to_numpy() * n_cells
        counts = np.floor(share).astype(int)
        order = np.argsort(-(share - counts), kind="stable")
        counts[order[: n_cells - counts.sum()]] += 1
        return dict(zip(self.proportions.index, counts.tolist(), strict=True))

    def simulate(
        self,
        n_cells: int | None = None,
        *,
        rng: RngLike = None,
        sampler: str = "auto",
        batches: int | Sequence[str] | None = None,
        batch_scale: float = 0.3,
        chunk_size: int | None = None,
        progress: bool | None = None,
    ) -> AnnData:
        """Simulate look-alike cells: ``n_cells`` in all (default: as many as the reference),
        split as the reference's cell types.

        The circuit is simulated as :func:`~qsimcells.sim.simulate` does (one shot gives one
        cell of every type; the shots needed for the largest type are drawn and each type keeps
        its share), and each cell's qubits are written to their genes' columns.

        Parameters
        ----------
        batches, batch_scale
            As in :func:`~qsimcells.sim.simulate`: each cell goes to a batch at random, and
            each batch multiplies every gene's mean by its own log-normal factor, the same in
            every cell type (all the qubits of one gene share it).

        Returns
        -------
        anndata.AnnData
            ``X`` integer counts (CSR) over :attr:`genes`, ``layers["binary"]`` the ON states,
            ``obs`` with ``cell_type`` (also under the reference's ``groupby`` name),
            ``size_factor`` (and ``batch``), and ``uns["qsimcells"]`` as
            :func:`~qsimcells.sim.simulate` writes it (``batch_factors`` per gene) plus
            ``calibration`` (the fit and the edges in gene names).
        """
        import anndata as ad

        from .simulate import DEFAULT_CHUNK_SIZE, Simulation, _as_anndata

        n_cells = self.fit["params"]["n_obs"] if n_cells is None else n_cells
        per_type = self.cells_per_type(n_cells)
        shots = max(per_type.values())
        types = list(self.circuit.cell_types)
        gene_of_qubit = self.gene_of_qubit()
        run = Simulation(
            self.circuit,
            shots,
            sampler=sampler,
            rng=rng,
            batches=batches,
            batch_scale=batch_scale,
            library_size=self.library_size,
            chunk_size=chunk_size or DEFAULT_CHUNK_SIZE,
            batch_columns=gene_of_qubit,
        )
        full = _as_anndata(run, progress=progress)
        niche = full.obs["niche"].to_numpy()
        kind = full.obs["cell_type"].astype(str).to_numpy()
        limit = np.array([per_type[t] for t in kind])
        rows = np.flatnonzero(niche < limit)
        to_gene = sparse.csr_matrix(
            (
                np.ones(self.circuit.n_qubits, dtype=np.int32),
                (np.arange(self.circuit.n_qubits), self.gene_of_qubit()),
            ),
            shape=(self.circuit.n_qubits, len(self.genes)),
        )
        X = sparse.csr_matrix(full.X[rows] @ to_gene, dtype=np.int32)
        binary = sparse.csr_matrix(
            full.layers["binary"][rows] @ to_gene.astype(np.uint8), dtype=np.uint8
        )
        obs = full.obs.iloc[rows].copy()
        state = obs["cell_type"].astype(str)
        parent_of = self.cell_type_of
        obs["cell_type"] = pd.Categorical(
            state.map(parent_of), categories=list(dict.fromkeys(parent_of.values()))
        )
        if any(k != v for k, v in parent_of.items()):
            obs["state"] = pd.Categorical(state, categories=types)
        groupby = self.fit["params"]["groupby"]
        if groupby != "cell_type":  # also under the reference's name, to compare like for like
            obs[groupby] = obs["cell_type"]
        var = pd.DataFrame({"housekeeping": False, "background": False}, index=pd.Index(self.genes))
        uns = dict(full.uns["qsimcells"])
        if "batch_factors" in uns:  # per gene, as the columns of X (1 for a gene never ON)
            per_gene = np.ones((len(uns["batch_factors"]), len(self.genes)))
            per_gene[:, gene_of_qubit] = uns["batch_factors"]
            uns["batch_factors"] = per_gene
        uns["calibration"] = self.as_dict()
        uns["n_cells"] = int(n_cells)
        return ad.AnnData(X=X, obs=obs, var=var, layers={"binary": binary}, uns={"qsimcells": uns})

    def as_dict(self) -> dict[str, Any]:
        """The fit as h5ad-safe tables and numbers (as stored in ``uns``)."""
        fit = self.fit
        return {
            "genes": np.asarray(self.genes, dtype=object),
            "proportions": self.proportions.to_dict(),
            "cell_type_of": dict(self.cell_type_of),
            "library_size": dict(self.library_size),
            "marginals": fit["marginals"].reset_index(names="qubit"),
            "edges": fit["edges"].copy(),
            "loglik": fit["loglik"],
            "loglik_independent": fit["loglik_independent"],
            "n_candidates": fit["n_candidates"],
            "params": dict(fit["params"]),
        }


# -- the fit -----------------------------------------------------------------------------------
def fit_design(
    adata: AnnData,
    *,
    groupby: str = "cell_type",
    n_genes: int | None = 200,
    genes: Sequence[str] | None = None,
    edges: str | pd.DataFrame | None = "correlation",
    layer: str | None = None,
    min_correlation: float = 0.1,
    max_candidates: int = 10,
    max_parents: int = 3,
    penalty: float = 1.0,
    n_states: int = 1,
    min_state_cells: int = 30,
    max_cells: int | None = 20_000,
    key_added: str | None = "qsimcells_fit",
    rng: RngLike = 0,
    progress: bool | None = None,
) -> CalibratedDesign:
    """Fit a qSimCells circuit to a reference count matrix (see the module notes).

    Parameters
    ----------
    adata
        The reference: cells x genes with raw counts (non-negative integers) in ``X`` or
        ``layers[layer]``, and cell types in ``obs[groupby]``.
    groupby
        The ``obs`` column of cell types.
    n_genes
        Fit the ``n_genes`` most variable genes (variance of ``log1p`` of counts per 10,000,
        over all cells); ``None``: every gene. Ignored when ``genes`` is given.
    genes
        The genes to fit, in any order (they are kept in ``var`` order).
    edges
        Candidate regulation edges: ``"correlation"`` (pairs of genes whose binarised
        expression correlates within a cell type), a table with ``source`` and ``target``
        (and optionally ``cell_type``; without it, the pair is a candidate in every type), or
        ``None`` (independent genes).
    layer
        Layer with the counts; ``None`` for ``X``.
    min_correlation
        Smallest ``|r|`` of a ``"correlation"`` candidate, in [0, 1].
    max_candidates
        Candidate parents per target gene and cell type (the most correlated).
    max_parents
        Parents kept per target gene and cell type (at most 6).
    penalty
        An edge is kept when it raises the log-likelihood by more than ``penalty * log(n) /
        2`` (``n``: cells of the type); 1 is BIC.
    n_states
        Sub-populations (states) per cell type: ``> 1`` splits each cell type by k-means on
        its principal components into at most ``n_states`` states, each with its own
        marginals and edges (a labelled cell type is often a mixture); simulations keep the
        cell-type labels and add ``obs["state"]``.
    min_state_cells
        Cells per state at least (a type with fewer than ``2 * min_state_cells`` cells stays
        whole).
    max_cells
        Cells per type (state) used in the fit; larger types are subsampled with ``rng``. ``None``:
        all.
    key_added
        Where the fit goes in ``adata.uns`` (``None``: nowhere).
    rng
        Seed of the subsampling of large cell types.
    progress
        Show progress bars (``None``: only in an interactive terminal).

    Returns
    -------
    CalibratedDesign
        Simulate it with :meth:`CalibratedDesign.simulate` or
        :func:`~qsimcells.sim.simulate` (where ``n_cells`` is then the total).
    """
    check_adata(adata)
    if adata.n_obs < 2:
        raise ValueError(f"adata: needs at least 2 cells, has {adata.n_obs}")
    labels = group_labels(adata, groupby)
    min_correlation = check_finite("min_correlation", min_correlation, low=0.0, high=1.0)
    penalty = check_finite("penalty", penalty, low=0.0)
    max_candidates = check_positive_int("max_candidates", max_candidates)
    max_parents = check_positive_int("max_parents", max_parents)
    n_states = check_positive_int("n_states", n_states)
    min_state_cells = check_positive_int("min_state_cells", min_state_cells)
    if max_parents > 6:
        raise ValueError(
            f"max_parents: at most 6 (the parents' 2**k ON/OFF states are "
            f"enumerated), got {max_parents}"
        )
    if max_cells is not None:
        max_cells = check_positive_int("max_cells", max_cells)
    if key_added is not None and not isinstance(key_added, str):
        raise TypeError(f"key_added: expected a string or None, got {key_added!r}")
    if not (edges is None or isinstance(edges, pd.DataFrame) or edges == "correlation"):
        raise ValueError(
            f"edges: expected 'correlation', a DataFrame with source and target, "
            f"or None, got {edges!r}"
        )

    raw = _counts(adata, layer)
    chosen = _choose_genes(adata, raw, n_genes, genes)
    gen = as_generator(seed_sequence(rng))
    cell_types = [str(t) for t in pd.Categorical(labels.astype(str)).categories]
    label, parent_of = _states(
        raw[:, chosen], labels.astype(str).to_numpy(), cell_types, n_states, min_state_cells, gen
    )
    types = list(parent_of)  # the design's cell types: the states, in cell-type order
    parents = [parent_of[t] for t in types]
    keep = []
    for t in types:
        cells = np.flatnonzero(label == t)
        if max_cells is not None and cells.size > max_cells:
            cells = np.sort(gen.choice(cells, max_cells, replace=False))
        keep.append(cells)
    rows = np.concatenate(keep)
    X = np.asarray(raw[rows][:, chosen].toarray(), dtype=np.float64)
    codes = np.concatenate([np.full(c.size, k) for k, c in enumerate(keep)])
    gene_names = [str(g) for g in adata.var_names[chosen]]
    proportions = (
        pd.Series(label)
        .value_counts(normalize=True)
        .reindex(types)
        .rename_axis(None)
        .rename("proportion")
    )

    if isinstance(edges, pd.DataFrame):
        _table_pairs(edges, gene_names, parents)  # every bad row named before any work
    fit = _Marginals.fit(X, codes, len(types), progress=progress)
    size = fit.size
    library_sd = {t: float(fit.sigma[k]) for k, t in enumerate(types)}
    candidates = _candidates(
        X, codes, parents, gene_names, fit.nonzero, edges, min_correlation, max_candidates
    )
    chosen_edges, joint_theta, n_candidates = _fit_edges(
        X, codes, size, fit, candidates, types, penalty, max_parents, progress
    )
    design, marginals, chosen_edges = _circuit(
        types, parents, gene_names, fit, chosen_edges, joint_theta, gen
    )
    loglik_edges = float(joint_theta["loglik_gain"].sum()) if len(joint_theta) else 0.0
    params = {
        "groupby": groupby,
        "n_genes": len(gene_names),
        "edges": _describe(edges),
        "layer": layer,
        "min_correlation": min_correlation,
        "max_candidates": max_candidates,
        "max_parents": max_parents,
        "penalty": penalty,
        "n_states": n_states,
        "min_state_cells": min_state_cells,
        "max_cells": max_cells,
        "n_obs": int(adata.n_obs),
        "n_fitted": int(rows.size),
    }
    result = CalibratedDesign(
        circuit=design,
        genes=gene_names,
        proportions=proportions,
        library_size=library_sd,
        cell_type_of=parent_of,
        fit={
            "marginals": marginals,
            "edges": chosen_edges,
            "loglik": fit.loglik + loglik_edges,
            "loglik_independent": fit.loglik,
            "n_candidates": n_candidates,
            "params": params,
        },
    )
    if key_added is not None:
        adata.uns[key_added] = result.as_dict()
    logger.info(
        "fit_design: %d genes, %d cell types, %d of %d candidate edges kept",
        len(gene_names),
        len(types),
        len(chosen_edges),
        n_candidates,
    )
    return result


STATE_MARK = "#"


def _states(
    counts: sparse.csr_matrix,
    label: np.ndarray,
    cell_types: list[str],
    n_states: int,
    min_state_cells: int,
    gen: np.random.Generator,
) -> tuple[np.ndarray, dict[str, str]]:
    """Each cell's state, and the cell type of every state (in cell-type order). With
    ``n_states > 1`` a cell type is split by k-means (k-means++, seeded) on the first 10
    principal components of its log-normalised counts, into at most one state per
    ``min_state_cells`` cells; a labelled cell type is often a mixture of sub-populations,
    and the circuit's genes of one state are then closer to independent given the state."""
    from scipy.cluster.vq import kmeans2

    parent_of: dict[str, str] = {}
    out = label.astype(object).copy()
    for t in cell_types:
        rows = np.flatnonzero(label == t)
        k = min(n_states, rows.size // min_state_cells)
        if k <= 1:
            parent_of[t] = t
            continue
        logx = log_normalize(counts[rows]).toarray()
        logx -= logx.mean(axis=0)
        u, sv, _ = np.linalg.svd(logx, full_matrices=False)
        emb = u[:, :10] * sv[:10]
        _, cluster = kmeans2(emb, k, minit="++", seed=gen)
        found = np.unique(cluster)  # an empty cluster leaves a gap: renumber
        for i, c in enumerate(found):
            name = f"{t}{STATE_MARK}{i}"
            if name in cell_types:
                raise ValueError(
                    f"groupby: cell type {name!r} collides with the name of a "
                    f"state of {t!r}; rename it or use n_states=1"
                )
            parent_of[name] = t
            out[rows[cluster == c]] = name
    return out.astype(str), parent_of


def _describe(edges: Any) -> str:
    return "table" if isinstance(edges, pd.DataFrame) else str(edges)


def _counts(adata: AnnData, layer: str | None) -> sparse.csr_matrix:
    """The shared checks of raw counts, and whole numbers: an NB is fitted to them."""
    X = checked_counts(adata, layer)
    if (X.data != np.round(X.data)).any():
        raise ValueError(
            f"{'X' if layer is None else f'layers[{layer!r}]'}: expected raw "
            "counts (non-negative integers); found fractional values (normalised "
            "data cannot be fitted)"
        )
    return X


def _choose_genes(
    adata: AnnData, counts: sparse.csr_matrix, n_genes: int | None, genes: Sequence[str] | None
) -> np.ndarray:
    if genes is not None:
        if isinstance(genes, str):
            raise TypeError("genes: expected a list of gene names, not one string")
        names = [str(g) for g in genes]
        missing = [g for g in names if g not in adata.var_names]
        if missing:
            raise MissingKeyError(f"genes: {missing[:10]} not in adata.var_names")
        if not names:
            raise ValueError("genes: give at least one gene")
        return np.sort(adata.var_names.get_indexer(list(dict.fromkeys(names))))
    if n_genes is None or n_genes >= adata.n_vars:
        if n_genes is not None:
            check_positive_int("n_genes", n_genes)
        return np.arange(adata.n_vars)
    n_genes = check_positive_int("n_genes", n_genes)
    logx = log_normalize(counts)
    mean = np.asarray(logx.mean(axis=0)).ravel()
    var = np.asarray(logx.multiply(logx).mean(axis=0)).ravel() - mean**2
    return np.sort(np.argsort(-var, kind="stable")[:n_genes])


@dataclass
class _Marginals:
    """Zero-inflated NB per cell type (rows) and gene (columns), with a log-normal size
    factor per cell (the model :func:`~qsimcells.sim.simulate` draws from)."""

    p: np.ndarray
    mu: np.ndarray
    r: np.ndarray
    sigma: np.ndarray  # per type: sd of the log size factors
    size: np.ndarray  # per cell: posterior mean of its size factor
    loglik: float  # of the whole fit (size factors integrated out)
    nonzero: np.ndarray  # fraction of cells with a count
    n_cells: np.ndarray  # per type

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        codes: np.ndarray,
        n_types: int,
        nodes: int = 9,
        progress: bool | None = None,
    ) -> _Marginals:
        """Maximum likelihood with the size factor integrated out by Gauss-Hermite
        quadrature: ``log s = -sigma^2 / 2 + sigma z``, ``z ~ N(0, 1)``. A plug-in size
        factor (total / mean total) would count a cell's ON/OFF pattern as library size and
        soak up the counting noise of designs with few genes per type. Each cell type is its
        own problem, over the genes it counts at all (the others have ``p = 0``)."""
        from tqdm.auto import tqdm

        n_genes = X.shape[1]
        n_cells = np.bincount(codes, minlength=n_types).astype(np.float64)
        shape = (n_types, n_genes)
        p, mu, r = np.zeros(shape), np.ones(shape), np.ones(shape)
        nonzero = np.zeros(shape)
        sigma = np.zeros(n_types)
        size = np.ones(X.shape[0])
        loglik = 0.0
        for k in tqdm(
            range(n_types),
            desc="fit_design: marginals",
            disable=(not progress) if progress is not None else None,
        ):
            cells = np.flatnonzero(codes == k)
            nonzero[k] = (X[cells] > 0).mean(axis=0)
            genes = np.flatnonzero(nonzero[k] > 0)
            if genes.size == 0:
                continue
            counts = X[np.ix_(cells, genes)]
            one = _fit_type(counts, nodes)
            p[k, genes] = one["p"]
            mu[k, genes], r[k, genes] = _match_moments(
                counts, one["p"], one["mu"], one["r"], one["sigma"]
            )
            sigma[k], size[cells] = one["sigma"], one["size"]
            loglik += one["loglik"]
        return cls(p, mu, r, sigma, size, loglik, nonzero, n_cells)

    def posterior_on(self, X: np.ndarray, codes: np.ndarray, size: np.ndarray) -> np.ndarray:
        """P(ON | count) per cell and gene: 1 for a count, else the odds of an ON zero."""
        p, mu, r = self.p[codes], self.mu[codes] * size[:, None], self.r[codes]
        zero_on = p * np.exp(r * (np.log(r) - np.log(r + mu)))
        return np.where(X > 0, 1.0, zero_on / np.maximum(zero_on + (1 - p), 1e-300))


def _match_moments(
    counts: np.ndarray, p: np.ndarray, mu: np.ndarray, r: np.ndarray, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """``mu`` and ``r`` moved so that each gene's mean and variance are the reference's exactly,
    ``p`` and ``sigma`` kept. Real data is not exactly this model (a labelled cell type can be
    a mixture), and a maximum-likelihood fit of a misspecified model need not reproduce the
    moments a simulator is judged by. With ``X = ON * NB(mu s, r)``: ``E[X] = p mu`` and
    ``E[X^2] = p (mu + mu^2 e^{sigma^2} (1 + 1 / r))``."""
    mean, var = counts.mean(axis=0), counts.var(axis=0)
    ok = p > _P_CLIP
    mu = np.where(ok, mean / np.maximum(p, _P_CLIP), mu)
    second = var + mean**2
    excess = (
        np.divide(
            second / np.maximum(p, _P_CLIP) - mu,
            mu**2 * math.exp(sigma**2),
            out=np.full_like(mu, np.inf),
            where=ok & (mu > 0),
        )
        - 1.0
    )
    r = np.where(
        ok & (mu > 0), np.divide(1.0, excess, out=np.full_like(mu, 1e4), where=excess > 1e-4), r
    )
    return np.clip(mu, 0.0, MU_MAX), np.clip(r, R_RANGE[0], 1e4)


def _fit_type(X: np.ndarray, nodes: int) -> dict[str, Any]:
    """The zero-inflated NB of each gene of one cell type and the sd of its log size
    factors, by maximum likelihood (the size factor integrated out by quadrature)."""
    torch = _torch()
    nz = X > 0
    frac = nz.mean(axis=0)
    mean_on = (X * nz).sum(axis=0) / np.maximum(nz.sum(axis=0), 1)
    # ON at least as often as counted; near 1, start near 1 (the optimum may be p = 1)
    p0 = np.clip(np.maximum(frac * 1.1, 1 - (1 - frac) / 2), 0.02, 0.9999)
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    x = torch.as_tensor(X)[:, :, None]  # (cells, genes, nodes)
    zt = torch.as_tensor(z)
    log_w = torch.as_tensor(np.log(w / w.sum()))
    logit = torch.tensor(np.log(p0 / (1 - p0)), requires_grad=True)
    log_mu = torch.tensor(np.log(np.maximum(mean_on, 1e-3)), requires_grad=True)
    log_r = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    a_sigma = torch.tensor(-1.5, dtype=torch.float64, requires_grad=True)
    lgamma_x1 = torch.lgamma(x + 1)

    def per_node() -> Any:
        """(cells, nodes): log P(the cell's counts | its size factor at the node)."""
        p = torch.sigmoid(logit.clamp(-_LOGIT_MAX, _LOGIT_MAX))[None, :, None]
        r = log_r.clamp(math.log(R_RANGE[0]), math.log(1e4)).exp()[None, :, None]
        sigma = 2 * torch.sigmoid(a_sigma)
        log_s = -(sigma**2) / 2 + sigma * zt  # (nodes,)
        log_m = log_mu.clamp(math.log(1e-4), math.log(MU_MAX))[None, :, None] + log_s
        gamma_terms = torch.lgamma(x + r) - torch.lgamma(r) - lgamma_x1  # no node axis
        ll = _zinb_loglik(torch, x, p, log_m, r, lgamma_x1, gamma_terms).sum(1)
        return ll, log_s

    def total() -> Any:
        ll, _ = per_node()
        return torch.logsumexp(ll + log_w, dim=1)

    evals = _lbfgs(torch, [logit, log_mu, log_r, a_sigma], lambda: -total().mean())
    logger.debug("fit_design: a cell type's marginals after %d evaluations", evals)
    with torch.no_grad():
        ll, log_s = per_node()
        post = torch.softmax(ll + log_w, dim=1)
        return {
            "p": torch.sigmoid(logit.clamp(-_LOGIT_MAX, _LOGIT_MAX)).numpy(),
            "mu": log_mu.clamp(math.log(1e-4), math.log(MU_MAX)).exp().numpy(),
            "r": log_r.clamp(math.log(R_RANGE[0]), math.log(1e4)).exp().numpy(),
            "sigma": float(2 * torch.sigmoid(a_sigma)),
            "size": (post * log_s.exp()[None, :]).sum(1).numpy(),
            "loglik": float(torch.logsumexp(ll + log_w, dim=1).sum()),
        }


def _torch() -> Any:
    try:
        import torch
    except ImportError as err:  # pragma: no cover - torch is in the models extra
        raise ImportError("fit_design needs torch: pip install 'qsimcells[models]'") from err
    return torch


def _zinb_loglik(
    torch: Any, x: Any, p: Any, log_m: Any, r: Any, lgamma_x1: Any, gamma_terms: Any = None
) -> Any:
    """log P(x) of ON ~ Bernoulli(p) times NB(mean exp(log_m), dispersion r).
    ``gamma_terms``: ``lgamma(x + r) - lgamma(r) - lgamma(x + 1)`` when computed already
    (it does not depend on the mean)."""
    if gamma_terms is None:
        gamma_terms = torch.lgamma(x + r) - torch.lgamma(r) - lgamma_x1
    log_r = torch.log(r)
    log_r_m = torch.logaddexp(log_r, log_m)
    nb0 = r * (log_r - log_r_m)
    nb = gamma_terms + nb0 + x * (log_m - log_r_m)
    p = p.clamp(_P_CLIP, 1 - _P_CLIP)
    zero = torch.logaddexp(torch.log1p(-p), torch.log(p) + nb0)
    return torch.where(x > 0, torch.log(p) + nb, zero)


def _lbfgs(torch: Any, params: list[Any], loss_fn: Any, max_iter: int = 500) -> int:
    opt = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-9,
        tolerance_change=1e-9,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Any:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)
    return int(opt.state[opt._params[0]]["func_evals"])


def _candidates(
    X: np.ndarray,
    codes: np.ndarray,
    parents: list[str],
    genes: list[str],
    nonzero: np.ndarray,
    edges: Any,
    min_correlation: float,
    max_candidates: int,
) -> pd.DataFrame:
    """Candidate (type, parent, target) triples, parent before target in ``var`` order
    (``parents``: the cell type of each of the design's types, which may be states)."""
    columns = ["type", "parent", "target", "correlation"]
    if edges is None:
        return pd.DataFrame(columns=columns)
    records = []
    binary = (X > 0).astype(np.float64)
    corr_of = {}
    for k in range(len(parents)):
        y = binary[codes == k]
        varying = (nonzero[k] > 0) & (nonzero[k] < 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            c = (
                np.corrcoef(y, rowvar=False)
                if y.shape[0] > 2
                else np.full((y.shape[1],) * 2, np.nan)
            )
        c = np.atleast_2d(c)
        c[~varying, :] = np.nan
        c[:, ~varying] = np.nan
        corr_of[k] = c
    if isinstance(edges, pd.DataFrame):
        for kinds, parent, target in _table_pairs(edges, genes, parents):
            for k in kinds:
                r = corr_of[k][parent, target]
                if np.isfinite(r):
                    records.append((k, parent, target, float(r)))
        table = pd.DataFrame.from_records(records, columns=columns)
        return table.drop_duplicates(["type", "parent", "target"]).reset_index(drop=True)
    for k in range(len(parents)):
        c = corr_of[k]
        n = c.shape[0]
        for target in range(1, n):
            r = c[:target, target]
            ok = np.flatnonzero(np.isfinite(r) & (np.abs(np.nan_to_num(r)) >= min_correlation))
            if ok.size == 0:
                continue
            best = ok[np.argsort(-np.abs(r[ok]), kind="stable")[:max_candidates]]
            records += [(k, int(j), target, float(r[j])) for j in best]
    return pd.DataFrame.from_records(records, columns=columns)


def _table_pairs(
    edges: pd.DataFrame, genes: list[str], parents: list[str]
) -> list[tuple[list[int], int, int]]:
    """A user's candidate table as (design types, parent, target) indices, checked row by
    row; the parent is the gene earlier in ``var`` order. A row's ``cell_type`` selects every
    state of that cell type (``parents``: the cell type of each design type)."""
    types = list(dict.fromkeys(parents))
    missing = {"source", "target"} - set(edges.columns)
    if missing:
        raise ValueError(
            f"edges: the table needs columns 'source' and 'target' (and "
            f"optionally 'cell_type'); missing {sorted(missing)}"
        )
    index = {g: i for i, g in enumerate(genes)}
    pairs = []
    for i, rec in enumerate(edges.to_dict("records")):
        for end in ("source", "target"):
            if str(rec[end]) not in index:
                raise ValueError(
                    f"edges[{i}].{end}: {rec[end]!r} is not a fitted gene (give "
                    "it in genes=, or raise n_genes)"
                )
        a, b = index[str(rec["source"])], index[str(rec["target"])]
        if a == b:
            raise ValueError(f"edges[{i}]: source and target are the same gene {genes[a]!r}")
        kinds = list(range(len(parents)))
        cell_type = rec.get("cell_type")
        if cell_type is not None and not (isinstance(cell_type, float) and math.isnan(cell_type)):
            if str(cell_type) not in types:
                raise ValueError(f"edges[{i}].cell_type: {cell_type!r} is not one of {types}")
            kinds = [k for k, t in enumerate(parents) if t == str(cell_type)]
        pairs.append((kinds, min(a, b), max(a, b)))
    return pairs


def _fit_edges(
    X: np.ndarray,
    codes: np.ndarray,
    size: np.ndarray,
    fit: _Marginals,
    candidates: pd.DataFrame,
    types: list[str],
    penalty: float,
    max_parents: int,
    progress: bool | None,
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Screen each candidate alone, keep those that pay their penalty (the strongest
    ``max_parents`` per target), fit each target's kept parents jointly."""
    edge_columns = ["type", "parent", "target", "weight", "sign", "delta_loglik", "correlation"]
    n_candidates = len(candidates)
    if n_candidates == 0:
        return (pd.DataFrame(columns=edge_columns), pd.DataFrame(), 0)
    on = fit.posterior_on(X, codes, size)
    cells_of = [np.flatnonzero(codes == k) for k in range(len(types))]
    fitter = _ConditionalFit(X, size, fit, on, cells_of)
    cand = candidates.copy()
    cand["sign"] = np.where(cand["correlation"] >= 0, 1, -1)
    groups = [
        (int(k), int(t), [int(p)], [int(s)])
        for k, t, p, s in cand[["type", "target", "parent", "sign"]].itertuples(index=False)
    ]
    _, _, gain = fitter.run(groups, progress, "fit_design: screening edges")
    cand["delta_loglik"] = gain
    threshold = penalty * np.log(fit.n_cells[cand["type"].to_numpy()]) / 2
    kept = cand[cand["delta_loglik"] > threshold]
    kept = (
        kept.sort_values(
            ["type", "target", "delta_loglik"], ascending=[True, True, False], kind="stable"
        )
        .groupby(["type", "target"], sort=True)
        .head(max_parents)
    )
    if kept.empty:
        return (pd.DataFrame(columns=edge_columns), pd.DataFrame(), n_candidates)
    joint_groups = []
    for (k, t), rows in kept.groupby(["type", "target"], sort=True):
        joint_groups.append(
            (int(k), int(t), rows["parent"].astype(int).tolist(), rows["sign"].astype(int).tolist())
        )
    theta, phi, gain = fitter.run(joint_groups, progress, "fit_design: joint fits")
    out = []
    for (k, t, parents, signs), ph in zip(joint_groups, phi, strict=True):
        rows = kept[(kept["type"] == k) & (kept["target"] == t)].set_index("parent")
        for j, (parent, sign) in enumerate(zip(parents, signs, strict=True)):
            if ph[j] < MIN_PHI:  # another parent explains it: the joint fit switched it off
                continue
            out.append(
                (
                    k,
                    parent,
                    t,
                    float(ph[j]),
                    "activation" if sign > 0 else "repression",
                    float(rows.at[parent, "delta_loglik"]),
                    float(rows.at[parent, "correlation"]),
                )
            )
    edges = pd.DataFrame.from_records(
        out, columns=["type", "parent", "target", "weight", "sign", "delta_loglik", "correlation"]
    )
    joint = pd.DataFrame(
        {
            "type": [g[0] for g in joint_groups],
            "target": [g[1] for g in joint_groups],
            "theta": theta,
            "loglik_gain": gain,
        }
    )
    return edges, joint, n_candidates


class _ConditionalFit:
    """Targets whose ON probability depends on parents: sin^2((theta + sum phi_k g_k) / 2),
    averaged over the parents' latent ON states, with the target's NB fixed from the
    marginal fit. Many small fits at once, padded to the same number of cells and parents."""

    def __init__(
        self,
        X: np.ndarray,
        size: np.ndarray,
        fit: _Marginals,
        on: np.ndarray,
        cells_of: list[np.ndarray],
    ) -> None:
        self.X, self.size, self.fit, self.on, self.cells_of = X, size, fit, on, cells_of

    def run(
        self,
        groups: list[tuple[int, int, list[int], list[int]]],
        progress: bool | None,
        desc: str,
        batch: int = 4096,
    ) -> tuple[list[float], list[np.ndarray], np.ndarray]:
        from tqdm.auto import tqdm

        theta_out: list[float] = []
        phi_out: list[np.ndarray] = []
        gain_out = []
        starts = range(0, len(groups), batch)
        for start in tqdm(
            starts, desc=desc, disable=(not progress) if progress is not None else None
        ):
            th, ph, g = self._batch(groups[start : start + batch])
            theta_out += th
            phi_out += ph
            gain_out.append(g)
        return theta_out, phi_out, np.concatenate(gain_out)

    def _batch(
        self, groups: list[tuple[int, int, list[int], list[int]]]
    ) -> tuple[list[float], list[np.ndarray], np.ndarray]:
        torch = _torch()
        fit = self.fit
        n_cells = max(self.cells_of[k].size for k, *_ in groups)
        n_par = max(len(p) for _, _, p, _ in groups)
        G = len(groups)
        x = np.zeros((G, n_cells))
        mask = np.zeros((G, n_cells))
        log_m = np.zeros((G, n_cells))
        r = np.ones((G, n_cells))
        w = np.zeros((G, n_cells, n_par))  # P(the parent's gate fires) per cell
        used = np.zeros((G, n_par))
        p_marg = np.zeros(G)
        for i, (k, t, parents, signs) in enumerate(groups):
            cells = self.cells_of[k]
            n = cells.size
            x[i, :n] = self.X[cells, t]
            mask[i, :n] = 1
            log_m[i, :n] = np.log(max(fit.mu[k, t], 1e-300)) + np.log(self.size[cells])
            r[i, :n] = fit.r[k, t]
            for j, (parent, sign) in enumerate(zip(parents, signs, strict=True)):
                on = self.on[cells, parent]
                w[i, :n, j] = on if sign > 0 else 1 - on
                used[i, j] = 1
            p_marg[i] = fit.p[k, t]
        # every ON/OFF pattern of the (up to n_par) parents, and each cell's chance of it
        patterns = ((np.arange(2**n_par)[:, None] >> np.arange(n_par)) & 1).astype(np.float64)
        xt, mt, lmt, rt = (torch.as_tensor(a) for a in (x, mask, log_m, r))
        wt, usedt, pat = torch.as_tensor(w), torch.as_tensor(used), torch.as_tensor(patterns)
        # (G, cells, patterns): product over parents of w or 1 - w
        weight = torch.prod(
            torch.where(pat[None, None] > 0, wt[:, :, None, :], 1 - wt[:, :, None, :]), dim=-1
        )
        # the target's NB is fixed: log P(count | ON) once, then only P(ON) varies
        log_r_m = torch.logaddexp(torch.log(rt), lmt)
        nb0 = rt * (torch.log(rt) - log_r_m)
        on_ll = torch.where(
            xt > 0,
            torch.lgamma(xt + rt)
            - torch.lgamma(rt)
            - torch.lgamma(xt + 1)
            + nb0
            + xt * (lmt - log_r_m),
            nb0,
        )
        counted = xt > 0
        zero_on = torch.exp(nb0)

        def loglik(params: Any) -> Any:
            """(G,): log-likelihood of each group's target counts."""
            theta = math.pi * torch.sigmoid(params[:, 0])
            phi = math.pi * torch.sigmoid(params[:, 1:]) * usedt[:, : params.shape[1] - 1]
            angle = theta[:, None] + phi @ pat[:, : phi.shape[1]].T  # (G, patterns)
            p_on = (torch.sin(angle / 2) ** 2).clamp(_P_CLIP, 1 - _P_CLIP)
            if phi.shape[1] == 0:
                p_cell = p_on[:, :1].expand(-1, xt.shape[1])
            else:
                p_cell = (weight * p_on[:, None, :]).sum(-1)  # (G, cells)
            p_cell = p_cell.clamp(_P_CLIP, 1 - _P_CLIP)
            ll = torch.where(
                counted, torch.log(p_cell) + on_ll, torch.log1p(p_cell * (zero_on - 1))
            )
            return (ll * mt).sum(-1)

        theta0 = 2 * np.arcsin(np.sqrt(np.clip(p_marg, 1e-4, 1 - 1e-4)))
        start = torch.as_tensor(np.log(theta0 / (math.pi - theta0)))[:, None]
        # baseline: theta alone (the marginal fit, in this parametrisation), then the parents
        base_params = _newton(torch, loglik, start)
        with torch.no_grad():
            base = loglik(base_params).numpy()
        full_start = torch.cat(
            [base_params, torch.full((G, n_par), -1.0, dtype=torch.float64)], dim=1
        )
        params = _newton(torch, loglik, full_start)
        with torch.no_grad():
            full = loglik(params).numpy()
            theta = (math.pi * torch.sigmoid(params[:, 0])).numpy()
            phi = (math.pi * torch.sigmoid(params[:, 1:])).numpy()
        gain = np.maximum(full - base, 0.0)
        return (theta.tolist(), [phi[i, : len(g[2])] for i, g in enumerate(groups)], gain)


def _newton(torch: Any, loglik: Any, start: Any, max_iter: int = 60, tol: float = 1e-8) -> Any:
    """Maximise ``loglik(params).sum()`` for many independent small problems at once (one row
    of ``params`` each): damped Newton (Levenberg-Marquardt) with each row's own damping, so
    each problem converges at its own pace. The Hessian's blocks come from one backward pass
    per parameter column."""
    params = start.clone()
    n, d = params.shape
    damping = torch.full((n,), 1e-3, dtype=torch.float64)
    done = torch.zeros(n, dtype=torch.bool)
    eye = torch.eye(d, dtype=torch.float64)
    with torch.no_grad():
        current = loglik(params)
    for _ in range(max_iter):
        p = params.clone().requires_grad_(True)
        value = loglik(p)
        (grad,) = torch.autograd.grad(value.sum(), p, create_graph=True)
        hess = torch.stack(
            [torch.autograd.grad(grad[:, j].sum(), p, retain_graph=True)[0] for j in range(d)],
            dim=1,
        )  # (n, d, d)
        grad, hess = grad.detach(), hess.detach()
        with torch.no_grad():
            system = -hess + damping[:, None, None] * (
                eye + torch.diag_embed(hess.diagonal(dim1=1, dim2=2).abs())
            )
            step = torch.linalg.solve(system, grad[:, :, None])[:, :, 0]
            trial = params + step
            new = loglik(trial)
            better = torch.isfinite(new) & (new >= current)
            params = torch.where(better[:, None], trial, params)
            gained = torch.where(better, new - current, torch.zeros_like(new))
            current = torch.where(better, new, current)
            damping = torch.where(better, damping / 3, damping * 4).clamp(1e-9, 1e9)
            # a row is done when a step gains almost nothing, or no step gains at all
            done = done | (better & (gained < tol)) | (damping > 1e6)
            if bool(done.all()):
                break
    return params.detach()


def _match_on_marginals(
    p: np.ndarray,
    preferred: np.ndarray,
    edges: pd.DataFrame,
    rng: np.random.Generator,
    shots: int = 20_000,
) -> np.ndarray:
    """The RY angle of every (type, gene) such that the circuit's ON probability is the
    fitted marginal ``p``, with the gates' angles kept.

    The joint fit reads the parents' ON states through their posterior probabilities, as if
    independent; in the circuit they are sampled, and a target's ON probability drifts from
    the reference's. So the genes of each type are sampled in qubit order (the gate order:
    parents first), and each target's angle solves ``mean over shots of sin^2((theta + e) /
    2) = p`` given its sampled parents, in closed form: with ``A = mean cos e`` and ``B =
    mean sin e``, the mean is ``(1 - R cos(theta + delta)) / 2``, ``R e^{i delta} = A + iB``.
    Of two solutions, the one nearer the joint fit's angle ``preferred`` (the other one can
    turn an activation into a repression); unreachable ``p`` gets the nearest angle in
    ``[0, pi]``."""
    theta = preferred.copy()
    if edges.empty:
        return theta
    for k, rows in edges.groupby("type", sort=True):
        k = int(k)
        parents_of: dict[int, list[tuple[int, float, int]]] = {}
        for _, parent, target, phi, sign in rows[
            ["type", "parent", "target", "weight", "sign"]
        ].itertuples(index=False):
            parents_of.setdefault(int(target), []).append(
                (int(parent), float(phi), 1 if sign == "activation" else -1)
            )
        genes = sorted(set(parents_of) | {q for v in parents_of.values() for q, _, _ in v})
        bits: dict[int, np.ndarray] = {}
        for g in genes:  # ascending: parents before targets
            extra = np.zeros(shots)
            for parent, phi, sign in parents_of.get(g, []):
                fires = bits[parent] if sign > 0 else ~bits[parent]
                extra += phi * fires
            if g in parents_of:
                theta[k, g] = _solve_angle(float(p[k, g]), extra, float(preferred[k, g]))
            bits[g] = rng.random(shots) < np.sin((theta[k, g] + extra) / 2) ** 2
    return theta


def _solve_angle(p: float, extra: np.ndarray, preferred: float) -> float:
    """``theta`` in ``[0, pi]`` with ``mean(sin^2((theta + extra) / 2))`` equal to ``p`` (the
    solution nearest ``preferred``), or closest to it when ``p`` is out of reach."""
    a, b = float(np.cos(extra).mean()), float(np.sin(extra).mean())
    radius, delta = math.hypot(a, b), math.atan2(b, a)

    def on(theta: float) -> float:
        return (1 - radius * math.cos(theta + delta)) / 2

    exact = []
    if radius > 1e-12 and abs((1 - 2 * p) / radius) <= 1:
        base = math.acos((1 - 2 * p) / radius)
        exact = [
            t for t in ((sgn * base - delta) % (2 * math.pi) for sgn in (1, -1)) if t <= math.pi
        ]
    if exact:
        return min(exact, key=lambda t: abs(t - preferred))
    ends = [0.0, math.pi] + [
        t for t in ((-delta) % (2 * math.pi), (math.pi - delta) % (2 * math.pi)) if t <= math.pi
    ]
    return min(ends, key=lambda t: abs(on(t) - p))


def _circuit(
    types: list[str],
    parents: list[str],
    genes: list[str],
    fit: _Marginals,
    edges: pd.DataFrame,
    joint: pd.DataFrame,
    rng: np.random.Generator,
) -> tuple[CellCircuit, pd.DataFrame, pd.DataFrame]:
    """The CellCircuit of the fit: a qubit per (type, gene with counts), gates sorted by
    target so every parent's own gates come first (the exact sampler's order)."""
    preferred = 2 * np.arcsin(np.sqrt(np.clip(fit.p, 0.0, 1.0)))
    for k, t, th in (
        joint[["type", "target", "theta"]].itertuples(index=False) if len(joint) else []
    ):
        preferred[int(k), int(t)] = th
    theta = _match_on_marginals(fit.p, preferred, edges, rng)
    names = {
        (k, g): f"{types[k]}{SEPARATOR}{genes[g]}"
        for k in range(len(types))
        for g in range(len(genes))
    }
    if len(set(names.values())) != len(names):
        raise ValueError(
            f"groupby: cell type and gene names joined by {SEPARATOR!r} collide; "
            "rename cell types that contain it"
        )
    cell_types: dict[str, list[str]] = {}
    rows = []
    for k, t in enumerate(types):
        expressed = np.flatnonzero(fit.nonzero[k] > 0)
        if expressed.size == 0:  # a circuit needs a qubit per type: one that is always OFF
            expressed = np.array([0])
        cell_types[t] = [names[k, g] for g in expressed.tolist()]
        for g in expressed.tolist():  # Python ints: the keys of names
            rows.append(
                (
                    names[k, g],
                    parents[k],
                    t,
                    genes[g],
                    theta[k, g],
                    fit.p[k, g],
                    fit.mu[k, g],
                    fit.r[k, g],
                    int(fit.n_cells[k]),
                    fit.nonzero[k, g],
                )
            )
    marginals = pd.DataFrame.from_records(
        rows,
        columns=[
            "qubit",
            "cell_type",
            "state",
            "gene",
            "theta",
            "p_on",
            "mu",
            "r",
            "n_cells",
            "nonzero_fraction",
        ],
    ).set_index("qubit")
    marginals.index.name = None
    gates = edges.sort_values(["type", "target", "parent"], kind="stable")
    design = CellCircuit(
        cell_types,
        theta={q: float(np.clip(v, 0.0, math.pi)) for q, v in marginals["theta"].items()},
        mu={q: float(np.clip(v, 0.0, MU_MAX)) for q, v in marginals["mu"].items()},
        r={q: float(np.clip(v, *R_RANGE)) for q, v in marginals["r"].items()},
        edges=[
            (names[int(k), int(p)], names[int(k), int(t)], float(np.clip(w, 1e-6, math.pi)), s)
            for k, p, t, w, s in gates[["type", "parent", "target", "weight", "sign"]].itertuples(
                index=False
            )
        ],
        n_housekeeping=0,
        name="fitted",
    )
    table = (
        pd.DataFrame(
            {
                "cell_type": [parents[int(k)] for k in gates["type"]],
                "state": [types[int(k)] for k in gates["type"]],
                "source": [genes[int(g)] for g in gates["parent"]],
                "target": [genes[int(g)] for g in gates["target"]],
                "weight": gates["weight"].to_numpy(float),
                "sign": gates["sign"].to_numpy(object),
                "delta_loglik": gates["delta_loglik"].to_numpy(float),
                "correlation": gates["correlation"].to_numpy(float),
            }
        )
        if len(gates)
        else pd.DataFrame(columns=EDGE_TABLE)
    )
    return design, marginals, table
