"""The torch module of QBM-VAE: encoder, spike-and-exponential relaxation, decoder, BM prior.

A scvi-tools :class:`~scvi.module.base.BaseModuleClass`. The encoder maps a cell to Bernoulli
means ``q`` of ``n_latent`` binary units; the spike-and-exponential relaxation (beta = 0.5 in the
paper) turns ``q`` and uniform noise ``rho`` into ``zeta in [0, 1]``, differentiable in ``q``:

    zeta = (1 / beta) * log(max(rho + q - 1, 0) / q * (exp(beta) - 1) + 1),

which is 0 (the spike, ``z = 0``) with probability ``1 - q`` and exponential on ``(0, 1]``
(``z = 1``) otherwise. The decoder reads ``concat(zeta, batch one-hot)``. The KL to the
Boltzmann-machine prior is the exact-gradient surrogate of DESIGN section 5
(:meth:`BoltzmannPrior.kl_surrogate`), with one draw of negative samples per loss call.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from scvi import REGISTRY_KEYS
from scvi.distributions import NegativeBinomial
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from scvi.nn import FCLayers
from torch import nn

__all__ = ["QBMVAEModule", "spike_exponential"]

_Q_MIN = 1e-6


def spike_exponential(q: torch.Tensor, rho: torch.Tensor, beta: float) -> torch.Tensor:
    """Spike-and-exponential relaxation ``zeta(rho, q)`` in ``[0, 1]`` (the seed's formula)."""
    q = q.clamp(_Q_MIN, 1 - _Q_MIN)
    ratio = torch.clamp(rho + q - 1, min=0.0) / q
    return torch.log1p(ratio * math.expm1(beta)) / beta


class QBMVAEModule(BaseModuleClass):
    """Binary-latent VAE with a Boltzmann-machine prior.

    Parameters
    ----------
    n_input
        Number of genes.
    n_batch
        Number of batches (one-hot into the decoder; 0 or 1: none).
    n_latent
        Binary latent units.
    n_hidden
        Width of the hidden layers.
    n_layers
        Hidden layers of the encoder and the decoder.
    likelihood
        ``"nb"``: negative binomial on counts with the observed library size (encoder input
        ``log1p(counts)``); ``"mse"``: squared error on ``log1p(1e4 * counts / library)``.
    prior_sampler, prior_sampler_kwargs, num_reads, seed
        Passed to :class:`~qsimcells.model._boltzmann.BoltzmannPrior`.
    beta
        Sharpness of the spike-and-exponential relaxation.
    dropout_rate
        Dropout of the hidden layers.
    """

    def __init__(
        self,
        n_input: int,
        *,
        n_batch: int = 0,
        n_latent: int = 64,
        n_hidden: int = 256,
        n_layers: int = 2,
        likelihood: str = "nb",
        prior_sampler: str = "gibbs",
        prior_sampler_kwargs: dict | None = None,
        beta: float = 0.5,
        num_reads: int = 256,
        dropout_rate: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        from ._boltzmann import BoltzmannPrior

        self.n_input = n_input
        # scvi-tools' minified mode (set by QBMVAE.minify_adata): the posterior means ``q`` and
        # the library come from the AnnData instead of the encoder
        self.minified_data_type: str | None = None
        self.n_batch = n_batch
        self.n_latent = n_latent
        self.likelihood = likelihood
        self.beta = float(beta)
        self.encoder = FCLayers(
            n_in=n_input,
            n_out=n_hidden,
            n_layers=n_layers,
            n_hidden=n_hidden,
            dropout_rate=dropout_rate,
        )
        self.encoder_logits = nn.Linear(n_hidden, n_latent)
        self.decoder = FCLayers(
            n_in=n_latent,
            n_out=n_hidden,
            n_cat_list=[n_batch],
            n_layers=n_layers,
            n_hidden=n_hidden,
            dropout_rate=0.0,
            inject_covariates=False,
        )
        self.decoder_out = nn.Linear(n_hidden, n_input)
        if likelihood == "nb":
            self.px_r = nn.Parameter(torch.randn(n_input))
        self.prior = BoltzmannPrior(
            n_latent,
            sampler=prior_sampler,
            sampler_kwargs=prior_sampler_kwargs,
            num_reads=num_reads,
            seed=seed,
        )

    # -- helpers ---------------------------------------------------------------------------
    def _encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.likelihood == "nb":
            return torch.log1p(x)
        return self._lognorm(x)

    @staticmethod
    def _lognorm(x: torch.Tensor) -> torch.Tensor:
        library = x.sum(-1, keepdim=True).clamp(min=1e-8)
        return torch.log1p(x / library * 1e4)

    # -- scvi-tools protocol ---------------------------------------------------------------
    def _get_inference_input(
        self, tensors: dict[str, torch.Tensor], **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        if self.minified_data_type is not None:
            return {
                "qzm": tensors[REGISTRY_KEYS.LATENT_QZM_KEY],
                "observed_lib_size": tensors[REGISTRY_KEYS.OBSERVED_LIB_SIZE],
            }
        return {"x": tensors[REGISTRY_KEYS.X_KEY]}

    def _get_generative_input(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict[str, torch.Tensor],
        **kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        return {
            "zeta": inference_outputs["zeta"],
            "library": inference_outputs["library"],
            "batch_index": tensors[REGISTRY_KEYS.BATCH_KEY],
        }

    @auto_move_data
    def inference(
        self,
        x: torch.Tensor | None = None,
        n_samples: int = 1,
        qzm: torch.Tensor | None = None,
        observed_lib_size: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Posterior means ``q`` (and their logits), a relaxed sample ``zeta`` and the library
        size: from the counts ``x`` through the encoder, or on minified data from the stored
        posterior means ``qzm`` and library ``observed_lib_size``."""
        bound = math.log((1 - _Q_MIN) / _Q_MIN)  # the logit of the clamped q
        if qzm is not None:
            assert observed_lib_size is not None  # minified data holds both (QBMVAE.minify_adata)
            q = qzm.clamp(_Q_MIN, 1 - _Q_MIN)
            logits = torch.logit(q)
            library = observed_lib_size.reshape(-1, 1).to(q.dtype)
        else:
            assert x is not None  # full data: the counts
            hidden = self.encoder(self._encoder_input(x))
            logits = self.encoder_logits(hidden).clamp(-bound, bound)
            q = torch.sigmoid(logits).clamp(_Q_MIN, 1 - _Q_MIN)
            library = x.sum(-1, keepdim=True)
        rho = torch.rand_like(q)
        zeta = spike_exponential(q, rho, self.beta)
        return {
            "q": q,
            "logits": logits,
            "zeta": zeta,
            "z": (rho > 1 - q).to(q.dtype),
            "library": library,
        }

    @property
    def gene_likelihood(self) -> str:
        """The name scvi-tools' mixins read (``"nb"`` or ``"mse"``)."""
        return self.likelihood

    @auto_move_data
    def generative(
        self,
        zeta: torch.Tensor,
        library: torch.Tensor,
        batch_index: torch.Tensor,
        transform_batch: int | None = None,
    ) -> dict[str, Any]:
        """Decoder output: the NB distribution (``"nb"``) or the reconstruction (``"mse"``).
        ``transform_batch``: decode every cell as if from that batch (scvi-tools' mixins pass
        it for batch-corrected expression)."""
        if transform_batch is not None:
            batch_index = torch.full_like(batch_index, int(transform_batch))
        hidden = self.decoder(zeta, batch_index)
        out = self.decoder_out(hidden)
        if self.likelihood == "nb":
            scale = torch.softmax(out, dim=-1)
            px = NegativeBinomial(mu=library * scale, theta=torch.exp(self.px_r), scale=scale)
            return {"px": px, "px_scale": scale}
        return {"px_mean": out}

    def reconstruction_loss(
        self, x: torch.Tensor, generative_outputs: dict[str, Any]
    ) -> torch.Tensor:
        """Per-cell reconstruction loss, summed over genes."""
        if self.likelihood == "nb":
            return -generative_outputs["px"].log_prob(x).sum(-1)
        return ((generative_outputs["px_mean"] - self._lognorm(x)) ** 2).sum(-1)

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict[str, torch.Tensor],
        generative_outputs: dict[str, Any],
        kl_weight: float = 1.0,
        log_z: float | None = None,
        **kwargs: Any,
    ) -> LossOutput:
        """Mean over cells of reconstruction + ``kl_weight`` x KL.

        ``kl_weight`` is scvi-tools' KL warm-up (the training plan ramps it with
        ``n_epochs_kl_warmup``; 1 without one). It weights the KL's pull on the encoder only:
        the Boltzmann prior always learns from the full KL, so it keeps fitting the aggregate
        posterior while the encoder is given room. ``kl_local`` is the surrogate (exact
        gradient, value off by a constant) unless ``log_z`` is given, in which case it is the
        true KL ``-H(q) + E_q[E] + log Z`` (an honest ELBO); it is reported unweighted.
        """
        kl_weight = float(kl_weight)
        x = tensors[REGISTRY_KEYS.X_KEY]
        rec = self.reconstruction_loss(x, generative_outputs)
        negative = self.prior.negative_samples()  # one draw per step (persistent chains)
        q = inference_outputs["q"]
        kl = self.prior.kl_surrogate(q, negative)
        objective = rec + kl
        if kl_weight != 1.0:  # the prior's own gradient stays that of the full KL
            objective = (
                rec
                + kl_weight * kl
                + (1.0 - kl_weight) * self.prior.kl_surrogate(q.detach(), negative)
            )
        if log_z is not None:
            kl = kl + (self.prior.energy(negative).mean() + float(log_z)).detach()
        return LossOutput(loss=torch.mean(objective), reconstruction_loss=rec, kl_local=kl)

    @torch.inference_mode()
    def sample(self, tensors: dict[str, torch.Tensor], n_samples: int = 1) -> torch.Tensor:
        """Posterior predictive counts (``"nb"``) or log-normalised values (``"mse"``)."""
        _, generative_outputs = self.forward(tensors, compute_loss=False)
        if self.likelihood == "nb":
            return generative_outputs["px"].sample()
        return generative_outputs["px_mean"]
