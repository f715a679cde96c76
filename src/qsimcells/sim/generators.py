"""Named data generators (the ``qsimcells_generators`` hook) and ``qs.sim.generate``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .design import CellCircuit
from .simulate import simulate

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData


def _design(design: CellCircuit | str | None, preset_params: dict[str, Any]) -> CellCircuit:
    from . import presets

    if isinstance(design, CellCircuit):
        if preset_params:
            raise ValueError(
                f"{sorted(preset_params)}: preset parameters need design=<preset "
                "name>, not a CellCircuit"
            )
        return design
    if design is None:
        design = "romero2025"
    if isinstance(design, str):
        return presets.get(design, **preset_params)
    raise TypeError(f"design: expected a CellCircuit or a preset name, got {type(design).__name__}")


def qsimcells_generator(
    design: CellCircuit | str | None = None,
    n_cells: int = 2000,
    *,
    preset_params: dict[str, Any] | None = None,
    **simulate_kwargs: Any,
) -> AnnData:
    """Cells from a design's quantum circuit (see :func:`qsimcells.sim.simulate`).

    ``design`` is a :class:`CellCircuit` or a preset name (default ``"romero2025"``) built with
    ``preset_params``.
    """
    adata = simulate(_design(design, dict(preset_params or {})), n_cells, **simulate_kwargs)
    adata.uns["qsimcells"]["generator"] = "qsimcells"
    return adata


def independent_generator(
    design: CellCircuit | str | None = None,
    n_cells: int = 2000,
    *,
    preset_params: dict[str, Any] | None = None,
    **simulate_kwargs: Any,
) -> AnnData:
    """The classical control: the same design with every entangling gate removed, so each
    gene is an independent Bernoulli(sin^2(theta/2)) coin."""
    base = _design(design, dict(preset_params or {}))
    adata = simulate(base.without_edges(), n_cells, **simulate_kwargs)
    adata.uns["qsimcells"]["generator"] = "independent"
    adata.uns["qsimcells"]["reference_design"] = base.to_dict()
    return adata


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

    func = get_generator(name).load()
    adata = func(**params)
    if not isinstance(adata, AnnData):
        raise TypeError(f"generator {name!r} returned {type(adata).__name__}, expected AnnData")
    return adata
