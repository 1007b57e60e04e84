"""Multi-level cache: L1 memory, L2 compressed, L3 disk, L4 Redis, Ray object store.

Importing this package does not import Ray; the Ray pieces (object-store tier,
CacheService actor, metrics) load only when used.
"""

from echo_ray.cache.codec import CodecError, decode, encode
from echo_ray.cache.config import CacheConfig
from echo_ray.cache.eviction import POLICIES, EvictionPolicy, make_policy
from echo_ray.cache.multilevel import MultiLevelCache

__all__ = ["POLICIES", "CacheConfig", "CodecError", "EvictionPolicy", "MultiLevelCache",
           "decode", "encode", "make_policy"]
