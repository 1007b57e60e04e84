"""A tree of reservoir membranes shaped by rooted trees (OEIS A000081).

Leaf membranes read external input; every inner membrane reads its children's states at the
same time step (scaled by `coupling`); the root's state is the system state. Information flows
only upward, so each membrane can run over a whole sequence once its children have: the tree
is run membrane by membrane in post-order, which is exactly the per-step interleaved update.

A `TreeSpec` is plain data (JSON-able) and every membrane's reservoir is seeded from the spec's
seed and the membrane's index, so any process (a Ray actor) can rebuild any subset of
membranes identically from the spec alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from echo_ray.checks import as_float_array

from .reservoir import Reservoir
from .rooted_trees import Tree, canonical, count_rooted_trees


@dataclass
class TreeSpec:
    """Shape and settings of a membrane tree. `parents[i]` is membrane i's parent index (-1 for
    the root); membranes are numbered breadth first, so parents come before children."""

    parents: list[int]
    units: int | list[int] = 50
    input_dim: int = 1
    coupling: float = 0.5
    leaf_channels: list[list[int]] | None = None  # columns of U each leaf reads; None = all
    seed: int = 0
    reservoir: dict = field(default_factory=dict)  # extra Reservoir keyword arguments

    def __post_init__(self):
        if not self.parents or self.parents[0] != -1:
            raise ValueError("parents must start with the root, whose parent is -1")
        for i, p in enumerate(self.parents[1:], start=1):
            if not (0 <= p < i):
                raise ValueError(f"parents[{i}]={p}: a parent must be an earlier membrane index")
        units = self.units if isinstance(self.units, list) else [self.units] * len(self.parents)
        if len(units) != len(self.parents) or any(int(u) < 1 for u in units):
            raise ValueError(f"units must be a positive int or one per membrane ({len(self.parents)})")
        if not isinstance(self.input_dim, int) or self.input_dim < 1:
            raise ValueError(f"input_dim must be a positive integer, got {self.input_dim!r}")
        if not np.isfinite(self.coupling) or self.coupling <= 0:
            raise ValueError(f"coupling must be a finite number > 0, got {self.coupling}")
        n_leaves = sum(1 for i in range(len(self.parents)) if i not in set(self.parents))
        if self.leaf_channels is not None:
            if len(self.leaf_channels) != n_leaves:
                raise ValueError(f"leaf_channels must list channels for each of the {n_leaves} leaves")
            for chans in self.leaf_channels:
                if not chans or any(not (0 <= c < self.input_dim) for c in chans):
                    raise ValueError(f"leaf_channels entries must be non-empty column indices "
                                     f"in [0, {self.input_dim}), got {chans}")

    @classmethod
    def from_depth(cls, depth: int, **kw) -> TreeSpec:
        """Level k holds A000081(k+1) membranes (1, 1, 2, 4, 9, ...), spread evenly under the
        membranes of level k-1."""
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        parents, prev = [-1], [0]
        for k in range(1, depth):
            level = []
            for j in range(count_rooted_trees(k + 1)):
                parents.append(prev[j % len(prev)])
                level.append(len(parents) - 1)
            prev = level
        return cls(parents=parents, **kw)

    @classmethod
    def from_tree(cls, tree: Tree, **kw) -> TreeSpec:
        """Any rooted tree as a nested tuple (see `rooted_trees`)."""
        parents, queue = [-1], [(canonical(tree), 0)]
        while queue:
            node, idx = queue.pop(0)
            for child in node:
                parents.append(idx)
                queue.append((child, len(parents) - 1))
        return cls(parents=parents, **kw)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TreeSpec:
        return cls(**d)


class MembraneTree:
    """The membranes of a `TreeSpec` (or the subset `members`), each owning a reservoir."""

    def __init__(self, spec: TreeSpec, members: list[int] | None = None):
        self.spec = spec
        n = len(spec.parents)
        self.parent = list(spec.parents)
        self.children: list[list[int]] = [[] for _ in range(n)]
        for i, p in enumerate(self.parent[1:], start=1):
            self.children[p].append(i)
        self.level = [0] * n
        for i in range(1, n):
            self.level[i] = self.level[self.parent[i]] + 1
        self.leaves = [i for i in range(n) if not self.children[i]]
        self.units = spec.units if isinstance(spec.units, list) else [spec.units] * n
        depth = max(self.level)
        # Membrane kinds are MembraneType values (echo_ray.dtesn.psystem).
        self.kind = ["root" if i == 0 else "leaf" if not self.children[i]
                     else "trunk" if self.level[i] == 1 else "branch" for i in range(n)]
        self.kind[0] = "root" if n > 1 else "leaf"
        self.depth = depth + 1
        self.channels = {leaf: (spec.leaf_channels[k] if spec.leaf_channels else
                                list(range(spec.input_dim))) for k, leaf in enumerate(self.leaves)}
        self.members = sorted(range(n) if members is None else members)
        seeds = np.random.SeedSequence(spec.seed).spawn(n)
        self.reservoirs: dict[int, Reservoir] = {}
        for i in self.members:
            leaf = not self.children[i]
            in_dim = len(self.channels[i]) if leaf else sum(self.units[c] for c in self.children[i])
            kw: dict = {"spectral_radius": 0.9, "density": min(1.0, max(0.1, 10 / self.units[i])),
                  "input_density": 1.0}
            kw.update(spec.reservoir)
            if not leaf:
                kw["input_scaling"] = spec.coupling
                kw["input_density"] = 1.0
            self.reservoirs[i] = Reservoir(self.units[i], in_dim,
                                           seed=np.random.default_rng(seeds[i]), **kw)
        self.steps = 0

    def __len__(self) -> int:
        return len(self.parent)

    def post_order(self) -> list[int]:
        """Members with every child before its parent (breadth-first numbering reversed)."""
        return sorted(self.members, reverse=True)

    def level_sizes(self) -> list[int]:
        return [self.level.count(k) for k in range(self.depth)]

    def run(self, U, upstream: dict[int, np.ndarray] | None = None) -> dict[int, np.ndarray]:
        """Run the member membranes over U (T, input_dim). States of non-member children come
        from `upstream`. Returns {membrane index: states (T, units)}; index 0 is the root."""
        U = as_float_array("U", U, (1, 2))
        U = U[:, None] if U.ndim == 1 else U
        if U.shape[1] != self.spec.input_dim:
            raise ValueError(f"U must have {self.spec.input_dim} features on its last axis, "
                             f"got shape {U.shape}")
        states = dict(upstream or {})
        for i in self.post_order():
            if not self.children[i]:
                x = U[:, self.channels[i]]
            else:
                missing = [c for c in self.children[i] if c not in states]
                if missing:
                    raise ValueError(f"upstream must hold the states of membranes {missing}")
                x = np.hstack([states[c] for c in self.children[i]])
            states[i] = self.reservoirs[i].run(x)
        self.steps += len(U)
        return {i: states[i] for i in self.members}

    def encode(self, U, upstream: dict[int, np.ndarray] | None = None) -> dict[int, np.ndarray]:
        """Like `run`, but from the zero state and leaving the current state untouched, so
        independent requests can share one tree."""
        saved = self.get_state()
        self.reset()
        try:
            return self.run(U, upstream)
        finally:
            self.set_state(saved)

    def get_state(self) -> dict:
        return {"steps": self.steps, "states": {i: self.reservoirs[i].state.copy() for i in self.members}}

    def set_state(self, state: dict) -> None:
        for i in self.members:
            self.reservoirs[i].reset(state["states"][i])
        self.steps = int(state["steps"])

    def reset(self) -> None:
        for r in self.reservoirs.values():
            r.reset()
        self.steps = 0
