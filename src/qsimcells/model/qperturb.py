"""``QPerturb``: the hybrid PQC perturbation-response model of the VCC seed ("delta prediction").

For a control cell ``c`` and a perturbation ``p`` the model predicts the cell's state under ``p`` as
``x_c + delta(c, p)`` (the skip connection), in log-normalised expression: ``log1p`` of counts
scaled to the training screen's median library size, the space the VCC metrics (cell-eval) score
counts in; :meth:`QPerturb.normalize` puts any cells on that scale::

    u      = [z_c, f_p]                      frozen backbone latent of c, feature of p
    angles = Linear(u)                       (n_qubits RX angles)
    q      = QuantumLayer(angles)            re-uploading PQC, <X>, <Y>, <Z> of every qubit
    delta  = Linear(q)  [+ MLP(u)]           linear decoder [+ the seed's classical bypass]

``z_c`` comes from a frozen backbone (:mod:`qsimcells.model._backbone`: PCA fitted on control
cells by default, or a trained scvi-tools model), and ``f_p`` is the mean latent shift of an
in-silico knockout / overexpression of the perturbed gene(s), made from control cells alone, so
it exists for genes never perturbed in training. Both are scaled by the control latent's
standard deviation. ``core="mlp"`` swaps the PQC for a small tanh MLP with the same inputs and
outputs (the classical control of the benchmark).

Training pairs every perturbed cell ``x`` of the training perturbations with a random control
cell ``c`` and minimises the mean squared error of ``delta(c, p)`` against ``x - mean(control)``.
Cells are not paired, so the target is the perturbed cell's shift from the *mean* control: its
optimum is the shift of the means, ``E[x | p] - E[x_c]``, and a prediction keeps the spread of
real control cells. (Fitting ``x_c + delta`` to ``x`` instead would teach the delta to cancel
each control cell's own noise, i.e. to predict every cell as the mean, which collapses the
predicted cells and is not the seed's "delta prediction".)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from .._utils import (
    MissingKeyError,
    RngLike,
    as_generator,
    check_choice,
    check_finite,
    check_positive_int,
)
from ..tl._preprocess import check_adata, counts, log_normalize
from ._backbone import PCABackbone, make_backbone, perturbation_features
from ._network_prior import NetworkPrior, network_edges
from ._persist import atomic_folder, read_json, read_npz, read_torch, unreadable

__all__ = ["QPerturb"]

SETUP_KEY = "_qperturb"
KINDS = ("knockout", "overexpress")
#: control cells used to build a perturbation's feature (an in-silico intervention)
FEATURE_CELLS = 500


class QPerturb:
    """Hybrid quantum-classical model of perturbation responses (the VCC seed's prototype).

    Parameters
    ----------
    adata
        A screen set up with :meth:`setup_anndata` (raw counts; e.g. from
        :func:`qsimcells.sim.perturbation_screen`). Its perturbations are the training set.
    backbone
        ``"pca"`` (fitted on the control cells, ``n_components`` wide), a trained scvi-tools model
        on the same genes (its latent mean is used, frozen), or any object with ``n_latent`` and
        ``encode(counts) -> (cells, n_latent)``.
    n_components
        Width of the PCA backbone.
    n_qubits, n_layers, entanglement
        The :class:`~qsimcells.nn.QuantumLayer` (XYZ readout, re-uploading).
    core
        ``"quantum"`` (the PQC) or ``"mlp"`` (a tanh MLP ``n_qubits -> mlp_hidden -> 3 n_qubits``
        in its place: the classical model of the same shape).
    bypass
        Add the seed's classical bypass, an MLP from ``u`` to the delta, in parallel.
    bypass_hidden, mlp_hidden
        Hidden widths of the bypass and of the MLP core.
    network
        The gene-network prior (GEARS's idea; :mod:`qsimcells.model._network_prior`): an
        intervention's change of ON probability travels over a gene-gene graph for ``n_hops``
        edges, with per-edge slopes ``P(t ON | s ON) - P(t ON | s OFF)`` from the control cells,
        and gives an expected shift of every gene. It is added to the delta with a learned
        gain per gene, and its projection on the control cells' principal axes joins the
        perturbation feature, so an unseen knockout is carried by its place in the network.
        ``None``: no prior (the seed's model). ``"correlation"``: the graph of
        :func:`qsimcells.tl.correlation_network` on the control cells (Pearson,
        ``|r| > network_threshold``; undirected). A DataFrame with columns ``source``,
        ``target``: your graph (directed unless ``df.attrs["directed"]`` is False).
        ``"truth"``: the simulator's programmed gates, directed, from ``uns["qsimcells"]``: an
        upper bound that no real screen offers.
    network_threshold
        ``|r|`` above which the correlation graph keeps an edge, in ``[0, 1]``.
    n_hops
        Edges an intervention's change travels along.
    seed
        Seeds the weights and the training minibatches.
    """

    def __init__(
        self,
        adata: AnnData,
        *,
        backbone: Any = "pca",
        n_components: int = 32,
        n_qubits: int = 8,
        n_layers: int = 3,
        entanglement: str = "ring",
        core: str = "quantum",
        bypass: bool = False,
        bypass_hidden: int = 128,
        mlp_hidden: int = 24,
        network: Any = None,
        network_threshold: float = 0.2,
        n_hops: int = 3,
        seed: int = 0,
    ) -> None:
        setup = _setup_of(adata)
        check_choice("core", core, ["quantum", "mlp"])
        check_choice("entanglement", entanglement, ["ring", "linear", "none"])
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
        if not isinstance(bypass, bool):
            raise TypeError(f"bypass: expected True or False, got {bypass!r}")
        self.adata = adata
        self.setup = setup
        self.config: dict[str, Any] = {
            "n_components": check_positive_int("n_components", n_components),
            "n_qubits": check_positive_int("n_qubits", n_qubits),
            "n_layers": check_positive_int("n_layers", n_layers),
            "entanglement": entanglement,
            "core": core,
            "bypass": bypass,
            "bypass_hidden": check_positive_int("bypass_hidden", bypass_hidden),
            "mlp_hidden": check_positive_int("mlp_hidden", mlp_hidden),
            "network": None
            if network is None
            else (network if isinstance(network, str) else "table"),
            "network_threshold": check_finite(
                "network_threshold", network_threshold, low=0.0, high=1.0
            ),
            "n_hops": check_positive_int("n_hops", n_hops),
            "seed": int(seed),
        }
        X = counts(adata, setup["layer"])
        labels = adata.obs[setup["perturbation_key"]].astype(str).to_numpy()
        control_rows = np.flatnonzero(labels == setup["control"])
        self.genes = adata.var_names.astype(str).tolist()
        self._control_counts = X[control_rows]
        # the VCC metrics' scale (cell-eval / scanpy normalize_total): the median library size
        self.target_sum = float(np.median(np.asarray(X.sum(axis=1)).ravel()))
        self.backbone = make_backbone(backbone, n_components, self._control_counts, self.genes)
        control_expr = log_normalize(self._control_counts, self.target_sum)
        self._control_expr = control_expr.toarray().astype(np.float32)
        latent = np.asarray(self.backbone.encode(self._control_counts), dtype=np.float64)
        # centred and scaled by the control cells' spread; a dimension that does not vary
        # keeps scale 1 instead of being blown up
        spread = latent.std(axis=0)
        self._latent_mean = latent.mean(axis=0)
        self._latent_scale = np.where(spread > 1e-6 * max(spread.max(), 1e-12), spread, 1.0)
        self._control_latent = ((latent - self._latent_mean) / self._latent_scale).astype(
            np.float32
        )
        # the control cells that define perturbation features: a seeded random subset, so a
        # screen sorted by batch or cell line does not bias them
        n_feature = min(FEATURE_CELLS, len(control_rows))
        pick = np.sort(
            np.random.default_rng(self.config["seed"]).choice(
                len(control_rows), n_feature, replace=False
            )
        )
        self._feature_counts = self._control_counts[pick]
        self._feature_reference = np.asarray(
            self.backbone.encode(self._feature_counts), dtype=np.float64
        )
        self._feature_cache: dict[tuple[str, str], np.ndarray] = {}
        self.network_: dict[str, Any] | None = None
        self._prior: NetworkPrior | None = None
        if network is not None:
            self._build_prior(network, adata, control_rows)
        self.perturbations = _training_perturbations(adata, setup)
        self.module = self._build_module()
        self.history_: list[dict[str, float]] = []
        self.validation_perturbations_: list[str] = []
        self.is_trained = False

    # ----------------------------------------------------------------------------------------
    # set-up

    @staticmethod
    def setup_anndata(
        adata: AnnData,
        perturbation_key: str = "perturbation",
        control: str = "control",
        layer: str | None = None,
        kind_key: str | None = "perturbation_kind",
    ) -> None:
        """Register the screen's fields (stored in ``adata.uns["_qperturb"]``).

        Parameters
        ----------
        adata
            Raw counts of control and perturbed cells.
        perturbation_key
            ``obs`` column of perturbation labels: gene names, ``"G1+G5"`` for combinations.
        control
            The label of the unperturbed cells.
        layer
            Layer of the counts (default ``X``).
        kind_key
            ``obs`` column with ``"knockout"`` / ``"overexpress"`` per cell (as
            :func:`~qsimcells.sim.perturbation_screen` writes); missing or ``None``: knockouts.
        """
        check_adata(adata)
        if perturbation_key not in adata.obs:
            raise MissingKeyError(
                f"perturbation_key: {perturbation_key!r} is not an obs column; "
                f"available: {list(adata.obs.columns)}"
            )
        counts(adata, layer)  # raw counts, finite and >= 0
        labels = adata.obs[perturbation_key].astype(str)
        if not (labels == control).any():
            raise ValueError(
                f"control: no cell has {perturbation_key} == {control!r}; labels "
                f"present: {sorted(labels.unique())[:12]}"
            )
        if (labels == control).sum() < 2:
            raise ValueError("control: at least 2 control cells are needed")
        if labels.nunique() < 2:
            raise ValueError("adata: no perturbed cells (only the control label is present)")
        genes = set(adata.var_names.astype(str))
        unknown = sorted(
            {
                g
                for lab in labels.unique()
                if lab != control
                for g in lab.split("+")
                if g not in genes
            }
        )
        if unknown:
            raise ValueError(
                f"{perturbation_key}: perturbations must name genes of var_names "
                f"('G1' or 'G1+G5'); not genes: {unknown[:12]}"
            )
        if kind_key is not None and kind_key not in adata.obs:
            if kind_key != "perturbation_kind":  # only the default name may be absent
                raise MissingKeyError(
                    f"kind_key: {kind_key!r} is not an obs column; available: "
                    f"{list(adata.obs.columns)} (None: every perturbation is a "
                    "knockout)"
                )
            kind_key = None
        if kind_key is not None:
            kinds = set(adata.obs.loc[(labels != control).to_numpy(), kind_key].astype(str))
            if not kinds <= set(KINDS):
                raise ValueError(
                    f"kind_key: obs[{kind_key!r}] must be one of {list(KINDS)} for "
                    f"perturbed cells, got {sorted(kinds - set(KINDS))}"
                )
        setup = {
            "perturbation_key": perturbation_key,
            "control": str(control),
            "layer": layer,
            "kind_key": kind_key,
        }
        _training_perturbations(adata, setup)  # one kind per label
        adata.uns[SETUP_KEY] = setup

    def _build_prior(self, network: Any, adata: AnnData, control_rows: np.ndarray) -> None:
        """The network prior and the principal axes its shifts are projected on."""
        c = self.config
        edges, directed, source = network_edges(
            network, adata, control_rows, self.genes, c["network_threshold"]
        )
        index = pd.Index(self.genes)
        expr = self._control_expr.astype(np.float64)
        self._prior = NetworkPrior(
            self._control_counts,
            expr,
            (index.get_indexer(edges["source"]), index.get_indexer(edges["target"])),
            directed=directed,
            n_hops=c["n_hops"],
        )
        k = min(self._control_latent.shape[1], *expr.shape)
        centred = expr - expr.mean(axis=0)
        axes = np.linalg.svd(centred, full_matrices=False)[2][:k]
        spread = (centred @ axes.T).std(axis=0)
        self._prior_axes = axes / np.where(spread > 0, spread, 1.0)[:, None]
        self._prior_cache: dict[tuple[str, str], np.ndarray] = {}
        self.network_ = {
            "source": source,
            "directed": directed,
            "n_edges": len(edges),
            "edges": edges,
            "upper_bound": source == "truth",
        }

    def _prior_shift(self, label: str, kind: str) -> np.ndarray:
        """The network prior's expected shift of every gene (all genes of a combination
        intervened together)."""
        key = (label, kind)
        if key not in self._prior_cache:
            if self._prior is None:
                raise RuntimeError("the model has no network prior (network=None)")
            genes = [self.genes.index(g) for g in label.split("+")]
            self._prior_cache[key] = self._prior.shift(genes, kind).astype(np.float32)
        return self._prior_cache[key]

    def _build_module(self) -> Any:
        import torch

        from ._qperturb_module import QPerturbModule

        c = self.config
        # the seed fixes every initial weight without touching the user's torch RNG
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c["seed"])
            n_prior = 0 if self._prior is None else self._prior_axes.shape[0]
            return QPerturbModule(
                n_inputs=2 * self._control_latent.shape[1] + n_prior,
                n_genes=len(self.genes),
                n_qubits=c["n_qubits"],
                n_layers=c["n_layers"],
                entanglement=c["entanglement"],
                core=c["core"],
                bypass=c["bypass"],
                bypass_hidden=c["bypass_hidden"],
                mlp_hidden=c["mlp_hidden"],
                network_prior=self._prior is not None,
            )

    @property
    def n_parameters(self) -> int:
        """Trainable parameters (the backbone is frozen and not counted)."""
        return int(sum(p.numel() for p in self.module.parameters() if p.requires_grad))

    def __repr__(self) -> str:
        c = self.config
        return (
            f"QPerturb(core={c['core']!r}, n_qubits={c['n_qubits']}, "
            f"n_layers={c['n_layers']}, bypass={c['bypass']}, backbone="
            f"{getattr(self.backbone, 'kind', type(self.backbone).__name__)}, "
            f"{len(self.perturbations)} training perturbations, "
            f"{self.n_parameters} parameters, trained={self.is_trained})"
        )

    # ----------------------------------------------------------------------------------------
    # features

    def _feature(self, label: str, kind: str) -> np.ndarray:
        """The perturbation feature: the latent shift of an in-silico intervention of each gene
        (cached per gene and kind), summed over the genes of a combination."""
        total = np.zeros(self._control_latent.shape[1], dtype=np.float32)
        for gene in label.split("+"):
            key = (gene, kind)
            if key not in self._feature_cache:
                shift = perturbation_features(
                    self.backbone,
                    self._feature_counts,
                    self.genes.index(gene),
                    kind,
                    self._feature_reference,
                )
                self._feature_cache[key] = (shift / self._latent_scale).astype(np.float32)
            total += self._feature_cache[key]
        if self._prior is not None:  # where the network carries the intervention
            prior = self._prior_axes @ self._prior_shift(label, kind).astype(np.float64)
            total = np.concatenate([total, prior.astype(np.float32)])
        return total

    def _parse(self, perturbations: Any, kind: str | None) -> dict[str, str]:
        """label -> kind for ``predict``; labels must name genes of the screen. ``kind=None``:
        a label's training kind, a knockout for an unseen one."""
        if kind is not None:
            check_choice("kind", kind, list(KINDS))
        if perturbations is None:
            return {label: kind or trained for label, trained in self.perturbations.items()}
        if isinstance(perturbations, str):
            perturbations = [perturbations]
        if isinstance(perturbations, Mapping):
            parsed = {str(k): str(v) for k, v in perturbations.items()}
        elif isinstance(perturbations, Iterable):
            labels = [str(label) for label in perturbations]
            repeated = sorted({lab for lab in labels if labels.count(lab) > 1})
            if repeated:
                raise ValueError(f"perturbations: each label once, repeated: {repeated}")
            parsed = {lab: kind or self.perturbations.get(lab, "knockout") for lab in labels}
        else:
            raise TypeError(
                f"perturbations: expected gene labels or a mapping label -> kind, "
                f"got {type(perturbations).__name__}"
            )
        if not parsed:
            raise ValueError("perturbations: is empty")
        for label, k in parsed.items():
            check_choice(f"perturbations[{label!r}]", k, list(KINDS))
            missing = [g for g in label.split("+") if g not in self.genes]
            if label == self.setup["control"] or missing:
                raise ValueError(
                    f"perturbations: {label!r} is not a gene of the screen (or a "
                    f"'G1+G5' combination); not genes: {missing or [label]}"
                )
        return parsed

    # ----------------------------------------------------------------------------------------
    # training

    def train(
        self,
        max_epochs: int = 30,
        batch_size: int = 128,
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        *,
        validation_fraction: float = 0.0,
        early_stopping_patience: int = 5,
        progress: bool | None = None,
    ) -> QPerturb:
        """Fit the PQC, the projections and the decoder (the backbone stays frozen).

        Parameters
        ----------
        max_epochs
            Passes over the perturbed training cells (each call starts a fresh Adam
            optimiser; the history continues).
        batch_size
            Perturbed cells per step, each paired with a random control cell.
        lr, weight_decay
            Adam's learning rate and L2 weight decay.
        validation_fraction
            Hold out this fraction of the training *perturbations* (at least one; seeded by
            ``seed``) and keep the weights of the epoch whose predicted mean shifts of those
            unseen perturbations were closest to the real ones (mean squared error over
            genes), stopping after ``early_stopping_patience`` epochs without improvement: the
            model is judged, as it is used, on perturbations it has not seen. The held-out
            perturbations are not trained on. ``0``: train on all for ``max_epochs``.
        early_stopping_patience
            Epochs without a better validation loss before training stops.
        progress
            Progress bar over epochs (``None``: only in an interactive terminal).

        Returns
        -------
        The model (trained in place); ``history_`` holds the mean loss of every epoch (and
        ``validation_loss`` with a validation split); ``validation_perturbations_`` the held-out
        labels.
        """
        import copy

        import torch
        from tqdm.auto import tqdm

        max_epochs = check_positive_int("max_epochs", max_epochs)
        batch_size = check_positive_int("batch_size", batch_size)
        lr = check_finite("lr", lr, low=0.0, low_open=True)
        weight_decay = check_finite("weight_decay", weight_decay, low=0.0)
        validation_fraction = check_finite(
            "validation_fraction", validation_fraction, low=0.0, high=1.0, high_open=True
        )
        patience = check_positive_int("early_stopping_patience", early_stopping_patience)
        target, features, priors, labels = self._training_tensors()
        held = self._validation_split(validation_fraction)
        validation = self._validation_set(held, target, features, priors, labels) if held else None
        keep = torch.from_numpy(~np.isin(labels, held))
        target, features = target[keep], features[keep]
        priors = None if priors is None else priors[keep]
        gen = as_generator(np.random.SeedSequence([self.config["seed"], len(self.history_)]))
        optimizer = torch.optim.Adam(self.module.parameters(), lr=lr, weight_decay=weight_decay)
        control_z = torch.from_numpy(self._control_latent)
        n_cells, n_control = target.shape[0], control_z.shape[0]
        self.module.train()
        best, best_state, since = np.inf, None, 0
        bar = tqdm(range(max_epochs), desc="QPerturb", disable=_no_bar(progress))
        for _ in bar:
            order = torch.from_numpy(gen.permutation(n_cells))
            total = 0.0
            for start in range(0, n_cells, batch_size):
                rows = order[start : start + batch_size]
                pick = torch.from_numpy(gen.integers(0, n_control, rows.numel()))
                delta = self.module.delta(
                    control_z[pick], features[rows], None if priors is None else priors[rows]
                )
                loss = torch.mean((delta - target[rows]) ** 2)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * rows.numel()
            record = {"epoch": len(self.history_), "loss": total / n_cells}
            if validation is not None:
                record["validation_loss"] = self._validation_loss(validation)
                self.module.train()
                if record["validation_loss"] < best:
                    best, since = record["validation_loss"], 0
                    best_state = copy.deepcopy(self.module.state_dict())
                else:
                    since += 1
            self.history_.append(record)
            bar.set_postfix(loss=f"{total / n_cells:.4g}")
            if validation is not None and since >= patience:
                break
        if best_state is not None:  # the epoch that predicted unseen perturbations best
            self.module.load_state_dict(best_state)
        self.validation_perturbations_ = held
        self.module.eval()
        self.is_trained = True
        return self

    def _validation_split(self, fraction: float) -> list[str]:
        """Training perturbations held out for early stopping (seeded)."""
        if fraction == 0:
            return []
        names = sorted(self.perturbations)
        n = max(1, round(fraction * len(names)))
        if n >= len(names):
            raise ValueError(
                f"validation_fraction: {fraction} holds out all {len(names)} "
                "training perturbations; leave at least one to train on"
            )
        rng = np.random.default_rng([self.config["seed"], 7])
        return sorted(rng.choice(names, n, replace=False).tolist())

    def _validation_set(
        self, held: list[str], target: Any, features: Any, priors: Any, labels: np.ndarray
    ) -> list[tuple[Any, Any, Any]]:
        """Per held-out perturbation: its real mean shift, feature and prior (one row each)."""
        out = []
        for label in held:
            rows = np.flatnonzero(labels == label)
            first = rows[:1]
            out.append(
                (
                    target[rows].mean(dim=0),
                    features[first],
                    None if priors is None else priors[first],
                )
            )
        return out

    def _validation_loss(self, validation: list[tuple[Any, Any, Any]]) -> float:
        """Mean over held-out perturbations of the squared error of the predicted mean shift
        (over the control cells' latents) against the real one."""
        import torch

        self.module.eval()
        control_z = torch.from_numpy(self._control_latent)
        n = control_z.shape[0]
        errors = []
        with torch.no_grad():
            for real, feature, prior in validation:
                delta = self.module.delta(
                    control_z, feature.expand(n, -1), None if prior is None else prior.expand(n, -1)
                )
                errors.append(float(torch.mean((delta.mean(dim=0) - real) ** 2)))
        return float(np.mean(errors))

    def _training_tensors(self) -> tuple[Any, Any, Any, np.ndarray]:
        import torch

        setup = self.setup
        labels = self.adata.obs[setup["perturbation_key"]].astype(str).to_numpy()
        rows = np.flatnonzero(labels != setup["control"])
        expr = log_normalize(counts(self.adata, setup["layer"])[rows], self.target_sum).toarray()
        shift = expr - self._control_expr.mean(axis=0)  # the target of the delta
        names = list(self.perturbations)
        table = np.stack([self._feature(name, self.perturbations[name]) for name in names])
        index = pd.Index(names).get_indexer(labels[rows])
        priors = None
        if self._prior is not None:
            prior_table = np.stack([self._prior_shift(n, self.perturbations[n]) for n in names])
            priors = torch.from_numpy(prior_table[index])
        return (
            torch.from_numpy(shift.astype(np.float32)),
            torch.from_numpy(table[index]),
            priors,
            labels[rows],
        )

    # ----------------------------------------------------------------------------------------
    # prediction

    def predict(
        self,
        perturbations: Any = None,
        n_cells: int = 200,
        *,
        kind: str | None = None,
        rng: RngLike = None,
        include_control: bool = True,
        zero_knockouts: bool = True,
    ) -> AnnData:
        """Predicted cells: ``n_cells`` sampled control cells per perturbation plus the delta.

        Parameters
        ----------
        perturbations
            Gene labels (``"G3"``, ``"G3+G7"``) or a mapping label -> ``"knockout"`` |
            ``"overexpress"``; default the training perturbations. Unseen genes are allowed.
        n_cells
            Control cells sampled (with replacement when fewer exist) per perturbation, as the
            seed does with 200.
        kind
            Intervention for labels given as a list (``None``: a label's training kind, a
            knockout for a gene unseen in training).
        rng
            Seed or generator for the control cells.
        include_control
            Also return the sampled control cells themselves (label ``control``), which the
            VCC metrics need as the reference.
        zero_knockouts
            Set a knocked-out gene's own predicted expression to 0: the intervention itself
            (a do-intervention holds the gene off), known without learning. The delta still
            predicts every other gene; ``False`` leaves the knocked-out gene to the delta too.

        Returns
        -------
        anndata.AnnData
            Log-normalised expression (``log1p`` at :attr:`target_sum`, clipped at 0) in
            ``X``; ``obs`` holds the perturbation key, ``control_cell`` (the control cell each
            prediction starts from) and the kind of each perturbation; ``uns["log1p"]``
            marks the scale as scanpy does. Score it against real cells put on the same scale
            by :meth:`normalize` (``vcc_metrics`` would normalise raw counts to their own
            median instead).
        """
        import torch

        if not self.is_trained:
            raise ValueError("model: QPerturb is not trained (call train() first)")
        parsed = self._parse(perturbations, kind)
        n_cells = check_positive_int("n_cells", n_cells)
        gen = as_generator(rng)
        blocks, labels, sources, kinds = [], [], [], []
        if include_control:
            pick = self._sample_controls(gen, n_cells)
            blocks.append(self._control_expr[pick])
            labels += [self.setup["control"]] * n_cells
            kinds += ["control"] * n_cells
            sources.append(pick)
        with torch.no_grad():
            for label, k in parsed.items():
                pick = self._sample_controls(gen, n_cells)
                feature = torch.from_numpy(self._feature(label, k)).expand(n_cells, -1)
                prior = (
                    None
                    if self._prior is None
                    else torch.from_numpy(self._prior_shift(label, k)).expand(n_cells, -1)
                )
                pred = self.module(
                    torch.from_numpy(self._control_expr[pick]),
                    torch.from_numpy(self._control_latent[pick]),
                    feature,
                    prior,
                )
                pred = pred.clamp_min(0.0).numpy()
                if zero_knockouts and k == "knockout":
                    pred[:, [self.genes.index(g) for g in label.split("+")]] = 0.0
                blocks.append(pred)
                labels += [label] * n_cells
                kinds += [k] * n_cells
                sources.append(pick)
        obs = pd.DataFrame(
            {
                self.setup["perturbation_key"]: pd.Categorical(
                    labels, categories=list(dict.fromkeys(labels))
                ),
                self.setup.get("kind_key") or "perturbation_kind": pd.Categorical(kinds),
                "control_cell": np.concatenate(sources),
            }
        )
        obs.index = [f"pred_{i}" for i in range(len(obs))]
        out = AnnData(
            np.vstack(blocks).astype(np.float32), obs=obs, var=pd.DataFrame(index=self.genes)
        )
        out.uns["log1p"] = {"base": None}
        out.uns["qperturb"] = {
            "config": dict(self.config),
            "target_sum": self.target_sum,
            "perturbations": {k: v for k, v in parsed.items()},
        }
        return out

    def _sample_controls(self, gen: np.random.Generator, n_cells: int) -> np.ndarray:
        """Rows of ``n_cells`` control cells, drawn with replacement only when there are fewer."""
        n_control = self._control_expr.shape[0]
        return gen.choice(n_control, n_cells, replace=n_cells > n_control)

    def normalize(self, adata: AnnData, layer: str | None = None) -> AnnData:
        """Cells of raw counts on the model's scale (``log1p`` of counts scaled to
        :attr:`target_sum`), e.g. the real held-out cells to score :meth:`predict` against."""
        check_adata(adata)
        if adata.var_names.astype(str).tolist() != self.genes:
            raise ValueError(
                "adata: its genes differ from the model's (same genes, same order needed)"
            )
        out = AnnData(
            log_normalize(counts(adata, layer), self.target_sum).astype(np.float32),
            obs=adata.obs.copy(),
            var=adata.var.copy(),
        )
        out.uns["log1p"] = {"base": None}
        return out

    def quantum_outputs(
        self,
        perturbations: Any = None,
        n_cells: int = 200,
        *,
        kind: str | None = None,
        rng: RngLike = None,
    ) -> np.ndarray:
        """The core's outputs (``<X>, <Y>, <Z>`` of the qubits for ``core="quantum"``) for
        ``n_cells`` control cells per perturbation, stacked: the input of the seed's
        participation-ratio diagnostic (:func:`qsimcells.tl.participation_ratio`)."""
        import torch

        if not self.is_trained:
            raise ValueError("model: QPerturb is not trained (call train() first)")
        parsed = self._parse(perturbations, kind)
        n_cells = check_positive_int("n_cells", n_cells)
        gen = as_generator(rng)
        out = []
        with torch.no_grad():
            for label, k in parsed.items():
                pick = self._sample_controls(gen, n_cells)
                feature = torch.from_numpy(self._feature(label, k)).expand(n_cells, -1)
                out.append(
                    self.module.core_outputs(
                        torch.from_numpy(self._control_latent[pick]), feature
                    ).numpy()
                )
        return np.vstack(out)

    # ----------------------------------------------------------------------------------------
    # persistence

    def save(self, dir_path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the weights, the configuration and the PCA backbone to ``dir_path``.

        A model on an scvi-tools backbone saves its own weights; pass the backbone model to
        :meth:`load` again.
        """
        import torch

        network = None
        if self.network_ is not None and self.network_["source"] == "table":
            edges = self.network_["edges"]
            network = {
                "source": edges["source"].tolist(),
                "target": edges["target"].tolist(),
                "directed": self.network_["directed"],
            }
        state = {
            "config": self.config,
            "setup": self.setup,
            "genes": self.genes,
            "network_table": network,
            "history": self.history_,
            "is_trained": self.is_trained,
            "backbone": getattr(self.backbone, "kind", "custom"),
            "n_latent": int(self._control_latent.shape[1]),
            "data": self._data_fingerprint(),
        }
        arrays: dict[str, Any] = {}  # np.savez's keyword arrays
        if isinstance(self.backbone, PCABackbone):
            arrays = {"pca_mean": self.backbone.mean_, "pca_components": self.backbone.components_}
        # into a temporary folder, renamed into place when complete
        with atomic_folder(dir_path, overwrite) as path:
            torch.save(self.module.state_dict(), path / "module.pt")
            np.savez(path / "backbone.npz", **arrays)
            (path / "qperturb.json").write_text(json.dumps(state, indent=1))

    def _data_fingerprint(self) -> dict[str, Any]:
        """What ties a saved model to its training screen (checked by :meth:`load`)."""
        return {
            "target_sum": self.target_sum,
            "perturbations": self.perturbations,
            "n_control": int(self._control_counts.shape[0]),
            "control_total": float(self._control_counts.sum()),
        }

    @classmethod
    def load(cls, dir_path: str | os.PathLike, adata: AnnData, *, backbone: Any = None) -> QPerturb:
        """Load a saved model; ``adata`` is the screen it was trained on (set up again if its
        set-up is missing), ``backbone`` the scvi-tools model for a non-PCA backbone.
        Nothing in the files runs: JSON, a numpy archive without pickles and tensors read with
        ``torch.load(weights_only=True)``; a file that needs more raises
        :class:`~qsimcells.model.UnsafeFileError`."""
        path = Path(dir_path)
        if not (path / "qperturb.json").exists():
            raise FileNotFoundError(f"dir_path: no saved QPerturb in {str(path)!r}")
        state = read_json(path / "qperturb.json", "QPerturb")
        try:
            for key in (
                "config",
                "setup",
                "genes",
                "backbone",
                "n_latent",
                "data",
                "history",
                "is_trained",
            ):
                state[key]
        except (KeyError, TypeError) as err:
            raise unreadable("QPerturb", path / "qperturb.json", err) from None
        if SETUP_KEY not in adata.uns:
            cls.setup_anndata(adata, **state["setup"])
        elif dict(adata.uns[SETUP_KEY]) != state["setup"]:
            raise ValueError(
                f"adata: set up as {dict(adata.uns[SETUP_KEY])}, the model was "
                f"trained with {state['setup']}"
            )
        if adata.var_names.astype(str).tolist() != state["genes"]:
            raise ValueError("adata: its genes differ from the saved model's")
        if state["backbone"] == "pca":
            arrays = read_npz(path / "backbone.npz", "QPerturb")  # numbers only, no code
            try:
                pca = PCABackbone.from_state(
                    {
                        "n_latent": arrays["pca_components"].shape[0],
                        "mean": arrays["pca_mean"],
                        "components": arrays["pca_components"],
                    }
                )
            except Exception as err:
                raise unreadable("QPerturb", path / "backbone.npz", err) from None
            backbone = pca
        elif backbone is None:
            raise ValueError(
                f"backbone: the model was trained on a {state['backbone']!r} "
                "backbone; pass it again (QPerturb.load(path, adata, backbone=m))"
            )
        config = dict(state["config"])
        if config.get("network") == "table":  # the user's graph, saved with the model
            table = state["network_table"]
            config["network"] = pd.DataFrame({"source": table["source"], "target": table["target"]})
            config["network"].attrs["directed"] = bool(table["directed"])
        model = cls(adata, backbone=backbone, **config)
        found = model._data_fingerprint()
        for field, saved in state["data"].items():
            same = (
                bool(np.isclose(found[field], saved, rtol=1e-9))
                if isinstance(saved, float)
                else found[field] == saved
            )
            if not same:
                raise ValueError(
                    f"adata: is not the screen the model was trained on "
                    f"({field}: saved {saved!r}, found {found[field]!r})"
                )
        if model._control_latent.shape[1] != state["n_latent"]:
            raise ValueError(
                f"backbone: gives {model._control_latent.shape[1]} latent "
                f"dimensions, the saved model used {state['n_latent']}"
            )
        weights = read_torch(
            path / "module.pt",
            "QPerturb",
            trust_hint=("a QPerturb save holds tensors only; re-save the model with QPerturb.save"),
        )
        try:
            model.module.load_state_dict(weights)
        except Exception as err:  # another model's weights
            raise unreadable("QPerturb", path / "module.pt", err) from None
        model.module.eval()
        model.history_ = list(state["history"])
        model.is_trained = bool(state["is_trained"])
        return model


def _setup_of(adata: Any) -> dict[str, Any]:
    check_adata(adata)
    setup = adata.uns.get(SETUP_KEY)
    if not isinstance(setup, Mapping):
        raise ValueError(
            "adata: not set up; call QPerturb.setup_anndata(adata, "
            "perturbation_key=..., control=...) first"
        )
    return dict(setup)


def _training_perturbations(adata: AnnData, setup: Mapping[str, Any]) -> dict[str, str]:
    labels = adata.obs[setup["perturbation_key"]].astype(str)
    perturbed = labels != setup["control"]
    kinds = (
        adata.obs.loc[perturbed.to_numpy(), setup["kind_key"]].astype(str)
        if setup.get("kind_key")
        else pd.Series("knockout", index=labels.index[perturbed])
    )
    out: dict[str, str] = {}
    for label, kind in zip(labels[perturbed], kinds, strict=True):
        if out.setdefault(label, kind) != kind:
            raise ValueError(
                f"{setup['kind_key']}: perturbation {label!r} is labelled both "
                f"{out[label]!r} and {kind!r}"
            )
    return out


def _no_bar(progress: bool | None) -> bool:
    import sys

    return not (progress if progress is not None else sys.stderr.isatty())
