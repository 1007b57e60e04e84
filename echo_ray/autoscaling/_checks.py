"""Argument checks: bad input raises ValueError naming the argument and what was expected."""

from __future__ import annotations

import math
import numbers


def real(name: str, value) -> float:
    """`value` as a finite float (bools are refused: they are almost always a mistake here)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return out


def positive(name: str, value, strict: bool = True) -> float:
    out = real(name, value)
    if out < 0 or (strict and out == 0):
        raise ValueError(f"{name} must be {'> 0' if strict else '>= 0'}, got {value!r}")
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
