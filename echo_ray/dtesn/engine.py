"""The one interface the cognitive processors need from the DTESN: `encode(U)`.

`encode(U)` returns every membrane's states for a sequence U (T, input_dim), computed from the
zero state, as {membrane index: (T, units)} (index 0 is the root). `LocalEngine` runs the tree
in-process (tests, simulator, notebooks); `echo_ray.dtesn.actors.DTESNSystem` has the same
method with the membranes in Ray actors (the served app).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .membrane_tree import MembraneTree, TreeSpec


class Engine(Protocol):
    spec: TreeSpec

    def encode(self, U) -> dict[int, np.ndarray]: ...


class LocalEngine:
    """A membrane tree in this process."""

    def __init__(self, spec: TreeSpec):
        self.spec = spec
        self.tree = MembraneTree(spec)

    def encode(self, U) -> dict[int, np.ndarray]:
        return self.tree.encode(U)
