"""The builtin ``gibbs`` Ising sampler: sequential single-site Gibbs sweeps in torch.

Every chain (one per read) visits the sites in order and redraws ``z_l`` from its exact
conditional ``p(z_l = 1 | rest) = sigmoid(-beta * f_l)`` with the local field
``f_l = h_l + sum_m W_lm z_m``. The sweep is sequential over sites (updating all sites at once
is *not* a valid Gibbs step for a dense ``W``) and vectorised over chains. The local fields are
kept current in blocks of 16 sites: rank-one updates inside a block, one matrix product per
block for the rest, so a sweep costs ``O(reads * n^2)`` flops in ``O(n)`` small torch calls.

Optional parallel tempering runs ``n_replicas`` copies of every chain on a geometric ladder of
inverse temperatures from ``beta_min`` up to ``beta`` and proposes swaps between neighbours
after each sweep; the samples are read from the ``beta`` replica. It helps strongly coupled
models whose modes single-site moves cannot cross.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._utils import check_choice, check_finite, check_positive_int

#: Sweeps when chains start from random states / from given ``initial_states``.
DEFAULT_SWEEPS_COLD = 100
DEFAULT_SWEEPS_WARM = 10


class GibbsSampler:
    """Persistent-chain Gibbs sampler with optional parallel tempering.

    Parameters
    ----------
    num_sweeps
        Sweeps over all sites per call. ``None``: 100 from random states, 10 when continuing
        from ``initial_states`` (persistent chains, as a QBM-VAE training step does).
    n_replicas
        Replicas per chain for parallel tempering (1: plain Gibbs).
    beta_min
        Lowest inverse temperature of the tempering ladder (default ``beta / 10``).
    device
        Torch device (``"cpu"``, ``"cuda"``, ...).
    dtype
        ``"float32"`` or ``"float64"`` for the fields.
    """

    def __init__(
        self,
        num_sweeps: int | None = None,
        *,
        n_replicas: int = 1,
        beta_min: float | None = None,
        device: str = "cpu",
        dtype: str = "float32",
    ) -> None:
        self.num_sweeps = (
            None if num_sweeps is None else check_positive_int("num_sweeps", num_sweeps)
        )
        self.n_replicas = check_positive_int("n_replicas", n_replicas)
        if beta_min is not None and self.n_replicas == 1:
            raise ValueError(
                "beta_min: sets the tempering ladder, so it needs n_replicas > 1 (got n_replicas=1)"
            )
        self.beta_min = (
            None if beta_min is None else check_finite("beta_min", beta_min, low=0.0, low_open=True)
        )
        check_choice("dtype", dtype, ["float32", "float64"])
        self.dtype = dtype
        self.device = _check_device(device)

    def sample(
        self,
        h: np.ndarray,
        W: np.ndarray,
        num_reads: int,
        *,
        beta: float,
        rng: np.random.Generator,
        initial_states: np.ndarray | None = None,
    ) -> np.ndarray:
        torch = _torch()
        device = torch.device(self.device)
        dtype = getattr(torch, self.dtype)
        gen = torch.Generator(device=device)
        gen.manual_seed(int(rng.integers(2**63)))
        n = h.size
        betas = self._ladder(beta)
        n_temps = len(betas)
        # site-major layout (n, temps * reads): a site's values over all chains are one
        # contiguous row, and every replica of the tempering ladder is just more columns
        h_t = torch.as_tensor(h, dtype=dtype, device=device)
        W_t = torch.as_tensor(W, dtype=dtype, device=device)
        beta_cols = torch.as_tensor(betas, dtype=dtype, device=device).repeat_interleave(num_reads)
        if initial_states is None:
            z = torch.randint(0, 2, (n, n_temps * num_reads), generator=gen, device=device)
            z = z.to(dtype)
        else:
            start = torch.as_tensor(initial_states, dtype=dtype, device=device).T
            z = start.repeat(1, n_temps).contiguous()
        sweeps = self.num_sweeps or (
            DEFAULT_SWEEPS_COLD if initial_states is None else DEFAULT_SWEEPS_WARM
        )
        for sweep in range(sweeps):
            _sweep(z, h_t, W_t, beta_cols, gen)
            if n_temps > 1:
                _swap(
                    z.view(n, n_temps, num_reads),
                    h_t,
                    W_t,
                    beta_cols.view(n_temps, num_reads)[:, 0],
                    gen,
                    parity=sweep % 2,
                )
        return z[:, -num_reads:].T.to(torch.uint8).cpu().numpy()

    def _ladder(self, beta: float) -> np.ndarray:
        if self.n_replicas == 1:
            return np.array([beta])
        low = self.beta_min if self.beta_min is not None else beta / 10
        if low >= beta:
            raise ValueError(f"beta_min: {low} must be below beta = {beta}")
        return np.geomspace(low, beta, self.n_replicas)


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError(
            "Ising sampler 'gibbs' needs torch: pip install 'qsimcells[models]' "
            "(or torch itself); without torch use sampler='exact' (n <= 20) or "
            "the 'neal' plugin"
        ) from None
    return torch


def _check_device(device: Any) -> str:
    """The device as a string, after checking that torch can allocate on it."""
    torch = _torch()
    try:
        torch.empty(0, device=torch.device(device))
    except (RuntimeError, TypeError, AssertionError) as err:
        available = (
            ["cpu"]
            + (["cuda"] if torch.cuda.is_available() else [])
            + (["mps"] if torch.backends.mps.is_available() else [])
        )
        raise ValueError(
            f"device: {device!r} is not usable here ({err}); available: {available}"
        ) from None
    return str(device)


#: Sites updated before their flips are pushed to all fields by one matrix product.
BLOCK = 16


def _sweep(z: Any, h: Any, W: Any, beta_cols: Any, gen: Any) -> None:
    """One sequential sweep over the sites of every chain (``z``: sites x chains, in place).

    Within a block of :data:`BLOCK` sites only the block's own fields are kept current (rank-one
    updates of a small matrix); the whole field matrix then gets the block's flips at once, as a
    matrix product, which is what makes large dense models fast.
    """
    import torch

    n, n_chains = z.shape
    field = torch.addmm(h.unsqueeze(1), W, z)  # recomputed each sweep: no drift
    u = torch.rand((n, n_chains), generator=gen, device=z.device, dtype=z.dtype)
    # z_l = 1 with probability sigmoid(-beta f_l)  <=>  logit(u) < -beta f_l  <=>  f_l < crit_l
    crit = torch.logit(u, eps=1e-12).div_(-beta_cols)
    z_rows, crit_rows = z.unbind(0), crit.unbind(0)
    for a in range(0, n, BLOCK):
        b = min(a + BLOCK, n)
        block_field, old = field[a:b].clone(), z[a:b].clone()
        field_rows, old_rows = block_field.unbind(0), old.unbind(0)
        couplings = W[a:b, a:b].unbind(1)
        for j in range(b - a):
            new = torch.lt(field_rows[j], crit_rows[a + j]).to(z.dtype)
            z_rows[a + j].copy_(new)
            block_field.addr_(couplings[j], new.sub_(old_rows[j]))
        field.addmm_(W[:, a:b], z[a:b] - old)


def _swap(z: Any, h: Any, W: Any, betas: Any, gen: Any, parity: int) -> None:
    """Metropolis swaps between ladder neighbours (even pairs, then odd pairs);
    ``z`` is the (sites, temperatures, reads) view of the chains, changed in place."""
    import torch

    n, n_temps, n_reads = z.shape
    lower = torch.arange(parity, n_temps - 1, 2, device=z.device)
    if lower.numel() == 0:
        return
    flat = z.reshape(n, -1)
    energy = (h @ flat + 0.5 * (flat * (W @ flat)).sum(0)).view(n_temps, n_reads)
    upper = lower + 1
    # accept with min(1, exp((beta_i - beta_j)(E_i - E_j)))
    log_accept = (betas[lower] - betas[upper]).unsqueeze(1) * (energy[lower] - energy[upper])
    u = torch.rand(log_accept.shape, generator=gen, device=z.device, dtype=z.dtype)
    accept = torch.log(u) < log_accept
    low_states, high_states = z[:, lower].clone(), z[:, upper].clone()
    z[:, lower] = torch.where(accept, high_states, low_states)
    z[:, upper] = torch.where(accept, low_states, high_states)
