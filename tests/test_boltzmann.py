"""The Boltzmann-machine prior of QBM-VAE: the KL surrogate has the exact KL gradient, the
negative phase comes from the named Ising sampler with persistent chains, log Z is honest."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import qsimcells as qs  # noqa: E402
from qsimcells.model._boltzmann import BoltzmannPrior  # noqa: E402
from qsimcells.testing import assert_distribution_matches  # noqa: E402


def all_states(n: int) -> torch.Tensor:
    """Every state, ``z_i`` = bit ``i`` of the row index (the samplers' convention)."""
    rows = [list(reversed(bits)) for bits in itertools.product((0, 1), repeat=n)]
    return torch.tensor(rows, dtype=torch.float64)


def prior_with_random_parameters(
    n: int, seed: int, sampler: str = "exact", **kwargs
) -> BoltzmannPrior:
    prior = BoltzmannPrior(n, sampler=sampler, seed=seed, **kwargs).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        prior.h.copy_(torch.randn(n, generator=gen, dtype=torch.float64))
        prior.w_raw.copy_(0.7 * torch.randn(n, n, generator=gen, dtype=torch.float64))
    return prior


def exact_kl(prior: BoltzmannPrior, q: torch.Tensor) -> torch.Tensor:
    """KL(q || p) by enumeration, differentiable in q, h and W."""
    states = all_states(prior.n_latent)
    log_q = states @ q.log().T + (1 - states) @ (1 - q).log().T  # (2^n, B)
    log_p = -prior.energy(states) - torch.logsumexp(-prior.energy(states), 0)
    return (log_q.exp() * (log_q - log_p[:, None])).sum(0)


def test_couplings_are_symmetric_with_zero_diagonal_and_energy_is_the_samplers() -> None:
    prior = prior_with_random_parameters(5, 0)
    W = prior.W.detach()
    assert torch.equal(W, W.T) and torch.all(torch.diagonal(W) == 0)
    states = all_states(5)
    expected = qs.samplers.ising_energy(states.numpy(), prior.h.detach().numpy(), W.numpy())
    np.testing.assert_allclose(prior.energy(states).detach().numpy(), expected, atol=1e-12)


@pytest.mark.parametrize(("n", "seed"), [(4, 0), (6, 1), (9, 2)])
def test_surrogate_gradient_equals_the_exact_kl_gradient(n: int, seed: int) -> None:
    """With the negative phase taken exactly (every state, weighted by p), the surrogate's
    gradient in the encoder's logits, h and W equals that of the enumerated KL."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, n, generator=gen, dtype=torch.float64, requires_grad=True)
    prior = prior_with_random_parameters(n, seed)
    states = all_states(n)
    weights = torch.softmax(-prior.energy(states), 0).detach()

    surrogate = prior.kl_surrogate(torch.sigmoid(logits), states, weights).sum()
    got = torch.autograd.grad(surrogate, [logits, prior.h, prior.w_raw])
    kl = exact_kl(prior, torch.sigmoid(logits)).sum()
    want = torch.autograd.grad(kl, [logits, prior.h, prior.w_raw])
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-11)
    # its value is the KL minus (log Z + E_p[E]): the gradient is exact, the value is not
    log_z = prior.log_partition("exact")
    mean_energy = float((weights * prior.energy(states)).sum())
    np.testing.assert_allclose(float(surrogate), float(kl) - 3 * (log_z + mean_energy), rtol=1e-9)


def test_sampled_negative_phase_gradient_is_within_sampling_noise() -> None:
    n, reads = 6, 20_000
    prior = prior_with_random_parameters(n, 3, num_reads=reads)
    q = torch.full((1, n), 0.3, dtype=torch.float64)
    exact_grad = torch.autograd.grad(exact_kl(prior, q).sum(), prior.h)[0]
    sampled_grad = torch.autograd.grad(prior.kl_surrogate(q).sum(), prior.h)[0]
    # d/dh of -mean E(z_neg) is -mean z_neg: a mean of 0/1 values, sd <= 0.5 / sqrt(reads)
    assert torch.all((sampled_grad - exact_grad).abs() < 5 * 0.5 / np.sqrt(reads))


@pytest.mark.parametrize("sampler", ["gibbs", "exact"])
def test_negative_samples_follow_the_prior_and_chains_persist(sampler: str) -> None:
    prior = prior_with_random_parameters(5, 4, sampler=sampler, num_reads=6000)
    probs = qs.samplers.boltzmann_probabilities(prior.h.detach().numpy(), prior.W.detach().numpy())
    assert not bool(prior.warm)
    first = prior.negative_samples()
    assert bool(prior.warm) and torch.equal(prior.chains, first.float())
    assert_distribution_matches(first.numpy().astype(np.uint8), probs)
    second = prior.negative_samples()  # continued from `first`, still the prior
    assert_distribution_matches(second.numpy().astype(np.uint8), probs)


def test_persistent_chains_are_continued_not_restarted() -> None:
    """On a two-mode model that one sweep cannot cross, one-sweep chains stay in the mode the
    chains buffer holds."""
    h, W = qs.testing.two_mode_ising(10)
    prior = BoltzmannPrior(
        10, sampler="gibbs", sampler_kwargs={"num_sweeps": 1}, num_reads=2000
    ).double()
    with torch.no_grad():
        prior.h.copy_(torch.as_tensor(h))
        prior.w_raw.copy_(torch.as_tensor(W))
        prior.chains.fill_(1.0)
        prior.warm.fill_(True)
    z = prior.negative_samples()
    assert (z == 1).all(1).double().mean() > 0.9  # ~0.95 stay in all-on


def test_state_dict_round_trip_after_training_steps() -> None:
    prior = prior_with_random_parameters(5, 5, sampler="gibbs", num_reads=64)
    prior.negative_samples()
    again = BoltzmannPrior(5, sampler="gibbs", num_reads=64).double()
    again.load_state_dict(prior.state_dict())
    assert torch.equal(again.chains, prior.chains) and bool(again.warm)
    torch.testing.assert_close(again.W, prior.W)


def test_log_partition_exact_and_ais() -> None:
    prior = prior_with_random_parameters(10, 6)
    exact = prior.log_partition("exact")
    assert exact == pytest.approx(
        qs.samplers.log_partition(prior.h.detach().numpy(), prior.W.detach().numpy())
    )
    ais = prior.log_partition("ais", n_steps=300, num_reads=512, rng=0)
    # AIS with 300 temperatures and 512 chains on 10 spins: error well below 0.05 nats
    assert abs(ais - exact) < 0.05


def test_prior_samples_have_the_prior_distribution() -> None:
    prior = prior_with_random_parameters(4, 7, sampler="exact")
    z = prior.sample(5000, rng=1)
    probs = qs.samplers.boltzmann_probabilities(prior.h.detach().numpy(), prior.W.detach().numpy())
    assert z.shape == (5000, 4)
    assert_distribution_matches(z, probs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sampler": "annealer"}, Exception, r"unknown ising sampler 'annealer'.*gibbs"),
        ({"sampler": 3}, TypeError, "prior_sampler: expected a registered Ising sampler name"),
        ({"sampler_kwargs": [1]}, TypeError, "prior_sampler_kwargs: expected a dict"),
        ({"num_reads": 0}, ValueError, "num_reads"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        BoltzmannPrior(4, **kwargs)
    with pytest.raises(ValueError, match="n_latent"):
        BoltzmannPrior(0)
    with pytest.raises(ValueError, match="method: 'mc' is not allowed"):
        BoltzmannPrior(3).log_partition("mc")
