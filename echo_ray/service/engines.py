"""One DTESN engine per tree spec, created on first use: membranes in Ray actors
(`DTESNSystem`) inside the served app, or in-process (`LocalEngine`) elsewhere.

The served app only encodes (every request from the zero state), so its systems keep no
checkpoints: nothing to store, and nothing node-local to refuse on a multi-node cluster."""

from __future__ import annotations

import hashlib
import json
import threading

from echo_ray.dtesn.engine import LocalEngine
from echo_ray.dtesn.membrane_tree import TreeSpec


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
    membrane actor groups under the scaling loop there)."""

    def __init__(self, use_actors: bool, name_prefix: str = "echo", on_new=None):
        self.use_actors, self.prefix, self.on_new = use_actors, name_prefix, on_new
        self._engines: dict[str, object] = {}
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
                if self.on_new is not None:
                    self.on_new(key, engine)
            return engine

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

    def shutdown(self) -> None:
        for engine in self._engines.values():
            if hasattr(engine, "shutdown"):
                engine.shutdown()
        self._engines.clear()
