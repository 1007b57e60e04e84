"""The session store a deployment uses, chosen from its settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .base import SessionStore

if TYPE_CHECKING:
    from echo_ray.settings import Settings


def make_session_store(*, directory: Path, journal_dir: Path | None = None,
                       redis_url: str | None = None, ttl_s: int = 3600,
                       max_sessions: int = 10_000, journal: bool = True) -> SessionStore:
    """Redis when `redis_url` is set (behind the outage journal in `journal_dir`, default
    `directory`, unless `journal` is False), else the embedded SQLite store in `directory`,
    which a process of a Ray cluster with more than one alive node refuses
    (echo_ray.clusterstate.NodeLocalStateRefused, saying to set REDIS_URL)."""
    if redis_url:
        from .redis_store import RedisSessionStore

        store = RedisSessionStore(redis_url, ttl_s, max_sessions)
        if journal:
            from .journal import JournaledSessionStore

            return JournaledSessionStore(store, journal_dir or directory)
        return store
    from echo_ray.clusterstate import require_single_node

    from .embedded import EmbeddedSessionStore

    # A file on this node's disk: on a multi-node cluster replicas elsewhere would not see it.
    require_single_node("the embedded session store", "REDIS_URL")
    return EmbeddedSessionStore(directory, ttl_s, max_sessions)


def session_store(settings: Settings) -> SessionStore:
    """The store `settings` select: `REDIS_URL`, `SESSION_JOURNAL`, the data directory's
    `sessions/` and `journal/`, the TTL and the session limit."""
    s = settings.sessions
    return make_session_store(directory=settings.paths.sessions,
                              journal_dir=settings.paths.journal,
                              redis_url=s.redis_url_value(), ttl_s=s.ttl_s,
                              max_sessions=s.max_sessions, journal=s.journal)
