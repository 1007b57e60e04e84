"""Butcher tableaux, their elementary weights over rooted trees and certified order.

A Runge-Kutta method has order p exactly when Phi(t) = 1/gamma(t) for every rooted tree t
with at most p nodes (Butcher's order conditions), so `order_of` certifies a tableau by
checking those conditions rather than trusting a label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rooted_trees import Tree, gamma, trees


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method: stage matrix A (strictly lower triangular), weights b,
    nodes c."""

    name: str
    A: tuple
    b: tuple
    c: tuple

    def __post_init__(self):
        A, b, c = self.arrays()
        s = len(b)
        if A.shape != (s, s) or c.shape != (s,):
            raise ValueError(f"tableau {self.name!r}: A must be {s}x{s} and c length {s}")
        if np.any(np.triu(A) != 0):
            raise ValueError(f"tableau {self.name!r}: A must be strictly lower triangular (explicit)")

    def arrays(self):
        return (np.asarray(self.A, dtype=float), np.asarray(self.b, dtype=float),
                np.asarray(self.c, dtype=float))

    @property
    def stages(self) -> int:
        return len(self.b)


def _stage_weights(A: np.ndarray, t: Tree) -> np.ndarray:
    """g(t)_i = prod over children s of (A g(s))_i; a leaf gives all ones."""
    g = np.ones(A.shape[0])
    for child in t:
        g = g * (A @ _stage_weights(A, child))
    return g


def elementary_weight(tableau: ButcherTableau, t: Tree) -> float:
    """Phi(t) = b . g(t)."""
    A, b, _ = tableau.arrays()
    return float(b @ _stage_weights(A, t))


def order_of(tableau: ButcherTableau, max_order: int = 8, tol: float = 1e-12) -> int:
    """Largest p <= max_order such that Phi(t) = 1/gamma(t) for all trees with <= p nodes."""
    p = 0
    for n in range(1, max_order + 1):
        if all(abs(elementary_weight(tableau, t) - 1.0 / gamma(t)) <= tol for t in trees(n)):
            p = n
        else:
            break
    return p


EULER = ButcherTableau("euler", A=((0.0,),), b=(1.0,), c=(0.0,))
HEUN = ButcherTableau("heun", A=((0.0, 0.0), (1.0, 0.0)), b=(0.5, 0.5), c=(0.0, 1.0))
MIDPOINT = ButcherTableau("midpoint", A=((0.0, 0.0), (0.5, 0.0)), b=(0.0, 1.0), c=(0.0, 0.5))
RK4 = ButcherTableau(
    "rk4",
    A=((0.0, 0.0, 0.0, 0.0), (0.5, 0.0, 0.0, 0.0), (0.0, 0.5, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    c=(0.0, 0.5, 0.5, 1.0),
)
TABLEAUX = {t.name: t for t in (EULER, HEUN, MIDPOINT, RK4)}
