"""The embedded session store (the default): SQLite in WAL mode, on this machine's disk."""

from __future__ import annotations

import time
from pathlib import Path

from echo_ray.cache.codec import encode

from .base import (
    REFRESH_EVERY_S,
    SessionMeta,
    SessionNotFound,
    VersionConflict,
    decode_state,
    new_session_id,
    too_many,
)
from .sqlite import LocalSQLite


class EmbeddedSessionStore:
    """Shared safely by every process on this machine (all replicas)."""

    def __init__(self, directory: Path, ttl_s: int = 3600, max_sessions: int = 10_000):
        self.sqlite = LocalSQLite(Path(directory) / "sessions.sqlite3")
        self.path = self.sqlite.path
        self.ttl_s, self.max_sessions = ttl_s, max_sessions
        with self.sqlite.write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, version INTEGER,"
                       " created REAL, updated REAL, expires REAL, state BLOB)")
            db.execute("CREATE INDEX IF NOT EXISTS sessions_expires ON sessions(expires)")

    def create(self) -> SessionMeta:
        now = time.time()
        with self.sqlite.write() as db:
            db.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
            (n,) = db.execute("SELECT COUNT(*) FROM sessions").fetchone()
            if n >= self.max_sessions:
                raise too_many(n, self.max_sessions)
            meta = SessionMeta(new_session_id(), 0, now, now, now + self.ttl_s)
            db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                       (meta.id, 0, now, now, meta.expires, encode({})))
        return meta

    def _row(self, sid: str, with_state: bool):
        now = time.time()
        db = self.sqlite.db()
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
        cur = self.sqlite.db().execute(
            "UPDATE sessions SET state = ?, version = version + 1, updated = ?, expires = ? "
            "WHERE id = ? AND version = ? AND expires > ?",
            (blob, now, now + self.ttl_s, sid, expected_version, now))
        if cur.rowcount == 0:
            self.meta(sid)  # raises SessionNotFound if it is gone
            raise VersionConflict(f"session {sid} changed since version {expected_version}")
        return self.meta(sid)

    def delete(self, sid: str) -> bool:
        return self.sqlite.db().execute("DELETE FROM sessions WHERE id = ?",
                                        (sid,)).rowcount > 0

    def count(self) -> int:
        (n,) = self.sqlite.db().execute("SELECT COUNT(*) FROM sessions WHERE expires > ?",
                                        (time.time(),)).fetchone()
        return n

    def ping(self) -> bool:
        self.sqlite.db().execute("SELECT 1").fetchone()
        return True
