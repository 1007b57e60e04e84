"""DTESN engine: echo state network reservoirs arranged as a tree of P-system membranes.

Everything here but `actors` is plain numpy/scipy; `actors` is the thin Ray adapter.
"""

from .butcher import EULER, HEUN, MIDPOINT, RK4, ButcherTableau, elementary_weight, order_of
from .datasets import mackey_glass, narma10, nrmse, scale_to_unit
from .membrane_tree import MembraneTree, TreeSpec
from .psystem import Membrane, MembraneType, PSystem, Rule, RuleKind, RunResult
from .readout import RidgeReadout, RLSReadout
from .reservoir import Reservoir, spectral_radius
from .rooted_trees import count_rooted_trees, gamma, sigma, trees

__all__ = [
    "EULER", "HEUN", "MIDPOINT", "RK4", "ButcherTableau", "elementary_weight", "order_of",
    "mackey_glass", "narma10", "nrmse", "scale_to_unit", "MembraneTree", "TreeSpec",
    "RidgeReadout", "RLSReadout", "Reservoir", "spectral_radius", "count_rooted_trees",
    "gamma", "sigma", "trees", "Membrane", "MembraneType", "PSystem", "Rule", "RuleKind",
    "RunResult",
]
