"""Session writes survive Redis outages: a local append-only journal in front of Redis.

`JournaledSessionStore` wraps `RedisSessionStore`. While Redis answers, calls go straight to
it. When Redis is unreachable:

- `create` writes the new session to the journal (acknowledged: it will reach Redis);
- `save`, `load`, `meta`, `delete` of a session that has journal rows use the journal, with
  the same optimistic versions as Redis;
- the same calls for a session that lives only in Redis raise `StoreUnavailable` (the API
  answers 503 with Retry-After): its state cannot be read, and a write could not be checked
  against its current version, so it is refused rather than acknowledged and maybe lost;
- every process with the store replays the journal into Redis, oldest row first, as soon as
  Redis answers again (a background thread every `replay_interval_s`, and inline before any
  call on a session that still has rows). Until its rows are replayed, a session is served
  from the journal, so a reader never sees the older copy in Redis.

The journal is SQLite (WAL) at `journal/session-journal.sqlite3` in the data directory,
shared by the ingress and worker processes on this machine. Rows are appended, never changed,
and deleted only in the transaction that has just written them to Redis. Replay holds the journal's write lock, so two
processes never replay the same rows, and writes each row only if Redis does not hold that
version yet, so a replay cut short (crash between Redis and COMMIT) can simply run again.
State blobs are codec bytes (never pickle) and are decoded with the same checks as Redis's.

Limits: one journal per machine, so on a multi-node cluster a session created during an outage
on node A is unknown on node B (503 there while Redis is down; found once A replays it).
MAX_CONCURRENT_SESSIONS is checked against the count last seen in Redis during an outage.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import weakref
from pathlib import Path

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
from .redis_store import RedisSessionStore
from .sqlite import LocalSQLite

log = logging.getLogger("echo_ray.service")
REPLAY_BATCH = 256


class SessionJournal:
    """The rows: (seq, sid, op: create | save | delete, version, created, updated, expires,
    state). The newest row of a session is its current version (a save carries the full
    state, a create the empty one, a delete none)."""

    def __init__(self, directory: Path):
        # synchronous=FULL: an acknowledged row survives a power cut
        self.sqlite = LocalSQLite(Path(directory) / "session-journal.sqlite3", synchronous="FULL")
        self.path = self.sqlite.path
        with self.write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS ops (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                       " sid TEXT NOT NULL, op TEXT NOT NULL, version INTEGER NOT NULL,"
                       " created REAL NOT NULL, updated REAL NOT NULL, expires REAL NOT NULL,"
                       " state BLOB)")
            db.execute("CREATE INDEX IF NOT EXISTS ops_sid ON ops(sid, seq)")

    def _db(self) -> sqlite3.Connection:
        return self.sqlite.db()

    def write(self):
        """One write transaction (BEGIN IMMEDIATE: serialised across processes)."""
        return self.sqlite.write()

    def pending(self) -> int:
        return self._db().execute("SELECT COUNT(*) FROM ops").fetchone()[0]

    def has(self, sid: str) -> bool:
        return self._db().execute("SELECT 1 FROM ops WHERE sid = ? LIMIT 1",
                                  (sid,)).fetchone() is not None

    def live_sessions(self) -> int:
        """Sessions created in the journal and not yet replayed (they are not in Redis)."""
        return self._db().execute("SELECT COUNT(*) FROM ops WHERE op = 'create'").fetchone()[0]

    def newest(self, sid: str):
        return self.latest(self._db(), sid)

    @staticmethod
    def latest(db: sqlite3.Connection, sid: str):
        return db.execute("SELECT op, version, created, updated, expires, state FROM ops "
                          "WHERE sid = ? ORDER BY seq DESC LIMIT 1", (sid,)).fetchone()

    def append(self, db, sid, op, version, created, updated, expires, state) -> None:
        db.execute("INSERT INTO ops (sid, op, version, created, updated, expires, state) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (sid, op, version, created, updated, expires, state))


def _live(sid: str, row) -> tuple:
    """The newest row of a session, or SessionNotFound if it was deleted or has expired."""
    if row[0] == "delete" or row[4] <= time.time():
        raise SessionNotFound(sid)
    return row


class JournaledSessionStore:
    """RedisSessionStore that keeps acknowledging session writes while Redis is down."""

    def __init__(self, redis_store: RedisSessionStore, directory: Path,
                 replay_interval_s: float = 1.0, quiet_after_failure_s: float = 0.5):
        self.redis = redis_store
        self.ttl_s, self.max_sessions = redis_store.ttl_s, redis_store.max_sessions
        self.journal = SessionJournal(directory)
        self.quiet_after_failure_s = quiet_after_failure_s
        self._quiet_until = 0.0  # after a failure, skip Redis briefly (an outage costs no waits)
        self._last_count = 0
        self.last_error = "Redis session store unreachable"
        self.journalled = self.replayed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=_replay_loop, name="echo-ray-session-journal",
                                        args=(weakref.ref(self), self._stop, replay_interval_s),
                                        daemon=True)
        self._thread.start()

    # -- Redis, with a short quiet period after a failure ------------------------------------
    def _redis(self, fn, *args):
        if time.monotonic() < self._quiet_until:
            raise StoreUnavailable(f"{self.last_error} (retrying shortly)")
        try:
            return fn(*args)
        except StoreUnavailable as exc:
            self.last_error = str(exc)
            self._quiet_until = time.monotonic() + self.quiet_after_failure_s
            raise

    def _journalled(self, sid: str) -> bool:
        """True if `sid` still has journal rows after trying to replay them."""
        if not self.journal.has(sid):
            return False
        self.replay()
        return self.journal.has(sid)

    # -- the SessionStore interface ---------------------------------------------------------
    def create(self) -> SessionMeta:
        try:
            return self._redis(self.redis.create)
        except StoreUnavailable:
            pass
        now = time.time()
        meta = SessionMeta(new_session_id(), 0, now, now, now + self.ttl_s)
        with self.journal.write() as db:
            n = self._last_count + self.journal.live_sessions()
            if n >= self.max_sessions:
                raise too_many(n, self.max_sessions)
            self.journal.append(db, meta.id, "create", 0, now, now, meta.expires, encode({}))
        self.journalled += 1
        return meta

    def _read(self, sid: str, with_state: bool):
        if self._journalled(sid):
            row = self.journal.newest(sid)
            if row is not None:  # (else replayed meanwhile: Redis has it now)
                _live(sid, row)
                meta = SessionMeta(sid, row[1], row[2], row[3], row[4])
                return meta, (decode_state(sid, row[5], f"the journal {self.journal.path}")
                              if with_state else None)
        if with_state:
            return self._redis(self.redis.load, sid)
        return self._redis(self.redis.meta, sid), None

    def meta(self, sid: str) -> SessionMeta:
        return self._read(sid, False)[0]

    def load(self, sid: str) -> tuple[SessionMeta, dict]:
        return self._read(sid, True)

    def save(self, sid: str, state: dict, expected_version: int) -> SessionMeta:
        blob = encode(state)
        if self._journalled(sid):
            now = time.time()
            with self.journal.write() as db:
                row = SessionJournal.latest(db, sid)
                if row is not None:  # (else replayed meanwhile: Redis has it now)
                    _live(sid, row)
                    if row[1] != expected_version:
                        raise VersionConflict(f"session {sid} changed since version "
                                              f"{expected_version}")
                    self.journal.append(db, sid, "save", row[1] + 1, row[2], now,
                                        now + self.ttl_s, blob)
                    self.journalled += 1
                    return SessionMeta(sid, row[1] + 1, row[2], now, now + self.ttl_s)
        return self._redis(self.redis.save, sid, state, expected_version)

    def delete(self, sid: str) -> bool:
        if self._journalled(sid):
            now = time.time()
            with self.journal.write() as db:
                row = SessionJournal.latest(db, sid)
                if row is not None:
                    try:
                        _live(sid, row)
                    except SessionNotFound:
                        return False
                    self.journal.append(db, sid, "delete", row[1], row[2], now, now, None)
                    return True
        return self._redis(self.redis.delete, sid)

    def count(self) -> int:
        self._last_count = self._redis(self.redis.count)
        return self._last_count + self.journal.live_sessions()

    def ping(self) -> bool:
        """True while sessions can be served: Redis answers, or the journal takes writes."""
        try:
            return self._redis(self.redis.ping)
        except StoreUnavailable:
            self.journal.pending()
            return True

    def health(self) -> dict:
        out = {"redis": "up", "journal_pending": self.journal.pending()}
        try:
            self._redis(self.redis.ping)
        except StoreUnavailable as exc:
            out.update(redis="down", redis_error=str(exc))
        return out

    # -- replay -----------------------------------------------------------------------------
    def replay(self) -> int:
        """Write journal rows to Redis, oldest first, deleting each batch in the transaction
        that wrote it. Stops at the first Redis failure. Returns the rows replayed."""
        done_total = 0
        while time.monotonic() >= self._quiet_until:
            with self.journal.write() as db:
                rows = db.execute("SELECT seq, sid, op, version, created, updated, expires, "
                                  "state FROM ops ORDER BY seq LIMIT ?", (REPLAY_BATCH,)).fetchall()
                done = []
                try:
                    for seq, sid, op, version, created, updated, expires, state in rows:
                        if op == "delete":
                            self._redis(self.redis.delete, sid)
                        else:
                            self._redis(self.redis.put_version, sid, version, state, created,
                                        updated, expires)
                        done.append(seq)
                except StoreUnavailable:
                    pass
                finally:
                    db.executemany("DELETE FROM ops WHERE seq = ?", [(s,) for s in done])
            done_total += len(done)
            if len(done) < REPLAY_BATCH:
                break
        if done_total:
            self.replayed += done_total
            log.info("session journal: replayed %d rows into Redis", done_total)
        return done_total

    def close(self) -> None:
        self._stop.set()


def _replay_loop(ref, stop: threading.Event, interval_s: float) -> None:
    """Background replay while the store exists; holds only a weak reference to it."""
    failures = 0
    while not stop.wait(interval_s):
        store = ref()
        if store is None:
            return
        try:
            if store.journal.pending():
                store.replay()
            failures = 0
        except Exception as exc:  # keep trying; say so once per streak
            failures += 1
            if failures == 1:
                log.warning("session journal replay failed (%s: %s); retrying",
                            type(exc).__name__, exc)
        del store
