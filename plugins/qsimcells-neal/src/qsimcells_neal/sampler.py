"""Boltzmann samples from dwave-samplers' simulated annealing.

dwave's defaults are for *optimisation*: the schedule ends near beta ~ 1e6 and returns ground
states. To sample ``p(z) ~ exp(-beta E(z))`` the schedule here ends *at* the requested beta and
then holds there, so the last sweeps are a Markov chain whose stationary law is the target:

- ``"geometric"`` / ``"linear"`` (default from random states): the first half of the sweeps
  anneal from ``beta_min`` up to ``beta``, the second half stay at ``beta``;
- ``"constant"`` (default when continuing from ``initial_states``): every sweep at ``beta``, so
  persistent chains are not re-heated;
- a sequence of betas: used as given; its last value must equal ``beta``.

Spin flips are accepted by the heat-bath ("Gibbs") rule by default: with sequential sweeps, the
Metropolis rule always flips a spin whose energy change is zero (e.g. a freshly initialised
Boltzmann machine with ``h = W = 0``), so a chain would alternate deterministically instead of
mixing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qsimcells._utils import check_choice, check_finite, check_positive_int

SCHEDULES = ("geometric", "linear", "constant")
ACCEPTANCE = {"gibbs": "Gibbs", "metropolis": "Metropolis"}


class NealSampler:
    """Simulated annealing to a target inverse temperature (dwave-samplers).

    Parameters
    ----------
    num_sweeps
        Sweeps per read. ``None``: 1000 from random states, 100 from ``initial_states``.
    beta_schedule
        ``"geometric"``, ``"linear"``, ``"constant"`` or a sequence of inverse temperatures
        ending at ``beta`` (see the module notes). ``None``: ``"geometric"`` from random states,
        ``"constant"`` from ``initial_states``.
    beta_min
        Starting inverse temperature of an annealing schedule (default ``beta / 20``).
    acceptance
        ``"gibbs"`` (heat bath, default) or ``"metropolis"`` spin-flip acceptance.
    randomize_order
        Visit spins in random order instead of sequentially.
    """

    def __init__(
        self,
        num_sweeps: int | None = None,
        *,
        beta_schedule: str | Sequence[float] | None = None,
        beta_min: float | None = None,
        acceptance: str = "gibbs",
        randomize_order: bool = False,
    ) -> None:
        self.num_sweeps = (
            None if num_sweeps is None else check_positive_int("num_sweeps", num_sweeps)
        )
        if isinstance(beta_schedule, str):
            check_choice("beta_schedule", beta_schedule, SCHEDULES)
        elif beta_schedule is not None:
            schedule = np.asarray(beta_schedule, dtype=np.float64)
            if (
                schedule.ndim != 1
                or schedule.size == 0
                or not np.isfinite(schedule).all()
                or (schedule <= 0).any()
            ):
                raise ValueError(
                    "beta_schedule: a custom schedule must be a non-empty sequence "
                    f"of positive finite inverse temperatures, or one of {SCHEDULES}"
                )
            if num_sweeps is not None:
                raise ValueError(
                    "num_sweeps: a custom beta_schedule already fixes the sweeps "
                    "(one per entry); leave num_sweeps unset"
                )
        # a schedule name, the custom schedule as float64 (checked above), or None
        self.beta_schedule: str | np.ndarray | None = None
        if isinstance(beta_schedule, str):
            self.beta_schedule = beta_schedule
        elif beta_schedule is not None:
            self.beta_schedule = schedule
        self.beta_min = (
            None if beta_min is None else check_finite("beta_min", beta_min, low=0.0, low_open=True)
        )
        check_choice("acceptance", acceptance, list(ACCEPTANCE))
        self.acceptance = acceptance
        if not isinstance(randomize_order, (bool, np.bool_)):
            raise ValueError(f"randomize_order: expected True or False, got {randomize_order!r}")
        self.randomize_order = bool(randomize_order)

    def schedule(self, beta: float, *, warm: bool) -> np.ndarray:
        """The inverse temperature of every sweep; the last one is always ``beta``."""
        kind = (
            self.beta_schedule
            if self.beta_schedule is not None
            else ("constant" if warm else "geometric")
        )
        if not isinstance(kind, str):
            if not np.isclose(kind[-1], beta, rtol=1e-9, atol=0.0):
                raise ValueError(
                    f"beta_schedule: a custom schedule must end at beta = {beta}, "
                    f"it ends at {kind[-1]}"
                )
            return kind
        sweeps = self.num_sweeps or (100 if warm else 1000)
        if kind == "constant":
            return np.full(sweeps, beta)
        low = self.beta_min if self.beta_min is not None else beta / 20
        if low > beta:
            raise ValueError(f"beta_min: {low} must not exceed beta = {beta}")
        n_anneal = sweeps // 2
        ramp = (
            np.geomspace(low, beta, n_anneal)
            if kind == "geometric"
            else np.linspace(low, beta, n_anneal)
        )
        return np.concatenate([ramp, np.full(sweeps - n_anneal, beta)])

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
        import dimod
        from dwave.samplers import SimulatedAnnealingSampler

        n = h.size
        # energy h.z + sum_{l<m} W_lm z_l z_m: the strict upper triangle carries each pair once
        bqm = dimod.BinaryQuadraticModel(h, np.triu(W, 1), 0.0, dimod.BINARY)
        kwargs: dict[str, Any] = {}
        if initial_states is not None:
            kwargs = {
                "initial_states": (initial_states.astype(np.int8), list(range(n))),
                "initial_states_generator": "none",
            }
        result = SimulatedAnnealingSampler().sample(
            bqm,
            num_reads=num_reads,
            beta_schedule_type="custom",
            beta_schedule=self.schedule(beta, warm=initial_states is not None),
            seed=int(rng.integers(2**31 - 1)),
            randomize_order=self.randomize_order,
            proposal_acceptance_criteria=ACCEPTANCE[self.acceptance],
            **kwargs,
        )
        columns = [result.variables.index(v) for v in range(n)]
        return result.record.sample[:, columns].astype(np.uint8)
