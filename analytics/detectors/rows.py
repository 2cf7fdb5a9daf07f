"""Per-stream host state declared once: named columns, one row per stream.

What the detector plugins do for their backend arrays (`Detector.state_spec`), `Rows` does for the
engine's host-side bookkeeping: each part declares its columns (`declare`), and growing for new
streams, snapshotting and restoring are generic. Numeric columns travel as arrays of a snapshot,
text columns (`dtype=object`) as JSON lists in its metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

NDArray = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Column:
    """One per-stream array: its dtype and the value a new stream's row starts with.

    `restore` says what loading a snapshot that lacks the column does: "required", the snapshot
    does not fit (`ValueError`); "fill", every row takes `fill` (a column added after snapshots of
    an earlier version were written, whose absence changes nothing that matters).
    """

    dtype: type[Any]  # np.float64, np.int64, np.bool_, or object for text
    fill: float | int | bool | str = 0
    restore: Literal["required", "fill"] = "required"

    @property
    def text(self) -> bool:
        return self.dtype is object

    def new(self, n: int) -> NDArray:
        return np.full(n, self.fill, dtype=self.dtype)


class Rows:
    """Named per-stream host arrays (NumPy), all of the same length."""

    def __init__(self, columns: Mapping[str, Column] | None = None) -> None:
        self.columns: dict[str, Column] = {}
        self._arrays: dict[str, NDArray] = {}
        self._n = 0
        self.declare(columns or {})

    def declare(self, columns: Mapping[str, Column]) -> None:
        """Add columns (existing rows take each column's fill)."""
        for name, column in columns.items():
            if name in self.columns:
                raise ValueError(f"per-stream column {name!r} is declared twice")
            self.columns[name] = column
            self._arrays[name] = column.new(self._n)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, name: str) -> NDArray:
        return self._arrays[name]

    def __setitem__(self, name: str, value: NDArray) -> None:
        if name not in self.columns:
            raise KeyError(f"undeclared per-stream column {name!r}")
        if value.shape != (self._n,):
            raise ValueError(f"per-stream column {name!r}: shape {value.shape}, expected ({self._n},)")
        self._arrays[name] = value

    def grow(self, n: int) -> None:
        """Add rows for new streams, each column's fill."""
        extra = n - self._n
        if extra < 0:
            raise ValueError(f"per-stream state cannot shrink from {self._n} to {n} rows")
        if extra:
            for name, column in self.columns.items():
                self._arrays[name] = np.concatenate([self._arrays[name], column.new(extra)])
            self._n = n

    # state -----------------------------------------------------------------
    def export(self) -> tuple[dict[str, NDArray], dict[str, list[Any]]]:
        """(numeric columns as array copies, text columns as lists)."""
        arrays = {k: a.copy() for k, a in self._arrays.items() if not self.columns[k].text}
        texts = {k: a.tolist() for k, a in self._arrays.items() if self.columns[k].text}
        return arrays, texts

    def load(self, arrays: Mapping[str, Any], texts: Mapping[str, Any]) -> None:
        """Restore every column from a snapshot (numeric from `arrays`, text from `texts`; other
        keys are ignored). Raises `ValueError` when a required column is missing or the columns do
        not all have the same number of rows; nothing changes then."""
        loaded: dict[str, NDArray] = {}
        missing = []
        for name, column in self.columns.items():
            source = texts if column.text else arrays
            if name not in source:
                if column.restore == "required":
                    raise ValueError(f"snapshot lacks per-stream state {name!r}")
                missing.append(name)
                continue
            a = np.array(list(source[name]) if column.text else source[name], dtype=column.dtype)
            if a.ndim != 1:
                raise ValueError(
                    f"per-stream state {name!r} has shape {a.shape}, expected one row per stream"
                )
            loaded[name] = a
        sizes = {name: len(a) for name, a in loaded.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"per-stream state arrays disagree in length: {sizes}")
        n = next(iter(sizes.values()), 0)
        for name in missing:
            loaded[name] = self.columns[name].new(n)
        self._arrays = {name: loaded[name] for name in self.columns}
        self._n = n
