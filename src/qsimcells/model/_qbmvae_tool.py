"""``qs.tl.qbmvae``: QBM-VAE in one call: set up, train (seeded) and store the binary latent,
scanpy style.

It lives in the model layer, which may use the analyses, and ``qs.tl`` names it lazily (by
module path, as the plugin registry names factories), so no analysis module imports a model:
data flow one way, plugins -> samplers -> sim -> tl/pl -> model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._utils import RngLike, as_generator, check_choice
from ..tl._preprocess import check_adata

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

    from .qbmvae import QBMVAE

__all__ = ["qbmvae"]


def _seed(rng: RngLike) -> int:
    """An int seed for scvi-tools (``scvi.settings.seed``) and the model from the ``rng``."""
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return int(rng) % (2**32)
    return int(as_generator(rng).integers(0, 2**31 - 1))


def qbmvae(
    adata: AnnData,
    *,
    n_latent: int = 64,
    likelihood: str = "nb",
    batch_key: str | None = None,
    layer: str | None = None,
    max_epochs: int | None = None,
    prior_sampler: str = "gibbs",
    model_kwargs: dict[str, Any] | None = None,
    key_added: str = "X_qbmvae",
    representation: str = "probability",
    rng: RngLike = None,
    copy: bool = False,
    **train_kwargs: Any,
) -> QBMVAE | tuple[QBMVAE, AnnData]:
    """Train a QBM-VAE on raw counts and store its latent (posterior means ``q``).

    Runs :meth:`QBMVAE.setup_anndata <qsimcells.model.QBMVAE.setup_anndata>` (which, as in
    scvi-tools, registers the AnnData and adds its ``_scvi_*`` columns),
    :class:`~qsimcells.model.QBMVAE` and :meth:`~qsimcells.model.QBMVAE.train`, seeded from
    ``rng``: ``scvi.settings.seed`` (torch, Lightning, the data split) and the model's ``seed``
    (the prior's initial parameters and its sampler) are set to the same integer.

    Parameters
    ----------
    adata
        Cells x genes with raw counts in ``X`` or ``layer`` (integers for ``likelihood="nb"``).
    n_latent
        Binary latent units (the Boltzmann machine's size).
    likelihood
        ``"nb"`` (negative binomial on the counts) or ``"mse"`` (squared error on
        ``log1p(1e4 * x / library)``).
    batch_key
        ``obs`` column of the batches (one-hot into the decoder), or ``None``.
    layer
        Layer with the counts (default ``X``).
    max_epochs
        Training epochs (default: scvi-tools' heuristic from the number of cells).
    prior_sampler
        Registered Ising sampler of the negative phase: ``"gibbs"``, ``"exact"``
        (``n_latent <= 20``), ``"neal"`` or a plugin's.
    model_kwargs
        More arguments of :class:`~qsimcells.model.QBMVAE` (``n_hidden``, ``n_layers``,
        ``beta``, ``num_reads``, ``prior_sampler_kwargs``, ``dropout_rate``).
    key_added
        ``obsm`` key of the latent and ``uns`` key of the parameters.
    representation
        ``"probability"`` (the posterior means ``q``) or ``"logit"`` (their logits, the
        better input of ``sc.pp.neighbors``; see
        :meth:`QBMVAE.get_latent_representation
        <qsimcells.model.QBMVAE.get_latent_representation>`).
    rng
        Seed or generator; ``None`` draws a fresh seed (stored in ``uns[key_added]``).
    copy
        Work on a copy of ``adata`` and return it with the model; ``adata`` is left untouched.
    **train_kwargs
        Passed to :meth:`QBMVAE.train <qsimcells.model.QBMVAE.train>` (``lr``, ``lr_prior``,
        ``batch_size``, ``early_stopping``, ``accelerator``, ``enable_progress_bar``, ...).

    Returns
    -------
    QBMVAE or tuple of (QBMVAE, anndata.AnnData)
        The trained model; with ``copy=True``, ``(model, adata_copy)``. The AnnData trained on
        gets ``obsm[key_added]``, the ``(n_cells, n_latent)`` float32 posterior means ``q`` in
        ``(0, 1)`` (or their logits), and ``uns[key_added]["params"]``, the arguments and the seed,
        and ``uns[key_added]["prior_sampler"]``, the Ising sampler's name, distribution,
        version and options.
    """
    check_adata(adata, "adata")
    check_choice("representation", representation, ["probability", "logit"])
    if not isinstance(key_added, str) or not key_added:
        raise ValueError(f"key_added: expected a non-empty string, got {key_added!r}")
    if model_kwargs is not None and not isinstance(model_kwargs, dict):
        raise TypeError("model_kwargs: expected a dict of QBMVAE arguments or None")
    model_kwargs = dict(model_kwargs or {})
    for key in ("n_latent", "likelihood", "prior_sampler", "seed"):
        if key in model_kwargs:
            raise ValueError(
                f"model_kwargs: pass {key!r} as an argument of qs.tl.qbmvae (seed: rng)"
            )
    import scvi

    from .qbmvae import QBMVAE

    seed = _seed(rng)
    target = adata.copy() if copy else adata
    scvi.settings.seed = seed
    QBMVAE.setup_anndata(target, layer=layer, batch_key=batch_key)
    model = QBMVAE(
        target,
        n_latent=n_latent,
        likelihood=likelihood,
        prior_sampler=prior_sampler,
        seed=seed,
        **model_kwargs,
    )
    model.train(max_epochs=max_epochs, **train_kwargs)
    target.obsm[key_added] = model.get_latent_representation(target, representation=representation)
    params: dict[str, Any] = {
        "n_latent": int(n_latent),
        "likelihood": likelihood,
        "prior_sampler": prior_sampler,
        "seed": seed,
        "representation": representation,
        "epochs": int(model.history["train_loss"].shape[0]),
    }
    optional = {"batch_key": batch_key, "layer": layer, "max_epochs": max_epochs}
    params.update({k: v for k, v in optional.items() if v is not None})  # h5ad stores no None
    params.update({k: v for k, v in model_kwargs.items() if isinstance(v, (bool, int, float, str))})
    target.uns[key_added] = {"params": params, "prior_sampler": model.module.prior.provenance()}
    return (model, target) if copy else model
