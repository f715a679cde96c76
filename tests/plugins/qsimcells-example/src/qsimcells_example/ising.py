"""A random-scan Metropolis sampler for p(z) ~ exp(-beta (h.z + sum_{l<m} W_lm z_l z_m))."""

import numpy as np


class MetropolisSampler:
    def __init__(self, num_steps: int = 2000):
        self.num_steps = num_steps

    def sample(self, h, W, num_reads, *, beta, rng, initial_states=None):
        n = h.size
        if initial_states is None:  # one chain per read, from random states
            z = rng.integers(0, 2, (num_reads, n)).astype(float)
        else:  # persistent chains: continue where the caller left off
            z = initial_states.astype(float)
        rows = np.arange(num_reads)
        for _ in range(self.num_steps):
            site = rng.integers(0, n, num_reads)  # one random spin per chain
            field = h[site] + (z * W[site]).sum(1)  # h_l + sum_m W_lm z_m (W_ll = 0)
            delta = (1 - 2 * z[rows, site]) * field  # energy change of flipping z_l
            accept = rng.random(num_reads) < np.exp(-beta * np.maximum(delta, 0))
            z[rows[accept], site[accept]] = 1 - z[rows[accept], site[accept]]
        return z.astype(np.uint8)
