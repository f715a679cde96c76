"""The ``neal`` plugin samples the Boltzmann distribution at the requested beta."""

from __future__ import annotations

import numpy as np
import pytest

import qsimcells as qs
from qsimcells.testing import (
    assert_distribution_matches,
    assert_moments_match,
    random_ising as random_model,
    two_mode_ising,
)


def test_registered_through_its_entry_point() -> None:
    qs.plugins.reset_registry()
    table = qs.plugins.available("ising_sampler").set_index("name")
    assert table.loc["neal", "distribution"] == "qsimcells-neal"
    assert table.loc["neal", "capabilities"]["warm_start"] is True


@pytest.mark.parametrize(("n", "seed"), [(8, 0), (12, 1)])
def test_matches_exact_boltzmann_probabilities(n: int, seed: int) -> None:
    h, W = random_model(n, seed)
    z = qs.samplers.sample_ising(h, W, 8000, sampler="neal", rng=seed, num_sweeps=400)
    assert_distribution_matches(z, qs.samplers.boltzmann_probabilities(h, W))


def test_samples_the_requested_beta_not_ground_states() -> None:
    """dwave's optimisation default ends near beta ~ 1e6; ours ends at beta and holds there."""
    h, W = random_model(10, 3)
    for beta in (0.5, 2.0):
        probs = qs.samplers.boltzmann_probabilities(h, W, beta)
        z = qs.samplers.sample_ising(h, W, 6000, sampler="neal", beta=beta, rng=4, num_sweeps=300)
        assert_distribution_matches(z, probs)
    from qsimcells_neal.sampler import NealSampler

    schedule = NealSampler(num_sweeps=100).schedule(1.5, warm=False)
    assert schedule[-1] == 1.5 and np.all(schedule[50:] == 1.5) and schedule[0] < 1.5


def test_warm_start_continues_persistent_chains() -> None:
    h, W = random_model(10, 5)
    probs = qs.samplers.boltzmann_probabilities(h, W)
    # chains started in the least likely state must relax to the target with constant-beta sweeps
    worst = qs.samplers._bits.indices_to_bits(np.array([np.argmin(probs)]), 10)
    start = np.repeat(worst, 6000, axis=0)
    z = qs.samplers.sample_ising(
        h, W, 6000, sampler="neal", rng=6, initial_states=start, num_sweeps=200
    )
    assert_distribution_matches(z, probs)


def test_warm_start_really_continues_the_given_states() -> None:
    """All off / all on separated by a barrier that one sweep cannot cross: after one sweep
    at beta, the chains are still where they started (a cold run is not)."""
    n, reads = 10, 4000
    h, W = two_mode_ising(n)
    for start_value in (0, 1):
        start = np.full((reads, n), start_value, np.uint8)
        one = qs.samplers.sample_ising(
            h, W, reads, sampler="neal", rng=7, initial_states=start, num_sweeps=1
        )
        # each site flips with chance ~0.005, so a chain stays with ~0.95; sd at 4000 ~0.004
        assert (one == start_value).all(1).mean() > 0.9
    cold = qs.samplers.sample_ising(h, W, reads, sampler="neal", rng=7, num_sweeps=2)
    assert max((cold == 0).all(1).mean(), (cold == 1).all(1).mean()) < 0.9


def test_matches_exact_moments_at_18_spins() -> None:
    h, W = random_model(18, 6, coupling=0.4)
    z = qs.samplers.sample_ising(h, W, 20_000, sampler="neal", rng=3)
    assert_moments_match(z, qs.samplers.boltzmann_probabilities(h, W))


def test_metropolis_rule_does_not_mix_at_zero_field() -> None:
    """Why heat bath is the default: zero energy change means a certain Metropolis flip."""
    n, start = 6, np.zeros((500, 6), np.uint8)
    zero = (np.zeros(n), np.zeros((n, n)))
    metropolis = qs.samplers.sample_ising(
        *zero,
        500,
        sampler="neal",
        rng=0,
        initial_states=start,
        num_sweeps=10,
        acceptance="metropolis",
    )
    heat_bath = qs.samplers.sample_ising(
        *zero, 500, sampler="neal", rng=0, initial_states=start, num_sweeps=10
    )
    assert (metropolis == 0).all()  # ten deterministic flips of every spin: back to the start
    # heat bath gives fair coins: 3000 bits, sd of the mean = 0.5 / sqrt(3000) ~ 0.009
    assert abs(heat_bath.mean() - 0.5) < 5 * 0.5 / np.sqrt(heat_bath.size)


def test_same_seed_same_states() -> None:
    h, W = random_model(9, 8)
    a = qs.samplers.sample_ising(h, W, 50, sampler="neal", rng=11)
    b = qs.samplers.sample_ising(h, W, 50, sampler="neal", rng=11)
    c = qs.samplers.sample_ising(h, W, 50, sampler="neal", rng=12)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"beta_schedule": "cosine"}, "beta_schedule"),
        ({"beta_schedule": [0.1, -1.0]}, "beta_schedule"),
        ({"beta_schedule": [0.1, 1.0], "num_sweeps": 5}, "num_sweeps"),
        ({"acceptance": "glauber"}, "acceptance"),
        ({"num_sweeps": 0}, "num_sweeps"),
        ({"beta_min": 0}, "beta_min"),
        ({"randomize_order": "no"}, "randomize_order: expected True or False"),
    ],
)
def test_bad_options_name_the_field(options: dict, field: str) -> None:
    h, W = random_model(4, 0)
    with pytest.raises(ValueError, match=field):
        qs.samplers.sample_ising(h, W, 5, sampler="neal", **options)


def test_custom_schedule_must_end_at_beta() -> None:
    h, W = random_model(4, 0)
    with pytest.raises(ValueError, match="must end at beta"):
        qs.samplers.sample_ising(h, W, 5, sampler="neal", beta=2.0, beta_schedule=[0.1, 1.0])
    z = qs.samplers.sample_ising(
        h, W, 5, sampler="neal", beta=1.0, beta_schedule=np.geomspace(0.1, 1.0, 50)
    )
    assert z.shape == (5, 4)
