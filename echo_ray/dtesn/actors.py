"""Membrane trees on Ray actors, with checkpoints and recovery that replays lost input.

Each `MembraneActor` holds a connected group of membranes (a subtree cut out of the tree) and
processes whole chunks of a sequence per call, so actor-call overhead is paid per chunk, not per
time step. `DTESNSystem` submits every chunk for every group at once; Ray pipelines them (a
parent group works on chunk c while its children work on chunk c+1).

Recovery: every call carries the step count the caller expects the group to be at. A killed
actor is restarted by Ray (`max_restarts`) and reloads its group's last checkpoint, so its step
count no longer matches and the next call fails loudly instead of computing from a wrong state.
The system then restores every group to the checkpoint and replays the input it logged since,
so the outputs equal those of an uninterrupted run.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from .checkpoint import default_checkpoint_dir, load_state, save_state
from .membrane_tree import MembraneTree, TreeSpec
from .validation import as_float_array


class StaleStateError(RuntimeError):
    """A membrane group is not at the step the caller expects (it was restarted)."""


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)
class MembraneActor:
    def __init__(self, spec: dict, members: list[int], checkpoint_path: str):
        self.tree = MembraneTree(TreeSpec.from_dict(spec), members=members)
        self.path = Path(checkpoint_path)
        saved = load_state(self.path)
        if saved is not None:  # restarted (or reattached): resume from the last checkpoint
            self.tree.set_state(saved)

    @ray.method(num_returns=2)
    def process(self, U: np.ndarray, expected_steps: int, keep: list[int] | None,
                *upstream: dict) -> tuple[dict, dict]:
        """Run a chunk. Returns (the head membrane's states, which the parent group reads;
        the states of the members in `keep` (None = all) other than the head)."""
        if self.tree.steps != expected_steps:
            raise StaleStateError(f"membranes {self.tree.members} are at step {self.tree.steps}, "
                                  f"expected {expected_steps}")
        merged = {}
        for part in upstream:
            merged.update(part)
        out = self.tree.run(U, merged)
        head = self.tree.members[0]
        rest = {m: s for m, s in out.items() if m != head and (keep is None or m in keep)}
        return {head: out[head]}, rest

    def encode(self, U: np.ndarray, *upstream: dict) -> dict:
        merged = {}
        for part in upstream:
            merged.update(part)
        return self.tree.encode(U, merged)

    def encode_batch(self, Us: list, *upstream: list) -> list:
        """`encode` for many sequences in one call; upstream[k][i] belongs to Us[i]."""
        out = []
        for i, U in enumerate(Us):
            merged = {}
            for part in upstream:
                merged.update(part[i])
            out.append(self.tree.encode(U, merged))
        return out

    def checkpoint(self) -> int:
        save_state(self.path, self.tree.get_state())
        return self.tree.steps

    def restore(self) -> int:
        saved = load_state(self.path)
        if saved is None:
            self.tree.reset()
        else:
            self.tree.set_state(saved)
        return self.tree.steps

    def steps(self) -> int:
        return self.tree.steps


def _recoverable(exc: BaseException) -> bool:
    """An actor died or restarted (directly, or under a task that depended on it)."""
    while isinstance(exc, RayTaskError):
        exc = exc.cause
    return isinstance(exc, (RayActorError, StaleStateError))


def partition(tree: MembraneTree, n_groups: int) -> list[list[int]]:
    """Cut the tree into `n_groups` connected groups headed by the first membranes in breadth
    first order; each membrane joins the group of its nearest head ancestor."""
    heads = list(range(min(max(1, n_groups), len(tree))))
    group_of = {}
    for i in range(len(tree)):
        group_of[i] = heads.index(i) if i in heads else group_of[tree.parent[i]]
    return [[i for i in range(len(tree)) if group_of[i] == g] for g in range(len(heads))]


class DTESNSystem:
    """A membrane tree spread over Ray actors. `run(U)` returns every membrane's states."""

    def __init__(self, spec: TreeSpec, n_actors: int | None = None, chunk_size: int = 2000,
                 checkpoint_dir: str | Path | None = None, name: str | None = None,
                 actor_options: dict | None = None, recover_timeout_s: float = 60.0):
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.spec = spec
        self.layout = MembraneTree(spec, members=[])  # shape only, no reservoirs
        self.name = name or f"dtesn-{uuid.uuid4().hex[:8]}"
        self.chunk_size = chunk_size
        self.recover_timeout_s = recover_timeout_s
        self.dir = Path(checkpoint_dir or default_checkpoint_dir()) / self.name
        self.actor_options = actor_options or {}
        self.steps = 0
        self._log: list[np.ndarray] = []  # input since the last checkpoint
        self.recoveries = 0
        self._build(n_actors or len(spec.parents))

    # -- layout ----------------------------------------------------------------------------
    def _build(self, n_actors: int) -> None:
        self.groups = partition(self.layout, n_actors)
        head_group = {g[0]: k for k, g in enumerate(self.groups)}
        self.child_groups = [[head_group[c] for m in g for c in self.layout.children[m]
                              if c in head_group] for g in self.groups]
        self.has_leaves = [any(not self.layout.children[m] for m in g) for g in self.groups]
        spec = self.spec.to_dict()
        self.actors = [MembraneActor.options(name=f"{self.name}:{k}", **self.actor_options).remote(
            spec, g, str(self.dir / f"group-{k}.npz")) for k, g in enumerate(self.groups)]

    @property
    def n_actors(self) -> int:
        return len(self.actors)

    def resize(self, n_actors: int) -> None:
        """Regroup the tree over `n_actors` actors, keeping the state (via a checkpoint)."""
        state = self._collect_state()
        self.shutdown()
        self._build(n_actors)
        for k, g in enumerate(self.groups):
            save_state(self.dir / f"group-{k}.npz",
                       {"steps": state["steps"], "states": {m: state["states"][m] for m in g}})
        ray.get([a.restore.remote() for a in self.actors])
        self._log.clear()

    # -- running ---------------------------------------------------------------------------
    def run(self, U, members: list[int] | str = "all") -> dict[int, np.ndarray]:
        """States (T, units) for input U (T, input_dim) of every membrane, or of `members`
        ("root" = [0]); continues from the current state. Survives a membrane actor dying at
        any point. Asking for fewer membranes moves less data out of the actors."""
        U = self._check(U)
        keep = None if members == "all" else [0] if members == "root" else list(members)
        while True:
            try:
                out = self._submit(U, keep)
                break
            except (RayActorError, RayTaskError) as exc:
                if not _recoverable(exc):
                    raise
                self._recover()
        self._log.append(U)
        self.steps += len(U)
        return out

    def _submit(self, U: np.ndarray, keep: list[int] | None = None) -> dict[int, np.ndarray]:
        wanted = []
        for start in range(0, len(U), self.chunk_size):
            Uc = ray.put(U[start:start + self.chunk_size])
            heads: list = [None] * len(self.groups)
            for g in reversed(range(len(self.groups))):  # children groups have larger indices
                ups = [heads[c] for c in self.child_groups[g]]
                heads[g], rest = self.actors[g].process.remote(Uc, self.steps + start, keep, *ups)
                wanted.append(rest)
                if keep is None or self.groups[g][0] in keep:
                    wanted.append(heads[g])
        parts, first_error = [], None
        for ref in wanted:  # get each, so that no error goes unhandled
            try:
                parts.append(ray.get(ref))
            except (RayActorError, RayTaskError) as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        out: dict[int, list] = {}
        for part in parts:  # in chunk order
            for m, s in part.items():
                out.setdefault(m, []).append(s)
        return {m: np.concatenate(out[m]) for m in sorted(out)}

    def encode(self, U) -> dict[int, np.ndarray]:
        """States of every membrane for U from the zero state, leaving the system's state
        untouched (stateless requests: one sequence, one call per actor group)."""
        U = self._check(U)
        for attempt in range(3):
            refs: list = [None] * len(self.groups)
            for g in reversed(range(len(self.groups))):
                ups = [refs[c] for c in self.child_groups[g]]
                refs[g] = self.actors[g].encode.remote(U, *ups)
            try:
                out = {}
                for part in ray.get(refs):
                    out.update(part)
                return dict(sorted(out.items()))
            except (RayActorError, RayTaskError) as exc:
                if not _recoverable(exc) or attempt == 2:
                    raise
                self._recover()
        raise AssertionError("unreachable")

    def encode_batch(self, Us: list) -> list[dict[int, np.ndarray]]:
        """`encode` for many sequences (of any lengths) with one call per actor group."""
        Us = [self._check(U) for U in Us]
        for attempt in range(3):
            refs: list = [None] * len(self.groups)
            for g in reversed(range(len(self.groups))):
                ups = [refs[c] for c in self.child_groups[g]]
                refs[g] = self.actors[g].encode_batch.remote(Us, *ups)
            try:
                parts = ray.get(refs)
                return [dict(sorted({m: s for p in parts for m, s in p[i].items()}.items()))
                        for i in range(len(Us))]
            except (RayActorError, RayTaskError) as exc:
                if not _recoverable(exc) or attempt == 2:
                    raise
                self._recover()
        raise AssertionError("unreachable")

    def _check(self, U) -> np.ndarray:
        U = as_float_array("U", U, (1, 2))
        U = U[:, None] if U.ndim == 1 else U
        if U.shape[1] != self.spec.input_dim:
            raise ValueError(f"U must have {self.spec.input_dim} features on its last axis, "
                             f"got shape {U.shape}")
        return U

    def _recover(self) -> None:
        """Wait for restarted actors, restore all groups to the checkpoint, replay the log."""
        deadline = time.monotonic() + self.recover_timeout_s
        while True:
            try:
                ray.get([a.restore.remote() for a in self.actors], timeout=5)
                break
            except (RayActorError, GetTimeoutError):
                if time.monotonic() > deadline:
                    raise
        self.recoveries += 1
        self.steps -= sum(len(u) for u in self._log)
        log, self._log = self._log, []
        for U in log:
            self._submit(U, keep=[])
            self._log.append(U)
            self.steps += len(U)

    # -- state -----------------------------------------------------------------------------
    def checkpoint(self) -> int:
        """Persist every group's state; returns the step count checkpointed."""
        steps = ray.get([a.checkpoint.remote() for a in self.actors])
        assert len(set(steps)) == 1 and steps[0] == self.steps, steps
        self._log.clear()
        return self.steps

    def restore(self) -> int:
        """Return every group to the last checkpoint, discarding input since."""
        steps = ray.get([a.restore.remote() for a in self.actors])
        self.steps = steps[0]
        self._log.clear()
        return self.steps

    def _collect_state(self) -> dict:
        self.checkpoint()
        states = {}
        for k in range(len(self.groups)):
            states.update(load_state(self.dir / f"group-{k}.npz")["states"])
        return {"steps": self.steps, "states": states}

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a, no_restart=True)
        self.actors = []
