"""Eviction policies: small classes over one interface (`EvictionPolicy`), no Ray."""

from __future__ import annotations

from typing import Any

from echo_ray.cache.eviction.arc import ARCPolicy
from echo_ray.cache.eviction.base import EvictionPolicy
from echo_ray.cache.eviction.fifo import FIFOPolicy
from echo_ray.cache.eviction.lfu import LFUPolicy
from echo_ray.cache.eviction.lru import LRUPolicy
from echo_ray.cache.eviction.sketch import FrequencyCounter
from echo_ray.cache.eviction.tinylfu import TinyLFUPolicy
from echo_ray.cache.eviction.ttl import TTLPolicy

POLICIES: dict[str, type[EvictionPolicy]] = {
    cls.name: cls for cls in (LRUPolicy, LFUPolicy, FIFOPolicy, TTLPolicy, TinyLFUPolicy,
                               ARCPolicy)
}


def make_policy(name: str, **kwargs: Any) -> EvictionPolicy:
    """Build the policy called `name` (lru, lfu, fifo, ttl, tinylfu, arc)."""
    try:
        cls = POLICIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"eviction policy must be one of {sorted(POLICIES)}, got {name!r}") from None
    return cls(**kwargs)


__all__ = ["ARCPolicy", "POLICIES", "EvictionPolicy", "FIFOPolicy", "FrequencyCounter", "LFUPolicy",
           "LRUPolicy", "TTLPolicy", "TinyLFUPolicy", "make_policy"]
