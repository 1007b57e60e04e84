"""The Redis session store (`REDIS_URL`): shared by every node of a cluster."""

from __future__ import annotations

import time
import uuid

from echo_ray.cache.codec import encode

from .base import (
    SessionMeta,
    SessionNotFound,
    StoreUnavailable,
    VersionConflict,
    decode_state,
    new_session_id,
    too_many,
)

# Compare-and-set of a session's state: KEYS meta, state, index; ARGV expected version, blob,
# ttl, now, write id. Returns {new version, created}, {-1} if missing, {-2} on a version
# conflict. Idempotent: if the client resends the same write (its reply was lost and redis-py
# retried), the write id shows it was applied already and the same answer comes back.
_SAVE = """
local h = redis.call('HMGET', KEYS[1], 'version', 'created', 'write')
if not h[1] then return {-1} end
local v = tonumber(h[1])
if v ~= tonumber(ARGV[1]) then
  if v == tonumber(ARGV[1]) + 1 and h[3] == ARGV[5] then return {v, h[2]} end
  return {-2}
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
local nv = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'updated', ARGV[4], 'expires', ARGV[4] + ARGV[3], 'write', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4] + ARGV[3], KEYS[1])
return {nv, h[2]}
"""

# Replay of a journalled version: KEYS meta, state, index; ARGV version, blob, ttl, now,
# created, updated. Writes it only if Redis does not hold this version (or a newer one)
# already, so replaying twice changes nothing. Returns 1 if written, 0 if skipped.
_PUT = """
local v = redis.call('HGET', KEYS[1], 'version')
if v and tonumber(v) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'created', ARGV[5], 'updated', ARGV[6],
           'expires', ARGV[4] + ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4] + ARGV[3], KEYS[1])
return 1
"""


class RedisSessionStore:
    """Sessions in Redis: a hash for metadata, a string for the codec-encoded state, both with
    the session TTL, and a sorted set of expiry times to count active sessions."""

    def __init__(self, url: str, ttl_s: int = 3600, max_sessions: int = 10_000,
                 namespace: str = "echo_ray"):
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        self.ttl_s, self.max_sessions = ttl_s, max_sessions
        self.ns = namespace
        # `url` may carry a password (redis://:secret@host) and TLS (rediss://...?ssl_ca_certs=)
        # and is never logged. Two quick retries ride out a blip; a real outage fails fast
        # (redis-py's default retries for seconds) so callers can answer 503 or journal.
        self.r = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2,
                                      health_check_interval=10,
                                      retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), 2))
        self._save = self.r.register_script(_SAVE)
        self._put = self.r.register_script(_PUT)
        self._index = f"{self.ns}:sessions"

    def _keys(self, sid: str) -> tuple[str, str]:
        return f"{self.ns}:session:{sid}:meta", f"{self.ns}:session:{sid}:state"

    def _call(self, fn, *args):
        import redis

        try:
            return fn(*args)
        except redis.AuthenticationError:
            raise StoreUnavailable("Redis session store refused the credentials in REDIS_URL "
                                   "(wrong or missing password)") from None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"Redis session store unreachable ({type(exc).__name__}: "
                                   f"{exc})") from None
        except redis.ResponseError as exc:
            if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                raise StoreUnavailable("Redis session store needs a password: put it in "
                                       "REDIS_URL (redis://:password@host:port/db)") from None
            raise

    def create(self) -> SessionMeta:
        def go():
            now = time.time()
            self.r.zremrangebyscore(self._index, "-inf", now)
            n = self.r.zcard(self._index)
            if n >= self.max_sessions:
                raise too_many(n, self.max_sessions)
            meta = SessionMeta(new_session_id(), 0, now, now, now + self.ttl_s)
            mk, sk = self._keys(meta.id)
            p = self.r.pipeline()
            p.hset(mk, mapping={"version": 0, "created": now, "updated": now,
                                "expires": meta.expires})
            p.expire(mk, self.ttl_s)
            p.set(sk, encode({}), ex=self.ttl_s)
            p.zadd(self._index, {mk: meta.expires})
            p.execute()
            return meta
        return self._call(go)

    def _meta(self, sid: str, with_state: bool):
        def go():
            mk, sk = self._keys(sid)
            now = time.time()
            p = self.r.pipeline()
            p.hgetall(mk)
            if with_state:
                p.get(sk)
            p.expire(mk, self.ttl_s)
            p.expire(sk, self.ttl_s)
            p.hset(mk, "expires", now + self.ttl_s)
            res = p.execute()
            h = res[0]
            if not h:
                self.r.delete(mk)  # the HSET above recreated it
                raise SessionNotFound(sid)
            self.r.zadd(self._index, {mk: now + self.ttl_s})
            meta = SessionMeta(sid, int(h[b"version"]), float(h[b"created"]),
                               float(h[b"updated"]), now + self.ttl_s)
            return meta, (res[1] if with_state else None)
        return self._call(go)

    def meta(self, sid: str) -> SessionMeta:
        return self._meta(sid, False)[0]

    def load(self, sid: str) -> tuple[SessionMeta, dict]:
        meta, blob = self._meta(sid, True)
        if blob is None:
            raise SessionNotFound(sid)
        return meta, decode_state(sid, blob, "Redis")

    def save(self, sid: str, state: dict, expected_version: int) -> SessionMeta:
        blob = encode(state)
        mk, sk = self._keys(sid)
        now = time.time()
        out = self._call(self._save, [mk, sk, self._index],
                         [expected_version, blob, self.ttl_s, now, uuid.uuid4().hex])
        if out[0] == -1:
            raise SessionNotFound(sid)
        if out[0] == -2:
            raise VersionConflict(f"session {sid} changed since version {expected_version}")
        return SessionMeta(sid, int(out[0]), float(out[1]), now, now + self.ttl_s)

    def put_version(self, sid: str, version: int, blob: bytes, created: float, updated: float,
                    expires: float) -> bool:
        """Write this exact version unless Redis has it (or a newer one) already: the
        journal's replay step. Returns False when skipped (already there, or expired)."""
        now = time.time()
        ttl = int(expires - now)
        if ttl < 1:
            return False
        mk, sk = self._keys(sid)
        return bool(self._call(self._put, [mk, sk, self._index],
                               [version, blob, ttl, now, created, updated]))

    def delete(self, sid: str) -> bool:
        mk, sk = self._keys(sid)
        def go():
            p = self.r.pipeline()
            p.delete(mk, sk)
            p.zrem(self._index, mk)
            return p.execute()[0] > 0
        return self._call(go)

    def count(self) -> int:
        def go():
            self.r.zremrangebyscore(self._index, "-inf", time.time())
            return self.r.zcard(self._index)
        return self._call(go)

    def ping(self) -> bool:
        return bool(self._call(self.r.ping))
