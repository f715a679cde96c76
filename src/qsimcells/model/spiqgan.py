"""SpiQGAN (Hernandes & Greplova, Cell Rep. Phys. Sci. 2025): a patch quantum Wasserstein GAN
for binary activity data (spike trains, binarised gene activity).

Generator
    One sub-circuit per timestep, each on ``n_units`` qubits with its own parameters. Layer
    ``l`` of a sub-circuit applies ``RX(w_lq z_lq)`` (noise encoding, re-uploaded every layer,
    with trainable weights ``w`` by default, ``w = 1`` as in the paper otherwise), then
    trainable ``RY(theta_lq)`` and ``RZ(phi_lq)`` on every qubit ``q``, then CNOTs between
    adjacent qubits ``(0, 1), (1, 2), ..., (n-2, n-1)``. One noise vector ``z`` (per layer and
    qubit) is drawn per sample and fed to every sub-circuit, as in the patch GAN, so timesteps
    are correlated through it; given ``z`` the sub-circuits are independent. A sample is the
    concatenation of the sub-circuits' outputs over timesteps (timestep-major). The
    ``n_timesteps`` sub-circuits run as extra batch entries of one statevector call on
    ``n_units`` qubits (never one circuit of ``n_units * n_timesteps`` qubits).

Readout
    ``readout="born"`` (default): each sub-circuit is measured once in the Z basis, i.e. its bit
    string is drawn from its Born probabilities ``|<x|psi_t(z)>|^2``, what one shot per noise
    draw on hardware gives; units of one timestep are correlated through the entangled state.
    ``readout="marginal"``: each unit is an independent Bernoulli draw from its qubit's
    probability of reading 1, so units are correlated only through the shared noise. On a
    correlated population it fits worse (``docs/benchmarks/spiqgan.md``), so ``"born"`` is the
    default.

Noise
    The paper leaves ``P_z`` open ("e.g. a Gaussian or uniform distribution"). Full-turn noise,
    ``z ~ U[0, 2 pi)``, cannot work: averaged over ``z_0`` the first ``RX`` turns ``|0><0|`` into
    the maximally mixed state, which every later unitary keeps, so the generated distribution
    would be uniform whatever the parameters. We draw ``z ~ U[0, noise_scale)`` with
    ``noise_scale = pi / 2``, the range of the patch quantum GAN (Huang et al. 2021, the paper's
    ref. 32), and by default train a weight on each noise angle, ``RX(w z)`` (see
    ``noise_weights``).

Critic
    ``input -> 64 ReLU -> 1`` (no output activation), fed binary samples, real and generated.

Losses
    Critic: ``L_C = (mean C(G(z)) - mean C(x)) / 2`` (the paper's Equation 3) plus a Lipschitz
    constraint, by default the gradient penalty of WGAN-GP (Gulrajani et al. 2017, the paper's
    ref. 42), ``gp_weight * E[(|grad C(x_hat)| - 1)^2]`` on random interpolates ``x_hat`` of real
    and generated samples; ``lipschitz="clip"`` clips the critic's weights to ``[-clip, clip]``
    after every update instead (the original WGAN).
    Generator: ``L_G = -E[C(G(z))] + k_weight * K``. A binary sample has no gradient, so the
    gradient of ``E[C]`` is taken by *local expectations* (Titsias & Lazaro-Gredilla 2015), exact
    in expectation: for each timestep ``t`` (each unit, for ``"marginal"``) the sampled
    ``x_t`` is replaced by every value it can take, with the rest of the sample fixed, and
    ``sum_s dP_t(s) C(x_{-t}, s)`` is the unbiased gradient, since ``x_t`` depends on the
    parameters only through ``P_t``. The critic's first layer is linear, so the ``2**n_units``
    alternatives cost one small matrix product per timestep.
    The K-loss is "the difference between the number of spikes in a fake sample and those in a
    real sample"; the printed formula is a signed difference, which is unbounded below, so we
    use a distance between the two distributions of ``k``, the number of units active in one
    bin (the k-probability the paper fits), one per timestep:
    ``K = T**-0.5 sum_t sum_k |F_gen,t(k) - F_data,t(k)|``, the 1-Wasserstein distances between
    the generated distribution of ``k`` at timestep ``t`` (exact, from the batch's Born
    probabilities or, for ``"marginal"``, the Poisson-binomial of its firing probabilities)
    and that of the training data at ``t``, with cumulative distributions ``F``. Per
    timestep, no bin can trade its spikes against another's: one distribution pooled over the
    bins lets a 2-unit, 5-bin generator fire too little in some bins (JS 0.11, worse than
    independent units). The gradient penalty holds the critic's gradient norm near 1 over all
    ``n T`` inputs, so the critic's pull on one timestep shrinks like ``1 / sqrt(T)``;
    dividing the sum by ``sqrt(T)`` keeps the balance of the two terms per timestep at every
    ``T``: the plain sum over-weights K at 10 bins, the mean under-weights it at 5
    (docs/benchmarks/spiqgan_kloss.md).
    ``k_weight = 0`` gives the standard loss. Two critic updates per generator update, Adam
    (the paper's ``lr_generator = 0.05``, ``lr_critic = 0.002`` are in :data:`PAPER_SETTINGS`;
    the defaults are 0.02 and 0.01, see the class docstring). Samples come from a moving
    average of the generator's parameters (``ema_decay``), which damps the oscillation of GAN
    training.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from .._utils import (
    RngLike,
    as_generator,
    check_choice,
    check_finite,
    check_positive_int,
    seed_sequence,
)
from ..datasets._activity import activity_anndata, binary_matrix, recorded_layout, seed_record
from ._persist import UnsafeFileError, atomic_folder, read_json, read_torch, unreadable

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData
    from qiskit import QuantumCircuit

__all__ = ["PAPER_SETTINGS", "SpiQGAN"]

LIPSCHITZ = ("gp", "clip")
READOUTS = ("born", "marginal")
#: The seed paper's exact configuration: ``SpiQGAN(data, n, t, **PAPER_SETTINGS)``. The defaults
#: differ (trainable noise weights, other learning rates, parameter averaging);
#: docs/benchmarks/spiqgan.md compares.
PAPER_SETTINGS = {
    "noise_weights": False,
    "lr_generator": 0.05,
    "lr_critic": 0.002,
    "ema_decay": 0.0,
}
#: Largest sub-circuit (qubits): the statevector and the generator's gradient (every state of
#: a timestep) handle ``2**n_units`` states per sample and timestep.
MAX_UNITS = 12
# a save: the settings as JSON, the tensors as a torch file read with weights_only=True
_META = "spiqgan.json"
_TENSORS = "spiqgan.pt"
_FORMAT = 2


def _rotations(z: torch.Tensor, theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """``RZ(phi) RY(theta) RX(z)`` as a complex ``(..., 2, 2)`` tensor (broadcast shapes).

    With ``c = cos(./2)``, ``s = sin(./2)``: ``RY(t) RX(z) = [[ct cz + i st sz, -st cz - i ct sz],
    [st cz - i ct sz, ct cz - i st sz]]``; ``RZ(phi)`` multiplies row 0 by ``exp(-i phi/2)`` and
    row 1 by ``exp(i phi/2)``.
    """
    z, theta, phi = torch.broadcast_tensors(z, theta, phi)
    cz, sz = torch.cos(z / 2), torch.sin(z / 2)
    ct, st = torch.cos(theta / 2), torch.sin(theta / 2)
    top = torch.polar(torch.ones_like(phi), -phi / 2)
    bottom = top.conj()
    m00 = top * torch.complex(ct * cz, st * sz)
    m01 = top * torch.complex(-st * cz, -ct * sz)
    m10 = bottom * torch.complex(st * cz, -ct * sz)
    m11 = bottom * torch.complex(ct * cz, -st * sz)
    return torch.stack((torch.stack((m00, m01), -1), torch.stack((m10, m11), -1)), -2)


class _Generator(torch.nn.Module):
    """The patch quantum generator: ``n_timesteps`` sub-circuits on ``n_units`` qubits.

    A layer's single-qubit gates act on different qubits, so each qubit's ``RZ RY RX`` is fused
    into one matrix and the layer's matrices are applied together by
    :func:`qsimcells.nn.apply_product` (Kronecker blocks of a few qubits, one batched matrix
    product each); the first layer acts on ``|0...0>``, so its state is the product of the
    matrices' first columns. The CNOT ladder is one basis permutation
    (:func:`qsimcells.nn.apply_permutation`). The result equals the circuit applied gate by
    gate with ``qs.nn.rx``, ``ry``, ``rz`` and ``cnot`` (tested).
    """

    # registered buffers (torch.nn.Module's own attribute lookup hides their type)
    noise_weights: torch.Tensor
    _perm: torch.Tensor

    def __init__(
        self,
        n_units: int,
        n_timesteps: int,
        n_layers: int,
        init: np.ndarray,
        dtype: torch.dtype,
        device: torch.device,
        noise_weights: bool,
    ) -> None:
        super().__init__()
        from ..nn import permutation_of_cnots

        self.n_units, self.n_timesteps, self.n_layers = n_units, n_timesteps, n_layers
        # (timestep, layer, qubit, [RY, RZ]) angles
        self.weights = torch.nn.Parameter(torch.as_tensor(init, dtype=dtype, device=device))
        # RX(w z): the noise's weight per (timestep, layer, qubit), trained or fixed at 1
        ones = torch.ones(init.shape[:-1], dtype=dtype, device=device)
        if noise_weights:
            self.noise_weights = torch.nn.Parameter(ones)
        else:
            self.register_buffer("noise_weights", ones)
        self.pairs = [(q, q + 1) for q in range(n_units - 1)]
        perm = permutation_of_cnots(n_units, self.pairs)
        self.register_buffer("_perm", torch.as_tensor(perm, device=device), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Born probabilities ``(B, n_timesteps, 2**n_units)`` for noise ``z`` ``(B, L, n)``
        (state ``s`` has qubit ``q`` in bit ``q``)."""
        from ..nn import apply_permutation, apply_product, probabilities

        batch, n, steps = z.shape[0], self.n_units, self.n_timesteps
        rows = steps * batch
        # batch entry t * B + b runs sub-circuit t on sample b's noise (shared over timesteps)
        noise = z.repeat(steps, 1, 1) * self.noise_weights.repeat_interleave(batch, dim=0)
        angles = self.weights.repeat_interleave(batch, dim=0)  # (T B, L, n, 2)
        gates = _rotations(noise, angles[..., 0], angles[..., 1])  # (T B, L, n, 2, 2)
        shape = (rows,) + (2,) * n
        state = None
        for layer in range(self.n_layers):
            if state is None:  # on |0...0>: the product of each qubit's first column
                columns = gates[:, 0, :, :, 0]  # (T B, n, 2)
                psi = columns[:, n - 1]
                for q in range(n - 2, -1, -1):  # lower qubits are less significant bits
                    psi = (psi[:, :, None] * columns[:, q, None, :]).reshape(rows, -1)
                state = psi.reshape(shape)
            else:
                state = apply_product(state, gates[:, layer].transpose(0, 1))  # (n, T B, 2, 2)
            if self.pairs:
                state = apply_permutation(state, self._perm)
        assert state is not None  # the first layer always sets it
        probs = probabilities(state)  # (T B, 2**n)
        return probs.reshape(steps, batch, -1).transpose(0, 1)


def _critic(
    width: int, hidden: int, dtype: torch.dtype, device: torch.device, seed: int
) -> torch.nn.Sequential:
    torch_gen = torch.Generator().manual_seed(seed)
    first, last = torch.nn.Linear(width, hidden), torch.nn.Linear(hidden, 1)
    critic = torch.nn.Sequential(first, torch.nn.ReLU(), last)
    with torch.no_grad():  # torch's default (Kaiming-uniform) init, but from our seed
        for layer in (first, last):
            bound = 1 / math.sqrt(layer.in_features)
            layer.weight.uniform_(-bound, bound, generator=torch_gen)
            layer.bias.uniform_(-bound, bound, generator=torch_gen)
    return critic.to(dtype=dtype, device=device)


def _unit_names(data: Any, n_units: int, n_timesteps: int) -> list[str]:
    if not (hasattr(data, "obs") and hasattr(data, "var")):  # not an AnnData
        return [f"u{u}" for u in range(n_units)]
    var = data.var
    if "unit" in var.columns:
        return [str(u) for u in var["unit"].to_numpy()[:n_units]]
    if n_timesteps == 1:
        return [str(u) for u in var.index]
    return [f"u{u}" for u in range(n_units)]


def _poisson_binomial(p: torch.Tensor) -> torch.Tensor:
    """Distribution ``(rows, n + 1)`` of the number of successes of independent Bernoulli
    ``p`` ``(rows, n)``."""
    dist = torch.ones((p.shape[0], 1), dtype=p.dtype, device=p.device)
    for j in range(p.shape[1]):
        q = p[:, j : j + 1]
        pad = torch.zeros_like(q)
        dist = torch.cat((dist, pad), 1) * (1 - q) + torch.cat((pad, dist), 1) * q
    return dist


def _count_distance(p_gen: torch.Tensor, p_data: torch.Tensor) -> torch.Tensor:
    """Sum over rows of the 1-Wasserstein distances between distributions on ``0 .. n``
    (``(rows, n + 1)`` each)."""
    return torch.cumsum(p_gen - p_data, -1)[..., :-1].abs().sum()


class SpiQGAN:
    """Patch quantum Wasserstein GAN for binary activity data (see the module docstring).

    Parameters
    ----------
    data
        Training samples ``(samples, n_units * n_timesteps)`` in ``{0, 1}``, timestep-major
        (column ``t * n_units + u`` is unit ``u`` at timestep ``t``): an array or an AnnData
        (``X`` or ``layers[layer]``; e.g. :func:`qsimcells.datasets.bin_spike_times`, or
        ``layer="binary"`` of :func:`qsimcells.sim.simulate`).
    n_units
        Units (qubits per sub-circuit), at most 12.
    n_timesteps
        Timesteps (sub-circuits).
    n_layers
        Layers per sub-circuit (noise encoding + trainable RY, RZ + CNOT ladder). The paper uses
        5.
    k_weight
        Weight ``K`` of the K-loss (0: the standard Wasserstein loss).
    rng
        Seed or generator: initial parameters, noise, batches and measurement draws. A fixed
        seed gives the same model, training and samples.
    layer
        AnnData layer holding the activity (``None``: ``X``).
    threshold
        Binarise the data (a value ``> threshold`` is active), e.g. ``0`` for counts.
    readout
        ``"born"`` (measure each sub-circuit: one bit string per timestep from its Born
        probabilities) or ``"marginal"`` (each unit an independent Bernoulli draw from its
        qubit's probability of reading 1).
    noise_scale
        Noise ``z ~ U[0, noise_scale)`` (radians, in ``(0, 2 pi]``; see the module docstring).
    noise_weights
        Train a weight ``w`` per timestep, layer and qubit of the noise encoding,
        ``RX(w z)``, as in the data re-uploading scheme the paper builds on (Perez-Salinas et
        al. 2020, its ref. 43); ``False``: ``RX(z)`` as the paper describes. The weights let
        each sub-circuit tune how much noise it takes in: little gives sharp correlations
        between units of one bin, much gives correlations between bins (through the shared
        noise); with a fixed range a correlated population is fitted barely better than by
        independent units (docs/benchmarks/spiqgan.md).
    lipschitz
        ``"gp"`` (gradient penalty, default) or ``"clip"`` (weight clipping).
    gp_weight
        Weight of the gradient penalty.
    clip
        Weight-clipping bound for ``lipschitz="clip"``.
    n_critic
        Critic updates per generator update (the paper: 2).
    lr_generator, lr_critic
        Adam learning rates. The paper uses 0.05 and 0.002; with them the generator outruns the
        critic and training oscillates here (docs/benchmarks/spiqgan.md), so the defaults are
        0.02 and 0.01.
    betas
        Adam's ``(beta1, beta2)`` for both optimisers (the paper does not give them; WGAN-GP's
        ``(0.5, 0.9)`` by default).
    critic_hidden
        Hidden width of the critic (the paper: 64).
    ema_decay
        Samples, statistics and exported circuits use an exponential moving average of the
        generator's parameters over the training steps (Polyak averaging, a standard cure for
        the oscillation of GAN training; debiased, so the initial parameters carry no weight),
        with this decay; 0 uses the current parameters. The paper does not average.
    dtype
        ``"float32"`` or ``"float64"`` (statevector and critic).
    device
        Torch device of the statevector and the critic.

    Attributes
    ----------
    n_parameters
        Trainable parameters of the quantum generator: one RY and one RZ angle per qubit,
        layer and timestep, plus the noise weight with ``noise_weights=True``, so ``3 *
        n_layers * n_units * n_timesteps`` by default and ``2 * n_layers * n_units *
        n_timesteps`` with :data:`PAPER_SETTINGS`. The paper counts "8 times the number of
        neurons per timestep" for 4 trainable layers (``n_layers=4`` with its settings); with
        its 5 layers this is 10. The last layer's RZ acts just before the Z-basis readout (the
        CNOT ladder only permutes basis states), so it does not change the outputs; it is
        counted all the same, as the paper does.
    history
        One row per generator update: ``critic_loss`` (without the Lipschitz term),
        ``gradient_penalty``, ``wasserstein`` (``mean C(x) - mean C(G(z))``, the critic's
        estimate), ``generator_loss`` (``-mean C(G(z)) + k_weight * K``), ``k_loss``, and
        ``js`` when ``train(js_every=...)``.
    """

    def __init__(
        self,
        data: Any,
        n_units: int,
        n_timesteps: int = 1,
        n_layers: int = 5,
        k_weight: float = 1.0,
        rng: RngLike = None,
        *,
        layer: str | None = None,
        threshold: float | None = None,
        readout: str = "born",
        noise_scale: float = math.pi / 2,
        noise_weights: bool = True,
        lipschitz: str = "gp",
        gp_weight: float = 10.0,
        clip: float = 0.01,
        n_critic: int = 2,
        lr_generator: float = 0.02,
        lr_critic: float = 0.01,
        betas: tuple[float, float] = (0.5, 0.9),
        critic_hidden: int = 64,
        ema_decay: float = 0.99,
        dtype: str = "float32",
        device: Any = "cpu",
    ) -> None:
        from ..nn.statevector import resolve_device, resolve_dtype

        self.n_units = check_positive_int("n_units", n_units)
        self.n_timesteps = check_positive_int("n_timesteps", n_timesteps)
        if self.n_units > MAX_UNITS:
            raise ValueError(
                f"n_units: at most {MAX_UNITS} qubits per sub-circuit (the "
                f"statevector holds 2**n_units amplitudes per sample and "
                f"timestep), got {n_units}"
            )
        self.n_layers = check_positive_int("n_layers", n_layers)
        bits = binary_matrix(data, layer=layer, threshold=threshold)
        width = self.n_units * self.n_timesteps
        if bits.shape[1] != width:
            raise ValueError(
                f"data: has {bits.shape[1]} columns, but n_units * n_timesteps = "
                f"{self.n_units} * {self.n_timesteps} = {width} (columns are "
                "timestep-major: column t * n_units + u is unit u at timestep t)"
            )
        recorded = recorded_layout(data)
        if recorded is not None and recorded != (self.n_units, self.n_timesteps):
            raise ValueError(
                f"n_units, n_timesteps: the AnnData records (n_units, n_timesteps) "
                f"= {recorded}, got ({self.n_units}, {self.n_timesteps})"
            )
        self.k_weight = check_finite("k_weight", k_weight, low=0.0)
        check_choice("readout", readout, READOUTS)
        self.readout = readout
        self.noise_scale = check_finite(
            "noise_scale", noise_scale, low=0.0, high=2 * math.pi, low_open=True
        )
        check_choice("lipschitz", lipschitz, LIPSCHITZ)
        self.lipschitz = lipschitz
        self.gp_weight = check_finite("gp_weight", gp_weight, low=0.0)
        self.clip = check_finite("clip", clip, low=0.0, low_open=True)
        self.n_critic = check_positive_int("n_critic", n_critic)
        self.lr_generator = check_finite("lr_generator", lr_generator, low=0.0, low_open=True)
        self.lr_critic = check_finite("lr_critic", lr_critic, low=0.0, low_open=True)
        given = tuple(betas)
        if len(given) != 2:
            raise ValueError(f"betas: expected (beta1, beta2), got {given!r}")
        beta1, beta2 = (check_finite("betas", b, low=0.0, high=1.0) for b in given)
        self.betas = (beta1, beta2)
        self.critic_hidden = check_positive_int("critic_hidden", critic_hidden)
        self.ema_decay = check_finite("ema_decay", ema_decay, low=0.0)
        if self.ema_decay >= 1:
            raise ValueError(f"ema_decay: must lie in [0, 1), got {ema_decay}")
        check_choice("dtype", dtype, ["float32", "float64"])
        self.dtype = dtype
        self._real = resolve_dtype(dtype)
        self._device = resolve_device(device)

        self.data = bits
        self.unit_names = _unit_names(data, self.n_units, self.n_timesteps)
        self._root = seed_sequence(rng)
        init_seq, critic_seq, noise_seq, batch_seq, sample_seq = np.random.SeedSequence(
            self._root.entropy, spawn_key=self._root.spawn_key
        ).spawn(5)
        init = as_generator(init_seq).uniform(
            0.0, 2 * math.pi, (self.n_timesteps, self.n_layers, self.n_units, 2)
        )
        self.noise_weights = bool(noise_weights)
        self.generator = _Generator(
            self.n_units,
            self.n_timesteps,
            self.n_layers,
            init,
            self._real,
            self._device,
            self.noise_weights,
        )
        self.critic = _critic(
            width,
            self.critic_hidden,
            self._real,
            self._device,
            int(critic_seq.generate_state(1)[0]),
        )
        self._torch_gen = torch.Generator(device=self._device).manual_seed(
            int(noise_seq.generate_state(1, np.uint64)[0] >> np.uint64(1))
        )
        self._batch_gen = as_generator(batch_seq)
        self._sample_gen = as_generator(sample_seq)
        self._opt_g = torch.optim.Adam(
            self.generator.parameters(), lr=self.lr_generator, betas=self.betas
        )
        self._opt_c = torch.optim.Adam(
            self.critic.parameters(), lr=self.lr_critic, betas=self.betas
        )
        self._history: list[dict[str, float]] = []
        # Polyak average of the generator's parameters: sums and the number of updates
        self._average: list[torch.Tensor] | None = None
        self._average_steps = 0
        self._averaged: _Generator | None = None
        # basis state s -> its bits (S, n) and its number of active units (S, n + 1 one-hot)
        states = (np.arange(2**self.n_units)[:, None] >> np.arange(self.n_units)) & 1
        self._states = torch.as_tensor(states, dtype=self._real, device=self._device)
        self._popcount = torch.nn.functional.one_hot(
            torch.as_tensor(states.sum(1), device=self._device), self.n_units + 1
        ).to(self._real)
        # the data's distribution of k per timestep (T, n + 1)
        counts = bits.reshape(-1, self.n_timesteps, self.n_units).sum(2)
        k_data = [
            np.bincount(counts[:, t], minlength=self.n_units + 1) / counts.shape[0]
            for t in range(self.n_timesteps)
        ]
        self._k_data = torch.as_tensor(np.stack(k_data), dtype=self._real, device=self._device)

    # ------------------------------------------------------------------ description
    @property
    def n_parameters(self) -> int:
        """Trainable parameters of the quantum generator (see the class docstring)."""
        return sum(p.numel() for p in self.generator.parameters())

    @property
    def n_critic_parameters(self) -> int:
        """Trainable parameters of the classical critic."""
        return sum(p.numel() for p in self.critic.parameters())

    @property
    def history(self) -> pd.DataFrame:
        """Training history, one row per generator update (see the class docstring)."""
        return pd.DataFrame(self._history).rename_axis("step")

    @property
    def is_trained(self) -> bool:
        """Whether :meth:`train` has run at least one step."""
        return bool(self._history)

    def __repr__(self) -> str:
        return (
            f"SpiQGAN(n_units={self.n_units}, n_timesteps={self.n_timesteps}, "
            f"n_layers={self.n_layers}, k_weight={self.k_weight}, readout="
            f"{self.readout!r}, n_parameters={self.n_parameters}, "
            f"trained_steps={len(self._history)})"
        )

    def _config(self) -> dict[str, Any]:
        return {
            "n_units": self.n_units,
            "n_timesteps": self.n_timesteps,
            "n_layers": self.n_layers,
            "k_weight": self.k_weight,
            "readout": self.readout,
            "noise_scale": self.noise_scale,
            "noise_weights": self.noise_weights,
            "lipschitz": self.lipschitz,
            "gp_weight": self.gp_weight,
            "clip": self.clip,
            "n_critic": self.n_critic,
            "lr_generator": self.lr_generator,
            "lr_critic": self.lr_critic,
            "betas": self.betas,
            "critic_hidden": self.critic_hidden,
            "ema_decay": self.ema_decay,
            "dtype": self.dtype,
        }

    # ------------------------------------------------------------------ generation
    def _update_average(self) -> None:
        """One step of the exponential moving average of the generator's parameters."""
        if not self.ema_decay:
            return
        with torch.no_grad():
            params = [p.detach() for p in self.generator.parameters()]
            if self._average is None:
                self._average = [torch.zeros_like(p) for p in params]
            for acc, p in zip(self._average, params, strict=True):
                acc.mul_(self.ema_decay).add_(p, alpha=1 - self.ema_decay)
        self._average_steps += 1
        self._averaged = None  # rebuilt on the next use

    @property
    def sampling_generator(self) -> _Generator:
        """The generator that samples: the debiased moving average of the trained parameters
        (``ema_decay > 0`` and trained), else the trained generator itself."""
        if not self.ema_decay or self._average is None:
            return self.generator
        if self._averaged is None:
            import copy

            averaged = copy.deepcopy(self.generator)
            debias = 1 - self.ema_decay**self._average_steps
            with torch.no_grad():
                for p, acc in zip(averaged.parameters(), self._average, strict=True):
                    p.copy_(acc / debias)
            averaged.requires_grad_(False)
            self._averaged = averaged
        return self._averaged

    @property
    def _chunk(self) -> int:
        """Samples per generator call when sampling: about 2**22 amplitudes at a time."""
        return max(1, min(4096, 2**22 // (self.n_timesteps * 2**self.n_units)))

    def _noise(self, n: int, torch_gen: torch.Generator) -> torch.Tensor:
        shape = (n, self.n_layers, self.n_units)
        return self.noise_scale * torch.rand(
            shape, generator=torch_gen, dtype=self._real, device=self._device
        )

    def _marginals(self, probs: torch.Tensor) -> torch.Tensor:
        """``(B, T, S)`` Born probabilities -> ``(B, T * n)`` P(unit reads 1)."""
        return (probs @ self._states).reshape(probs.shape[0], -1)

    def _draw(self, probs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
        """Binary samples ``(B, T * n)`` from ``(B, T, S)`` probabilities and uniforms: one
        ``(B, T)`` per timestep for ``"born"``, ``(B, T * n)`` for ``"marginal"``."""
        if self.readout == "marginal":
            return (uniform < self._marginals(probs)).to(self._real)
        cdf = torch.cumsum(probs, -1)
        index = torch.searchsorted(cdf, (uniform * cdf[..., -1]).unsqueeze(-1)).squeeze(-1)
        index = index.clamp_(max=probs.shape[-1] - 1)
        return self._states[index].reshape(probs.shape[0], -1)

    def _uniform_shape(self, n: int) -> tuple[int, ...]:
        return (
            (n, self.n_timesteps)
            if self.readout == "born"
            else (n, self.n_timesteps * self.n_units)
        )

    def _torch_rng(self, rng: RngLike) -> torch.Generator:
        return (
            self._torch_gen
            if rng is None
            else torch.Generator(device=self._device).manual_seed(
                int(as_generator(rng).integers(2**62))
            )
        )

    def state_probabilities(self, n: int, rng: RngLike = None) -> np.ndarray:
        """Born probabilities of each sub-circuit for ``n`` noise draws.

        Parameters
        ----------
        n
            Number of noise draws.
        rng
            Seed or generator (``None``: the model's own stream).

        Returns
        -------
        numpy.ndarray
            ``(n, n_timesteps, 2**n_units)``; state ``s`` has unit ``u`` in bit ``u``.
        """
        n = check_positive_int("n", n)
        torch_gen = self._torch_rng(rng)
        with torch.no_grad():
            chunk = self._chunk
            out = [
                self.sampling_generator(self._noise(min(chunk, n - start), torch_gen))
                for start in range(0, n, chunk)
            ]
        return torch.cat(out).double().cpu().numpy()

    def firing_probabilities(self, n: int, rng: RngLike = None) -> np.ndarray:
        """Each unit's probability of firing, for ``n`` noise draws.

        Parameters
        ----------
        n
            Number of noise draws.
        rng
            Seed or generator (``None``: the model's own stream).

        Returns
        -------
        numpy.ndarray
            ``(n, n_units * n_timesteps)`` in ``[0, 1]``, timestep-major.
        """
        probs = self.state_probabilities(n, rng)
        states = self._states.double().cpu().numpy()
        return np.clip((probs @ states).reshape(probs.shape[0], -1), 0.0, 1.0)

    def sample(
        self, n: int, rng: RngLike = None, *, as_anndata: bool = False
    ) -> np.ndarray | AnnData:
        """Binary samples: one noise draw per sample, then the readout (one Born measurement
        per sub-circuit, or a Bernoulli draw per unit).

        Parameters
        ----------
        n
            Number of samples (rows).
        rng
            Seed or generator (``None``: the model's own stream). The same seed gives the same
            samples.
        as_anndata
            Return an activity AnnData (CSR ``X``, ``var`` with ``unit`` and ``timestep``).

        Returns
        -------
        numpy.ndarray or anndata.AnnData
            ``(n, n_units * n_timesteps)`` uint8, timestep-major.
        """
        n = check_positive_int("n", n)
        if rng is None:
            noise_gen, draw_gen, seed = self._torch_gen, self._sample_gen, None
        else:
            root = seed_sequence(rng)
            noise_seq, draw_seq = np.random.SeedSequence(
                root.entropy, spawn_key=root.spawn_key
            ).spawn(2)
            noise_gen, draw_gen = self._torch_rng(noise_seq), as_generator(draw_seq)
            seed = seed_record(root)
        chunks = []
        with torch.no_grad():
            for start in range(0, n, self._chunk):
                size = min(self._chunk, n - start)
                probs = self.sampling_generator(self._noise(size, noise_gen))
                uniform = torch.as_tensor(
                    draw_gen.random(self._uniform_shape(size)),
                    dtype=probs.dtype,
                    device=self._device,
                )
                chunks.append(self._draw(probs, uniform).cpu().numpy())
        bits = np.concatenate(chunks).astype(np.uint8)
        if not as_anndata:
            return bits
        record = {
            "generator": "spiqgan",
            "seed": seed,
            "model": {
                **self._config(),
                "betas": list(self.betas),
                "n_parameters": self.n_parameters,
                "trained_steps": len(self._history),
            },
        }
        return activity_anndata(
            bits, self.n_units, self.n_timesteps, unit_names=self.unit_names, record=record
        )

    # ------------------------------------------------------------------ training
    def _real_batch(self, batch_size: int) -> torch.Tensor:
        rows = self._batch_gen.integers(0, self.data.shape[0], batch_size)
        return torch.as_tensor(self.data[rows], dtype=self._real, device=self._device)

    def _fake_batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Born probabilities ``(B, T, S)`` (with gradient) and a binary sample drawn from
        them."""
        probs = self.generator(self._noise(batch_size, self._torch_gen))
        uniform = torch.rand(
            self._uniform_shape(batch_size),
            generator=self._torch_gen,
            dtype=self._real,
            device=self._device,
        )
        with torch.no_grad():
            bits = self._draw(probs, uniform)
        return probs, bits

    def _gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        eps = torch.rand(
            (real.shape[0], 1), generator=self._torch_gen, dtype=self._real, device=self._device
        )
        mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.critic(mixed).sum(), mixed, create_graph=True)
        return ((grad.norm(dim=1) - 1) ** 2).mean()

    def _critic_step(self, batch_size: int) -> dict[str, float]:
        real = self._real_batch(batch_size)
        with torch.no_grad():
            _, fake = self._fake_batch(batch_size)
        c_real, c_fake = self.critic(real).mean(), self.critic(fake).mean()
        loss = 0.5 * (c_fake - c_real)
        penalty = (
            self._gradient_penalty(real, fake)
            if self.lipschitz == "gp"
            else torch.zeros((), dtype=self._real, device=self._device)
        )
        self._opt_c.zero_grad(set_to_none=True)
        (loss + self.gp_weight * penalty).backward()
        self._opt_c.step()
        if self.lipschitz == "clip":
            with torch.no_grad():
                for p in self.critic.parameters():
                    p.clamp_(-self.clip, self.clip)
        return {
            "critic_loss": loss.item(),
            "gradient_penalty": penalty.item(),
            "wasserstein": (c_real - c_fake).item(),
        }

    def _local_critic(self, bits: torch.Tensor) -> torch.Tensor:
        """Critic values with one part of each sample replaced by each of its alternatives:
        ``(B, T, S)`` (timestep ``t`` set to state ``s``) for ``"born"``, ``(B, T * n)`` (the
        value with the unit on minus with it off) for ``"marginal"``."""
        first, last = self.critic[0], self.critic[2]
        assert isinstance(first, torch.nn.Linear) and isinstance(last, torch.nn.Linear)
        base = first(bits)  # (B, H); the first layer is linear, so parts swap in and out
        n, w = self.n_units, first.weight  # (H, T n)
        if self.readout == "marginal":
            on = base[:, None, :] + (1 - bits)[..., None] * w.T[None]  # (B, T n, H)
            off = base[:, None, :] - bits[..., None] * w.T[None]
            return (torch.relu(on) - torch.relu(off)) @ last.weight[0]
        out = []
        for t in range(self.n_timesteps):
            w_t = w[:, t * n : (t + 1) * n]  # (H, n)
            own = bits[:, t * n : (t + 1) * n] @ w_t.T  # (B, H)
            swapped = (base - own)[:, None, :] + (self._states @ w_t.T)[None]  # (B, S, H)
            out.append(torch.relu(swapped) @ last.weight[0] + last.bias[0])
        return torch.stack(out, 1)

    def _k_loss(self, probs: torch.Tensor) -> torch.Tensor:
        """K-loss of a batch's probabilities ``(B, T, S)``: the W1 distances between the
        generated and the data's distributions of k, one per timestep, summed and divided by
        ``sqrt(T)`` (see the module docstring)."""
        if self.readout == "born":
            k_gen = (probs @ self._popcount).mean(0)  # (T, n + 1)
        else:
            marginals = self._marginals(probs).reshape(-1, self.n_units)
            k_gen = (
                _poisson_binomial(marginals).reshape(probs.shape[0], self.n_timesteps, -1).mean(0)
            )
        return _count_distance(k_gen, self._k_data) / math.sqrt(self.n_timesteps)

    def _generator_step(self, batch_size: int) -> dict[str, float]:
        probs, bits = self._fake_batch(batch_size)
        with torch.no_grad():
            local = self._local_critic(bits)
            value = self.critic(bits).mean()
        if self.readout == "born":
            # sum_t sum_s P_t(s) C(x_{-t}, s): its gradient is that of E[C] (local expectations)
            surrogate = -(probs * local).sum((1, 2)).mean()
        else:
            surrogate = -(self._marginals(probs) * local).sum(1).mean()
        k_loss = self._k_loss(probs)
        loss = surrogate + self.k_weight * k_loss if self.k_weight else surrogate
        self._opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self._opt_g.step()
        self._update_average()
        return {
            "generator_loss": -value.item() + self.k_weight * k_loss.item(),
            "k_loss": k_loss.item(),
        }

    def train(
        self,
        n_steps: int = 1000,
        batch_size: int = 64,
        *,
        progress: bool = True,
        js_every: int | None = None,
        js_samples: int = 2000,
    ) -> pd.DataFrame:
        """Adversarial training: ``n_critic`` critic updates, then one generator update, per
        step.

        Parameters
        ----------
        n_steps
            Generator updates. Calling :meth:`train` again continues training.
        batch_size
            Real and generated samples per update.
        progress
            Show a tqdm progress bar.
        js_every
            Every this many steps, record the Jensen-Shannon divergence of ``js_samples``
            generated samples from the training data (see
            :func:`qsimcells.tl.spike_statistics`) in ``history["js"]``; ``None``: never.
        js_samples
            Generated samples per JS evaluation.

        Returns
        -------
        pandas.DataFrame
            The full :attr:`history`.
        """
        from tqdm.auto import tqdm

        n_steps = check_positive_int("n_steps", n_steps)
        batch_size = check_positive_int("batch_size", batch_size)
        if js_every is not None:
            js_every = check_positive_int("js_every", js_every)
            js_samples = check_positive_int("js_samples", js_samples)
        bar = tqdm(range(n_steps), desc="SpiQGAN", unit="step", disable=not progress)
        for _ in bar:
            for _ in range(self.n_critic):
                record = self._critic_step(batch_size)
            record.update(self._generator_step(batch_size))
            step = len(self._history)
            if js_every is not None and (step + 1) % js_every == 0:
                record["js"] = self._js(js_samples, step)
            self._history.append(record)
            if step % 10 == 0:
                bar.set_postfix(W=f"{record['wasserstein']:.3f}", K=f"{record['k_loss']:.3f}")
        return self.history

    def _js(self, n: int, step: int) -> float:
        from ..tl.spikes import spike_statistics

        fake = self.sample(n, np.random.default_rng([step, 1]))  # leaves the model's streams
        return spike_statistics(
            self.data, fake, n_units=self.n_units, n_timesteps=self.n_timesteps
        )["js"]

    # ------------------------------------------------------------------ export
    def to_qiskit(self, noise: Any = None, *, measure: bool = False) -> list[QuantumCircuit]:
        """The generator's sub-circuits as Qiskit circuits, one per timestep.

        Parameters
        ----------
        noise
            ``(n_layers, n_units)`` noise angles to bind. ``None``: the ``RX`` angles stay free
            parameters ``z[l * n_units + q]`` (shared by all sub-circuits), bound later with
            ``circuit.assign_parameters``.
        measure
            Measure every qubit (qubit ``q`` into clbit ``q``).

        Returns
        -------
        list of qiskit.QuantumCircuit
            Element ``t`` is sub-circuit ``t`` on ``n_units`` qubits; its qubit ``q`` reads unit
            ``q`` at timestep ``t``.
        """
        from qiskit import QuantumCircuit
        from qiskit.circuit import ParameterVector

        L, n = self.n_layers, self.n_units
        if noise is None:
            vector = ParameterVector("z", L * n)
            angles = [[vector[layer * n + q] for q in range(n)] for layer in range(L)]
        else:
            arr = np.asarray(
                noise.detach().cpu().numpy() if hasattr(noise, "detach") else noise,
                dtype=np.float64,
            )
            if arr.shape != (L, n):
                raise ValueError(
                    f"noise: expected shape (n_layers, n_units) = {(L, n)}, got {arr.shape}"
                )
            if not np.isfinite(arr).all():
                raise ValueError("noise: angles must be finite")
            angles = arr.tolist()
        generator = self.sampling_generator
        weights = generator.weights.detach().double().cpu().numpy()
        scales = generator.noise_weights.detach().double().cpu().numpy()
        circuits = []
        for t in range(self.n_timesteps):
            qc = QuantumCircuit(n, name=f"spiqgan_t{t}")
            for layer in range(L):
                for q in range(n):
                    scale = float(scales[t, layer, q])
                    qc.rx(angles[layer][q] if scale == 1.0 else scale * angles[layer][q], q)
                    qc.ry(float(weights[t, layer, q, 0]), q)
                    qc.rz(float(weights[t, layer, q, 1]), q)
                for control, target in self.generator.pairs:
                    qc.cx(control, target)
            if measure:
                qc.measure_all()
            circuits.append(qc)
        return circuits

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save the model (settings, parameters, optimiser states, history and the training
        data) to the folder ``path``, in a format that loads without running code:
        ``spiqgan.json`` (settings, unit names, seed, history) and ``spiqgan.pt`` (tensors
        only, read back with ``torch.load(weights_only=True)``).

        Parameters
        ----------
        path
            Folder to create.
        overwrite
            Replace an existing save.

        Returns
        -------
        pathlib.Path
            The folder written: first as a temporary folder beside it, then renamed into
            place, so a failed save leaves the previous one intact.
        """
        with atomic_folder(path, overwrite, field="path") as tmp:
            self._write(tmp)
        return Path(path).expanduser().absolute()

    def _write(self, folder: Path) -> None:
        config = self._config()
        config["betas"] = list(config["betas"])
        (folder / _META).write_text(
            json.dumps(
                {
                    "format": "qsimcells.SpiQGAN",
                    "version": _FORMAT,
                    "config": config,
                    "device": str(self._device),
                    "n_samples": int(self.data.shape[0]),
                    "unit_names": [str(u) for u in self.unit_names],
                    "seed": seed_record(self._root),
                    "history": [{k: _plain(v) for k, v in row.items()} for row in self._history],
                    "average_steps": int(self._average_steps),
                },
                indent=1,
            )
        )
        torch.save(
            {
                "data": torch.from_numpy(np.packbits(self.data, axis=1)),
                "generator": self.generator.state_dict(),
                "critic": self.critic.state_dict(),
                "opt_generator": self._opt_g.state_dict(),
                "opt_critic": self._opt_c.state_dict(),
                "average": self._average,
            },
            folder / _TENSORS,
        )

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: Any = None, trusted: bool = False) -> SpiQGAN:
        """Load a model written by :meth:`save`; nothing in the files runs.

        Parameters
        ----------
        path
            The folder given to :meth:`save` (or a file in it).
        device
            Torch device (default: the one it was saved from).
        trusted
            Also read a save of the old format (one ``spiqgan.pt`` pickle, before
            ``spiqgan.json`` existed), which unpickling can make run code: only for a file you
            trust. Convert such a save once with
            ``qs.model.SpiQGAN.load(old, trusted=True).save(new)``.

        Returns
        -------
        SpiQGAN
            The model, ready to sample or to continue training (with fresh random streams
            derived from the stored seed).

        Raises
        ------
        UnsafeFileError
            For a save of the old format without ``trusted=True``, or a ``spiqgan.pt`` that
            holds anything but tensors and plain containers.
        """
        if not isinstance(trusted, bool):
            raise TypeError(f"trusted: expected True or False, got {trusted!r}")
        folder = Path(path)
        if folder.is_file():
            folder = folder.parent
        if not (folder / _META).is_file() and not (folder / _TENSORS).is_file():
            raise FileNotFoundError(f"path: no saved SpiQGAN at {str(path)!r}")
        if not (folder / _META).is_file():
            if not trusted:
                raise UnsafeFileError(
                    f"path: {str(folder / _TENSORS)!r} is a SpiQGAN save of the old format (one "
                    "pickle, which loading would have to unpickle, and unpickling can run code "
                    "from the file); refused. If you trust the file, convert it once: "
                    "qs.model.SpiQGAN.load(path, trusted=True).save(new_path)"
                )
            return cls._from_saved(_legacy_save(folder / _TENSORS), device, folder)
        meta = read_json(folder / _META, "SpiQGAN")
        if not isinstance(meta, dict) or meta.get("format") != "qsimcells.SpiQGAN":
            raise unreadable("SpiQGAN", folder / _META, ValueError("not a SpiQGAN description"))
        if meta.get("version") != _FORMAT:
            raise ValueError(
                f"path: {str(folder)!r} is a SpiQGAN save of format version "
                f"{meta.get('version')!r}; this qsimcells reads version {_FORMAT}"
            )
        tensors = read_torch(
            folder / _TENSORS,
            "SpiQGAN",
            trust_hint=("a SpiQGAN save holds tensors only; re-save the model with SpiQGAN.save"),
        )
        try:
            saved = {**meta, **tensors, "data": tensors["data"].numpy()}
        except (KeyError, AttributeError, TypeError) as err:
            raise unreadable("SpiQGAN", folder / _TENSORS, err) from None
        return cls._from_saved(saved, device, folder)

    @classmethod
    def _from_saved(cls, saved: dict[str, Any], device: Any, folder: Path) -> SpiQGAN:
        try:
            config = dict(saved["config"])
            width = config["n_units"] * config["n_timesteps"]
            data = np.unpackbits(np.asarray(saved["data"]), axis=1, count=width)[
                : saved["n_samples"]
            ]
            seed = saved["seed"]
            model = cls(
                data,
                rng=int(seed)
                if isinstance(seed, (int, np.integer)) or str(seed).isdigit()
                else None,
                betas=tuple(config.pop("betas")),
                device=device or saved["device"],
                **config,
            )
            model.unit_names = list(saved["unit_names"])
            model.generator.load_state_dict(saved["generator"])
            model.critic.load_state_dict(saved["critic"])
            model._opt_g.load_state_dict(saved["opt_generator"])
            model._opt_c.load_state_dict(saved["opt_critic"])
            model._history = list(saved["history"])
            if saved["average"] is not None:
                model._average = [t.to(model._device) for t in saved["average"]]
            model._average_steps = saved["average_steps"]
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise unreadable("SpiQGAN", folder, err) from None
        return model


def _plain(value: Any) -> Any:
    """A history value as JSON stores it (numpy scalars become Python numbers)."""
    return value.item() if isinstance(value, np.generic) else value


def _legacy_save(file: Path) -> dict[str, Any]:
    """A save of format version 1 (one pickle), for a file the user trusts."""
    try:
        saved = torch.load(file, map_location="cpu", weights_only=False)
        dict(saved["config"])
    except Exception as err:  # truncated, damaged or another program's file
        raise unreadable("SpiQGAN", file, err) from None
    return saved


# the generator this model registers (by name, in qsimcells.plugins.builtins)
def spiqgan_generator(model: Any = None, n_cells: int = 1000, *, rng: Any = None) -> AnnData:
    """Binary activity from a trained SpiQGAN (see :meth:`qsimcells.model.SpiQGAN.sample`).

    ``model`` is a trained :class:`~qsimcells.model.SpiQGAN` or the folder of a saved one;
    ``n_cells`` rows (samples of ``n_units * n_timesteps`` columns) come back as an activity
    AnnData. torch loads only when this runs.
    """
    if model is None:
        raise ValueError(
            "model: the 'spiqgan' generator needs a trained SpiQGAN or the path of "
            "a saved one (qs.sim.generate('spiqgan', model=..., n_cells=...))"
        )
    if isinstance(model, (str, os.PathLike)):
        model = SpiQGAN.load(os.fspath(model))
    elif not isinstance(model, SpiQGAN):
        raise TypeError(
            f"model: expected a trained SpiQGAN or the path of a saved one, got "
            f"{type(model).__name__}"
        )
    if not model.is_trained:
        raise ValueError("model: the SpiQGAN is not trained (call model.train() first)")
    return model.sample(n_cells, rng, as_anndata=True)
