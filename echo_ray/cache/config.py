"""Cache configuration: what MultiLevelCache needs. The environment variables that set it are
read by echo_ray.settings (`Settings.cache_config()`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from echo_ray.cache.eviction import POLICIES

NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class CacheConfig:
    """Everything MultiLevelCache needs (the comments name the variables that set each)."""

    max_memory_mb: float = 512.0  # MAX_CACHE_MEMORY_MB: L1 + L2 together
    default_ttl_seconds: float = 300.0  # DEFAULT_TTL_SECONDS; 0 = entries never expire
    eviction_policy: str = "lru"  # EVICTION_POLICY: lru | lfu | fifo | ttl | tinylfu | arc
    enable_compression: bool = True  # ENABLE_COMPRESSION: the L2 tier
    # REDIS_URL: unset = no L4. Out of repr: the URL may hold a password.
    redis_url: str | None = field(default=None, repr=False)
    cache_dir: str | None = None  # CACHE_DIR (settings default $ECHO_RAY_DATA_DIR/cache); None = no L3
    namespace: str = "default"  # CACHE_NAMESPACE: isolates keys in Redis and on disk
    l1_share: float = 0.5  # CACHE_L1_SHARE: L1's part of the memory when L2 is on
    l2_min_bytes: int = 1024  # CACHE_L2_MIN_BYTES
    l2_min_saving: float = 0.2  # CACHE_L2_MIN_SAVING
    compression_level: int = 3  # CACHE_COMPRESSION_LEVEL (zstd)
    disk_limit_mb: float = 1024.0  # CACHE_DISK_LIMIT_MB
    object_store: str = "auto"  # CACHE_OBJECT_STORE: auto (when Ray runs) | on | off
    object_store_min_bytes: int = 1 << 20  # CACHE_OBJECT_STORE_MIN_BYTES
    object_store_max_mb: float = 1024.0  # CACHE_OBJECT_STORE_MAX_MB

    def __post_init__(self) -> None:
        if not self.max_memory_mb > 0:
            raise ValueError(f"max_memory_mb must be > 0, got {self.max_memory_mb!r}")
        if self.default_ttl_seconds < 0:
            raise ValueError(
                f"default_ttl_seconds must be >= 0 (0 = no expiry), got {self.default_ttl_seconds!r}")
        if self.eviction_policy not in POLICIES:
            raise ValueError(f"eviction_policy must be one of {sorted(POLICIES)}, "
                             f"got {self.eviction_policy!r}")
        if not NAMESPACE_RE.match(self.namespace):
            raise ValueError(f"namespace must match {NAMESPACE_RE.pattern}, got {self.namespace!r}")
        if not 0.0 < self.l1_share <= 1.0:
            raise ValueError(f"l1_share must be in (0, 1], got {self.l1_share!r}")
        if self.l2_min_bytes < 0:
            raise ValueError(f"l2_min_bytes must be >= 0, got {self.l2_min_bytes!r}")
        if not 0.0 <= self.l2_min_saving < 1.0:
            raise ValueError(f"l2_min_saving must be in [0, 1), got {self.l2_min_saving!r}")
        if not 1 <= self.compression_level <= 22:
            raise ValueError(f"compression_level must be in 1..22, got {self.compression_level!r}")
        if not self.disk_limit_mb > 0:
            raise ValueError(f"disk_limit_mb must be > 0, got {self.disk_limit_mb!r}")
        if self.object_store not in ("auto", "on", "off"):
            raise ValueError(f"object_store must be auto, on or off, got {self.object_store!r}")
        if self.object_store_min_bytes < 0 or not self.object_store_max_mb > 0:
            raise ValueError("object_store_min_bytes must be >= 0 and object_store_max_mb > 0")

    @property
    def default_ttl(self) -> float | None:
        return self.default_ttl_seconds or None

    @property
    def l1_bytes(self) -> int:
        share = self.l1_share if self.enable_compression else 1.0
        return max(1, int(self.max_memory_mb * share * 2**20))

    @property
    def l2_bytes(self) -> int:
        return max(1, int(self.max_memory_mb * 2**20) - self.l1_bytes)
