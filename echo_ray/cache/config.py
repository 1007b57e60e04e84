"""Cache configuration, read from the environment (names in the README's table)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from echo_ray.cache.eviction import POLICIES

NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class CacheConfig:
    """Everything MultiLevelCache needs; `from_env` maps variables onto the fields."""

    max_memory_mb: float = 512.0  # MAX_CACHE_MEMORY_MB: L1 + L2 together
    default_ttl_seconds: float = 300.0  # DEFAULT_TTL_SECONDS; 0 = entries never expire
    eviction_policy: str = "lru"  # EVICTION_POLICY: lru | lfu | fifo | ttl | tinylfu
    enable_compression: bool = True  # ENABLE_COMPRESSION: the L2 tier
    redis_url: str | None = None  # REDIS_URL: unset = no L4
    cache_dir: str | None = None  # CACHE_DIR (from_env default ~/.cache/echo-ray/cache; off = no L3)
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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> CacheConfig:
        """Read the variables from `env` (default os.environ); `overrides` win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name, field_name, kind in _ENV:
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            values[field_name] = _parse(name, raw.strip(), kind)
        # Embedded default: L3 on disk under ~/.cache/echo-ray/cache; CACHE_DIR=off disables it.
        if "cache_dir" not in values:
            values["cache_dir"] = str(Path.home() / ".cache" / "echo-ray" / "cache")
        elif str(values["cache_dir"]).lower() in ("off", "none", "false", "0"):
            values["cache_dir"] = None
        values.update(overrides)
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown CacheConfig fields: {sorted(unknown)}")
        return cls(**values)  # type: ignore[arg-type]


_ENV = [
    ("MAX_CACHE_MEMORY_MB", "max_memory_mb", float),
    ("DEFAULT_TTL_SECONDS", "default_ttl_seconds", float),
    ("EVICTION_POLICY", "eviction_policy", str),
    ("ENABLE_COMPRESSION", "enable_compression", bool),
    ("REDIS_URL", "redis_url", str),
    ("CACHE_DIR", "cache_dir", str),
    ("CACHE_NAMESPACE", "namespace", str),
    ("CACHE_L1_SHARE", "l1_share", float),
    ("CACHE_L2_MIN_BYTES", "l2_min_bytes", int),
    ("CACHE_L2_MIN_SAVING", "l2_min_saving", float),
    ("CACHE_COMPRESSION_LEVEL", "compression_level", int),
    ("CACHE_DISK_LIMIT_MB", "disk_limit_mb", float),
    ("CACHE_OBJECT_STORE", "object_store", str),
    ("CACHE_OBJECT_STORE_MIN_BYTES", "object_store_min_bytes", int),
    ("CACHE_OBJECT_STORE_MAX_MB", "object_store_max_mb", float),
]


def _parse(name: str, raw: str, kind: type) -> object:
    if kind is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError(f"{name} must be true or false, got {raw!r}")
    if kind is str:
        return raw.lower() if name in ("EVICTION_POLICY", "CACHE_OBJECT_STORE") else raw
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
