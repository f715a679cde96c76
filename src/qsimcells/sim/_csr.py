"""Row-by-row CSR assembly without a second copy of the data.

The buffers are reserved once for the largest possible number of entries (or a generous estimate
when that bound would not fit in memory). Memory that is reserved but never written costs nothing
on Linux, and the unused tail is released at the end by shrinking the arrays in place, so the
peak stays at the size of the result.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def index_dtype(max_nnz: int, n_cols: int) -> type:
    """The dtype of ``indices`` and ``indptr`` of a CSR matrix with at most ``max_nnz``
    entries: int32 while it fits (scipy wants the two of one dtype), else int64."""
    return np.int32 if max(max_nnz, n_cols) < 2**31 else np.int64


class CSRBuilder:
    """Append blocks of rows; :meth:`finish` returns the CSR matrix.

    Parameters
    ----------
    n_rows, n_cols
        Shape of the result.
    dtype
        Dtype of the stored values; ``None`` stores no values (all entries are 1, as uint8).
    max_nnz
        Upper bound on the number of entries.
    expected_nnz
        Estimate used instead of ``max_nnz`` when reserving the bound would not fit in memory.
    """

    def __init__(
        self, n_rows: int, n_cols: int, dtype: type | None, max_nnz: int, expected_nnz: int
    ) -> None:
        self.shape = (n_rows, n_cols)
        self.dtype = dtype
        bytes_per_entry = 4 + (np.dtype(dtype).itemsize if dtype is not None else 0)
        fits = max_nnz * bytes_per_entry < 0.6 * _physical_memory()
        capacity = max(int(max_nnz if fits else min(max_nnz, 1.25 * expected_nnz)), 1)
        self.index_dtype = index_dtype(max_nnz, n_cols)
        self.indices: np.ndarray = np.empty(capacity, dtype=self.index_dtype)
        # no dtype: a pattern matrix (every stored value 1), its data made in finish()
        self.data: np.ndarray | None = (
            np.empty(capacity, dtype=dtype) if dtype is not None else None
        )
        self.indptr: np.ndarray = np.zeros(n_rows + 1, dtype=np.int64)
        self.nnz = 0
        self.row = 0

    def append(
        self, cols: np.ndarray, per_row: np.ndarray, values: np.ndarray | None = None
    ) -> None:
        """Add ``per_row.size`` rows whose entries are ``cols`` (and ``values``), row-major."""
        end = self.nnz + cols.size
        if end > self.indices.size:  # only when the estimate was too small
            grown = max(end, int(self.indices.size * 1.5))
            self.indices.resize(grown, refcheck=False)
            if self.data is not None:
                self.data.resize(grown, refcheck=False)
        self.indices[self.nnz : end] = cols
        if self.data is not None:
            if values is None:
                raise ValueError("values: this builder stores values; give one per entry")
            if (
                values.dtype.itemsize > self.data.dtype.itemsize
                and values.size
                and values.max() > np.iinfo(self.data.dtype).max
            ):
                raise OverflowError(
                    f"a count exceeds the {self.data.dtype} range; lower mu or "
                    "the batch / library-size effects"
                )
            self.data[self.nnz : end] = values
        self.indptr[self.row + 1 : self.row + 1 + per_row.size] = self.nnz + np.cumsum(per_row)
        self.nnz = end
        self.row += per_row.size

    def finish(self) -> sp.csr_matrix:
        if self.row != self.shape[0]:
            raise RuntimeError(f"CSRBuilder: {self.row} of {self.shape[0]} rows were written")
        self.indices.resize(self.nnz, refcheck=False)  # release the unused reservation
        if self.data is None:
            data = np.ones(self.nnz, dtype=np.uint8)
        else:
            self.data.resize(self.nnz, refcheck=False)
            data = self.data
        indptr: np.ndarray = self.indptr.astype(self.index_dtype)
        matrix = sp.csr_matrix(self.shape, dtype=data.dtype)
        matrix.data, matrix.indices, matrix.indptr = data, self.indices, indptr  # no copies
        return matrix
