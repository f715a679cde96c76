"""Open a zarr AnnData store with ``X`` left on disk, for data that does not fit in memory.

``X`` (and, by default, the layers) come back as anndata's on-disk CSR dataset, which reads only
the rows asked for; scvi-tools' data loader reads such a matrix one minibatch at a time, so
``qs.model.QBMVAE`` trains on it without loading ``X`` whole. The per-cell and per-gene tables
and ``uns`` are small and read into memory.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import zarr
    from anndata import AnnData

__all__ = ["read_backed"]

_PARTIAL_ENCODING = "qsimcells-partial-anndata"  # of a store simulate_to_zarr has not finished

# elements read into memory besides X and the layers (obsp, varp and raw are not read)
_IN_MEMORY = ("obs", "var", "uns", "obsm", "varm")


def _encoding(node: Any) -> str | None:
    return node.attrs.get("encoding-type")


def _csr_dataset(group: Any, key: str, field: str) -> Any:
    """``group[key]`` as anndata's on-disk CSR dataset, or a ``ValueError`` naming ``field``."""
    import anndata

    node = group[key]
    kind = _encoding(node)
    if kind != "csr_matrix":
        hint = "; write it as a scipy.sparse.csr_matrix"
        if field != "X":
            hint += ", or pass layers=False"
        raise ValueError(
            f"{field}: expected a CSR sparse matrix on disk, got encoding {kind!r}{hint}"
        )
    return anndata.io.sparse_dataset(node)


def read_backed(store: str | os.PathLike[str] | zarr.Group, *, layers: bool = True) -> AnnData:
    """Read a zarr AnnData store, leaving ``X`` (and the layers) on disk.

    ``X`` becomes anndata's on-disk CSR dataset (:class:`anndata.abc.CSRDataset`): indexing it
    by rows reads those rows from the store, and nothing reads the whole matrix unless asked
    (``X.to_memory()``). ``obs``, ``var``, ``uns``, ``obsm`` and ``varm`` are read into memory;
    ``obsp``, ``varp`` and ``raw`` are not read. The store is opened read-only and the result
    keeps it open: modifying ``X`` in place is not supported.

    Parameters
    ----------
    store
        Path of a zarr store written by :meth:`anndata.AnnData.write_zarr` (e.g. of
        :func:`qsimcells.sim.simulate`'s output), or an open :class:`zarr.Group` of one.
    layers
        Also open the layers (e.g. ``"binary"``) as on-disk CSR datasets; ``False`` leaves them
        out.

    Returns
    -------
    anndata.AnnData
        The data set with an on-disk ``X``; pass it to ``qs.model.QBMVAE.setup_anndata`` to
        train from minibatches read from disk.

    Raises
    ------
    ValueError
        ``store`` is not a zarr AnnData store, it has no ``X``, or ``X`` (or, with ``layers``, a
        layer) is not a CSR sparse matrix.

    Examples
    --------
    >>> adata = qs.sim.simulate(qs.sim.presets.romero2025(True), 500, rng=0)
    >>> adata.write_zarr("cells.zarr")
    >>> backed = qs.sim.read_backed("cells.zarr")
    >>> type(backed.X).__name__
    '_CSRDataset'
    """
    import anndata
    import zarr

    if isinstance(store, zarr.Group):
        group = store
    elif isinstance(store, (str, os.PathLike)):
        try:
            group = zarr.open_group(store, mode="r")
        except (FileNotFoundError, ValueError) as err:  # GroupNotFoundError is both
            hint = (
                "; for an .h5ad file use anndata.read_h5ad(path, backed='r')"
                if os.path.isfile(store)
                else ""
            )
            raise ValueError(
                f"store: {os.fspath(store)!r} is not a zarr store ({err}){hint}"
            ) from None
    else:
        raise TypeError(f"store: expected a path or a zarr.Group, got {type(store).__name__}")
    if _encoding(group) == _PARTIAL_ENCODING:
        raise ValueError(
            f"store: {group.store_path!s} is an unfinished simulate_to_zarr store; "
            "run the same simulate_to_zarr call again to finish it"
        )
    if _encoding(group) != "anndata":
        raise ValueError(
            f"store: {group.store_path!s} is a zarr group but not an AnnData store "
            f"(its encoding-type is {_encoding(group)!r}, not 'anndata')"
        )
    if "X" not in group:
        raise ValueError(f"X: the AnnData store {group.store_path!s} has no X")

    X = _csr_dataset(group, "X", "X")
    layer_sets = {}
    if layers and "layers" in group:
        layer_sets = {
            key: _csr_dataset(group["layers"], key, f"layers[{key!r}]")
            for key in sorted(_group(group, "layers").keys())
        }
    parts = {key: anndata.io.read_elem(group[key]) for key in _IN_MEMORY if key in group}
    return anndata.AnnData(X=X, layers=layer_sets, **parts)


def _group(parent: Any, key: str) -> Any:
    """``parent[key]``, an AnnData store's group (zarr's own types cannot tell it from an
    array)."""
    return parent[key]
