"""Ising (Boltzmann) sampling over binary states, by name from the plugin registry.

The model is ``p(z) ~ exp(-beta * E(z))`` with ``E(z) = h.z + sum_{l<m} W_lm z_l z_m`` over
``z in {0, 1}^n``, ``W`` symmetric with a zero diagonal (so ``E(z) = h.z + z.W.z / 2``). This is
the prior of a Boltzmann machine (QBM-VAE), whose negative phase is drawn here every training
step. The builtins are ``gibbs`` (torch, any size) and ``exact`` (enumeration, ``n <= 20``);
plugins add others (``neal``: simulated annealing).

State index convention (as for qubits): in an enumeration of all ``2**n`` states, ``z_i`` is bit
``i`` of the index.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .._utils import RngLike, as_generator, check_finite, check_positive_int
from ._bits import indices_to_bits, validate_bits

__all__ = [
    "MAX_ENUMERATION",
    "boltzmann_probabilities",
    "check_ising",
    "ising_energy",
    "log_partition",
    "make_ising_sampler",
    "sample_ising",
]

logger = logging.getLogger(__name__)

#: Largest ``n`` for which the ``2**n`` states are enumerated.
MAX_ENUMERATION = 20


def _as_float_array(value: Any, field: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, possibly on a GPU or requiring grad
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{field}: expected an array of numbers, got {type(value).__name__}"
        ) from None
    if not np.isfinite(arr).all():
        raise ValueError(f"{field}: contains NaN or infinite values")
    return arr


def check_ising(h: Any, W: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate an Ising model and return ``(h, W)`` as float64 arrays.

    Parameters
    ----------
    h
        Linear terms, shape ``(n,)``.
    W
        Couplings, shape ``(n, n)``, symmetric with a zero diagonal.

    Returns
    -------
    h, W
        ``W`` exactly symmetrised (rounding differences removed).
    """
    h = _as_float_array(h, "h")
    W = _as_float_array(W, "W")
    if h.ndim != 1 or h.size == 0:
        raise ValueError(f"h: expected a non-empty 1-D array, got shape {h.shape}")
    n = h.size
    if W.shape != (n, n):
        raise ValueError(f"W: expected shape {(n, n)} to match h, got {W.shape}")
    scale = max(1.0, float(np.abs(W).max()))
    asym = float(np.abs(W - W.T).max())
    if asym > 1e-6 * scale:
        raise ValueError(
            f"W: must be symmetric (max |W - W.T| = {asym:.3g}); the energy uses "
            "sum_{l<m} W_lm z_l z_m"
        )
    if np.any(np.diag(W) != 0):
        raise ValueError("W: the diagonal must be zero (z_l^2 = z_l, so put self-couplings in h)")
    return h, (W + W.T) / 2


def ising_energy(states: Any, h: Any, W: Any) -> np.ndarray:
    """``E(z) = h.z + sum_{l<m} W_lm z_l z_m`` for each row of ``states``.

    Parameters
    ----------
    states
        ``(k, n)`` array in ``{0, 1}``.
    h, W
        The model (see :func:`check_ising`).

    Returns
    -------
    numpy.ndarray
        ``(k,)`` energies.
    """
    h, W = check_ising(h, W)
    z = np.asarray(states, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != h.size:
        raise ValueError(f"states: expected shape (k, {h.size}), got {z.shape}")
    return z @ h + 0.5 * np.einsum("ki,ij,kj->k", z, W, z)


def _enumerated_log_weights(
    h: np.ndarray, W: np.ndarray, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    n = h.size
    if n > MAX_ENUMERATION:
        raise ValueError(f"h: enumeration takes at most {MAX_ENUMERATION} variables, got {n}")
    states = indices_to_bits(np.arange(2**n), n)
    z = states.astype(np.float64)
    energy = z @ h + 0.5 * ((z @ W) * z).sum(axis=1)
    return states, -beta * energy


def boltzmann_probabilities(h: Any, W: Any, beta: float = 1.0) -> np.ndarray:
    """Exact probabilities of all ``2**n`` states (``z_i`` = bit ``i`` of the index).

    Parameters
    ----------
    h, W
        The model (see :func:`check_ising`), ``n <= 20``.
    beta
        Inverse temperature.

    Returns
    -------
    numpy.ndarray
        ``(2**n,)`` probabilities summing to one.
    """
    h, W = check_ising(h, W)
    beta = check_finite("beta", beta, low=0.0, low_open=True)
    _, logw = _enumerated_log_weights(h, W, beta)
    w = np.exp(logw - logw.max())
    return w / w.sum()


def log_partition(h: Any, W: Any, beta: float = 1.0) -> float:
    """``log Z = log sum_z exp(-beta E(z))`` by enumeration.

    Parameters
    ----------
    h, W
        The model (see :func:`check_ising`), ``n <= 20``.
    beta
        Inverse temperature.

    Returns
    -------
    float
        The log partition function.
    """
    h, W = check_ising(h, W)
    beta = check_finite("beta", beta, low=0.0, low_open=True)
    _, logw = _enumerated_log_weights(h, W, beta)
    top = logw.max()
    return float(top + np.log(np.exp(logw - top).sum()))


def make_ising_sampler(name: str, **options: Any) -> Any:
    """Instantiate the registered Ising sampler ``name`` with its options.

    Returns
    -------
    object
        The sampler, with ``sample(h, W, num_reads, *, beta, rng, initial_states)``.
    """
    from ..plugins import get_ising_sampler

    if not isinstance(name, str):
        raise TypeError(f"sampler: expected an Ising sampler name, got {type(name).__name__}")
    return get_ising_sampler(name).create(**options)


def _check_initial_states(initial_states: Any, num_reads: int, n: int) -> np.ndarray | None:
    if initial_states is None:
        return None
    if hasattr(initial_states, "detach"):
        initial_states = initial_states.detach().cpu().numpy()
    states = np.asarray(initial_states)
    if states.shape != (num_reads, n):
        raise ValueError(
            f"initial_states: expected shape (num_reads, n) = {(num_reads, n)}, got {states.shape}"
        )
    if not np.isin(states, (0, 1)).all():
        raise ValueError("initial_states: values must be 0 or 1")
    return states.astype(np.uint8)


def sample_ising(
    h: Any,
    W: Any,
    num_reads: int,
    *,
    sampler: str | Any = "gibbs",
    beta: float = 1.0,
    rng: RngLike = None,
    initial_states: Any = None,
    **options: Any,
) -> np.ndarray:
    """Draw states ``z in {0, 1}^n`` from ``p(z) ~ exp(-beta (h.z + sum_{l<m} W_lm z_l z_m))``.

    Parameters
    ----------
    h
        Linear terms, shape ``(n,)`` (numpy array or torch tensor).
    W
        Couplings, shape ``(n, n)``, symmetric with a zero diagonal.
    num_reads
        Number of samples (rows), one independent chain each for Markov-chain samplers.
    sampler
        A registered Ising sampler name (``qs.plugins.available("ising_sampler")``): ``"gibbs"``
        (builtin, torch), ``"exact"`` (builtin, enumeration, ``n <= 20``), ``"neal"`` (plugin
        ``qsimcells-neal``), ... or a sampler object made by :func:`make_ising_sampler`.
    beta
        Inverse temperature of the distribution sampled (a sampler anneals *to* it).
    rng
        Seed or generator; the same seed gives the same states.
    initial_states
        ``(num_reads, n)`` states to continue from (persistent chains: pass the previous call's
        result). Samplers without warm starts (``exact``) ignore them.
    **options
        Passed to the sampler's factory (e.g. ``num_sweeps``).

    Returns
    -------
    numpy.ndarray
        ``(num_reads, n)`` uint8 in ``{0, 1}``.
    """
    h, W = check_ising(h, W)
    num_reads = check_positive_int("num_reads", num_reads)
    beta = check_finite("beta", beta, low=0.0, low_open=True)
    states = _check_initial_states(initial_states, num_reads, h.size)
    if isinstance(sampler, str):
        from ..plugins import get_ising_sampler

        spec = get_ising_sampler(sampler).spec
        if spec.max_variables is not None and h.size > spec.max_variables:
            raise ValueError(
                f"Ising sampler {sampler!r} takes at most {spec.max_variables} "
                f"variables; the model has {h.size}"
            )
        name, obj = sampler, make_ising_sampler(sampler, **options)
    elif options:
        raise ValueError(f"options {sorted(options)} need a sampler name, not a sampler object")
    else:
        name, obj = type(sampler).__name__, sampler
    logger.debug(
        "drawing %d states of a %d-variable Ising model with %r at beta=%g",
        num_reads,
        h.size,
        name,
        beta,
    )
    result = obj.sample(h, W, num_reads, beta=beta, rng=as_generator(rng), initial_states=states)
    return validate_bits(result, num_reads, h.size, name)
