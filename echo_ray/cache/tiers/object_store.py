"""Object-store tier: big numpy arrays shared between Ray workers without copying.

An array is stored once in Ray's object store by a named holder actor (the
holder calls `ray.put`, so it owns the object and the array outlives the
writer). Readers ask the holder for the ObjectRef and `ray.get` it: on the same
node that is a zero-copy, read-only view of shared memory. The holder bounds the
bytes it keeps with an LRU policy and drops expired arrays.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import ray

from echo_ray.cache.eviction.base import MISSING
from echo_ray.cache.tiers.base import Hit, TaggedStore, TierStats


@ray.remote(num_cpus=0)
class ObjectHolder(TaggedStore):
    """Owns the cached arrays' object refs for one namespace (LRU by array bytes)."""

    def __init__(self, max_bytes: int):
        super().__init__("lru", max_bytes, lambda item: item[1])

    def put(self, key: str, array: np.ndarray, ttl: float | None, tags: list[str]) -> bool:
        ref = ray.put(array)  # the holder owns it: it survives the writer
        return self._store(key, (ref, int(array.nbytes)), ttl, tags)

    def get(self, key: str) -> tuple[list[ray.ObjectRef], float | None, tuple[str, ...]] | None:
        item = self._policy.get(key, MISSING)
        if item is MISSING:
            return None
        # Wrapped in a list so Ray hands the caller the ref, not the resolved array.
        return [item[0]], self._policy.ttl_remaining(key), self._tags.tags_of(key)

    def delete_many(self, keys: list[str]) -> int:
        return sum(self.delete(key) for key in keys)

    def snapshot(self) -> dict[str, int]:
        self._policy.purge_expired()
        return {"items": len(self._policy), "bytes": self._policy.currbytes,
                "evictions": self._policy.evictions}


def holder_name(namespace: str) -> str:
    return f"echo_ray_cache_objects:{namespace}"


class ObjectStoreTier:
    """Client side of the holder. Only arrays of at least `min_bytes` go here.

    The first tier to name a holder creates it. A non-detached holder lives as long
    as its creator's handle (Ray's actor lifetime rules); pass `detached=True` for a
    holder that outlives every client (kill it with `ray.kill` when done).
    """

    name = "objects"

    def __init__(self, namespace: str = "default", max_bytes: int = 2**30,
                 min_bytes: int = 2**20, detached: bool = False, timeout: float = 30.0):
        if not ray.is_initialized():
            raise RuntimeError("the object-store tier needs a running Ray (call ray.init first)")
        self.namespace = namespace
        self.min_bytes = min_bytes
        self.timeout = timeout
        self._max_bytes = max_bytes
        self._detached = detached
        self._holder = self._connect()
        self.stats = TierStats()

    def _connect(self) -> Any:
        # On the head (with the cache service and the ingress): a 0-CPU actor left to Ray's
        # default, or even softly pinned to a 0-CPU head, lands on a worker node and keeps it
        # from ever idling (tests/multinode/test_multinode_autoscaler.py saw both).
        options: dict[str, Any] = {"name": holder_name(self.namespace), "get_if_exists": True,
                                   "resources": {"node:__internal_head__": 0.001}}
        if self._detached:
            options["lifetime"] = "detached"
        return ObjectHolder.options(**options).remote(self._max_bytes)

    def accepts(self, value: Any) -> bool:
        return (isinstance(value, np.ndarray) and value.dtype.kind != "O"
                and value.nbytes >= self.min_bytes)

    def _call(self, method: str, *args: Any, default: Any = None) -> Any:
        try:
            return ray.get(getattr(self._holder, method).remote(*args), timeout=self.timeout)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            self.stats.errors += 1
            self.stats.extra["last_error"] = f"{type(exc).__name__}: {exc}"
            self._holder = self._connect()  # a new holder if the old one died
            return default

    def get(self, key: str) -> Hit | None:
        reply = self._call("get", key)
        if reply is None:
            self.stats.misses += 1
            return None
        (ref,), ttl, tags = reply
        try:
            array = ray.get(ref, timeout=self.timeout)
        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError):
            self.stats.errors += 1
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return Hit(array, ttl, tuple(tags))

    def put(self, key: str, array: np.ndarray, ttl: float | None,
            tags: Iterable[str] = ()) -> bool:
        return bool(self._call("put", key, array, ttl, sorted(set(tags)), default=False))

    def delete(self, key: str) -> bool:
        return self.delete_many([key]) > 0

    def forget(self, key: str) -> None:
        """Delete without waiting. Ray runs one caller's actor calls in order, so this
        caller's next read already sees it; used when a put replaces an array."""
        try:
            self._holder.delete_many.remote([key])
        except ray.exceptions.RayActorError:
            self.stats.errors += 1

    def delete_many(self, keys: Iterable[str]) -> int:
        return int(self._call("delete_many", list(keys), default=0))

    def keys_for_tags(self, tags: Iterable[str]) -> set[str]:
        return set(self._call("keys_for_tags", list(tags), default=set()))

    def clear(self) -> None:
        self._call("clear")

    def snapshot(self) -> dict[str, Any]:
        remote = self._call("snapshot", default={"items": None, "bytes": None, "evictions": 0})
        self.stats.evictions = remote["evictions"]
        return self.stats.snapshot(remote["items"], remote["bytes"])
