"""Session stores: the `SessionStore` protocol and its errors (base), the embedded SQLite
store, the Redis store, the outage journal in front of Redis, and a factory that picks one.
Dependencies run one way: base <- sqlite <- embedded / redis_store <- journal <- factory."""

from .base import (
    SessionCorrupt,
    SessionMeta,
    SessionNotFound,
    SessionStore,
    StoreUnavailable,
    TooManySessions,
    VersionConflict,
    decode_state,
    new_session_id,
    valid_session_id,
)
from .embedded import EmbeddedSessionStore
from .factory import make_session_store, session_store
from .journal import JournaledSessionStore, SessionJournal
from .redis_store import RedisSessionStore

__all__ = [
    "EmbeddedSessionStore", "JournaledSessionStore", "RedisSessionStore", "SessionCorrupt",
    "SessionJournal", "SessionMeta", "SessionNotFound", "SessionStore", "StoreUnavailable",
    "TooManySessions", "VersionConflict", "decode_state", "make_session_store",
    "new_session_id", "session_store", "valid_session_id",
]
