"""L4: entry bytes in Redis, shared by every process that points at the same server.

Keys are namespaced (`echo_ray:cache:{ns}:{key}`); each tag is a Redis set of
keys (`echo_ray:cache-tag:{ns}:{tag}`) and each tagged key remembers its tags
(`echo_ray:cache-keytags:{ns}:{key}`), so re-tagging and deleting stay exact.
Writes and deletes run as small Lua scripts (one round trip, atomic); reads of
many keys are pipelined; `clear` walks our namespace with SCAN, never KEYS.

Redis being down must not hurt callers: every call is guarded, errors are
counted, and after a failure the tier stays quiet for an exponentially growing
backoff (base doubling up to a cap) before trying again. redis-py reconnects on
the next attempt. Nothing raises to the caller; a failed read is a miss.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from echo_ray.cache.tiers.base import Hit, TierStats

T = TypeVar("T")

NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# KEYS[1]=item KEYS[2]=key's tag set; ARGV: value, ttl_ms (0 = none), tag prefix, key, tags...
_PUT = """
local old = redis.call('SMEMBERS', KEYS[2])
for _, tag in ipairs(old) do redis.call('SREM', ARGV[3] .. tag, ARGV[4]) end
redis.call('DEL', KEYS[2])
local ms = tonumber(ARGV[2])
if ms > 0 then
  if ms % 1000 == 0 then
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ms / 1000)
  else
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ms)
  end
else
  redis.call('SET', KEYS[1], ARGV[1])
end
for i = 5, #ARGV do
  local tkey = ARGV[3] .. ARGV[i]
  local existed = redis.call('EXISTS', tkey)
  redis.call('SADD', tkey, ARGV[4])
  redis.call('SADD', KEYS[2], ARGV[i])
  if ms == 0 then
    redis.call('PERSIST', tkey)
  elseif existed == 0 then
    redis.call('PEXPIRE', tkey, ms)
  else
    local cur = redis.call('PTTL', tkey)
    if cur >= 0 and cur < ms then redis.call('PEXPIRE', tkey, ms) end
  end
end
if #ARGV >= 5 and ms > 0 then redis.call('PEXPIRE', KEYS[2], ms) end
return 1
"""

# KEYS[1]=item KEYS[2]=key's tag set; ARGV: tag prefix, key
_DELETE = """
local old = redis.call('SMEMBERS', KEYS[2])
for _, tag in ipairs(old) do redis.call('SREM', ARGV[1] .. tag, ARGV[2]) end
redis.call('DEL', KEYS[2])
return redis.call('DEL', KEYS[1])
"""


class RedisTier:
    """One redis-py client (hiredis parser when installed) for one namespace."""

    name = "l4"

    def __init__(self, url: str, namespace: str = "default", *, socket_timeout: float = 0.5,
                 backoff_base: float = 0.05, backoff_max: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        if not NAMESPACE_RE.match(namespace):
            raise ValueError(f"namespace must match {NAMESPACE_RE.pattern}, got {namespace!r}")
        if not backoff_base > 0 or backoff_max < backoff_base:
            raise ValueError("backoff_base must be > 0 and backoff_max >= backoff_base, got "
                             f"{backoff_base!r}, {backoff_max!r}")
        self.namespace = namespace
        self.prefix = f"echo_ray:cache:{namespace}:"
        self.tag_prefix = f"echo_ray:cache-tag:{namespace}:"
        self.keytags_prefix = f"echo_ray:cache-keytags:{namespace}:"
        self.client = redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0), health_check_interval=0)
        self._put_script = self.client.register_script(_PUT)
        self._delete_script = self.client.register_script(_DELETE)
        self._clock = clock
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._failures = 0
        self._retry_at = 0.0
        self.stats = TierStats()
        self.reconnects = 0
        self.skipped_while_down = 0
        self.last_error: str | None = None

    # -- resilience -----------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """False while backing off after a failure."""
        return self._failures == 0

    def _guarded(self, call: Callable[[], T], default: T) -> T:
        if self._failures and self._clock() < self._retry_at:
            self.skipped_while_down += 1
            return default
        try:
            result = call()
        except (redis.RedisError, OSError) as exc:
            self.stats.errors += 1
            self._failures += 1
            delay = min(self.backoff_max, self.backoff_base * 2 ** (self._failures - 1))
            self._retry_at = self._clock() + delay
            self.last_error = f"{type(exc).__name__}: {exc}"
            return default
        if self._failures:
            self.reconnects += 1
            self._failures = 0
        return result

    # -- tier interface -------------------------------------------------------------------
    def get(self, key: str) -> Hit | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Hit]:
        """One pipelined round trip (GET + PTTL per key) for any number of keys."""
        keys = list(keys)
        if not keys:
            return {}

        def call() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.get(self.prefix + key)
                pipe.pttl(self.prefix + key)
            return pipe.execute()

        replies = self._guarded(call, None)
        if replies is None:
            self.stats.misses += len(keys)
            return {}
        found: dict[str, Hit] = {}
        for i, key in enumerate(keys):
            blob, pttl = replies[2 * i], replies[2 * i + 1]
            if blob is None:
                self.stats.misses += 1
                continue
            self.stats.hits += 1
            # PTTL: -1 = no expiry, -2 = expired between the two commands.
            ttl = None if pttl == -1 else max(0.0, pttl / 1000.0)
            found[key] = Hit(blob, ttl)
        return found

    def put(self, key: str, entry: bytes, ttl: float | None, tags: Iterable[str] = ()) -> bool:
        ttl_ms = 0 if ttl is None else max(1, math.ceil(ttl * 1000))
        args: list[bytes | str | int] = [entry, ttl_ms, self.tag_prefix, key, *sorted(set(tags))]
        keys = [self.prefix + key, self.keytags_prefix + key]
        return self._guarded(lambda: bool(self._put_script(keys=keys, args=args)), False)

    def delete(self, key: str) -> bool:
        keys = [self.prefix + key, self.keytags_prefix + key]
        return self._guarded(
            lambda: bool(self._delete_script(keys=keys, args=[self.tag_prefix, key])), False)

    def delete_many(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        if not keys:
            return 0

        def call() -> int:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                self._delete_script(keys=[self.prefix + key, self.keytags_prefix + key],
                                    args=[self.tag_prefix, key], client=pipe)
            return sum(int(n) for n in pipe.execute())

        return self._guarded(call, 0)

    def keys_for_tags(self, tags: Iterable[str]) -> set[str]:
        tags = list(tags)

        def call() -> set[str]:
            found: set[str] = set()
            for tag in tags:
                for member in self.client.sscan_iter(self.tag_prefix + tag, count=500):
                    found.add(member.decode())
            return found

        return self._guarded(call, set())

    def delete_by_tags(self, tags: Iterable[str]) -> int:
        tags = list(tags)
        count = self.delete_many(self.keys_for_tags(tags))
        self._guarded(lambda: self.client.delete(*[self.tag_prefix + t for t in tags]), 0)
        return count

    def clear(self) -> int:
        """Delete every key of this namespace (items and tag sets); SCAN-based."""
        def call() -> int:
            removed = 0
            for prefix in (self.prefix, self.tag_prefix, self.keytags_prefix):
                batch: list[bytes] = []
                for name in self.client.scan_iter(match=prefix + "*", count=1000):
                    batch.append(name)
                    if len(batch) >= 1000:
                        removed += self.client.unlink(*batch)
                        batch = []
                if batch:
                    removed += self.client.unlink(*batch)
            return removed

        return self._guarded(call, 0)

    def close(self) -> None:
        self.client.close()

    def snapshot(self) -> dict[str, Any]:
        self.stats.extra.update(
            available=self.available,
            reconnects=self.reconnects,
            skipped_while_down=self.skipped_while_down,
            last_error=self.last_error,
        )
        return self.stats.snapshot(None, None)  # counting a shared namespace would need a SCAN
