"""One DTESN engine per tree spec, created on first use: membranes in Ray actors
(`DTESNSystem`) inside the served app, or in-process (`LocalEngine`) elsewhere. In the served
app, small encodes run in the replica itself and large ones on the actors
(`echo_ray.service.placement`, `inprocess_max_work`).

The served app only encodes (every request from the zero state), so its systems keep no
checkpoints: nothing to store, and nothing node-local to refuse on a multi-node cluster."""

from __future__ import annotations

import hashlib
import json
import threading

from echo_ray.dtesn.engine import LocalEngine
from echo_ray.dtesn.membrane_tree import TreeSpec

from .placement import PlacedEngine


def spec_key(spec: TreeSpec) -> str:
    return hashlib.sha1(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def on_this_node() -> dict:
    """Actor options that keep a replica's membrane actors on the replica's node. They ask
    for 0 CPU, so Ray's hybrid policy spills them off a busy node onto an idle one, which
    then never idles and is never removed (tests/multinode/test_multinode_autoscaler.py),
    and every request crosses nodes. Hard affinity: the actors share their replica's fate
    anyway (an actor dies with its owner), and a soft one was seen not to hold (RESULTS.md,
    the cluster grows and shrinks)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}


class EngineCache:
    """`on_new(key, engine)` is called once for each engine created (the worker puts its
    membrane actor groups under the scaling loop there). With actors and
    `inprocess_max_work` > 0, a call gets a `PlacedEngine` over the actor system and an
    in-process twin; `engines()`, `items()` and `on_new` still see the actor systems only (what
    the scaling loop and the health check act on)."""

    def __init__(self, use_actors: bool, name_prefix: str = "echo", on_new=None,
                 inprocess_max_work: int = 0):
        self.use_actors, self.prefix, self.on_new = use_actors, name_prefix, on_new
        self.inprocess_max_work = int(inprocess_max_work)
        self._engines: dict[str, object] = {}
        self._placed: dict[str, PlacedEngine] = {}
        self._lock = threading.Lock()
        self.evolution_s = 0.0

    def __call__(self, spec: TreeSpec):
        key = spec_key(spec)
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                if self.use_actors:
                    from echo_ray.dtesn.actors import DTESNSystem

                    engine = DTESNSystem(spec, n_actors=1,  # small trees: one hop
                                         chunk_size=4096, name=f"{self.prefix}-{key}",
                                         checkpoints=False, actor_options=on_this_node())
                else:
                    engine = LocalEngine(spec)
                self._engines[key] = engine
                if self.use_actors and self.inprocess_max_work > 0:
                    self._placed[key] = PlacedEngine(LocalEngine(spec), engine,
                                                     self.inprocess_max_work)
                if self.on_new is not None:
                    self.on_new(key, engine)
            return self._placed.get(key, engine)

    def engines(self) -> list:
        with self._lock:
            return list(self._engines.values())

    def items(self) -> list[tuple[str, object]]:
        with self._lock:
            return list(self._engines.items())

    def actors(self) -> list:
        """Every membrane actor of every engine (empty in-process)."""
        with self._lock:
            return [a for e in self._engines.values() for a in getattr(e, "actors", [])]

    def wait_for_actors(self, timeout_s: float = 120.0) -> None:
        """Until every membrane actor answers (GetTimeoutError past `timeout_s`). A warm-up
        that ran in-process never called them, and the replica's first health check (10 s)
        found them still starting on a busy machine and failed the replica."""
        with self._lock:
            placed = bool(self._placed)
        actors = self.actors() if placed else []  # all on the actors: the warm-up called them
        if actors:
            import ray

            ray.get([a.steps.remote() for a in actors], timeout=timeout_s)

    def placement(self) -> dict[str, int]:
        """Calls run in-process and on the actors so far, over every engine."""
        with self._lock:
            placed = list(self._placed.values())
        return {where: sum(p.counts[where] for p in placed)
                for where in ("in_process", "actors")}

    def shutdown(self) -> None:
        for engine in self._engines.values():
            if hasattr(engine, "shutdown"):
                engine.shutdown()
        self._engines.clear()
        self._placed.clear()
