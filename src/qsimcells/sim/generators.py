"""Named data generators (the ``qsimcells_generators`` hook) and ``qs.sim.generate``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .design import CellCircuit
from .simulate import simulate

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData


def _design(design: CellCircuit | str | None, preset_params: dict[str, Any]) -> CellCircuit:
    from . import presets

    if isinstance(design, CellCircuit):
        if preset_params:
            raise ValueError(f"{sorted(preset_params)}: preset parameters need design=<preset "
                             "name>, not a CellCircuit")
        return design
    if design is None:
        design = "romero2025"
    if isinstance(design, str):
        return presets.get(design, **preset_params)
    raise TypeError(f"design: expected a CellCircuit or a preset name, got "
                    f"{type(design).__name__}")


def qsimcells_generator(design: CellCircuit | str | None = None, n_cells: int = 2000,
                        *, preset_params: dict[str, Any] | None = None,
                        **simulate_kwargs: Any) -> AnnData:
    """Cells from a design's quantum circuit (see :func:`qsimcells.sim.simulate`).

    ``design`` is a :class:`CellCircuit` or a preset name (default ``"romero2025"``) built with
    ``preset_params``.
    """
    adata = simulate(_design(design, dict(preset_params or {})), n_cells, **simulate_kwargs)
    adata.uns["qsimcells"]["generator"] = "qsimcells"
    return adata


def independent_generator(design: CellCircuit | str | None = None, n_cells: int = 2000,
                          *, preset_params: dict[str, Any] | None = None,
                          **simulate_kwargs: Any) -> AnnData:
    """The classical control: the same design with every entangling gate removed, so each
    gene is an independent Bernoulli(sin^2(theta/2)) coin."""
    base = _design(design, dict(preset_params or {}))
    adata = simulate(base.without_edges(), n_cells, **simulate_kwargs)
    adata.uns["qsimcells"]["generator"] = "independent"
    adata.uns["qsimcells"]["reference_design"] = base.to_dict()
    return adata


def qbmvae_generator(model: Any = None, n_cells: int = 1000, *, adata: AnnData | None = None,
                     batch: int | str | None = None, library_size: float | None = None,
                     rng: Any = None) -> AnnData:
    """New cells from a trained QBM-VAE's Boltzmann prior (see
    :meth:`qsimcells.model.QBMVAE.sample_prior`).

    ``model`` is a trained :class:`~qsimcells.model.QBMVAE` or the folder of a saved one
    (``QBMVAE.load(model, adata=adata)``; ``adata`` may be omitted when the model was saved with
    ``save_anndata=True``). torch and scvi-tools load only when this runs.
    """
    if model is None:
        raise ValueError("model: the 'qbmvae' generator needs a trained QBMVAE or the path of "
                         "a saved one (qs.sim.generate('qbmvae', model=..., n_cells=...))")
    from ..model import QBMVAE

    if isinstance(model, (str, os.PathLike)):
        model = QBMVAE.load(os.fspath(model), adata=adata)
    elif not isinstance(model, QBMVAE):
        raise TypeError(f"model: expected a trained QBMVAE or the path of a saved one, got "
                        f"{type(model).__name__}")
    elif adata is not None:
        raise ValueError("adata: only used with model=<path of a saved model>")
    if not model.is_trained:
        raise ValueError("model: the QBMVAE is not trained (call model.train() first)")
    return model.sample_prior(n_cells, batch=batch, library_size=library_size, rng=rng)


def spiqgan_generator(model: Any = None, n_cells: int = 1000, *, rng: Any = None) -> AnnData:
    """Binary activity from a trained SpiQGAN (see :meth:`qsimcells.model.SpiQGAN.sample`).

    ``model`` is a trained :class:`~qsimcells.model.SpiQGAN` or the folder of a saved one;
    ``n_cells`` rows (samples of ``n_units * n_timesteps`` columns) come back as an activity
    AnnData. torch loads only when this runs.
    """
    if model is None:
        raise ValueError("model: the 'spiqgan' generator needs a trained SpiQGAN or the path of "
                         "a saved one (qs.sim.generate('spiqgan', model=..., n_cells=...))")
    from ..model import SpiQGAN

    if isinstance(model, (str, os.PathLike)):
        model = SpiQGAN.load(os.fspath(model))
    elif not isinstance(model, SpiQGAN):
        raise TypeError(f"model: expected a trained SpiQGAN or the path of a saved one, got "
                        f"{type(model).__name__}")
    if not model.is_trained:
        raise ValueError("model: the SpiQGAN is not trained (call model.train() first)")
    return model.sample(n_cells, rng, as_anndata=True)


def generate(name: str, **params: Any) -> AnnData:
    """Run the registered generator ``name`` (see ``qs.plugins.available("generator")``).

    Parameters
    ----------
    name
        ``"qsimcells"`` (the builtin simulator), ``"independent"`` (its classical control),
        ``"qbmvae"`` (cells from a trained QBM-VAE's prior: ``model=``, ``n_cells=``, ``rng=``),
        ``"spiqgan"`` (binary activity from a trained SpiQGAN: ``model=``, ``n_cells=``,
        ``rng=``),
        or any generator a plugin registers.
    **params
        Passed to the generator.

    Returns
    -------
    anndata.AnnData
    """
    from anndata import AnnData

    from ..plugins import get_generator

    func = get_generator(name).spec.load()
    adata = func(**params)
    if not isinstance(adata, AnnData):
        raise TypeError(f"generator {name!r} returned {type(adata).__name__}, expected AnnData")
    return adata
