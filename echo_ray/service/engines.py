"""One DTESN engine per tree spec, created on first use: membranes in Ray actors
(`DTESNSystem`) inside the served app, or in-process (`LocalEngine`) elsewhere."""

from __future__ import annotations

import hashlib
import json
import threading

from echo_ray.dtesn.engine import LocalEngine
from echo_ray.dtesn.membrane_tree import TreeSpec


def spec_key(spec: TreeSpec) -> str:
    return hashlib.sha1(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


class EngineCache:
    def __init__(self, use_actors: bool, name_prefix: str = "echo", checkpoint_dir=None):
        self.use_actors, self.prefix, self.checkpoint_dir = use_actors, name_prefix, checkpoint_dir
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
                                         checkpoint_dir=self.checkpoint_dir)
                else:
                    engine = LocalEngine(spec)
                self._engines[key] = engine
            return engine

    def actors(self) -> list:
        """Every membrane actor of every engine (empty in-process)."""
        with self._lock:
            return [a for e in self._engines.values() for a in getattr(e, "actors", [])]

    def shutdown(self) -> None:
        for engine in self._engines.values():
            if hasattr(engine, "shutdown"):
                engine.shutdown()
        self._engines.clear()
