"""The torch module of :class:`~qsimcells.model.QPerturb` (projection, core, decoder, bypass)."""

from __future__ import annotations

import torch

from ..nn import QuantumLayer


class QPerturbModule(torch.nn.Module):
    """``x_c + decoder(core(project([z_c, f_p])))`` [``+ bypass([z_c, f_p])``]
    [``+ gain * prior_p``].

    ``core`` is the re-uploading :class:`~qsimcells.nn.QuantumLayer` (XYZ readout, outputs in
    ``[-1, 1]``) or, for the classical control, a tanh MLP of the same input and output width.
    """

    def __init__(
        self,
        n_inputs: int,
        n_genes: int,
        *,
        n_qubits: int,
        n_layers: int,
        entanglement: str,
        core: str,
        bypass: bool,
        bypass_hidden: int,
        mlp_hidden: int,
        network_prior: bool = False,
    ) -> None:
        super().__init__()
        self.project = torch.nn.Linear(n_inputs, n_qubits)
        n_core = 3 * n_qubits
        self.core: torch.nn.Module  # the PQC, or the classical MLP control
        if core == "quantum":
            # initial angles from torch's seed, so one seed fixes every weight of the model
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
            self.core = QuantumLayer(
                n_qubits,
                n_layers,
                readout="xyz",
                entanglement=entanglement,
                reupload=True,
                rng=seed,
            )
        else:
            self.core = torch.nn.Sequential(
                torch.nn.Linear(n_qubits, mlp_hidden),
                torch.nn.Tanh(),
                torch.nn.Linear(mlp_hidden, n_core),
                torch.nn.Tanh(),
            )
        self.decoder = torch.nn.Linear(n_core, n_genes)
        # start from "no shift": the decoder learns the delta from zero
        torch.nn.init.zeros_(self.decoder.weight)
        torch.nn.init.zeros_(self.decoder.bias)
        # the network prior's shift enters the delta with a learned gain per gene (from 1)
        self.prior_gain = torch.nn.Parameter(torch.ones(n_genes)) if network_prior else None
        self.bypass = None
        if bypass:
            self.bypass = torch.nn.Sequential(
                torch.nn.Linear(n_inputs, bypass_hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(bypass_hidden, n_genes),
            )

    def core_outputs(self, latent: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        """The core's outputs for control latents and perturbation features."""
        return self.core(self.project(torch.cat([latent, feature], dim=1)))

    def delta(
        self, latent: torch.Tensor, feature: torch.Tensor, prior: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predicted shift of log-normalised expression (``prior``: the network prior's
        expected shift of every gene, when the model has one)."""
        u = torch.cat([latent, feature], dim=1)
        out = self.decoder(self.core(self.project(u)))
        if self.bypass is not None:
            out = out + self.bypass(u)
        if self.prior_gain is not None:
            assert prior is not None  # a model with a network prior is given its shift
            out = out + self.prior_gain * prior
        return out

    def forward(
        self,
        control_x: torch.Tensor,
        latent: torch.Tensor,
        feature: torch.Tensor,
        prior: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predicted expression: the control cell plus the delta (skip connection)."""
        return control_x + self.delta(latent, feature, prior)
