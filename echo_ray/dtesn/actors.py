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

Checkpoints go where `checkpoint_location` says (echo_ray.dtesn.checkpoint: Redis or a
pyarrow storage URI); a node-local path is refused on a multi-node cluster, because an actor
restarted on another node would not find it. `checkpoints=False` keeps no checkpoints at all
(stateless use: `encode`), and then nothing is refused; recovery then replays every input
since the start.
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from echo_ray.autoscaling.replica_load import ReplicaLoad
from echo_ray.checks import as_float_array
from echo_ray.waiting import wait_until

from .checkpoint import CheckpointLocation, checkpoint_location
from .membrane_tree import MembraneTree, TreeSpec


class StaleStateError(RuntimeError):
    """A membrane group is not at the step the caller expects (it was restarted)."""


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)
class MembraneActor:
    def __init__(self, spec: dict, members: list[int], location: CheckpointLocation | None,
                 system: str, key: str):
        self.tree = MembraneTree(TreeSpec.from_dict(spec), members=members)
        self.store = location.open(system) if location is not None else None
        self.key = key
        saved = self.store.load(key) if self.store is not None else None
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
        if self.store is None:
            raise RuntimeError("this system keeps no checkpoints (checkpoints=False)")
        self.store.save(self.key, self.tree.get_state())
        return self.tree.steps

    def restore(self) -> int:
        saved = self.store.load(self.key) if self.store is not None else None
        if saved is None:
            self.tree.reset()
        else:
            self.tree.set_state(saved)
        return self.tree.steps

    def steps(self) -> int:
        return self.tree.steps

    def get_state(self) -> dict:
        return self.tree.get_state()

    def set_state(self, state: dict) -> int:
        self.tree.set_state(state)
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
    group_of: dict[int, int] = {}
    for i in range(len(tree)):
        group_of[i] = heads.index(i) if i in heads else group_of[tree.parent[i]]
    return [[i for i in range(len(tree)) if group_of[i] == g] for g in range(len(heads))]


class DTESNSystem:
    """A membrane tree spread over Ray actors. `run(U)` returns every membrane's states.

    Checkpoints: `checkpoint_dir` (a local folder), else `checkpoint_uri`, else the settings'
    location (`checkpoint_location`); `checkpoints=False` for none."""

    def __init__(self, spec: TreeSpec, n_actors: int | None = None, chunk_size: int = 2000,
                 checkpoint_dir: str | Path | None = None, name: str | None = None,
                 actor_options: dict | None = None, recover_timeout_s: float = 60.0,
                 checkpoint_uri: str | None = None, checkpoints: bool = True):
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.spec = spec
        self.layout = MembraneTree(spec, members=[])  # shape only, no reservoirs
        self.name = name or f"dtesn-{uuid.uuid4().hex[:8]}"
        self.chunk_size = chunk_size
        self.recover_timeout_s = recover_timeout_s
        self.location: CheckpointLocation | None = None
        if checkpoints:
            self.location = (CheckpointLocation("fs", str(checkpoint_dir)) if checkpoint_dir
                             else checkpoint_location(checkpoint_uri))
            if self.location.node_local:
                from echo_ray.clusterstate import require_single_node

                require_single_node(f"the DTESN checkpoint folder {self.location.describe()}",
                                    "ECHO_RAY_CHECKPOINT_URI (or REDIS_URL)")
        self.actor_options = actor_options or {}
        self.steps = 0
        self._log: list[np.ndarray] = []  # input since the last checkpoint
        self.recoveries = 0
        self._generation = -1  # layouts built so far, minus one
        # calls (run/encode) in flight, and a resize waiting for them: a resize lets running
        # calls finish and holds new ones until the new layout is up
        self._gate = threading.Condition()
        self._calls = 0
        self._resizing = False
        self.load = ReplicaLoad(window_s=10.0)  # the group's own load signal (`measure`)
        self._build(n_actors or len(spec.parents))

    # -- layout ----------------------------------------------------------------------------
    def _build(self, n_actors: int) -> None:
        self.groups = partition(self.layout, n_actors)
        head_group = {g[0]: k for k, g in enumerate(self.groups)}
        self.child_groups = [[head_group[c] for m in g for c in self.layout.children[m]
                              if c in head_group] for g in self.groups]
        self.has_leaves = [any(not self.layout.children[m] for m in g) for g in self.groups]
        spec, n = self.spec.to_dict(), len(self.groups)
        # keyed by the layout too: after a resize, no actor finds another layout's groups.
        # Named per layout generation: ray.kill is asynchronous, so the old layout's names may
        # still be taken when the new layout's actors start.
        self._generation += 1
        self.actors = [MembraneActor.options(name=f"{self.name}:{self._generation}:{k}",
                                             **self.actor_options).remote(
            spec, g, self.location, self.name, f"group-{k}-of-{n}")
            for k, g in enumerate(self.groups)]

    @property
    def n_actors(self) -> int:
        return len(self.actors)

    size = n_actors  # the scaling loop's name for it (as AgentPool.size)

    @property
    def max_size(self) -> int:
        """At most one actor per membrane."""
        return len(self.layout)

    @property
    def generation(self) -> int:
        """Layouts built before the current one (a resize builds a new one)."""
        return self._generation

    def resize(self, n_actors: int, drain_timeout_s: float = 60.0) -> int:
        """Regroup the tree over `n_actors` actors, keeping the state (moved through the
        driver, then checkpointed in the new layout). Calls in flight finish first (new calls
        wait for the new layout); TimeoutError if they take longer than `drain_timeout_s`.
        Returns the new number of actors."""
        n_actors = max(1, min(int(n_actors), self.max_size))
        with self._gate:
            self._resizing = True
            try:
                if not self._gate.wait_for(lambda: self._calls == 0, drain_timeout_s):
                    raise TimeoutError(f"{self.name}: {self._calls} calls still running after "
                                       f"{drain_timeout_s} s; not resized")
                if n_actors != self.n_actors:
                    self._regroup(n_actors)
            finally:
                self._resizing = False
                self._gate.notify_all()
        return self.n_actors

    def _regroup(self, n_actors: int) -> None:
        state = self._collect_state()
        self.shutdown()
        self._build(n_actors)
        ray.get([a.set_state.remote({"steps": state["steps"],
                                     "states": {m: state["states"][m] for m in g}})
                 for a, g in zip(self.actors, self.groups, strict=True)])
        if self.location is not None:  # the new groups' checkpoints: a restart resumes here
            self.checkpoint()
        # else the log still holds every input since step 0, which recovery replays

    @contextmanager
    def _call(self):
        """One call in flight: waits while a resize runs, and is measured (`load`)."""
        with self._gate:
            while self._resizing:
                self._gate.wait()
            self._calls += 1
        try:
            with self.load.track():
                yield
        finally:
            with self._gate:
                self._calls -= 1
                self._gate.notify_all()

    def measure(self, t: float | None = None) -> dict:
        """The group's load as a `Sample` dict for the scaling optimizer: calls per second and
        their p95 and errors over the last 10 s; utilisation = mean calls in flight since the
        previous `measure` over the actors (a call keeps one actor's worth busy: the groups
        pipeline); calls beyond one per actor are the queue."""
        stats = self.load.stats()
        n = max(1, self.n_actors)
        in_flight = self.load.in_flight
        return {"t": time.monotonic() if t is None else float(t),
                "request_rate": stats["request_rate"], "replicas": self.n_actors,
                "utilisation": self.load.occupancy() / n, "ongoing_requests": float(in_flight),
                "p95_latency_ms": stats["p95_latency_ms"], "error_rate": stats["error_rate"],
                "queue_length": float(max(0, in_flight - n))}

    # -- running ---------------------------------------------------------------------------
    def run(self, U, members: list[int] | str = "all") -> dict[int, np.ndarray]:
        """States (T, units) for input U (T, input_dim) of every membrane, or of `members`
        ("root" = [0]); continues from the current state. Survives a membrane actor dying at
        any point. Asking for fewer membranes moves less data out of the actors."""
        U = self._check(U)
        with self._call():
            return self._run(U, members)

    def _run(self, U: np.ndarray, members: list[int] | str) -> dict[int, np.ndarray]:
        keep = None if members == "all" else [0] if members == "root" else [int(m) for m in members]
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
        with self._call():
            return self._encode(U)

    def _encode(self, U: np.ndarray) -> dict[int, np.ndarray]:
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
        with self._call():
            return self._encode_batch(Us)

    def _encode_batch(self, Us: list) -> list[dict[int, np.ndarray]]:
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

        def restored() -> bool:
            try:
                ray.get([a.restore.remote() for a in self.actors], timeout=5)
                return True
            except (RayActorError, GetTimeoutError):
                return False

        wait_until(restored, self.recover_timeout_s, "the membrane actors restored")
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
        self._need_checkpoints()
        steps = ray.get([a.checkpoint.remote() for a in self.actors])
        assert len(set(steps)) == 1 and steps[0] == self.steps, steps
        self._log.clear()
        return self.steps

    def restore(self) -> int:
        """Return every group to the last checkpoint, discarding input since."""
        self._need_checkpoints()
        steps = ray.get([a.restore.remote() for a in self.actors])
        self.steps = steps[0]
        self._log.clear()
        return self.steps

    def _need_checkpoints(self) -> None:
        if self.location is None:
            raise RuntimeError(f"{self.name} keeps no checkpoints (created with "
                               "checkpoints=False)")

    def _collect_state(self) -> dict:
        states: dict = {}
        for part in ray.get([a.get_state.remote() for a in self.actors]):
            assert part["steps"] == self.steps, (part["steps"], self.steps)
            states.update(part["states"])
        return {"steps": self.steps, "states": states}

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a, no_restart=True)
        self.actors = []
