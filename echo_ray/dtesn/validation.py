"""Argument checks that fail with a ValueError naming the argument and what was expected."""

from __future__ import annotations

import numpy as np


def as_float_array(name: str, value, ndim: int | tuple[int, ...], dim: int | None = None,
                   allow_empty: bool = False) -> np.ndarray:
    """Return `value` as a float64 array of the given rank(s), finite, with last axis `dim`."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} must be a numeric array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must have a real numeric dtype, got {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real, got complex dtype {arr.dtype}")
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims:
        want = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{name} must have {want} dimensions, got shape {arr.shape}")
    if not allow_empty and (arr.size == 0 or arr.shape[0] == 0):
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if dim is not None and arr.shape[-1] != dim:
        raise ValueError(f"{name} must have {dim} features on its last axis, got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite: it contains NaN or inf")
    return arr


def positive(name: str, value: float, strict: bool = True) -> float:
    ok = value > 0 if strict else value >= 0
    if not np.isfinite(value) or not ok:
        want = "> 0" if strict else ">= 0"
        raise ValueError(f"{name} must be a finite number {want}, got {value}")
    return float(value)


def in_range(name: str, value: float, lo: float, hi: float, lo_open: bool = False) -> float:
    if not np.isfinite(value) or value > hi or value < lo or (lo_open and value == lo):
        left = "(" if lo_open else "["
        raise ValueError(f"{name} must be in {left}{lo}, {hi}], got {value}")
    return float(value)
