"""Saves that lose nothing, and loads that run no code.

Every model writes into a temporary path beside its target and renames it into place
(:func:`~qsimcells._atomic.atomic_folder`, re-exported here), so a failed or interrupted save
leaves the previous save (or nothing) and never half a model; an existing save is replaced only
with ``overwrite=True``.

Every model reads its files here, and nothing here runs code from a file: JSON through
:func:`read_json`, numpy archives with ``allow_pickle=False`` (:func:`read_npz`), torch files
with ``torch.load(weights_only=True)`` (:func:`read_torch`); scvi-tools' ``model.pt`` is read
first with a pickle that may call only an explicit allow-list of globals, before scvi-tools'
own loader reads it (:func:`check_scvi_model_file`). A file that needs anything else is refused
with :class:`UnsafeFileError`, naming what it would call; ``trusted=True`` on a model's
``load`` is the only way past it.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any, ClassVar

from .._atomic import atomic_file, atomic_folder

__all__ = [
    "UnsafeFileError",
    "atomic_file",
    "atomic_folder",
    "check_scvi_model_file",
    "read_json",
    "read_npz",
    "read_torch",
    "read_torch_restricted",
    "scvi_save_globals",
    "unreadable",
]


def unreadable(kind: str, path: Any, err: BaseException) -> ValueError:
    """The error for a save that cannot be read: truncated, damaged or of something else."""
    return ValueError(
        f"path: {str(path)!r} is not a readable {kind} save (truncated, damaged "
        f"or written by something else: {type(err).__name__}: {err})"
    )


class UnsafeFileError(ValueError):
    """A file that loading would let run code (a pickle of something other than data)."""


def read_json(path: Path, kind: str) -> Any:
    """The JSON document at ``path``; a file that is not one gets :func:`unreadable`."""
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError, OSError) as err:
        raise unreadable(kind, path, err) from None


def read_npz(path: Path, kind: str) -> dict[str, Any]:
    """The arrays of a numpy ``.npz`` archive, read with ``allow_pickle=False`` (numbers and
    strings only: an object array, which would be unpickled, is refused)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise UnsafeFileError(
                f"path: {str(path)!r} holds pickled objects, which loading "
                "would run as code; refused (a qsimcells save holds numbers "
                "only)"
            ) from None
        raise unreadable(kind, path, err) from None
    except Exception as err:
        raise unreadable(kind, path, err) from None


def _name(obj: Any) -> str:
    if isinstance(obj, tuple):  # (object, the name it is pickled under)
        return obj[1]
    return f"{obj.__module__}.{obj.__qualname__}"


def _refusal(path: Path, kind: str, found: list[str], trust_hint: str) -> UnsafeFileError:
    return UnsafeFileError(
        f"path: {str(path)!r} is refused: loading it would call {', '.join(found)}, which a "
        f"{kind} save does not need and which could run code from the file. If you trust the "
        f"file (you made it, or know who did): {trust_hint}"
    )


def read_torch(path: Path, kind: str, *, trust_hint: str) -> Any:
    """``torch.load(path, weights_only=True)``: tensors, numbers, strings and plain
    containers only (qsimcells' own torch files hold nothing else).

    Raises
    ------
    UnsafeFileError
        When the file needs more (loading it could run code): the message names what it
        would call and ``trust_hint``.
    ValueError
        When the file is not a readable torch file (:func:`unreadable`).
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):
            raise unreadable(kind, path, err) from None
        found = (
            re.findall(r"GLOBAL ([\w.]+)", str(err))
            or re.findall(r"but got <class '([\w.]+)'>", str(err))
        )[:1] or ["an operation torch's safe unpickler refuses"]
        raise _refusal(Path(path), kind, found, trust_hint) from None
    except Exception as err:  # truncated, damaged or another program's file
        raise unreadable(kind, path, err) from None


class _Refused(Exception):
    """A global the restricted unpickler does not give out."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Python's own way to limit what a pickle may call (the pickle documentation's
    "Restricting Globals"): every function or class a pickle names comes from
    :meth:`find_class`, so one that is not in ``allowed`` cannot be called."""

    allowed: ClassVar[dict[str, Any]] = {}

    def find_class(self, module: str, name: str) -> Any:
        import _compat_pickle

        # Python 2 names (protocol 2 pickles, as torch writes), mapped as pickle's own
        # find_class maps them; the result must still be allowed
        module, name = _compat_pickle.NAME_MAPPING.get(
            (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name)
        )
        try:
            return self.allowed[f"{module}.{name}"]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


def read_torch_restricted(path: Path, kind: str, *, allowed: list[Any], trust_hint: str) -> Any:
    """Read a torch file whose pickle may call only torch's own safe globals (those
    ``weights_only=True`` allows) and ``allowed``.

    For files that need more than ``weights_only=True`` can build (scvi-tools' saves hold a
    ``collections.defaultdict``, which torch's safe unpickler cannot fill): torch reads the
    archive and the tensors, and the pickle goes through :class:`_RestrictedUnpickler`.
    Errors as :func:`read_torch`; the refusal names every global of the file that is not
    allowed.
    """
    import types

    import torch
    from torch._weights_only_unpickler import _get_allowed_globals

    names = dict(_get_allowed_globals())
    names.update({_name(obj): obj[0] if isinstance(obj, tuple) else obj for obj in allowed})
    unpickler = type("Unpickler", (_RestrictedUnpickler,), {"allowed": names})
    module = types.SimpleNamespace(
        __name__="qsimcells_restricted_pickle",
        Unpickler=unpickler,
        load=lambda f, **kw: unpickler(f, **kw).load(),
    )
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)
    except _Refused as refused:
        from torch.serialization import get_unsafe_globals_in_checkpoint

        try:
            found = [g for g in get_unsafe_globals_in_checkpoint(str(path)) if g not in names]
        except Exception:
            found = []
        raise _refusal(Path(path), kind, found or [str(refused)], trust_hint) from None
    except Exception as err:  # truncated, damaged or another program's file
        raise unreadable(kind, path, err) from None


def scvi_save_globals() -> list[Any]:
    """The globals scvi-tools' ``model.pt`` needs besides torch's own, found by saving real
    QBMVAE, SCVI and SCANVI models (with and without ``save_anndata``; tests check the list
    still suffices): numpy arrays and dtypes, plain containers, and the pandas frames and
    indices of the training history. None of them calls a function named by the file."""
    import collections

    import numpy as np
    import pandas as pd
    from numpy._core.multiarray import _reconstruct
    from pandas._libs.internals import _unpickle_block
    from pandas.core.indexes.base import _new_Index
    from pandas.core.internals.managers import BlockManager

    dtype_classes = [getattr(np.dtypes, name) for name in np.dtypes.__all__]  # a dtype's state
    return [
        bytes,
        dict,
        slice,
        collections.defaultdict,
        np.ndarray,
        np.dtype,
        *dtype_classes,
        _reconstruct,
        (_reconstruct, "numpy.core.multiarray._reconstruct"),  # numpy 1.x
        pd.DataFrame,
        pd.Index,
        _new_Index,
        _unpickle_block,
        BlockManager,
    ]


def check_scvi_model_file(file: Path, kind: str, trust_hint: str) -> None:
    """Read scvi-tools' ``model.pt`` with :func:`read_torch_restricted` and
    :func:`scvi_save_globals` before scvi-tools' own loader (which unpickles without
    restriction) reads it: a file that passes names only those globals, so the second read
    runs no code either."""
    read_torch_restricted(file, kind, allowed=scvi_save_globals(), trust_hint=trust_hint)
