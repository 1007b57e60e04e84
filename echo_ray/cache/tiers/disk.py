"""L3: entry bytes on local disk (diskcache: SQLite + files), surviving restarts.

diskcache pickles anything that is not bytes/str/number, and unpickles whatever
its rows say. `BytesOnlyDisk` closes both doors: it stores str keys and bytes
values only, and refuses to read a pickled key or value. Tags live in a second
diskcache beside the entries (tag -> keys and key -> tags), updated in one
transaction so several processes can share the directory.

Disk eviction is diskcache's "least-recently-stored": unlike its LRU/LFU modes
it does not turn every read into a write (which measured ~18x slower reads).
Recency and frequency are the in-memory tiers' job; L3 is the large cold store.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import diskcache

from echo_ray.cache.codec import decode, encode
from echo_ray.cache.tiers.base import Hit, TierStats


class BytesOnlyDisk(diskcache.Disk):
    """A diskcache serializer that never pickles and never unpickles."""

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError(f"disk tier keys must be str, got {type(key).__name__}")
        return super().put(key)

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise ValueError("refusing to unpickle a diskcache key (echo_ray never unpickles)")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN):
        if type(value) is not bytes:
            raise TypeError(f"disk tier values must be bytes, got {type(value).__name__}")
        return super().store(value, read, key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode not in (diskcache.core.MODE_RAW, diskcache.core.MODE_BINARY):
            raise ValueError(f"refusing to read a diskcache value stored in mode {mode} "
                             "(only raw bytes are accepted; echo_ray never unpickles)")
        return super().fetch(mode, filename, value, read)


class _CountingCache(diskcache.Cache):
    """diskcache.Cache that counts the rows its culling step removes (our evictions)."""

    culled = 0

    def _cull(self, now, sql, cleanup, limit=None):  # noqa: ANN001 (diskcache's signature)
        def counting_sql(statement, *args):
            cursor = sql(statement, *args)
            if statement.lstrip().upper().startswith("DELETE"):
                self.culled += max(cursor.rowcount, 0)
            return cursor

        return super()._cull(now, counting_sql, cleanup, limit)


class DiskTier:
    """Entries under `<directory>/<namespace>/entries`, tags under `.../tags`."""

    name = "l3"

    def __init__(self, directory: str | Path, namespace: str = "default",
                 size_limit_bytes: int = 2**30, timeout: float = 2.0):
        root = Path(directory) / namespace
        self.directory = root
        self._entries = _CountingCache(
            str(root / "entries"), timeout=timeout, disk=BytesOnlyDisk,
            size_limit=int(size_limit_bytes), eviction_policy="least-recently-stored",
            disk_min_file_size=2**16)
        self._tags = diskcache.Cache(str(root / "tags"), timeout=timeout, disk=BytesOnlyDisk,
                                     size_limit=2**62, eviction_policy="none")
        self.stats = TierStats()

    # -- helpers --------------------------------------------------------------------------
    def _read_keys(self, tag_key: str) -> set[str]:
        raw = self._tags.get(tag_key)
        return set(decode(raw)) if raw is not None else set()

    def _write_keys(self, tag_key: str, keys: set[str]) -> None:
        if keys:
            self._tags.set(tag_key, encode(sorted(keys)))
        else:
            self._tags.delete(tag_key)

    def _untag(self, key: str) -> None:
        """Remove `key` from the tag index (call inside a transaction)."""
        raw = self._tags.get("k:" + key)
        if raw is None:
            return
        for tag in decode(raw):
            keys = self._read_keys("t:" + tag)
            keys.discard(key)
            self._write_keys("t:" + tag, keys)
        self._tags.delete("k:" + key)

    # -- tier interface -------------------------------------------------------------------
    def get(self, key: str) -> Hit | None:
        try:
            blob, expire_time = self._entries.get(key, default=None, expire_time=True)
        except diskcache.Timeout:
            self.stats.errors += 1
            blob = None
        except ValueError as exc:  # a row we refuse to read (pickled by someone else)
            self.stats.errors += 1
            self.stats.extra["last_error"] = str(exc)
            blob = None
        if blob is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        ttl = None if expire_time is None else max(0.0, expire_time - time.time())
        return Hit(blob, ttl)

    def put(self, key: str, entry: bytes, ttl: float | None, tags: Iterable[str] = ()) -> bool:
        tags = sorted(set(tags))
        try:
            self._entries.set(key, entry, expire=ttl)
            if tags or "k:" + key in self._tags:
                with self._tags.transact():
                    self._untag(key)
                    if tags:
                        self._tags.set("k:" + key, encode(tags))
                        for tag in tags:
                            keys = self._read_keys("t:" + tag)
                            keys.add(key)
                            self._write_keys("t:" + tag, keys)
        except diskcache.Timeout:
            self.stats.errors += 1
            return False
        return True

    def delete(self, key: str) -> bool:
        try:
            found = self._entries.delete(key)
            if "k:" + key in self._tags:
                with self._tags.transact():
                    self._untag(key)
        except diskcache.Timeout:
            self.stats.errors += 1
            return False
        return found

    def keys_for_tags(self, tags: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for tag in tags:
            found |= self._read_keys("t:" + tag)
        return found

    def clear(self) -> None:
        self._entries.clear()
        self._tags.clear()

    def close(self) -> None:
        self._entries.close()
        self._tags.close()

    def snapshot(self) -> dict[str, Any]:
        self.stats.evictions = self._entries.culled
        self.stats.extra["directory"] = str(self.directory)
        return self.stats.snapshot(len(self._entries), self._entries.volume())
