"""Analyses of simulated or real data, scored against the ground truth of ``qs.sim``.

- GRN inference and scoring: :func:`correlation_network` (the paper's pipeline: normalise,
  log1p, z-score, Pearson/Spearman, ``|r| > threshold``) and :func:`score_network` (precision,
  recall, F1, AUPR, AUROC against the programmed edges in ``uns["qsimcells"]``).
- Cell-cell communication: :func:`cellchat` (CellChat's communication probability with
  permutation p-values) and :func:`communication_shift` (the fold change between two datasets,
  the paper's Table 3); :func:`true_communication` and :func:`score_communication` (the
  programmed ligand-receptor truth, per tissue region, and precision, recall and AUPR of any
  method's result: ``cellchat``, squidpy's ``ligrec``, liana).
- Representation learning: :func:`qbmvae` (train a QBM-VAE, a binary-latent VAE with a
  Boltzmann-machine prior, and store its latent; torch and scvi-tools load only when it runs).
- Perturbation prediction: :func:`vcc_metrics` (the Virtual Cell Challenge's DES, PDS, MAE and
  scaled scores, as cell-eval computes them), :func:`cell_mean_baseline`,
  :func:`linear_baseline` (Ahlmann-Eltze et al.'s linear model on gene embeddings), and the seed
  paper's
  diagnostics :func:`participation_ratio` and :func:`perturbation_similarity`.
- Simulators against real data: :func:`compare_to_reference` (per-gene statistics, library
  sizes, correlations and a kNN two-sample AUC of a simulation against its reference).
- Binary activity (spike trains): :func:`spike_statistics` (SpiQGAN's Fig. 2-3 statistics,
  real against generated), :func:`independent_surrogate` (the independent-units baseline) and
  :func:`js_divergence`.
"""

from __future__ import annotations

from .communication import cellchat, communication_shift
from .communication_truth import score_communication, true_communication
from .grn import correlation_network, score_network, true_network
from .linear_baseline import linear_baseline
from .reference import ReferenceComparison, compare_to_reference
from .spikes import independent_surrogate, js_divergence, spike_statistics
from .vcc import (
    VCCResult,
    cell_mean_baseline,
    participation_ratio,
    perturbation_similarity,
    vcc_metrics,
    vcc_scaled_scores,
)

__all__ = [
    "ReferenceComparison",
    "VCCResult",
    "cell_mean_baseline",
    "cellchat",
    "communication_shift",
    "compare_to_reference",
    "correlation_network",
    "independent_surrogate",
    "js_divergence",
    "linear_baseline",
    "participation_ratio",
    "perturbation_similarity",
    "qbmvae",
    "score_communication",
    "score_network",
    "spike_statistics",
    "true_communication",
    "true_network",
    "vcc_metrics",
    "vcc_scaled_scores",
]


#: tools that train a model: they live in the model layer and are named here by module path,
#: so that no analysis module imports a model (and ``import qsimcells.tl`` stays light)
_MODEL_TOOLS = {"qbmvae": "qsimcells.model._qbmvae_tool"}


def __getattr__(name: str) -> object:
    if name in _MODEL_TOOLS:
        import importlib

        return getattr(importlib.import_module(_MODEL_TOOLS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODEL_TOOLS))
