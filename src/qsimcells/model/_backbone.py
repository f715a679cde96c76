"""Frozen backbone encoders for :class:`~qsimcells.model.QPerturb`.

A backbone maps raw counts to a latent vector per cell and is never trained by QPerturb (the
seed keeps its STATE transformer frozen). Two kinds ship: :class:`PCABackbone` (fitted on the
control cells' log-normalised expression, the default) and :class:`ScviBackbone`, which wraps
any trained scvi-tools model with ``get_latent_representation`` (QBMVAE, SCVI, ...). A third
party adds its own by implementing the same small interface (:class:`Backbone`).

Perturbation features must exist for genes never perturbed in training, so they are made from
control cells only: the feature of a knockout of gene ``g`` is the mean latent shift of control
cells when ``g``'s counts are set to zero (an in-silico knockout through the backbone), and of an
overexpression the shift when they are set to the gene's mean non-zero count (1 if no control
cell expresses it). For PCA this is close to the gene's loading vector scaled by its mean
expression (not exactly: log1p and the per-cell renormalisation intervene).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy import sparse

from ..tl._preprocess import log_normalize

__all__ = ["Backbone", "PCABackbone", "ScviBackbone", "make_backbone"]


@runtime_checkable
class Backbone(Protocol):
    """What QPerturb needs of an encoder: a latent width and ``encode(counts)``."""

    n_latent: int

    def encode(self, counts: sparse.csr_matrix) -> np.ndarray:
        """Latent ``(cells, n_latent)`` of raw counts ``(cells, genes)`` in the training genes."""


class PCABackbone:
    """PCA of log-normalised expression (``log1p`` of counts per 1e4), fitted once.

    Parameters
    ----------
    n_components
        Latent width.
    """

    kind = "pca"

    def __init__(self, n_components: int = 32) -> None:
        self.n_latent = int(n_components)
        self.mean_: np.ndarray | None = None
        self.components_: np.ndarray | None = None

    def fit(self, counts: sparse.csr_matrix) -> PCABackbone:
        X = log_normalize(counts).toarray()
        n = min(self.n_latent, X.shape[0] - 1, X.shape[1])
        if n < 1:
            raise ValueError(f"backbone: PCA needs at least 2 control cells, got {X.shape[0]}")
        self.n_latent = n
        self.mean_ = X.mean(axis=0)
        # thin SVD: right singular vectors are the principal axes
        _, _, vt = np.linalg.svd(X - self.mean_, full_matrices=False)
        self.components_ = vt[:n]
        return self

    def encode(self, counts: sparse.csr_matrix) -> np.ndarray:
        if self.components_ is None:
            raise RuntimeError("backbone: the PCA backbone is not fitted")
        X = log_normalize(counts).toarray()
        return (X - self.mean_) @ self.components_.T

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_latent": self.n_latent,
            "mean": self.mean_,
            "components": self.components_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PCABackbone:
        out = cls(int(state["n_latent"]))
        out.mean_, out.components_ = np.asarray(state["mean"]), np.asarray(state["components"])
        return out


class ScviBackbone:
    """The latent posterior mean of a trained scvi-tools model (frozen).

    Parameters
    ----------
    model
        A trained model with ``get_latent_representation(adata)`` (``qs.model.QBMVAE``,
        ``scvi.model.SCVI``, ...) whose genes are the screen's genes, in the same order.
    batch_size
        Cells per forward pass.
    """

    kind = "scvi"

    def __init__(self, model: Any, batch_size: int = 1024, genes: list[str] | None = None) -> None:
        if not hasattr(model, "get_latent_representation") or not hasattr(model, "adata"):
            raise TypeError(
                f"backbone: expected 'pca' or a trained scvi-tools model, got "
                f"{type(model).__name__}"
            )
        model_genes = model.adata.var_names.astype(str).tolist()
        if genes is not None and model_genes != list(genes):
            raise ValueError(
                f"backbone: the scvi-tools model's genes ({len(model_genes)}) are "
                f"not the screen's genes ({len(genes)}) in the same order"
            )
        if not getattr(model, "is_trained", True):
            raise ValueError("backbone: the scvi-tools model is not trained")
        self.model = model
        self.batch_size = int(batch_size)
        n_latent = getattr(getattr(model, "module", None), "n_latent", None)
        self.n_latent = (
            int(n_latent)
            if n_latent is not None
            else int(np.asarray(model.get_latent_representation(model.adata[:16])).shape[1])
        )

    def encode(self, counts: sparse.csr_matrix) -> np.ndarray:
        import anndata as ad

        reference = self.model.adata
        if counts.shape[1] != reference.n_vars:
            raise ValueError(
                f"backbone: the scvi-tools model was trained on {reference.n_vars} "
                f"genes, the screen has {counts.shape[1]}"
            )
        cells = ad.AnnData(
            sparse.csr_matrix(counts, dtype=np.float32), var=reference.var[[]].copy()
        )
        # the model's own set-up: its layer, and every obs field it registered filled from
        # its training data (the first category, the median of a number), so the screen's
        # cells are encoded as cells of one batch / label of the model's data
        registry = self.model.adata_manager.registry["setup_args"]
        layer = registry.get("layer")
        if layer is not None:
            cells.layers[layer] = cells.X
        for key in _registered_obs_keys(registry):
            column = reference.obs[key]
            numeric = pd.api.types.is_numeric_dtype(column) and not isinstance(
                column.dtype, pd.CategoricalDtype
            )
            cells.obs[key] = float(column.median()) if numeric else column.iloc[0]
        return np.asarray(
            self.model.get_latent_representation(cells, batch_size=self.batch_size),
            dtype=np.float64,
        )

    def state(self) -> dict[str, Any]:
        raise ValueError(
            "backbone: a QPerturb on an scvi-tools backbone saves its own weights "
            "only; pass the backbone model again to QPerturb.load(..., backbone=)"
        )


def _registered_obs_keys(registry: dict[str, Any]) -> list[str]:
    """The obs columns an scvi-tools model was set up with (batch, labels, covariates)."""
    keys = [registry.get(name) for name in ("batch_key", "labels_key", "size_factor_key")]
    for name in ("categorical_covariate_keys", "continuous_covariate_keys"):
        keys += list(registry.get(name) or [])
    return [k for k in keys if k is not None]


def make_backbone(
    backbone: Any,
    n_components: int,
    control_counts: sparse.csr_matrix,
    genes: list[str] | None = None,
) -> PCABackbone | ScviBackbone | Backbone:
    """The backbone for ``QPerturb(backbone=...)``: ``"pca"`` (fitted on the control cells), a
    trained scvi-tools model, or any object implementing :class:`Backbone`."""
    if isinstance(backbone, str):
        if backbone != "pca":
            raise ValueError(
                f"backbone: {backbone!r} is not allowed; choose 'pca', a trained "
                "scvi-tools model or an object with n_latent and encode(counts)"
            )
        return PCABackbone(n_components).fit(control_counts)
    if hasattr(backbone, "get_latent_representation"):
        return ScviBackbone(backbone, genes=genes)
    if isinstance(backbone, Backbone):
        return backbone
    raise TypeError(
        f"backbone: expected 'pca', a trained scvi-tools model or an object with "
        f"n_latent and encode(counts), got {type(backbone).__name__}"
    )


def perturbation_features(
    backbone: Any,
    control_counts: sparse.csr_matrix,
    gene_index: int,
    kind: str,
    reference: np.ndarray,
) -> np.ndarray:
    """Mean latent shift of control cells under an in-silico knockout / overexpression of one
    gene (``reference`` is their unperturbed latent)."""
    X = sparse.csr_matrix(control_counts, dtype=np.float64, copy=True).tolil()
    if kind == "knockout":
        X[:, gene_index] = 0.0
    else:
        column = control_counts[:, gene_index].toarray().ravel()
        nonzero = column[column > 0]
        X[:, gene_index] = float(nonzero.mean()) if nonzero.size else 1.0
    shifted = backbone.encode(sparse.csr_matrix(X))
    return (shifted - reference).mean(axis=0)
