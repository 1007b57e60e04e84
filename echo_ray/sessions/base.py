"""What every session store offers (`SessionStore`), its errors and the session metadata.

A session is small metadata (id, version, timestamps) plus a state blob encoded with the
project codec (msgpack with explicit numpy support; never pickle). Writes are optimistic:
`save` succeeds only if the version is still the one the caller loaded, so two replicas
updating the same session never silently overwrite each other. TTL is refreshed on use.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from echo_ray.cache.codec import CodecError, decode

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


@runtime_checkable
class SessionStore(Protocol):
    """The interface of every backend (embedded, Redis, Redis behind the journal)."""

    ttl_s: int
    max_sessions: int

    def create(self) -> SessionMeta:
        """A new empty session; TooManySessions past `max_sessions`."""

    def meta(self, sid: str) -> SessionMeta:
        """The session's metadata (TTL refreshed); SessionNotFound if gone."""

    def load(self, sid: str) -> tuple[SessionMeta, dict]:
        """Metadata and decoded state; SessionCorrupt if the blob is not a codec dict."""

    def save(self, sid: str, state: dict, expected_version: int) -> SessionMeta:
        """Write `state` if the session is still at `expected_version` (else VersionConflict)."""

    def delete(self, sid: str) -> bool:
        """True if the session existed."""

    def count(self) -> int:
        """Active (unexpired) sessions."""

    def ping(self) -> bool:
        """True if the store can serve requests (StoreUnavailable otherwise)."""


def new_session_id() -> str:
    return uuid.uuid4().hex


def valid_session_id(sid: str) -> bool:
    return isinstance(sid, str) and len(sid) == 32 and all(c in "0123456789abcdef" for c in sid)


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


def too_many(n: int, limit: int) -> TooManySessions:
    return TooManySessions(f"{n} active sessions: the limit "
                           f"MAX_CONCURRENT_SESSIONS={limit} is reached")
