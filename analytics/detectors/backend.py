"""The array-namespace seam: detectors are written once against `Ops`, run on NumPy or PyTorch.

Detector code uses arithmetic operators (`+ - * /`, comparisons), which NumPy arrays and torch
tensors share, and calls `ops.<fn>` for everything else. Masks are float arrays of 0/1 so that a
masked update is `state += present * step`, with no `where` and no per-stream Python.

`TorchOps` keeps every tensor on its device (CUDA when asked); the only host synchronisation is
`to_numpy`. `NumpyOps.any` answers truthfully (cheap on the CPU), `TorchOps.any` answers True
without looking, so a "skip when nothing changed" shortcut never syncs the GPU; callers must make
the unconditional path produce the same result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

import numpy as np

Array = Any  # numpy.ndarray or torch.Tensor, depending on the backend
BackendName = Literal["numpy", "torch"]
DTypeName = Literal["float32", "float64"]


class Ops(ABC):
    """Elementwise and gather/scatter primitives over one backend, device and float dtype."""

    name: BackendName
    device: str
    dtype_name: DTypeName

    # creation and transfer
    @abstractmethod
    def full(self, shape: tuple[int, ...], value: float) -> Array: ...

    def zeros(self, *shape: int) -> Array:
        return self.full(tuple(shape), 0.0)

    @abstractmethod
    def asarray(self, values: Any) -> Array:
        """A float array of this backend's dtype on its device."""

    @abstractmethod
    def asindex(self, values: Any) -> Array:
        """An int64 index array on this backend's device."""

    @abstractmethod
    def arange(self, n: int) -> Array: ...

    @abstractmethod
    def to_numpy(self, a: Array) -> np.ndarray[Any, Any]: ...

    @abstractmethod
    def to_index(self, a: Array) -> Array:
        """Float array of whole numbers -> int64 index array (same device)."""

    @abstractmethod
    def assign(self, dst: Array, src: Array | float) -> None:
        """`dst[...] = src`, in place."""

    @abstractmethod
    def concat(self, parts: list[Array], axis: int = 0) -> Array: ...

    @abstractmethod
    def stack(self, parts: list[Array], axis: int = 0) -> Array: ...

    # elementwise
    @abstractmethod
    def as_float(self, mask: Array) -> Array: ...

    @abstractmethod
    def abs(self, a: Array) -> Array: ...

    @abstractmethod
    def sqrt(self, a: Array) -> Array: ...

    @abstractmethod
    def log(self, a: Array) -> Array: ...

    @abstractmethod
    def exp(self, a: Array) -> Array: ...

    @abstractmethod
    def minimum(self, a: Array, b: Array | float) -> Array: ...

    @abstractmethod
    def maximum(self, a: Array, b: Array | float) -> Array: ...

    @abstractmethod
    def clip(self, a: Array, lo: Array | float, hi: Array | float) -> Array: ...

    @abstractmethod
    def where(self, cond: Array, a: Array | float, b: Array | float) -> Array: ...

    @abstractmethod
    def isfinite(self, a: Array) -> Array: ...

    @abstractmethod
    def floor(self, a: Array) -> Array: ...

    # reductions and indexing
    @abstractmethod
    def any(self, mask: Array) -> bool:
        """True when some element is set; may answer True without looking (see module doc)."""

    @abstractmethod
    def take(self, a: Array, index: Array) -> Array:
        """`a.ravel()[index]`."""

    @abstractmethod
    def put(self, a: Array, index: Array, values: Array) -> None:
        """`a.ravel()[index] = values`, in place (indices must be distinct)."""

    @abstractmethod
    def segment_sum(self, values: Array, segments: Array, n_segments: int) -> Array:
        """Sum of `values` per segment id (like `np.bincount(segments, values, n_segments)`)."""

    @abstractmethod
    def max_rows(self, a: Array) -> tuple[Array, Array]:
        """Max over axis 0 of a 2-D array and the row index it came from."""

    def max_of(self, parts: list[Array]) -> tuple[Array, Array]:
        """Elementwise max of same-shape arrays and the index (int64) of the part it came from."""
        best = parts[0]
        index = self.zeros(*best.shape)
        for i, part in enumerate(parts[1:], start=1):
            better = self.as_float(part > best)
            best = self.maximum(best, part)
            index = index + better * (i - index)
        return best, self.to_index(index)

    @abstractmethod
    def matmul(self, a: Array, b: Array) -> Array: ...

    @abstractmethod
    def take_rows(self, a: Array, index: Array) -> Array:
        """Rows `index` of a 2-D array."""


class NumpyOps(Ops):
    name: BackendName = "numpy"

    def __init__(self, dtype: DTypeName = "float32") -> None:
        self.device = "cpu"
        self.dtype_name = dtype
        self.dtype = np.dtype(dtype)
        self._constants: dict[tuple[float, tuple[int, ...], str], np.ndarray[Any, Any]] = {}

    def _full_like(self, value: float, a: Array) -> Array:
        """A cached read-only array of `value` shaped like `a`: NumPy's maximum/minimum are several
        times faster between two arrays than between an array and a scalar."""
        key = (float(value), a.shape, a.dtype.str)
        c = self._constants.get(key)
        if c is None:
            if len(self._constants) > 256:
                self._constants.clear()
            c = np.full(a.shape, value, dtype=a.dtype)
            c.flags.writeable = False
            self._constants[key] = c
        return c

    def full(self, shape: tuple[int, ...], value: float) -> Array:
        return np.full(shape, value, dtype=self.dtype)

    def asarray(self, values: Any) -> Array:
        return np.ascontiguousarray(values, dtype=self.dtype)

    def asindex(self, values: Any) -> Array:
        return np.ascontiguousarray(values, dtype=np.int64)

    def arange(self, n: int) -> Array:
        return np.arange(n, dtype=np.int64)

    def to_numpy(self, a: Array) -> np.ndarray[Any, Any]:
        return np.asarray(a)

    def to_index(self, a: Array) -> Array:
        return a.astype(np.int64)

    def assign(self, dst: Array, src: Array | float) -> None:
        dst[...] = src

    def concat(self, parts: list[Array], axis: int = 0) -> Array:
        return np.concatenate(parts, axis=axis)

    def stack(self, parts: list[Array], axis: int = 0) -> Array:
        return np.stack(parts, axis=axis)

    def as_float(self, mask: Array) -> Array:
        return mask.astype(self.dtype)

    def abs(self, a: Array) -> Array:
        return np.abs(a)

    def sqrt(self, a: Array) -> Array:
        return np.sqrt(a)

    def log(self, a: Array) -> Array:
        return np.log(a)

    def exp(self, a: Array) -> Array:
        return np.exp(a)

    def minimum(self, a: Array, b: Array | float) -> Array:
        if isinstance(b, int | float) and a.ndim:
            b = self._full_like(b, a)
        return np.minimum(a, b)

    def maximum(self, a: Array, b: Array | float) -> Array:
        if isinstance(b, int | float) and a.ndim:
            b = self._full_like(b, a)
        return np.maximum(a, b)

    def clip(self, a: Array, lo: Array | float, hi: Array | float) -> Array:
        return self.minimum(self.maximum(a, lo), hi)

    def where(self, cond: Array, a: Array | float, b: Array | float) -> Array:
        return np.where(cond, a, b).astype(self.dtype, copy=False)

    def isfinite(self, a: Array) -> Array:
        return np.isfinite(a)

    def floor(self, a: Array) -> Array:
        return np.floor(a)

    def any(self, mask: Array) -> bool:
        return bool(mask.any())

    def take(self, a: Array, index: Array) -> Array:
        return np.take(a.reshape(-1), index)

    def put(self, a: Array, index: Array, values: Array) -> None:
        a.reshape(-1)[index] = values

    def segment_sum(self, values: Array, segments: Array, n_segments: int) -> Array:
        return np.bincount(segments, weights=values, minlength=n_segments).astype(self.dtype)

    def max_rows(self, a: Array) -> tuple[Array, Array]:
        idx = np.argmax(a, axis=0)
        return np.take_along_axis(a, idx[None, :], axis=0)[0], idx

    def matmul(self, a: Array, b: Array) -> Array:
        return a @ b

    def take_rows(self, a: Array, index: Array) -> Array:
        return np.take(a, index, axis=0)


class TorchOps(Ops):
    name: BackendName = "torch"

    def __init__(self, device: str = "cpu", dtype: DTypeName = "float32") -> None:
        import torch

        self._torch = torch
        self.device = device
        self.dtype_name = dtype
        self.dtype = getattr(torch, dtype)
        self._dev = torch.device(device)

    def full(self, shape: tuple[int, ...], value: float) -> Array:
        return self._torch.full(shape, value, dtype=self.dtype, device=self._dev)

    def asarray(self, values: Any) -> Array:
        t = self._torch
        if isinstance(values, t.Tensor):
            return values.to(device=self._dev, dtype=self.dtype)
        return t.as_tensor(np.asarray(values), dtype=self.dtype, device=self._dev)

    def asindex(self, values: Any) -> Array:
        t = self._torch
        if isinstance(values, t.Tensor):
            return values.to(device=self._dev, dtype=t.int64)
        return t.as_tensor(np.asarray(values, dtype=np.int64), device=self._dev)

    def arange(self, n: int) -> Array:
        return self._torch.arange(n, dtype=self._torch.int64, device=self._dev)

    def to_numpy(self, a: Array) -> np.ndarray[Any, Any]:
        return np.asarray(a.detach().cpu().numpy())

    def to_index(self, a: Array) -> Array:
        return a.to(self._torch.int64)

    def assign(self, dst: Array, src: Array | float) -> None:
        if isinstance(src, int | float):
            dst.fill_(src)
        else:
            dst.copy_(src)

    def concat(self, parts: list[Array], axis: int = 0) -> Array:
        return self._torch.cat(parts, dim=axis)

    def stack(self, parts: list[Array], axis: int = 0) -> Array:
        return self._torch.stack(parts, dim=axis)

    def as_float(self, mask: Array) -> Array:
        return mask.to(self.dtype)

    def abs(self, a: Array) -> Array:
        return self._torch.abs(a)

    def sqrt(self, a: Array) -> Array:
        return self._torch.sqrt(a)

    def log(self, a: Array) -> Array:
        return self._torch.log(a)

    def exp(self, a: Array) -> Array:
        return self._torch.exp(a)

    def minimum(self, a: Array, b: Array | float) -> Array:
        if isinstance(b, int | float):
            return self._torch.clamp(a, max=b)
        return self._torch.minimum(a, b)

    def maximum(self, a: Array, b: Array | float) -> Array:
        if isinstance(b, int | float):
            return self._torch.clamp(a, min=b)
        return self._torch.maximum(a, b)

    def clip(self, a: Array, lo: Array | float, hi: Array | float) -> Array:
        return self.minimum(self.maximum(a, lo), hi)

    def where(self, cond: Array, a: Array | float, b: Array | float) -> Array:
        t = self._torch
        if isinstance(a, int | float):
            a = t.tensor(float(a), dtype=self.dtype, device=self._dev)
        if isinstance(b, int | float):
            b = t.tensor(float(b), dtype=self.dtype, device=self._dev)
        return t.where(cond, a, b)

    def isfinite(self, a: Array) -> Array:
        return self._torch.isfinite(a)

    def floor(self, a: Array) -> Array:
        return self._torch.floor(a)

    def any(self, mask: Array) -> bool:
        return True

    def take(self, a: Array, index: Array) -> Array:
        return a.reshape(-1).index_select(0, index)

    def put(self, a: Array, index: Array, values: Array) -> None:
        a.view(-1).index_copy_(0, index, values)

    def segment_sum(self, values: Array, segments: Array, n_segments: int) -> Array:
        out = self._torch.zeros(n_segments, dtype=self.dtype, device=self._dev)
        return out.index_add_(0, segments, values)

    def max_rows(self, a: Array) -> tuple[Array, Array]:
        values, idx = self._torch.max(a, dim=0)
        return values, idx

    def max_of(self, parts: list[Array]) -> tuple[Array, Array]:
        return self.max_rows(self._torch.stack(parts))

    def matmul(self, a: Array, b: Array) -> Array:
        return a @ b

    def take_rows(self, a: Array, index: Array) -> Array:
        return a.index_select(0, index)


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:  # pragma: no cover - torch is a dependency, but keep the seam honest
        return False
    return True


def cuda_available() -> bool:
    if not torch_available():
        return False
    import torch

    return bool(torch.cuda.is_available())


def make_ops(backend: BackendName = "numpy", *, device: str = "auto", dtype: DTypeName = "float32") -> Ops:
    """`numpy` (CPU), or `torch` on `device` ('auto' picks CUDA when available, else the CPU)."""
    if backend == "numpy":
        if device not in ("auto", "cpu"):
            raise ValueError(f"backend numpy runs on the cpu only (got device {device!r})")
        return NumpyOps(dtype)
    if backend == "torch":
        if device == "auto":
            device = "cuda" if cuda_available() else "cpu"
        if device.startswith("cuda") and not cuda_available():
            raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device")
        return TorchOps(device, dtype)
    raise ValueError(f"unknown backend {backend!r} (expected 'numpy' or 'torch')")
