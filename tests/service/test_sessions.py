"""Both session backends against the same contract: embedded SQLite and a private Redis."""

import time

import numpy as np
import pytest

from echo_ray.sessions import (
    EmbeddedSessionStore,
    RedisSessionStore,
    SessionNotFound,
    TooManySessions,
    VersionConflict,
)


@pytest.fixture(params=["embedded", "redis"])
def store(request, tmp_path):
    if request.param == "embedded":
        yield EmbeddedSessionStore(tmp_path, ttl_s=60, max_sessions=5)
    else:
        server = request.getfixturevalue("redis_server")
        ns = f"t{time.monotonic_ns()}"
        yield RedisSessionStore(server.url, ttl_s=60, max_sessions=5, namespace=ns)


def test_create_load_save_delete(store):
    meta = store.create()
    assert len(meta.id) == 32 and meta.version == 0
    m, state = store.load(meta.id)
    assert state == {}
    state = {"memory": {"keys": np.arange(6.0).reshape(2, 3), "items": ["a", "b"]}}
    m2 = store.save(meta.id, state, expected_version=0)
    assert m2.version == 1
    _, back = store.load(meta.id)
    np.testing.assert_array_equal(back["memory"]["keys"], np.arange(6.0).reshape(2, 3))
    assert back["memory"]["items"] == ["a", "b"]
    assert store.delete(meta.id)
    assert not store.delete(meta.id)
    with pytest.raises(SessionNotFound):
        store.load(meta.id)


def test_stale_version_is_refused(store):
    sid = store.create().id
    store.save(sid, {"x": 1}, 0)
    with pytest.raises(VersionConflict):
        store.save(sid, {"x": 2}, 0)
    assert store.load(sid)[1] == {"x": 1}


def test_session_limit(store):
    for _ in range(5 - store.count()):
        store.create()
    with pytest.raises(TooManySessions, match="MAX_CONCURRENT_SESSIONS=5"):
        store.create()


def test_missing_session(store):
    with pytest.raises(SessionNotFound):
        store.meta("0" * 32)
    with pytest.raises(SessionNotFound):
        store.save("0" * 32, {}, 0)


def test_expiry_and_refresh(tmp_path):
    s = EmbeddedSessionStore(tmp_path, ttl_s=60)
    sid = s.create().id
    m = s.meta(sid)
    assert m.expires > time.time()
    s.ttl_s = 0  # the next touch expires it immediately
    s.meta(sid)
    with pytest.raises(SessionNotFound):
        s.meta(sid)
    assert s.count() == 0


def test_embedded_store_survives_reopen(tmp_path):
    a = EmbeddedSessionStore(tmp_path)
    sid = a.create().id
    a.save(sid, {"k": [1, 2]}, 0)
    b = EmbeddedSessionStore(tmp_path)
    assert b.load(sid)[1] == {"k": [1, 2]}


def test_every_backend_is_a_session_store(store, tmp_path):
    from echo_ray.sessions import JournaledSessionStore, SessionStore

    assert isinstance(store, SessionStore)
    if isinstance(store, RedisSessionStore):
        journaled = JournaledSessionStore(store, tmp_path / "journal")
        try:
            assert isinstance(journaled, SessionStore)
        finally:
            journaled.close()
