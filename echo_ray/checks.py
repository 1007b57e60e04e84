"""Argument checks shared by the pure packages: bad input raises ValueError naming the
argument and what was expected. (Request bodies are checked by pydantic models instead.)"""

from __future__ import annotations

import math
import numbers

import numpy as np


def real(name: str, value) -> float:
    """`value` as a finite float (bools are refused: they are almost always a mistake here)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return out


def positive(name: str, value, strict: bool = True) -> float:
    want = "> 0" if strict else ">= 0"
    try:
        out = real(name, value)
    except ValueError:
        raise ValueError(f"{name} must be a finite number {want}, got {value!r}") from None
    if out < 0 or (strict and out == 0):
        raise ValueError(f"{name} must be a finite number {want}, got {value!r}")
    return out


def in_range(name: str, value, lo: float, hi: float, lo_open: bool = False,
             hi_open: bool = False) -> float:
    out = real(name, value)
    if out < lo or out > hi or (lo_open and out == lo) or (hi_open and out == hi):
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"{name} must be in {left}{lo}, {hi}{right}, got {value!r}")
    return out


def integer(name: str, value, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    out = int(value)
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return out


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
