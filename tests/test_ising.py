"""Ising (Boltzmann) sampling: the builtin ``gibbs`` and ``exact`` samplers and the public API."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _helpers import assert_distribution_matches

import qsimcells as qs
from conftest import run_python
from qsimcells.samplers import (
    boltzmann_probabilities,
    ising_energy,
    log_partition,
    sample_ising,
)
from qsimcells.testing import assert_moments_match, random_ising as random_model, two_mode_ising


def index_of(z: np.ndarray) -> np.ndarray:
    return z.astype(np.int64) @ (1 << np.arange(z.shape[1]))


def tvd(z: np.ndarray, probs: np.ndarray) -> float:
    return 0.5 * float(
        np.abs(np.bincount(index_of(z), minlength=probs.size) / len(z) - probs).sum()
    )


def test_energy_probabilities_and_log_partition_by_brute_force() -> None:
    h, W = random_model(5, 0)
    states = np.array(list(itertools.product((0, 1), repeat=5)))[:, ::-1]  # z_i = bit i
    energy = [
        sum(h[i] * z[i] for i in range(5))
        + sum(W[i, j] * z[i] * z[j] for i in range(5) for j in range(i + 1, 5))
        for z in states
    ]
    assert np.allclose(ising_energy(states, h, W), energy)
    weights = np.exp(-1.5 * np.array(energy))
    order = index_of(states)
    assert np.allclose(boltzmann_probabilities(h, W, 1.5)[order], weights / weights.sum())
    assert np.isclose(log_partition(h, W, 1.5), np.log(weights.sum()))


def test_state_index_has_variable_i_in_bit_i() -> None:
    h = np.array([-8.0, 8.0, 8.0])  # only z_0 = 1 is favoured
    probs = boltzmann_probabilities(h, np.zeros((3, 3)))
    assert np.argmax(probs) == 1
    for sampler in ("gibbs", "exact"):
        z = sample_ising(h, np.zeros((3, 3)), 200, sampler=sampler, rng=0)
        assert (z.mean(0) > [0.95, -1, -1]).all() and (z[:, 1:].mean(0) < 0.05).all()


@pytest.mark.parametrize("sampler", ["gibbs", "exact"])
@pytest.mark.parametrize(("n", "seed"), [(8, 0), (10, 1), (12, 2)])
def test_builtins_match_exact_boltzmann_probabilities(sampler: str, n: int, seed: int) -> None:
    h, W = random_model(n, seed)
    z = sample_ising(h, W, 10000, sampler=sampler, rng=seed)
    assert z.shape == (10000, n) and z.dtype == np.uint8
    assert_distribution_matches(z, boltzmann_probabilities(h, W))


@pytest.mark.parametrize("beta", [0.3, 2.5])
def test_gibbs_samples_the_requested_beta(beta: float) -> None:
    h, W = random_model(9, 3)
    z = sample_ising(h, W, 10000, sampler="gibbs", beta=beta, rng=5, dtype="float64")
    assert_distribution_matches(z, boltzmann_probabilities(h, W, beta))


def test_parallel_tempering_on_a_strongly_coupled_model() -> None:
    """Two modes (all off / a block on) separated by a barrier: tempering must keep the
    right weights between them."""
    h, W = two_mode_ising()
    probs = boltzmann_probabilities(h, W)
    z = sample_ising(h, W, 8000, sampler="gibbs", rng=1, n_replicas=6, beta_min=0.1, num_sweeps=200)
    assert_distribution_matches(z, probs)
    # plain Gibbs rarely crosses the barrier, so its chains keep their starting mode's weight:
    # the all-off state gets ~0.43 instead of 0.26 (sd at 8000 reads ~ 0.005)
    plain = sample_ising(h, W, 8000, sampler="gibbs", rng=1, num_sweeps=200)
    assert abs((index_of(plain) == 0).mean() - probs[0]) > 0.1


def test_persistent_chains_continue_from_initial_states() -> None:
    """One sweep cannot cross the barrier, so where the chains end shows where they started."""
    h, W = two_mode_ising()
    reads = 4000
    for start_value in (0, 1):
        start = np.full((reads, 10), start_value, np.uint8)
        one = sample_ising(h, W, reads, sampler="gibbs", rng=0, initial_states=start, num_sweeps=1)
        # each site flips with chance ~0.005, so a chain stays with ~0.95; sd at 4000 ~0.004
        assert (one == start_value).all(1).mean() > 0.9
    # cold chains land in either mode, or in neither, but never 90 % in one
    cold = sample_ising(h, W, reads, sampler="gibbs", rng=0, num_sweeps=1)
    assert max((cold == 0).all(1).mean(), (cold == 1).all(1).mean()) < 0.9


def test_continued_chains_reach_the_target() -> None:
    h, W = random_model(10, 4)
    probs = boltzmann_probabilities(h, W)
    worst = qs.samplers._bits.indices_to_bits(np.array([np.argmin(probs)]), 10)
    start = np.repeat(worst, 8000, axis=0)
    one = sample_ising(h, W, 8000, sampler="gibbs", rng=0, initial_states=start, num_sweeps=1)
    # continuing those chains (default warm sweeps) gets closer to the target...
    assert tvd(one, probs) > tvd(
        sample_ising(h, W, 8000, sampler="gibbs", rng=0, initial_states=one), probs
    )
    # ...and enough sweeps reach it
    more = sample_ising(h, W, 8000, sampler="gibbs", rng=1, initial_states=start, num_sweeps=60)
    assert_distribution_matches(more, probs)


@pytest.mark.parametrize(
    ("sampler", "options"),
    [("gibbs", {}), ("gibbs", {"dtype": "float64"}), ("gibbs", {"n_replicas": 3})],
)
def test_gibbs_across_blocks_matches_exact_moments(sampler: str, options: dict) -> None:
    """18 spins span two of the sweep's 16-site blocks, whose fields are linked by one matrix
    product per block: every mean and pair moment must match enumeration."""
    h, W = random_model(18, 6, coupling=0.4)
    z = sample_ising(h, W, 20_000, sampler=sampler, rng=2, **options)
    assert_moments_match(z, boltzmann_probabilities(h, W))


def test_exact_ignores_initial_states() -> None:
    h, W = random_model(6, 0)
    start = np.ones((50, 6), np.uint8)
    a = sample_ising(h, W, 50, sampler="exact", rng=3, initial_states=start)
    b = sample_ising(h, W, 50, sampler="exact", rng=3)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("sampler", ["gibbs", "exact"])
def test_same_seed_same_states(sampler: str) -> None:
    h, W = random_model(7, 2)
    a = sample_ising(h, W, 64, sampler=sampler, rng=9)
    assert np.array_equal(a, sample_ising(h, W, 64, sampler=sampler, rng=9))
    assert not np.array_equal(a, sample_ising(h, W, 64, sampler=sampler, rng=10))


def test_torch_tensors_are_accepted() -> None:
    torch = pytest.importorskip("torch")
    h, W = random_model(6, 1)
    h_t = torch.tensor(h, requires_grad=True)
    W_t = torch.tensor(W, dtype=torch.float32)
    start = torch.zeros(20, 6)
    z = sample_ising(h_t, W_t, 20, rng=0, initial_states=start)
    assert z.shape == (20, 6)


def test_sampler_object_is_reused() -> None:
    sampler = qs.samplers.make_ising_sampler("gibbs", num_sweeps=5)
    h, W = random_model(5, 0)
    assert sample_ising(h, W, 10, sampler=sampler, rng=0).shape == (10, 5)
    with pytest.raises(ValueError, match="need a sampler name"):
        sample_ising(h, W, 10, sampler=sampler, num_sweeps=3)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda h, W: (h, W + np.triu(np.ones_like(W), 1)), "W: must be symmetric"),
        (lambda h, W: (h, W + np.eye(len(h))), "W: the diagonal must be zero"),
        (lambda h, W: (np.append(h, np.nan), W), "h: contains NaN"),
        (lambda h, W: (h, W[:-1]), r"W: expected shape \(4, 4\)"),
        (lambda h, W: (h[None, :], W), "h: expected a non-empty 1-D array"),
        (lambda h, W: (h, np.where(W > 0, np.inf, W)), "W: contains NaN or infinite"),
    ],
)
def test_bad_models_name_the_field(change, match: str) -> None:
    h, W = change(*random_model(4, 0))
    with pytest.raises(ValueError, match=match):
        sample_ising(h, W, 5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_reads": 0}, ValueError, "num_reads"),
        ({"num_reads": 2.5}, TypeError, "num_reads"),
        ({"beta": 0.0}, ValueError, "beta"),
        ({"beta": float("nan")}, ValueError, "beta"),
        ({"initial_states": np.zeros((3, 4))}, ValueError, r"initial_states: expected shape"),
        (
            {"initial_states": np.full((5, 4), 2)},
            ValueError,
            "initial_states: values must be 0 or 1",
        ),
        ({"sampler": "annealer"}, Exception, r"unknown ising sampler 'annealer'.*gibbs"),
        ({"n_replicas": 0}, ValueError, "n_replicas"),
        ({"dtype": "float16"}, ValueError, "dtype.*float32"),
        ({"n_replicas": 3, "beta_min": 2.0}, ValueError, "beta_min"),
        ({"num_sweeps": 10, "sweeps": 3}, TypeError, "options for Ising sampler 'gibbs'"),
        (
            {"beta_min": 0.1},
            ValueError,
            "beta_min: sets the tempering ladder, so it needs n_replicas > 1",
        ),
        ({"device": "gpu"}, ValueError, r"device: 'gpu' is not usable here .*available: \['cpu'"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict, error: type, match: str) -> None:
    h, W = random_model(4, 0)
    kwargs = {"num_reads": 5, **kwargs}
    with pytest.raises(error, match=match):
        sample_ising(h, W, kwargs.pop("num_reads"), **kwargs)


def test_without_torch_gibbs_says_what_to_install_and_exact_still_works() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np, qsimcells as qs\n"
        "h, W = np.zeros(3), np.zeros((3, 3))\n"
        "print(qs.samplers.sample_ising(h, W, 4, sampler='exact', rng=0).shape)\n"
        "qs.samplers.sample_ising(h, W, 4, rng=0)\n"
    )
    out = run_python(code)
    assert out.stdout.strip() == "(4, 3)"
    assert (
        "ImportError: Ising sampler 'gibbs' needs torch: pip install 'qsimcells[models]'"
        in out.stderr
    )


def test_exact_refuses_more_than_twenty_variables() -> None:
    with pytest.raises(ValueError, match="at most 20 variables; the model has 21"):
        sample_ising(np.zeros(21), np.zeros((21, 21)), 5, sampler="exact")


def test_a_sampler_returning_the_wrong_shape_is_caught() -> None:
    class Broken:
        def sample(self, h, W, num_reads, *, beta, rng, initial_states):
            return np.zeros((num_reads, h.size + 1), np.uint8)

    with pytest.raises(ValueError, match=r"returned shape \(5, 5\), expected \(5, 4\)"):
        sample_ising(np.zeros(4), np.zeros((4, 4)), 5, sampler=Broken())


def test_builtins_work_without_any_plugin() -> None:
    code = (
        "import numpy as np, qsimcells as qs\n"
        "print(sorted(qs.plugins.available('ising_sampler').name))\n"
        "z = qs.samplers.sample_ising(np.zeros(3), np.zeros((3, 3)), 4, rng=0)\n"
        "print(z.shape)\n"
        "try:\n    qs.samplers.sample_ising(np.zeros(3), np.zeros((3, 3)), 4, sampler='neal')\n"
        "except Exception as err:\n    print(err)\n"
    )
    out = run_python(code, env={"QSIMCELLS_DISABLE_PLUGINS": "1"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "['exact', 'gibbs']" and lines[1] == "(4, 3)"
    assert "unknown ising sampler 'neal'" in lines[2]
