"""Training plan of QBM-VAE: Adam with one learning rate for the VAE and one for the BM prior."""

from __future__ import annotations

from typing import Any

import torch
from scvi.train import TrainingPlan

__all__ = ["QBMVAETrainingPlan"]


class QBMVAETrainingPlan(TrainingPlan):
    """scvi-tools training plan with two Adam parameter groups.

    Parameters
    ----------
    module
        A :class:`~qsimcells.model._qbmvae_module.QBMVAEModule`.
    lr
        Learning rate of the encoder and decoder (the paper: ``1e-2``).
    lr_prior
        Learning rate of the Boltzmann machine ``h, W`` (the paper: ``1e-3``).
    eps
        Adam's ``eps`` for both groups (``1e-8``; scvi-tools' default ``0.01`` damps Adam).
    weight_decay
        Adam's weight decay for both groups.
    n_epochs_kl_warmup
        Epochs over which the KL's weight on the encoder rises from 0 to 1 (scvi-tools'
        warm-up; its ``TrainingPlan`` defaults to 400). ``None`` here: no warm-up, the paper's
        objective.
    **kwargs
        Passed to :class:`scvi.train.TrainingPlan` (e.g. ``reduce_lr_on_plateau``).
    """

    def __init__(
        self,
        module: Any,
        *,
        lr: float = 1e-2,
        lr_prior: float = 1e-3,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        n_epochs_kl_warmup: int | None = None,
        **kwargs: Any,
    ) -> None:
        for key in ("optimizer", "optimizer_creator"):
            if key in kwargs:
                raise ValueError(f"{key}: QBM-VAE's plan builds its own Adam with two groups")
        super().__init__(
            module,
            lr=lr,
            eps=eps,
            weight_decay=weight_decay,
            n_epochs_kl_warmup=n_epochs_kl_warmup,
            **kwargs,
        )
        self.lr_prior = lr_prior

    def param_groups(self) -> list[dict[str, Any]]:
        """The two Adam parameter groups: ``vae`` (lr) and ``prior`` (lr_prior)."""
        prior_ids = {id(p) for p in self.module.prior.parameters()}
        trainable = [p for p in self.module.parameters() if p.requires_grad]
        vae = [p for p in trainable if id(p) not in prior_ids]
        prior = [p for p in trainable if id(p) in prior_ids]
        return [
            {"params": vae, "lr": self.lr, "name": "vae"},
            {"params": prior, "lr": self.lr_prior, "name": "prior"},
        ]

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam over the two groups (and scvi-tools' optional LR-on-plateau scheduler)."""
        optimizer = torch.optim.Adam(
            self.param_groups(), eps=self.eps, weight_decay=self.weight_decay
        )
        config: dict[str, Any] = {"optimizer": optimizer}
        if self.reduce_lr_on_plateau:
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                patience=self.lr_patience,
                factor=self.lr_factor,
                threshold=self.lr_threshold,
                min_lr=self.lr_min,
                threshold_mode="abs",
            )
            config["lr_scheduler"] = {"scheduler": scheduler, "monitor": self.lr_scheduler_metric}
        return config
