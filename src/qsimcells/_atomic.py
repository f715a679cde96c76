"""Writes that lose nothing: into a temporary path beside the target, renamed into place when
complete, so a failed or interrupted write leaves the previous file or folder (or nothing) and
never half of one; an existing target is replaced only with ``overwrite=True``. Used by every
model's ``save`` and by the design files."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_file", "atomic_folder"]


def _check_parent(target: Path, field: str) -> None:
    """Create the missing folders above ``target`` (as scvi-tools' save does) and check that
    the one holding it is writable."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise FileExistsError(
            f"{field}: a file stands where the folder {str(target.parent)!r} should be"
        ) from None
    if not os.access(target.parent, os.W_OK):
        raise PermissionError(f"{field}: the folder {str(target.parent)!r} is not writable")


def _temporary(target: Path, kind: str) -> Path:
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextmanager
def atomic_folder(
    path: str | os.PathLike[str], overwrite: bool, *, field: str = "dir_path"
) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it becomes ``path``.

    An existing non-empty ``path`` is refused unless ``overwrite``; it is replaced only after
    the new save is complete. On an error the temporary folder is removed and ``path`` is left
    as it was.
    """
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite: expected True or False, got {overwrite!r}")
    target = Path(path).expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise FileExistsError(
            f"{field}: {str(target)!r} is a file, not a folder; choose another path"
        )
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{field}: {str(target)!r} exists and is not empty; pass overwrite=True to replace it"
        )
    _check_parent(target, field)
    tmp = _temporary(target, "partial")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = _temporary(target, "replaced")
        os.rename(target, old)
    os.rename(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_file(
    path: str | os.PathLike[str], overwrite: bool, *, field: str = "path"
) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; on success it replaces ``path``."""
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite: expected True or False, got {overwrite!r}")
    target = Path(path).expanduser().absolute()
    if target.is_dir():
        raise FileExistsError(f"{field}: {str(target)!r} is a folder, not a file")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{field}: {str(target)!r} exists; pass overwrite=True to replace it")
    _check_parent(target, field)
    tmp = _temporary(target, "partial")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
