"""The Boltzmann-machine prior of QBM-VAE: ``p(z) = exp(-E(z)) / Z`` over ``z in {0, 1}^n``.

``E(z) = h.z + sum_{l<m} W_lm z_l z_m`` with ``W`` symmetric and zero on the diagonal (DESIGN
section 5). With a factorial Bernoulli posterior ``q`` (means ``q_l``)

    KL(q || p) = -H(q) + E_q[E(z)] + log Z,   E_q[E(z)] = h.q + sum_{l<m} W_lm q_l q_m (exact),

and ``d log Z / d theta = -E_p[dE/dtheta]``. So the surrogate

    -H(q) + E_q[E(z)] - mean_{z ~ p} E(z)      (the samples z ~ p held fixed)

has exactly the gradient of the KL in every parameter (the encoder's through ``q``, the prior's
through ``h`` and ``W``), with ``log Z`` itself never needed. Its *value* is the KL minus
``log Z + mean E``: an honest KL or ELBO needs :meth:`BoltzmannPrior.log_partition`.

The negative samples ``z ~ p`` come from any registered Ising sampler
(:func:`qsimcells.samplers.sample_ising`), continued from the previous step's states
(persistent chains), which is what QBM-VAE does on a CIM or annealer.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import torch

from .._utils import RngLike, as_generator, check_choice, check_finite, check_positive_int

__all__ = ["BoltzmannPrior", "bernoulli_entropy"]


def bernoulli_entropy(q: torch.Tensor) -> torch.Tensor:
    """Entropy of independent Bernoulli variables with means ``q``, summed over the last axis."""
    q = q.clamp(1e-7, 1 - 1e-7)
    return -(q * q.log() + (1 - q) * (1 - q).log()).sum(-1)


class BoltzmannPrior(torch.nn.Module):
    """Fully connected Boltzmann machine over ``n_latent`` binary units, with persistent chains.

    Parameters
    ----------
    n_latent
        Number of binary latent units.
    sampler
        Name of a registered Ising sampler (``qs.plugins.available("ising_sampler")``) that draws
        the negative phase: ``"gibbs"`` (builtin), ``"exact"`` (``n_latent <= 20``), ``"neal"``,
        or a third party's (a CIM, an annealer).
    sampler_kwargs
        Options of that sampler (e.g. ``{"num_sweeps": 10}``).
    num_reads
        Negative samples (persistent chains) per training step.
    init_scale
        Standard deviation of the initial ``h`` and ``W`` (small: the prior starts near uniform).
    seed
        Seeds the initial parameters and the sampler's stream.
    """

    # registered buffers (torch.nn.Module's own attribute lookup hides their type)
    chains: torch.Tensor
    warm: torch.Tensor

    def __init__(
        self,
        n_latent: int,
        *,
        sampler: str = "gibbs",
        sampler_kwargs: dict[str, Any] | None = None,
        num_reads: int = 256,
        init_scale: float = 0.01,
        seed: int = 0,
    ) -> None:
        super().__init__()
        from ..plugins import get_ising_sampler

        self.n_latent = check_positive_int("n_latent", n_latent)
        self.num_reads = check_positive_int("num_reads", num_reads)
        init_scale = check_finite("init_scale", init_scale, low=0.0)
        if not isinstance(sampler, str):
            raise TypeError(
                f"prior_sampler: expected a registered Ising sampler name, got "
                f"{type(sampler).__name__}"
            )
        get_ising_sampler(sampler)  # unknown names fail here, listing the registered ones
        if sampler_kwargs is not None and not isinstance(sampler_kwargs, dict):
            raise TypeError("prior_sampler_kwargs: expected a dict of sampler options or None")
        self.sampler_name = sampler
        self.sampler_kwargs = dict(sampler_kwargs or {})
        gen = torch.Generator().manual_seed(int(seed))
        self.h = torch.nn.Parameter(init_scale * torch.randn(self.n_latent, generator=gen))
        self.w_raw = torch.nn.Parameter(
            init_scale * torch.randn(self.n_latent, self.n_latent, generator=gen)
        )
        # persistent chains: the last negative samples, kept with the model (and its state_dict,
        # at a fixed shape so a saved model loads); `warm` says whether they were sampled yet
        self.register_buffer(
            "chains", torch.randint(0, 2, (self.num_reads, self.n_latent), generator=gen).float()
        )
        self.register_buffer("warm", torch.zeros((), dtype=torch.bool))
        self._rng = np.random.default_rng(int(seed))
        self._sampler = None

    def provenance(self) -> dict[str, Any]:
        """The negative phase's sampler: name, distribution, version and options (plain
        values), from the installed plugin registry."""
        from ..plugins import get_ising_sampler

        return get_ising_sampler(self.sampler_name).provenance(self.sampler_kwargs)

    @property
    def W(self) -> torch.Tensor:
        """Couplings: the symmetric part of the raw parameter with a zero diagonal."""
        sym = 0.5 * (self.w_raw + self.w_raw.T)
        return sym - torch.diag(torch.diagonal(sym))

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        """``E(z) = h.z + sum_{l<m} W_lm z_l z_m`` per row of ``z`` (also for soft ``z``)."""
        z = z.to(self.h.dtype)
        return z @ self.h + 0.5 * ((z @ self.W) * z).sum(-1)

    def negative_samples(self) -> torch.Tensor:
        """``num_reads`` states ``z ~ p``, continuing the persistent chains (detached)."""
        from ..samplers import make_ising_sampler, sample_ising

        if self._sampler is None:
            self._sampler = make_ising_sampler(self.sampler_name, **self.sampler_kwargs)
        h = self.h.detach().cpu().double().numpy()
        W = self.W.detach().cpu().double().numpy()
        # the first call starts cold (the sampler's full schedule), later ones continue
        start = self.chains.cpu().numpy().astype(np.uint8) if bool(self.warm) else None
        z = sample_ising(
            h, W, self.num_reads, sampler=self._sampler, rng=self._rng, initial_states=start
        )
        self.chains.copy_(torch.as_tensor(z, dtype=self.chains.dtype))
        self.warm.fill_(True)
        return self.chains.to(self.h.dtype)

    def kl_surrogate(
        self,
        q: torch.Tensor,
        negative: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-cell surrogate of ``KL(q || p)`` whose gradient is the exact KL gradient.

        Parameters
        ----------
        q
            ``(B, n)`` posterior means in ``(0, 1)``.
        negative
            ``(k, n)`` samples of the prior; default :meth:`negative_samples`.
        weights
            Optional ``(k,)`` weights of the negative states summing to one (e.g. exact
            probabilities of all ``2**n`` states); default: equal.

        Returns
        -------
        torch.Tensor
            ``(B,)``: ``-H(q) + E_q[E] - mean_neg E(z)``.
        """
        if negative is None:
            negative = self.negative_samples()
        negative = negative.detach().to(self.h.dtype)
        neg_energy = self.energy(negative)
        phase = (
            neg_energy.mean() if weights is None else (weights.to(self.h.dtype) * neg_energy).sum()
        )
        return -bernoulli_entropy(q) + self.energy(q) - phase

    def log_partition(
        self,
        method: str = "exact",
        *,
        n_steps: int = 1000,
        num_reads: int = 256,
        rng: RngLike = None,
    ) -> float:
        """``log Z``: by enumeration (``n_latent <= 20``) or annealed importance sampling.

        AIS anneals from the uniform distribution (``beta = 0``, ``log Z_0 = n log 2``) to the
        prior (``beta = 1``) over ``n_steps`` linear steps with one Gibbs sweep each, ``num_reads``
        chains; the estimate is ``log Z_0 + log mean exp(log w)``, a stochastic lower bound in
        expectation.

        Parameters
        ----------
        method
            ``"exact"`` or ``"ais"``.
        n_steps
            AIS temperatures.
        num_reads
            AIS chains.
        rng
            Seed or generator of AIS.

        Returns
        -------
        float
            ``log Z``.
        """
        from ..samplers import (
            log_partition as exact_log_partition,
            make_ising_sampler,
            sample_ising,
        )

        check_choice("method", method, ["exact", "ais"])
        h = self.h.detach().cpu().double().numpy()
        W = self.W.detach().cpu().double().numpy()
        if method == "exact":
            return exact_log_partition(h, W)
        n_steps = check_positive_int("n_steps", n_steps)
        num_reads = check_positive_int("num_reads", num_reads)
        gen = as_generator(rng)
        gibbs = make_ising_sampler("gibbs", num_sweeps=1, dtype="float64")
        z = gen.integers(0, 2, (num_reads, self.n_latent)).astype(np.uint8)
        betas = np.linspace(0.0, 1.0, n_steps + 1)
        log_w = np.zeros(num_reads)
        for low, high in itertools.pairwise(betas):
            zf = z.astype(np.float64)
            log_w -= (high - low) * (zf @ h + 0.5 * np.einsum("ki,ij,kj->k", zf, W, zf))
            z = sample_ising(h, W, num_reads, sampler=gibbs, beta=high, rng=gen, initial_states=z)
        top = log_w.max()
        return float(self.n_latent * math.log(2) + top + np.log(np.exp(log_w - top).mean()))

    def sample(self, n: int, rng: RngLike = None) -> np.ndarray:
        """``n`` independent states of the prior, drawn by its sampler from fresh chains.

        Returns
        -------
        numpy.ndarray
            ``(n, n_latent)`` uint8.
        """
        from ..samplers import sample_ising

        n = check_positive_int("n", n)
        h = self.h.detach().cpu().double().numpy()
        W = self.W.detach().cpu().double().numpy()
        return sample_ising(h, W, n, sampler=self.sampler_name, rng=rng, **self.sampler_kwargs)
