"""QBM-VAE as a scvi-tools model: a binary-latent VAE with a (quantum) Boltzmann-machine prior.

The negative phase of the prior is drawn every training step by a registered Ising sampler, by
name (``"gibbs"``, ``"exact"``, ``"neal"`` or a plugin's CIM / annealer), from persistent chains.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from anndata import AnnData
from anndata.abc import CSCDataset, CSRDataset
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager
from scvi.data._utils import _get_adata_minify_type
from scvi.data.fields import CategoricalObsField, LayerField
from scvi.distributions import NegativeBinomial
from scvi.model.base import (
    ArchesMixin,
    BaseMinifiedModeModelClass,
    RNASeqMixin,
    UnsupervisedTrainingMixin,
    VAEMixin,
)
from scvi.utils import setup_anndata_dsp

from .._utils import RngLike, as_generator, check_choice, check_finite, check_positive_int
from ._persist import atomic_folder, check_scvi_model_file, unreadable
from ._qbmvae_module import QBMVAEModule, spike_exponential
from ._qbmvae_plan import QBMVAETrainingPlan

__all__ = ["QBMVAE"]

logger = logging.getLogger(__name__)

LIKELIHOODS = ("nb", "mse")


# entries (stored values) or rows per block when streaming an on-disk sparse X
_BLOCK_ENTRIES = 1 << 22
_BLOCK_ROWS = 1 << 13


def _on_disk(X: Any) -> bool:
    """Whether ``X`` is anndata's on-disk CSR dataset (``qs.sim.read_backed``'s ``X``)."""
    return isinstance(X, CSRDataset)


def _stored_values(X: Any) -> Iterator[np.ndarray]:
    """The stored values of ``X``: in one piece, or for an on-disk sparse dataset in blocks of
    its ``data`` array (so the check below never holds all of an on-disk ``X`` in memory)."""
    if not _on_disk(X):
        yield np.asarray(X.data if hasattr(X, "tocsr") else X)
        return
    data = X.group["data"]
    for start in range(0, int(data.shape[0]), _BLOCK_ENTRIES):
        yield np.asarray(data[start : start + _BLOCK_ENTRIES])


def _check_counts(X: Any, likelihood: str) -> None:
    """NaN/inf, negative values and (for ``"nb"``) non-integers fail before training."""
    if isinstance(X, CSCDataset):
        raise ValueError(
            "adata.X (or the registered layer): an on-disk CSC matrix is read "
            "whole for every minibatch of cells; store it as CSR"
        )
    for values in _stored_values(X):
        if not np.isfinite(values).all():
            raise ValueError("adata.X (or the registered layer): contains NaN or infinite values")
        if (values < 0).any():
            raise ValueError(
                "adata.X (or the registered layer): contains negative values; "
                "QBM-VAE takes raw counts"
            )
        if likelihood == "nb" and not np.array_equal(values, np.round(values)):
            raise ValueError(
                "adata.X (or the registered layer): likelihood='nb' needs integer "
                "counts, got non-integer values (use raw counts, or "
                "likelihood='mse')"
            )


class QBMVAE(
    RNASeqMixin, ArchesMixin, VAEMixin, UnsupervisedTrainingMixin, BaseMinifiedModeModelClass
):
    """Binary-latent VAE with a Boltzmann-machine prior sampled by a named Ising sampler.

    A scvi-tools model: scvi-tools' own :class:`~scvi.model.base.RNASeqMixin` gives it
    ``differential_expression`` (``mode="change"`` or ``"vanilla"``),
    ``get_feature_correlation_matrix`` and ``get_likelihood_parameters`` (``likelihood="nb"``)
    on top of :meth:`get_normalized_expression`, and :class:`~scvi.model.base.ArchesMixin`
    gives it scArches reference mapping (``prepare_query_anndata``, ``load_query_data``: the
    encoder and the expression decoder frozen, the new batches' decoder inputs trained; the
    Boltzmann prior is frozen with them, so query cells are mapped into the reference's
    latent space). scvi-tools' minified mode (:meth:`minify_adata`) keeps only the posterior
    means and the library size of each cell, for sharing a trained model without its counts.
    What the binary latent changes is written here (see each method).

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata` (raw counts).
    n_latent
        Number of binary latent units (the BM's size).
    n_hidden
        Width of the hidden layers of encoder and decoder.
    n_layers
        Hidden layers of encoder and decoder.
    likelihood
        ``"nb"``: negative binomial on the counts with the observed library size (scVI-style);
        ``"mse"``: squared error on the log-normalised data ``log1p(1e4 * x / library)``, computed
        inside the module (the paper's input).
    prior_sampler
        Name of a registered Ising sampler (``qs.plugins.available("ising_sampler")``) for the
        negative phase.
    prior_sampler_kwargs
        Options of that sampler (plain values, so that the model saves).
    beta
        Sharpness of the spike-and-exponential relaxation (the paper: 0.5).
    num_reads
        Negative samples (persistent chains) per step.
    dropout_rate
        Dropout of the encoder's hidden layers.
    seed
        Seeds the prior's initial parameters and its sampler stream.

    Examples
    --------
    >>> qs.model.QBMVAE.setup_anndata(adata, batch_key="batch")
    >>> model = qs.model.QBMVAE(adata, n_latent=64)
    >>> model.train(max_epochs=100)
    >>> adata.obsm["X_qbmvae"] = model.get_latent_representation()
    """

    _module_cls = QBMVAEModule
    # obsm / obs keys of a minified AnnData (scvi-tools' minified mode)
    _LATENT_QZM_KEY = "qbmvae_latent_qzm"
    _LATENT_QZV_KEY = "qbmvae_latent_qzv"
    _training_plan_cls = QBMVAETrainingPlan

    def __init__(
        self,
        adata: AnnData,
        n_latent: int = 64,
        n_hidden: int = 256,
        n_layers: int = 2,
        likelihood: str = "nb",
        prior_sampler: str = "gibbs",
        prior_sampler_kwargs: dict[str, Any] | None = None,
        beta: float = 0.5,
        num_reads: int = 256,
        dropout_rate: float = 0.1,
        seed: int = 0,
    ) -> None:
        if adata is None:
            raise ValueError("adata: QBM-VAE needs an AnnData registered with QBMVAE.setup_anndata")
        check_choice("likelihood", likelihood, LIKELIHOODS)
        n_latent = check_positive_int("n_latent", n_latent)
        n_hidden = check_positive_int("n_hidden", n_hidden)
        n_layers = check_positive_int("n_layers", n_layers)
        num_reads = check_positive_int("num_reads", num_reads)
        beta = check_finite("beta", beta, low=0.0, low_open=True)
        dropout_rate = check_finite("dropout_rate", dropout_rate, low=0.0, high=1.0)
        self._check_sampler(prior_sampler, prior_sampler_kwargs, n_latent)
        super().__init__(adata)
        _check_counts(self.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY), likelihood)

        self.module = self._module_cls(
            self.summary_stats.n_vars,
            n_batch=self.summary_stats.n_batch,
            n_latent=n_latent,
            n_hidden=n_hidden,
            n_layers=n_layers,
            likelihood=likelihood,
            prior_sampler=prior_sampler,
            prior_sampler_kwargs=prior_sampler_kwargs,
            beta=beta,
            num_reads=num_reads,
            dropout_rate=dropout_rate,
            seed=seed,
        )
        self.module.minified_data_type = self.minified_data_type
        self._model_summary_string = (
            f"QBMVAE: n_latent={n_latent} binary units, n_hidden={n_hidden}, "
            f"n_layers={n_layers}, likelihood={likelihood!r}, prior_sampler={prior_sampler!r}, "
            f"beta={beta}, num_reads={num_reads}"
        )
        self.init_params_ = self._get_init_params(locals())

    @staticmethod
    def _check_sampler(name: Any, kwargs: Any, n_latent: int) -> None:
        from ..plugins import get_ising_sampler
        from ..plugins.registry import PluginError

        if not isinstance(name, str):
            raise TypeError(
                f"prior_sampler: expected a registered Ising sampler name (so the "
                f"model saves), got {type(name).__name__}"
            )
        if kwargs is not None and not isinstance(kwargs, dict):
            raise TypeError("prior_sampler_kwargs: expected a dict of sampler options or None")
        try:
            spec = get_ising_sampler(name).spec
        except PluginError as err:
            raise ValueError(f"prior_sampler: {err}") from None
        if spec.max_variables is not None and n_latent > spec.max_variables:
            raise ValueError(
                f"prior_sampler: {name!r} takes at most {spec.max_variables} "
                f"variables, n_latent is {n_latent}"
            )

    @classmethod
    @setup_anndata_dsp.dedent
    def setup_anndata(
        cls,
        adata: AnnData,
        layer: str | None = None,
        batch_key: str | None = None,
        labels_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        """%(summary)s.

        Parameters
        ----------
        %(param_adata)s
        %(param_layer)s
        %(param_batch_key)s
        %(param_labels_key)s
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        fields = [
            LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=True),
            CategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key),
            CategoricalObsField(REGISTRY_KEYS.LABELS_KEY, labels_key),
        ]
        minify_type = _get_adata_minify_type(adata)
        if minify_type is not None:  # a minified AnnData (QBMVAE.minify_adata) being reloaded
            fields += cls._get_fields_for_adata_minification(minify_type)
        manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        manager.register_fields(adata, **kwargs)
        cls.register_manager(manager)

    def save(
        self,
        dir_path: str,
        prefix: str | None = None,
        overwrite: bool = False,
        save_anndata: bool = False,
        **kwargs: Any,
    ) -> None:
        """scvi-tools' :meth:`~scvi.model.base.BaseModelClass.save`, made atomic: the save is
        written to a temporary folder beside ``dir_path`` and renamed into place when it is
        complete, so a failed save leaves the previous one (or nothing); a non-empty
        ``dir_path`` is replaced only with ``overwrite=True``."""
        with atomic_folder(dir_path, overwrite) as tmp:
            super().save(
                str(tmp), prefix=prefix, overwrite=True, save_anndata=save_anndata, **kwargs
            )

    @classmethod
    def load(
        cls,
        dir_path: str,
        adata: AnnData | None = None,
        *,
        prefix: str | None = None,
        trusted: bool = False,
        **kwargs: Any,
    ) -> QBMVAE:
        """scvi-tools' :meth:`~scvi.model.base.BaseModelClass.load`, made safe for files from
        elsewhere: ``model.pt`` must be a complete torch archive (a truncated or foreign file
        gets a clear error instead of an unpickling traceback) holding nothing but tensors,
        numpy arrays, plain containers and the history's pandas frames; a file that would call
        anything else when unpickled (and so could run code) raises
        :class:`~qsimcells.model.UnsafeFileError` naming it, and nothing of it runs.

        Parameters
        ----------
        dir_path, adata, prefix, **kwargs
            As scvi-tools' ``load``; models saved by :meth:`save` and by scvi-tools' own
            ``save`` (the same format) load.
        trusted
            Skip the check and unpickle ``model.pt`` as scvi-tools does: only for a file you
            trust (you made it, or know who did), since unpickling can run code.
        """
        with _checked_save(dir_path, prefix, trusted) as folder:
            return super().load(folder, adata=adata, prefix=prefix, **kwargs)

    @staticmethod
    def load_registry(dir_path: str, prefix: str | None = None, *, trusted: bool = False) -> dict:
        """The registry of a saved model (scvi-tools'), after the check of :meth:`load`."""
        with _checked_save(dir_path, prefix, trusted) as folder:
            return BaseMinifiedModeModelClass.load_registry(folder, prefix=prefix)

    @staticmethod
    def view_setup_args(dir_path: str, prefix: str | None = None, *, trusted: bool = False) -> None:
        """Print the set-up arguments of a saved model (scvi-tools'), after the check of
        :meth:`load`."""
        with _checked_save(dir_path, prefix, trusted) as folder:
            BaseMinifiedModeModelClass.view_setup_args(folder, prefix=prefix)

    @classmethod
    def prepare_query_anndata(
        cls, adata: AnnData, reference_model: Any, *, trusted: bool = False, **kwargs: Any
    ) -> Any:
        """scvi-tools' :meth:`~scvi.model.base.ArchesMixin.prepare_query_anndata` (pads and
        orders the query's genes as the reference's); a saved reference (a folder) is checked
        as :meth:`load` checks it."""
        if not isinstance(reference_model, (str, os.PathLike)):
            return super().prepare_query_anndata(adata, reference_model, **kwargs)
        with _checked_save(reference_model, None, trusted) as folder:
            return super().prepare_query_anndata(adata, folder, **kwargs)

    def train(
        self,
        max_epochs: int | None = None,
        lr: float = 1e-2,
        lr_prior: float = 1e-3,
        batch_size: int = 128,
        early_stopping: bool = False,
        early_stopping_patience: int = 10,
        n_epochs_kl_warmup: int | None = None,
        plan_kwargs: dict | None = None,
        **kwargs: Any,
    ) -> Any:
        """Train with Adam (``lr`` for the VAE, ``lr_prior`` for the BM, ``eps=1e-8``).

        Parameters
        ----------
        max_epochs
            Epochs (default: scvi-tools' heuristic from the number of cells).
        lr
            Learning rate of encoder and decoder.
        lr_prior
            Learning rate of the Boltzmann machine.
        batch_size
            Minibatch size.
        early_stopping
            Stop when the validation ELBO (``elbo_validation``) has not improved for
            ``early_stopping_patience`` epochs.
        early_stopping_patience
            Patience in epochs (the paper: 10).
        n_epochs_kl_warmup
            scvi-tools' KL warm-up: the KL's weight on the encoder rises linearly from 0 to 1
            over this many epochs (SCVI's default is 400, so over a 100-epoch run SCVI never
            weights its KL above 0.25); the Boltzmann prior always learns from the full KL.
            ``None``: no warm-up, the paper's objective.
        plan_kwargs
            More keyword arguments of :class:`~qsimcells.model._qbmvae_plan.QBMVAETrainingPlan`
            (``lr`` and ``lr_prior`` go as arguments here).
        **kwargs
            Passed to :meth:`scvi.model.base.UnsupervisedTrainingMixin.train` (``train_size``,
            ``accelerator``, ``enable_progress_bar``, trainer options, ...).
        """
        if self.minified_data_type is not None:
            raise ValueError(
                "adata: this model's AnnData is minified (it holds posterior means, "
                "not the training data); train on the full AnnData"
            )
        plan_kwargs = dict(plan_kwargs or {})
        for key in ("lr", "lr_prior"):
            if key in plan_kwargs:
                raise ValueError(f"plan_kwargs: pass {key!r} as an argument of train()")
        plan_kwargs.update(
            lr=check_finite("lr", lr, low=0.0, low_open=True),
            lr_prior=check_finite("lr_prior", lr_prior, low=0.0),
        )
        if "n_epochs_kl_warmup" in plan_kwargs:
            raise ValueError("plan_kwargs: pass 'n_epochs_kl_warmup' as an argument of train()")
        if n_epochs_kl_warmup is not None:
            check_positive_int("n_epochs_kl_warmup", n_epochs_kl_warmup)
        plan_kwargs["n_epochs_kl_warmup"] = n_epochs_kl_warmup
        kwargs.setdefault("early_stopping_monitor", "elbo_validation")
        # a sampler that fails or returns the wrong shape fails here, before Lightning starts
        self.module.prior.sample(2, rng=0)
        return super().train(
            max_epochs=max_epochs,
            batch_size=batch_size,
            early_stopping=early_stopping,
            early_stopping_patience=early_stopping_patience,
            plan_kwargs=plan_kwargs,
            **kwargs,
        )

    def get_latent_representation(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        give_mean: bool = True,
        batch_size: int | None = None,
        rng: RngLike = None,
        representation: str = "probability",
        return_dist: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Posterior probabilities ``q`` (``give_mean``) or binary samples ``z ~ Bernoulli(q)``.

        Parameters
        ----------
        adata
            AnnData with the training genes (default: the model's).
        indices
            Cells to use (default: all).
        give_mean
            Return ``q`` in ``(0, 1)``; else one binary sample per cell.
        batch_size
            Minibatch size of the forward pass.
        rng
            Seed or generator of the binary samples.
        representation
            With ``give_mean``: ``"probability"``, ``q`` itself, or ``"logit"``,
            ``log(q / (1 - q))``, the encoder's own output (the Bernoulli's natural
            parameter). ``q`` saturates near 0 and 1, so distances between confident cells
            shrink; the logits keep them, as SCVI's unbounded Gaussian mean does, and give the
            better neighbours (kNN label accuracy on pbmc68k_reduced 0.800 against 0.792 for
            ``q``, SCVI 0.808; 3 seeds, ``docs/benchmarks/qbmvae.md``). Use it for
            ``sc.pp.neighbors``.
        return_dist
            Return the posterior's mean and variance, ``(q, q * (1 - q))`` (each unit is a
            Bernoulli), as scvi-tools' ``(qzm, qzv)``: what :meth:`minify_adata` stores.

        Returns
        -------
        numpy.ndarray or tuple of numpy.ndarray
            ``(n_cells, n_latent)`` float32 (two of them with ``return_dist``).
        """
        check_choice("representation", representation, ["probability", "logit"])
        if representation == "logit" and not give_mean:
            raise ValueError(
                "representation: 'logit' describes the posterior means; binary "
                "samples (give_mean=False) have no logits"
            )
        self._check_if_trained(warn=True)
        adata = self._validate_anndata(adata)
        loader = self._make_data_loader(adata=adata, indices=indices, batch_size=batch_size)
        key = "logits" if representation == "logit" else "q"
        with self._eval_mode():
            parts = [
                self.module.inference(**self.module._get_inference_input(tensors))[key].cpu()
                for tensors in loader
            ]
        q = torch.cat(parts).numpy().astype(np.float32)
        if return_dist:
            if representation == "logit":
                raise ValueError(
                    "representation: return_dist gives the Bernoulli mean and "
                    "variance; use representation='probability'"
                )
            return q, q * (1 - q)
        if give_mean:
            return q
        return (as_generator(rng).random(q.shape) < q).astype(np.float32)

    def get_elbo(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        log_z_method: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """ELBO (higher is better); honest with ``log_z_method`` (``"exact"`` or ``"ais"``).

        Without ``log_z_method`` the KL term is the training surrogate, whose value is the true
        KL minus ``log Z + E_p[E]``; with it, ``log Z`` is computed and the KL is exact (up to
        the AIS error). Other arguments as :meth:`scvi.model.base.VAEMixin.get_elbo`.
        """
        if log_z_method is not None:
            loss_kwargs = dict(kwargs.pop("loss_kwargs", None) or {})
            loss_kwargs["log_z"] = self.log_partition(log_z_method)
            kwargs["loss_kwargs"] = loss_kwargs
        return super().get_elbo(adata=adata, indices=indices, batch_size=batch_size, **kwargs)

    def log_partition(self, method: str = "exact", **kwargs: Any) -> float:
        """``log Z`` of the BM prior (``"exact"`` for ``n_latent <= 20``, or ``"ais"``)."""
        return self.module.prior.log_partition(method, **kwargs)

    # -- decoded expression, posterior predictive and prior samples ------------------------
    @contextlib.contextmanager
    def _eval_mode(self) -> Iterator[None]:
        """Evaluation mode (no dropout) and no autograd, restoring the training flag after."""
        mod = self.module
        was_training = mod.training
        mod.eval()
        try:
            with torch.inference_mode():
                yield
        finally:
            mod.train(was_training)

    def _posterior_draws(
        self,
        adata: AnnData | None,
        indices: Sequence[int] | np.ndarray | None,
        batch_size: int | None,
        n_samples: int,
        transform_batch: int | None = None,
    ) -> Iterator[tuple[dict, list]]:
        """Per minibatch: the encoder's output and ``n_samples`` decoder outputs, each from a
        fresh relaxation draw ``zeta(rho, q)`` of the cells' posterior ``q`` (the encoder runs
        once per minibatch); ``transform_batch`` decodes every cell as from that batch."""
        mod = self.module
        loader = self._make_data_loader(adata=adata, indices=indices, batch_size=batch_size)
        for tensors in loader:
            inference = mod.inference(**mod._get_inference_input(tensors))
            draws = []
            for _ in range(n_samples):
                zeta = spike_exponential(inference["q"], torch.rand_like(inference["q"]), mod.beta)
                draws.append(
                    mod.generative(
                        zeta,
                        inference["library"],
                        tensors[REGISTRY_KEYS.BATCH_KEY].to(mod.device),
                        transform_batch=transform_batch,
                    )
                )
            yield inference, draws

    def get_normalized_expression(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        transform_batch: Any = None,
        gene_list: Sequence[str] | None = None,
        library_size: float | str = 1,
        n_samples: int = 1,
        n_samples_overall: int | None = None,
        weights: str | None = None,
        batch_size: int | None = None,
        return_mean: bool = True,
        return_numpy: bool | None = None,
        silent: bool = True,
        **kwargs: Any,
    ) -> pd.DataFrame | np.ndarray:
        """Decoded expression of each cell on a common library size (scVI's ``rho * L``).

        scvi-tools' signature, so that its differential expression and feature correlations
        run on it. Each of the ``n_samples`` draws takes a fresh relaxed latent ``zeta(rho, q)``
        of the cell's posterior (torch's global random stream, seeded by
        ``scvi.settings.seed``) and decodes it with the cell's batch (or ``transform_batch``).

        - ``likelihood="nb"``: the decoder's softmax ``scale`` (frequencies summing to one per
          cell) times ``library_size``.
        - ``likelihood="mse"``: the decoder predicts ``y = log1p(1e4 * x / library)``, so the
          expression is ``expm1(max(y, 0)) / 1e4 * library_size``: the model's estimate of
          ``x / library`` times ``library_size``. Rows need not sum to exactly
          ``library_size`` (the MSE decoder has no sum constraint).

        Parameters
        ----------
        adata
            AnnData with the training genes (default: the model's).
        indices
            Cells to use (default: all).
        transform_batch
            Decode every cell as from this batch (label or code), or average over a list of
            batches (batch-corrected expression); ``None``: each cell's own batch.
        gene_list
            Genes to return (default: all).
        library_size
            Common library size the frequencies are scaled to (``1``: frequencies; ``1e4``:
            counts per 10k), or ``"latent"``: each cell's observed library size (the model
            has no latent library; it conditions on the observed one).
        n_samples
            Relaxation draws per cell.
        n_samples_overall
            Draw this many cells uniformly from ``indices`` (with replacement), one relaxed
            sample each, and return them as an array (scvi-tools' differential expression
            asks for this).
        weights
            ``None`` or ``"uniform"``. ``"importance"`` is refused: its weights need the
            posterior density of a continuous latent, and this latent is binary.
        batch_size
            Minibatch size of the forward pass.
        return_mean
            Average over the draws; else (with ``n_samples > 1``) return every draw.
        return_numpy
            Return an array instead of a DataFrame.
        silent
            Accepted for scvi-tools' signature (no progress bar is drawn).

        Returns
        -------
        pandas.DataFrame or numpy.ndarray
            ``(n_cells, n_genes)`` DataFrame (obs names x var names) of the mean over the draws;
            with ``return_mean=False`` and ``n_samples > 1``, as scvi-tools, a float32 array
            ``(n_samples, n_cells, n_genes)``.
        """
        self._check_if_trained(warn=True)
        unknown = sorted(k for k, v in kwargs.items() if v is not None)
        if unknown:
            raise TypeError(f"{unknown[0]}: not supported by QBMVAE.get_normalized_expression")
        if weights not in (None, "uniform"):
            raise ValueError(
                f"weights: {weights!r} is not allowed; choose 'uniform' (importance "
                "weights need the density of a continuous latent; QBM-VAE's is "
                "binary)"
            )
        adata = self._validate_anndata(adata)
        n_samples = check_positive_int("n_samples", n_samples)
        latent_library = isinstance(library_size, str)
        common = 1.0  # the common library size, unless each cell's own ("latent")
        if latent_library:
            check_choice("library_size", library_size, ["latent"])
        else:
            common = check_finite("library_size", library_size, low=0.0, low_open=True)
        rows = np.arange(adata.n_obs) if indices is None else np.asarray(indices)
        if n_samples_overall is not None:
            n_samples_overall = check_positive_int("n_samples_overall", n_samples_overall)
            rows = np.random.choice(rows, n_samples_overall)  # scvi-tools' own draw
            n_samples, return_numpy = 1, True
        genes: slice | np.ndarray = slice(None)
        if gene_list is not None:
            positions = adata.var_names.get_indexer([str(g) for g in gene_list])
            missing = [g for g, i in zip(gene_list, positions, strict=True) if i < 0]
            if missing:
                raise ValueError(f"gene_list: {missing[:10]} not in the model's genes")
            genes = positions
        batches = (
            transform_batch if isinstance(transform_batch, (list, tuple)) else [transform_batch]
        )
        codes = [None if b is None else self._batch_code(b)[0] for b in batches]
        mod = self.module
        per_batch = []
        with self._eval_mode():
            for code in codes:
                parts = []
                for inference, draws in self._posterior_draws(
                    adata, rows, batch_size, n_samples, code
                ):
                    scale = inference["library"] if latent_library else common
                    if mod.likelihood == "nb":
                        values = [out["px_scale"] * scale for out in draws]
                    else:
                        values = [
                            torch.expm1(out["px_mean"].clamp(min=0.0)) * (scale / 1e4)
                            for out in draws
                        ]
                    parts.append(torch.stack(values).cpu())
                per_batch.append(torch.cat(parts, dim=1).numpy())
        expr = np.mean(per_batch, axis=0).astype(np.float32)[..., genes]
        if n_samples > 1 and not return_mean:
            return expr
        expr = expr.mean(0)
        if return_numpy:
            return expr
        columns = adata.var_names if gene_list is None else adata.var_names[genes]
        return pd.DataFrame(expr, index=adata.obs_names[rows], columns=columns)

    def differential_expression(
        self,
        adata: AnnData | None = None,
        groupby: str | None = None,
        group1: Any = None,
        group2: str | None = None,
        idx1: Any = None,
        idx2: Any = None,
        mode: str = "vanilla",
        delta: float = 0.25,
        batch_size: int | None = None,
        all_stats: bool = True,
        batch_correction: bool = False,
        batchid1: Any = None,
        batchid2: Any = None,
        fdr_target: float = 0.05,
        silent: bool = False,
        weights: str | None = "uniform",
        filter_outlier_cells: bool = False,
        **kwargs: Any,
    ) -> pd.DataFrame:
        """Differential expression between two groups of cells: scvi-tools' own
        :meth:`scvi.model.base.RNASeqMixin.differential_expression` (``mode="vanilla"``,
        Lopez et al. 2018, or ``"change"``, Boyeau et al. 2019, with its Bayes factors, LFCs
        and FDR control), on draws of :meth:`get_normalized_expression`.

        What the binary latent changes: each draw relaxes the cell's Bernoulli posterior
        afresh; ``weights`` must be ``"uniform"`` (importance weights need the density of a
        continuous latent); ``batch_correction=True`` decodes the cells with every batch of
        ``batchid1`` / ``batchid2`` (the decoder's batch input). All arguments as scvi-tools'.

        Returns
        -------
        pandas.DataFrame
            One row per gene, scvi-tools' columns (``proba_de``, ``bayes_factor``,
            ``lfc_mean``, ``is_de_fdr_<target>`` in change mode, ...).
        """
        check_choice("mode", mode, ["vanilla", "change"])
        if weights not in (None, "uniform"):
            raise ValueError(
                f"weights: {weights!r} is not allowed; choose 'uniform' (importance "
                "weights need the density of a continuous latent; QBM-VAE's is "
                "binary)"
            )
        return super().differential_expression(
            adata=adata,
            groupby=groupby,
            group1=group1,
            group2=group2,
            idx1=idx1,
            idx2=idx2,
            mode=mode,
            delta=delta,
            batch_size=batch_size,
            all_stats=all_stats,
            batch_correction=batch_correction,
            batchid1=batchid1,
            batchid2=batchid2,
            fdr_target=fdr_target,
            silent=silent,
            weights="uniform",
            filter_outlier_cells=filter_outlier_cells,
            **kwargs,
        )

    @classmethod
    def load_query_data(
        cls, adata: AnnData, reference_model: Any, *, trusted: bool = False, **kwargs: Any
    ) -> QBMVAE:
        """Map new batches onto a trained reference (scArches): scvi-tools'
        :meth:`scvi.model.base.ArchesMixin.load_query_data`, unchanged.

        ``reference_model`` is a trained QBMVAE or the folder of a saved one; ``adata`` is the
        query, prepared with :meth:`prepare_query_anndata`. By default the encoder, the
        expression decoder and the Boltzmann prior stay frozen and only the decoder's inputs
        for the query's new batches train, so query cells land in the reference's latent
        space. Keyword arguments (``freeze_expression``, ``unfrozen``, ...) as scvi-tools'; a
        saved reference is checked as :meth:`load` checks it (``trusted`` as there).
        """
        if not isinstance(reference_model, (str, os.PathLike)):
            return super().load_query_data(adata, reference_model, **kwargs)
        with _checked_save(reference_model, None, trusted) as folder:
            return super().load_query_data(adata, folder, **kwargs)

    def get_importance_weights(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """Not available: scvi-tools' importance weights are ratios of the densities of a
        continuous latent (``p(z) p(x | z) / q(z | x)``), and QBM-VAE's latent is binary with
        a Boltzmann prior whose partition function is not tracked during training. Use
        ``weights="uniform"`` (the default everywhere)."""
        raise NotImplementedError(
            "get_importance_weights: not available for QBM-VAE's binary "
            "latent; use weights='uniform'"
        )

    def get_feature_correlation_matrix(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        n_samples: int = 10,
        batch_size: int = 64,
        rna_size_factor: int = 1000,
        transform_batch: Any = None,
        correlation_type: str = "spearman",
    ) -> pd.DataFrame:
        """Gene-gene correlation of denoised counts, as scvi-tools' mixin computes it: per
        cell ``n_samples`` draws of ``NB(rna_size_factor * scale, theta)``, each from a fresh
        relaxed latent (the mixin's own sampler asks the encoder for a sample axis, which a
        binary latent relaxed per draw does not have), pooled over cells, draws and the
        batches of ``transform_batch``; then Spearman or Pearson correlation.

        Returns
        -------
        pandas.DataFrame
            Genes x genes.
        """
        from scipy.stats import spearmanr

        check_choice("correlation_type", correlation_type, ["spearman", "pearson"])
        if self.module.likelihood != "nb":
            raise ValueError(
                "likelihood: get_feature_correlation_matrix needs the NB count "
                "model (likelihood='nb')"
            )
        adata = self._validate_anndata(adata)
        n_samples = check_positive_int("n_samples", n_samples)
        batches = (
            transform_batch if isinstance(transform_batch, (list, tuple)) else [transform_batch]
        )
        rows = []
        with self._eval_mode():
            for b in batches:
                code = None if b is None else self._batch_code(b)[0]
                for _, draws in self._posterior_draws(adata, indices, batch_size, n_samples, code):
                    for out in draws:
                        px = out["px"]
                        nb = NegativeBinomial(mu=rna_size_factor * out["px_scale"], theta=px.theta)
                        rows.append(nb.sample().cpu().numpy())
        data = np.concatenate(rows)
        if correlation_type == "pearson":
            corr = np.corrcoef(data, rowvar=False)
        else:
            corr, _ = spearmanr(data, axis=0)
        return pd.DataFrame(np.atleast_2d(corr), index=adata.var_names, columns=adata.var_names)

    def get_latent_library_size(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        give_mean: bool = True,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Each cell's library size, ``(n_cells, 1)``. QBM-VAE has no latent library (it
        conditions on the observed one, as the decoder's NB mean is ``library * scale``), so
        this is the observed total (on minified data, the stored one); scvi-tools' mixin would
        read a log library instead."""
        adata = self._validate_anndata(adata)
        loader = self._make_data_loader(adata=adata, indices=indices, batch_size=batch_size)
        if self.minified_data_type is not None:
            out = [
                tensors[REGISTRY_KEYS.OBSERVED_LIB_SIZE].reshape(-1, 1).numpy()
                for tensors in loader
            ]
        else:
            out = [tensors[REGISTRY_KEYS.X_KEY].sum(-1, keepdim=True).numpy() for tensors in loader]
        return np.concatenate(out).astype(np.float32)

    def posterior_predictive_sample(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        n_samples: int = 1,
        batch_size: int | None = None,
    ) -> sp.csr_matrix | np.ndarray:
        """Counts from the posterior predictive ``x' ~ NB(L * scale(zeta)), zeta ~ q(.|x)``.

        ``L`` is the cell's observed library size; each sample takes a fresh relaxation draw
        and an NB draw (torch's global random stream, seeded by ``scvi.settings.seed``). Only for
        ``likelihood="nb"``: the ``"mse"`` model has no count distribution (it regresses
        log-normalised values), so this raises a ``ValueError``; use
        :meth:`get_normalized_expression` for its decoded values.

        Parameters
        ----------
        adata
            AnnData with the training genes (default: the model's).
        indices
            Cells to use (default: all).
        n_samples
            Samples per cell.
        batch_size
            Minibatch size of the forward pass.

        Returns
        -------
        scipy.sparse.csr_matrix or numpy.ndarray
            ``n_samples == 1``: a CSR int64 matrix ``(n_cells, n_genes)``; else a dense int64
            array ``(n_cells, n_genes, n_samples)`` (scvi-tools' axis order).
        """
        if self.module.likelihood != "nb":
            raise ValueError(
                "posterior_predictive_sample: likelihood='mse' has no count "
                "model to sample from; use get_normalized_expression for the "
                "decoded values, or train with likelihood='nb'"
            )
        self._check_if_trained(warn=True)
        adata = self._validate_anndata(adata)
        n_samples = check_positive_int("n_samples", n_samples)
        parts = []
        with self._eval_mode():
            for _, draws in self._posterior_draws(adata, indices, batch_size, n_samples):
                parts.append(torch.stack([out["px"].sample() for out in draws], -1).cpu())
        counts = torch.cat(parts).numpy().round().astype(np.int64)
        if n_samples == 1:
            return sp.csr_matrix(counts[..., 0])
        return counts

    def minify_adata(
        self,
        minified_data_type: str = "latent_posterior_parameters",
        use_latent_qzm_key: str = "X_latent_qzm",
        use_latent_qzv_key: str = "X_latent_qzv",
    ) -> None:
        """Minify the model's AnnData (scvi-tools'
        :meth:`~scvi.model.base.BaseMinifiedModeModelClass.minify_adata`): keep each cell's
        posterior means and library size and drop the counts, so a trained model can be shared
        and queried (latent, normalised expression, differential expression, posterior
        predictive samples) without its data.

        Store the posterior first, as for SCVI::

            adata.obsm["X_latent_qzm"], adata.obsm["X_latent_qzv"] = \
                model.get_latent_representation(return_dist=True)
            model.minify_adata()

        What the binary latent changes: ``qzm`` holds the Bernoulli means ``q`` in ``[0, 1]``
        (``qzv = q (1 - q)`` is stored because scvi-tools' format has the field, and is not
        read); every draw relaxes ``q`` afresh as on the full data. A minified model does not
        train, and without counts (``"latent_posterior_parameters"``) it has no ELBO.

        Parameters
        ----------
        minified_data_type
            ``"latent_posterior_parameters"`` (drop the counts) or
            ``"latent_posterior_parameters_with_counts"`` (keep them in ``X``).
        use_latent_qzm_key, use_latent_qzv_key
            ``obsm`` keys of the stored posterior mean and variance.
        """
        from scvi.data._constants import ADATA_MINIFY_TYPE

        check_choice("minified_data_type", minified_data_type, list(ADATA_MINIFY_TYPE))
        if self.minified_data_type is not None:
            raise ValueError("adata: the model's AnnData is minified already")
        n_cells, n_latent = self.adata.n_obs, self.module.n_latent
        for field, key in (
            ("use_latent_qzm_key", use_latent_qzm_key),
            ("use_latent_qzv_key", use_latent_qzv_key),
        ):
            if key not in self.adata.obsm:
                raise KeyError(
                    f"{field}: adata.obsm[{key!r}] is missing; store the posterior "
                    f"first: adata.obsm[{use_latent_qzm_key!r}], "
                    f"adata.obsm[{use_latent_qzv_key!r}] = "
                    "model.get_latent_representation(return_dist=True)"
                )
            values = np.asarray(self.adata.obsm[key])
            if values.shape != (n_cells, n_latent):
                raise ValueError(
                    f"{field}: adata.obsm[{key!r}] has shape {values.shape}, the "
                    f"posterior of this model is ({n_cells}, {n_latent})"
                )
            if not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
                raise ValueError(
                    f"{field}: adata.obsm[{key!r}] must hold Bernoulli means and "
                    "variances in [0, 1] (QBM-VAE's latent is binary)"
                )
        super().minify_adata(minified_data_type, use_latent_qzm_key, use_latent_qzv_key)

    def get_batch_representation(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Each cell's learned batch representation, ``(n_cells, n_hidden)``.

        The decoder reads the batch as a one-hot beside the latent, so what it learned of a
        batch is the column of its first layer's weights for that batch: the shift the batch
        adds to the decoder's first hidden layer (before its normalisation). This is the
        batch embedding scvi-tools' ``get_batch_representation`` returns for models that
        embed their batches; cells of one batch share one row, and after
        :meth:`load_query_data` a query batch gets the row it learned.

        Raises
        ------
        ValueError
            When the model was set up with one batch (no ``batch_key``): there is nothing
            learned to return.
        """
        adata = self._validate_anndata(adata)
        mod = self.module
        if mod.n_batch <= 1:
            raise ValueError(
                "batch_key: the model was set up with one batch (no batch_key), "
                "so it learned no batch representation"
            )
        first = mod.decoder.fc_layers[0][0]  # Linear over concat(zeta, batch one-hot)
        per_batch = first.weight[:, mod.n_latent : mod.n_latent + mod.n_batch].detach().T
        loader = self._make_data_loader(adata=adata, indices=indices, batch_size=batch_size)
        codes = torch.cat(
            [tensors[REGISTRY_KEYS.BATCH_KEY].reshape(-1).long() for tensors in loader]
        )
        return per_batch.cpu()[codes].numpy().astype(np.float32)

    def _batch_code(self, batch: int | str | None) -> tuple[int, str | None]:
        """The decoder's batch code and the batch label (``None`` without a batch key)."""
        batch_key = self.adata_manager.registry["setup_args"].get("batch_key")
        mapping = list(
            self.adata_manager.get_state_registry(REGISTRY_KEYS.BATCH_KEY).categorical_mapping
        )
        labels = [str(c) for c in mapping]
        if batch is None:
            code = 0
        elif isinstance(batch, str):
            if batch not in labels or batch_key is None:
                raise ValueError(
                    f"batch: unknown batch {batch!r}; the model's batches are "
                    f"{labels if batch_key else []}"
                )
            code = labels.index(batch)
        elif isinstance(batch, (int, np.integer)) and not isinstance(batch, bool):
            code = int(batch)
            if not 0 <= code < len(mapping):
                raise ValueError(
                    f"batch: expected a code in [0, {len(mapping)}) or a batch label, got {batch}"
                )
        else:
            raise TypeError(
                f"batch: expected a batch code, a batch label or None, got {type(batch).__name__}"
            )
        return code, (labels[code] if batch_key is not None else None)

    def sample_prior(
        self,
        n: int,
        *,
        batch: int | str | None = None,
        library_size: float | Sequence[float] | None = None,
        rng: RngLike = None,
    ) -> AnnData:
        """New cells from the generative model: ``z ~ BM prior``, ``zeta | z``, ``x | zeta``.

        ``z`` are ``n`` binary states drawn by the prior's sampler
        (:meth:`BoltzmannPrior.sample <qsimcells.model._boltzmann.BoltzmannPrior.sample>`);
        ``zeta`` is their relaxation as in training (``0`` where ``z = 0``, an exponential draw on
        ``(0, 1]`` of sharpness ``beta`` where ``z = 1``); the decoder reads ``zeta`` and the
        batch one-hot. For ``likelihood="nb"`` the counts are drawn from
        ``NB(library_size * scale, theta)``; for ``"mse"`` ``X`` holds the decoded
        log-normalised values ``log1p(1e4 * x / library)`` (float32, dense) and
        ``library_size`` is not used.

        Parameters
        ----------
        n
            Number of cells.
        batch
            Batch fed to the decoder: a code (``0 .. n_batch - 1``), a batch label of the
            ``batch_key`` column, or ``None`` (code ``0``).
        library_size
            Library size of every cell (a number) or of each cell (``n`` numbers); default: the
            median library size of the training data.
        rng
            Seed or generator of everything random here (the prior's sampler, the relaxation and
            the NB draw), so a seed gives the same cells.

        Returns
        -------
        anndata.AnnData
            ``n`` cells x the training genes: ``X`` the counts (CSR int64; ``"mse"``: the
            decoded values), ``obsm["z"]`` the binary states (uint8), ``obs["batch"]`` the batch
            label when the model has a batch key, ``obs["library_size"]`` (``"nb"``) and
            ``uns["qsimcells"]`` a record (``generator="qbmvae"``, likelihood, batch and
            ``prior_sampler``: the Ising sampler's name, distribution, version and options).
        """
        n = check_positive_int("n", n)
        code, label = self._batch_code(batch)
        mod = self.module
        gen = as_generator(rng)
        if library_size is None:
            library_size = float(np.median(self._library_sizes()))
        library = np.asarray(library_size, dtype=np.float64).ravel()
        if library.size not in (1, n):
            raise ValueError(f"library_size: expected a number or {n} numbers, got {library.size}")
        if not (np.isfinite(library).all() and (library > 0).all()):
            raise ValueError("library_size: expected positive finite values")
        library = np.broadcast_to(library, (n,)).copy()
        z = np.asarray(mod.prior.sample(n, rng=gen), dtype=np.uint8)
        u = gen.random(z.shape)
        zeta = z * np.log1p(u * np.expm1(mod.beta)) / mod.beta
        with self._eval_mode():
            out = mod.generative(
                torch.as_tensor(zeta, dtype=torch.float32, device=mod.device),
                torch.as_tensor(library[:, None], dtype=torch.float32, device=mod.device),
                torch.full((n, 1), code, device=mod.device),
            )
            if mod.likelihood == "nb":
                mu = out["px_scale"].double().cpu().numpy() * library[:, None]
                theta = torch.exp(mod.px_r).double().cpu().numpy()
                X: Any = sp.csr_matrix(gen.poisson(gen.gamma(theta, mu / theta)).astype(np.int64))
            else:
                X = out["px_mean"].cpu().numpy().astype(np.float32)
        obs = pd.DataFrame(index=pd.Index([f"prior-{i}" for i in range(n)]))
        if label is not None:
            obs["batch"] = pd.Categorical(
                [label] * n,
                categories=[
                    str(c)
                    for c in self.adata_manager.get_state_registry(
                        REGISTRY_KEYS.BATCH_KEY
                    ).categorical_mapping
                ],
            )
        if mod.likelihood == "nb":
            obs["library_size"] = library
        var = pd.DataFrame(index=self.adata.var_names.copy())
        record = {
            "generator": "qbmvae",
            "likelihood": mod.likelihood,
            "X": "counts" if mod.likelihood == "nb" else "log1p(1e4 * x / library)",
            "prior_sampler": mod.prior.provenance(),
            "n_latent": int(mod.n_latent),
            "batch_code": int(code),
        }
        if label is not None:
            record["batch"] = label
        return AnnData(X=X, obs=obs, var=var, obsm={"z": z}, uns={"qsimcells": record})

    def _library_sizes(self) -> np.ndarray:
        if self.minified_data_type is not None:
            return np.asarray(
                self.adata_manager.get_from_registry(REGISTRY_KEYS.OBSERVED_LIB_SIZE)
            ).ravel()
        X = self.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY)
        if not _on_disk(X):
            return np.asarray(X.sum(axis=1)).ravel()
        return np.concatenate(
            [
                np.asarray(X[i : i + _BLOCK_ROWS].sum(axis=1)).ravel()
                for i in range(0, X.shape[0], _BLOCK_ROWS)
            ]
        )


@contextlib.contextmanager
def _checked_save(dir_path: Any, prefix: str | None, trusted: bool) -> Iterator[str]:
    """The folder for scvi-tools' loader to read a save from.

    ``model.pt`` must exist and be a complete torch archive; unless ``trusted``, it is copied
    into a private temporary folder and the copy checked
    (:func:`~._persist.check_scvi_model_file`), so scvi-tools reads exactly the bytes that
    passed, even if the original changes meanwhile; the save's other files (``adata.h5ad``)
    are linked beside it.
    """
    import shutil
    import tempfile

    file = _checked_archive(dir_path, prefix, trusted)
    if trusted:
        yield os.fspath(dir_path)
        return
    with tempfile.TemporaryDirectory(prefix="qsimcells-load-") as tmp:
        copy = Path(tmp) / Path(file).name
        shutil.copyfile(file, copy)
        check_scvi_model_file(
            copy,
            "QBMVAE",
            "load it with trusted=True (QBMVAE.load(path, adata, "
            "trusted=True)), which unpickles it as scvi-tools does",
        )
        for entry in Path(os.fspath(dir_path)).iterdir():
            if entry.name != copy.name:
                (Path(tmp) / entry.name).symlink_to(entry.absolute())
        yield tmp


def _checked_archive(dir_path: Any, prefix: str | None, trusted: bool) -> str:
    """The path of a save's ``model.pt``, which must exist and be a complete archive."""
    import zipfile

    if not isinstance(trusted, bool):
        raise TypeError(f"trusted: expected True or False, got {trusted!r}")
    file = os.path.join(os.fspath(dir_path), f"{prefix or ''}model.pt")
    if not os.path.isfile(file):
        raise FileNotFoundError(
            f"dir_path: no saved model at {os.fspath(dir_path)!r} ({file} is missing)"
        )
    try:
        with zipfile.ZipFile(file) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as err:
        raise unreadable("QBMVAE", file, err) from None
    if damaged is not None:
        raise unreadable("QBMVAE", file, ValueError(f"member {damaged} is damaged"))
    return file


# the generator this model registers (by name, in qsimcells.plugins.builtins)
def qbmvae_generator(
    model: Any = None,
    n_cells: int = 1000,
    *,
    adata: AnnData | None = None,
    batch: int | str | None = None,
    library_size: float | None = None,
    rng: Any = None,
) -> AnnData:
    """New cells from a trained QBM-VAE's Boltzmann prior (see
    :meth:`qsimcells.model.QBMVAE.sample_prior`).

    ``model`` is a trained :class:`~qsimcells.model.QBMVAE` or the folder of a saved one
    (``QBMVAE.load(model, adata=adata)``; ``adata`` may be omitted when the model was saved with
    ``save_anndata=True``). torch and scvi-tools load only when this runs.
    """
    if model is None:
        raise ValueError(
            "model: the 'qbmvae' generator needs a trained QBMVAE or the path of "
            "a saved one (qs.sim.generate('qbmvae', model=..., n_cells=...))"
        )
    if isinstance(model, (str, os.PathLike)):
        model = QBMVAE.load(os.fspath(model), adata=adata)
    elif not isinstance(model, QBMVAE):
        raise TypeError(
            f"model: expected a trained QBMVAE or the path of a saved one, got "
            f"{type(model).__name__}"
        )
    elif adata is not None:
        raise ValueError("adata: only used with model=<path of a saved model>")
    if not model.is_trained:
        raise ValueError("model: the QBMVAE is not trained (call model.train() first)")
    return model.sample_prior(n_cells, batch=batch, library_size=library_size, rng=rng)
