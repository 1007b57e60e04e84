"""Session stores: an embedded on-disk store (SQLite, the default) and Redis (`REDIS_URL`).

A session is small metadata (id, version, timestamps) plus a state blob encoded with the
project codec (msgpack with explicit numpy support; never pickle). Writes are optimistic:
`save` succeeds only if the version is still the one the caller loaded, so two replicas
updating the same session never silently overwrite each other. TTL is refreshed on use.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echo_ray.cache.codec import CodecError, decode, encode

REFRESH_EVERY_S = 30.0  # reads refresh a session's TTL at most this often (fewer writes)


class SessionNotFound(KeyError):
    """No such session, or it expired."""


class VersionConflict(RuntimeError):
    """The session changed since it was loaded."""


class TooManySessions(RuntimeError):
    """MAX_CONCURRENT_SESSIONS reached."""


class StoreUnavailable(RuntimeError):
    """The backing store cannot be reached right now."""


class SessionCorrupt(RuntimeError):
    """A stored session state is not a codec payload (e.g. a pickle someone put there)."""


def decode_state(sid: str, blob, where: str) -> dict:
    """The session state from its stored bytes; never unpickles, refuses anything else."""
    try:
        state = decode(blob)
    except (CodecError, TypeError) as exc:
        raise SessionCorrupt(f"session {sid}: refusing to load the state stored in {where}, "
                             f"it is not an echo_ray codec payload: {exc}") from None
    if not isinstance(state, dict):
        raise SessionCorrupt(f"session {sid}: the state stored in {where} is a "
                             f"{type(state).__name__}, not a dict; refusing to load it")
    return state


@dataclass
class SessionMeta:
    id: str
    version: int
    created: float
    updated: float
    expires: float

    def to_dict(self) -> dict:
        return {"session_id": self.id, "version": self.version, "created": self.created,
                "updated": self.updated, "expires": self.expires}


def new_session_id() -> str:
    return uuid.uuid4().hex


def valid_session_id(sid: str) -> bool:
    return isinstance(sid, str) and len(sid) == 32 and all(c in "0123456789abcdef" for c in sid)


class SessionStore:
    """Interface of both backends."""

    ttl_s: int
    max_sessions: int

    def create(self) -> SessionMeta: ...
    def meta(self, sid: str) -> SessionMeta: ...
    def load(self, sid: str) -> tuple[SessionMeta, dict]: ...
    def save(self, sid: str, state: dict, expected_version: int) -> SessionMeta: ...
    def delete(self, sid: str) -> bool: ...
    def count(self) -> int: ...
    def ping(self) -> bool: ...


class EmbeddedSessionStore(SessionStore):
    """SQLite in WAL mode: shared safely by every process on this machine (all replicas)."""

    def __init__(self, directory: Path, ttl_s: int = 3600, max_sessions: int = 10_000):
        self.path = Path(directory) / "sessions.sqlite3"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ttl_s, self.max_sessions = ttl_s, max_sessions
        self._local = threading.local()
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, version INTEGER,"
                       " created REAL, updated REAL, expires REAL, state BLOB)")
            db.execute("CREATE INDEX IF NOT EXISTS sessions_expires ON sessions(expires)")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def create(self) -> SessionMeta:
        now = time.time()
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
            (n,) = db.execute("SELECT COUNT(*) FROM sessions").fetchone()
            if n >= self.max_sessions:
                raise TooManySessions(f"{n} active sessions: the limit "
                                      f"MAX_CONCURRENT_SESSIONS={self.max_sessions} is reached")
            meta = SessionMeta(new_session_id(), 0, now, now, now + self.ttl_s)
            db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                       (meta.id, 0, now, now, meta.expires, encode({})))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return meta

    def _row(self, sid: str, with_state: bool):
        now = time.time()
        db = self._db()
        cols = "id, version, created, updated, expires" + (", state" if with_state else "")
        row = db.execute(f"SELECT {cols} FROM sessions WHERE id = ? AND expires > ?",
                         (sid, now)).fetchone()
        if row is None:
            raise SessionNotFound(sid)
        expires = row[4]
        left = expires - now  # refresh the TTL at most every 30 s, or when it was shortened
        if left < self.ttl_s - REFRESH_EVERY_S or left > self.ttl_s:
            expires = now + self.ttl_s
            db.execute("UPDATE sessions SET expires = ? WHERE id = ?", (expires, sid))
        meta = SessionMeta(row[0], row[1], row[2], row[3], expires)
        return meta, (row[5] if with_state else None)

    def meta(self, sid: str) -> SessionMeta:
        return self._row(sid, False)[0]

    def load(self, sid: str) -> tuple[SessionMeta, dict]:
        meta, blob = self._row(sid, True)
        return meta, decode_state(sid, blob, f"SQLite {self.path}")

    def save(self, sid: str, state: dict, expected_version: int) -> SessionMeta:
        now = time.time()
        blob = encode(state)
        db = self._db()
        cur = db.execute("UPDATE sessions SET state = ?, version = version + 1, updated = ?, "
                         "expires = ? WHERE id = ? AND version = ? AND expires > ?",
                         (blob, now, now + self.ttl_s, sid, expected_version, now))
        if cur.rowcount == 0:
            self.meta(sid)  # raises SessionNotFound if it is gone
            raise VersionConflict(f"session {sid} changed since version {expected_version}")
        return self.meta(sid)

    def delete(self, sid: str) -> bool:
        return self._db().execute("DELETE FROM sessions WHERE id = ?", (sid,)).rowcount > 0

    def count(self) -> int:
        (n,) = self._db().execute("SELECT COUNT(*) FROM sessions WHERE expires > ?",
                                  (time.time(),)).fetchone()
        return n

    def ping(self) -> bool:
        self._db().execute("SELECT 1").fetchone()
        return True


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


class RedisSessionStore(SessionStore):
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
                raise TooManySessions(f"{n} active sessions: the limit "
                                      f"MAX_CONCURRENT_SESSIONS={self.max_sessions} is reached")
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


def make_session_store(settings: Any) -> SessionStore:
    """Redis (behind the outage journal unless SESSION_JOURNAL=false) or the embedded store."""
    if settings.redis_url:
        store = RedisSessionStore(settings.redis_url, settings.session_ttl_s,
                                  settings.max_sessions)
        if getattr(settings, "session_journal", True):
            from .journal import JournaledSessionStore

            return JournaledSessionStore(store, settings.session_dir)
        return store
    return EmbeddedSessionStore(settings.session_dir, settings.session_ttl_s, settings.max_sessions)
