"""The linear baseline of perturbation prediction (Ahlmann-Eltze, Huber and Anders, Nat. Methods
2025, "Deep-learning-based gene perturbation effect prediction does not yet outperform simple
linear baselines").

With ``Y`` the genes x training-perturbations matrix of mean log expression and ``b`` its row
means, ``G`` (genes x K) are the gene embeddings, the top ``K`` principal components of
``Y - b`` (the PCA scores of the genes), and ``P`` the embeddings of the perturbed genes (rows of
``G``). The model ``Y ~ b + G W P^T`` is solved in closed form with a ridge penalty ``l``::

    W = (G^T G + l I)^-1 G^T (Y - b) P (P^T P + l I)^-1

and an unseen perturbation of gene ``g`` is predicted as ``b + G W G[g]^T`` (a combination sums
the rows of its genes). Every gene has an embedding, so a gene never perturbed in training is
predicted from how it responded to the training perturbations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._utils import check_finite, check_positive_int
from .vcc import _Profile

__all__ = ["linear_baseline"]


def linear_baseline(
    adata: Any,
    *,
    like: Any,
    perturbation_key: str = "perturbation",
    control: str = "control",
    layer: str | None = None,
    normalize: bool | None = None,
    n_components: int = 10,
    ridge: float = 0.1,
    zero_knockouts: bool = False,
) -> Any:
    """Predict the perturbations of ``like`` with the linear baseline fitted on ``adata``.

    Parameters
    ----------
    adata
        The training screen (control and perturbed cells; raw counts or log1p data, as
        :func:`vcc_metrics` reads them). Its perturbation labels name genes (``"G3"``,
        ``"G3+G7"``).
    like
        The screen to predict: its perturbations (labels naming genes of ``adata``), their
        cell counts and its control cells, as :func:`cell_mean_baseline` mirrors them.
    perturbation_key, control, layer, normalize
        As in :func:`cell_mean_baseline`.
    n_components
        ``K``, the width of the gene embeddings (at most the number of training
        perturbations); the paper uses 10.
    ridge
        The ridge penalty ``l`` (>= 0); the paper uses 0.1.
    zero_knockouts
        Set a knocked-out gene's own predicted expression to 0 (the intervention), as
        :meth:`~qsimcells.model.QPerturb.predict` does by default.

    Returns
    -------
    anndata.AnnData
        Dense log1p expression: each perturbed cell of ``like`` predicted as its
        perturbation's profile, the control cells of ``like`` as they are;
        ``obs[perturbation_key]``; ``uns["linear_baseline"]`` holds ``n_components``,
        ``ridge`` and the training perturbations.
    """
    import anndata as ad

    n_components = check_positive_int("n_components", n_components)
    ridge = check_finite("ridge", ridge, low=0.0)
    if not isinstance(zero_knockouts, bool):
        raise TypeError(f"zero_knockouts: expected True or False, got {zero_knockouts!r}")
    source = _Profile.build(adata, perturbation_key, control, layer, normalize, "adata")
    target = _Profile.build(like, perturbation_key, control, layer, normalize, "like")
    if not like.var_names.equals(adata.var_names):
        raise ValueError("like.var_names: the genes differ from adata.var_names")
    genes = pd.Index(adata.var_names.astype(str))
    for field, profile in (("adata", source), ("like", target)):
        unknown = sorted(
            {g for label in profile.perturbations for g in label.split("+") if g not in genes}
        )
        if unknown:
            raise ValueError(
                f"{field}.obs[{perturbation_key!r}]: perturbations must name genes "
                f"of var_names ('G1' or 'G1+G5'); not genes: {unknown[:10]}"
            )
    train = source.perturbations
    if n_components > len(train):
        raise ValueError(
            f"n_components: {n_components} is more than the {len(train)} training "
            "perturbations; choose at most that many"
        )

    Y = np.stack([source.mean(p) for p in train], axis=1)  # genes x perturbations
    b = Y.mean(axis=1, keepdims=True)
    U, S, _ = np.linalg.svd(Y - b, full_matrices=False)
    G = U[:, :n_components] * S[:n_components]  # the genes' PCA scores

    def embed(label: str) -> np.ndarray:
        return G[genes.get_indexer(label.split("+"))].sum(axis=0)

    P = np.stack([embed(p) for p in train])  # perturbations x K
    eye = np.eye(n_components)
    W = np.linalg.solve(G.T @ G + ridge * eye, G.T @ (Y - b) @ P) @ np.linalg.inv(
        P.T @ P + ridge * eye
    )

    blocks, labels = [], []
    for label in target.perturbations:
        profile = b[:, 0] + G @ W @ embed(label)
        if zero_knockouts:
            profile[genes.get_indexer(label.split("+"))] = 0.0
        n = target.groups[label].size
        blocks.append(np.tile(np.clip(profile, 0.0, None), (n, 1)))
        labels += [label] * n
    control_cells = target.rows(control)
    blocks.append(control_cells)
    labels += [control] * control_cells.shape[0]
    obs = pd.DataFrame(
        {perturbation_key: pd.Categorical(labels)},
        index=pd.Index([f"linear_{i}" for i in range(len(labels))]),
    )
    out = ad.AnnData(
        X=np.vstack(blocks).astype(np.float32),
        obs=obs,
        var=pd.DataFrame(index=adata.var_names.copy()),
    )
    out.uns["linear_baseline"] = {
        "n_components": n_components,
        "ridge": ridge,
        "trained_on": np.asarray(train, dtype=object),
        "zero_knockouts": zero_knockouts,
    }
    return out
