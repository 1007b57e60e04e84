"""JournaledSessionStore against a real private redis-server that is stopped and restarted:
acknowledged writes made during the outage reach Redis, in order, exactly once; sessions that
live only in Redis are refused (503) while it is down, never answered wrongly."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from echo_ray.cache.codec import encode
from echo_ray.sessions import (
    JournaledSessionStore,
    RedisSessionStore,
    SessionNotFound,
    StoreUnavailable,
    VersionConflict,
)
from echo_ray.waiting import wait_until

pytestmark = pytest.mark.redis


def make_store(server, directory: Path, ns: str) -> JournaledSessionStore:
    return JournaledSessionStore(RedisSessionStore(server.url, ttl_s=600, namespace=ns),
                                 directory, replay_interval_s=0.2)


@pytest.fixture
def ns() -> str:
    return f"j{uuid.uuid4().hex[:10]}"


@pytest.fixture
def store(durable_redis, tmp_path, ns):
    s = make_store(durable_redis, tmp_path, ns)
    yield s
    s.close()


@pytest.fixture
def outage(durable_redis):
    """Stops Redis; the test calls the returned function to bring it back (or teardown does)."""
    durable_redis.stop()
    yield durable_redis.start
    if durable_redis.proc is None:
        durable_redis.start()


def test_pass_through_while_redis_is_up(store):
    meta = store.create()
    store.save(meta.id, {"x": np.arange(3.0)}, 0)
    m, state = store.load(meta.id)
    assert m.version == 1 and list(state["x"]) == [0.0, 1.0, 2.0]
    assert store.journal.pending() == 0
    assert store.redis.load(meta.id)[0].version == 1  # it is in Redis itself
    assert store.count() >= 1 and store.delete(meta.id) and not store.delete(meta.id)


def test_outage_journals_writes_and_replays_them_in_order(store, outage):
    outage_started = time.monotonic()  # (the fixture has stopped Redis)
    new = store.create()
    for v in range(5):
        store.save(new.id, {"step": v, "a": np.full(4, v)}, v)
    with pytest.raises(VersionConflict):
        store.save(new.id, {"step": "stale"}, 2)  # optimistic versions hold in the journal
    gone = store.create()
    assert store.delete(gone.id) and not store.delete(gone.id)
    with pytest.raises(SessionNotFound):
        store.load(gone.id)
    meta, state = store.load(new.id)
    assert (meta.version, state["step"]) == (5, 4)
    assert store.journal.pending() == 8  # 2 creates, 5 saves, 1 delete
    assert time.monotonic() - outage_started < 5, "journalling must not wait on Redis"

    outage()  # Redis is back
    wait_until(lambda: store.journal.pending() == 0, 15, "the journal to drain")
    meta, state = store.redis.load(new.id)  # straight from Redis
    assert (meta.version, state["step"]) == (5, 4)
    np.testing.assert_array_equal(state["a"], np.full(4, 4))
    with pytest.raises(SessionNotFound):
        store.redis.meta(gone.id)
    assert store.replayed == 8
    store.save(new.id, {"step": 5}, 5)  # and it goes on in Redis with the same versions
    assert store.redis.meta(new.id).version == 6


def test_sessions_only_in_redis_answer_unavailable_while_it_is_down(store, durable_redis):
    sid = store.create().id
    store.save(sid, {"kept": True}, 0)
    durable_redis.stop()
    try:
        for call in (lambda: store.load(sid), lambda: store.meta(sid),
                     lambda: store.save(sid, {"kept": False}, 1), lambda: store.delete(sid)):
            with pytest.raises(StoreUnavailable):
                call()
        assert store.journal.pending() == 0  # a write it could not check was not journalled
    finally:
        durable_redis.start()
    wait_until(lambda: _answers(store, sid), 10, "Redis to answer again")
    meta, state = store.load(sid)
    assert meta.version == 1 and state == {"kept": True}


def _answers(store, sid) -> bool:
    try:
        store.meta(sid)
        return True
    except StoreUnavailable:
        return False


def test_replay_is_idempotent_and_single_across_replayers(durable_redis, tmp_path, ns, outage):
    a, b = make_store(durable_redis, tmp_path, ns), make_store(durable_redis, tmp_path, ns)
    try:
        sid = a.create().id
        for v in range(3):
            (a if v % 2 else b).save(sid, {"v": v}, v)  # both "processes" share the journal
        rows = a.journal._db().execute(
            "SELECT version, state, created, updated, expires FROM ops WHERE op = 'save' "
            "ORDER BY seq").fetchall()
        outage()
        wait_until(lambda: a.journal.pending() == 0, 15, "the journal to drain")
        assert a.redis.meta(sid).version == 3
        # A replay cut short between Redis and COMMIT runs again: older versions are skipped.
        for version, state, created, updated, expires in rows:
            assert not a.redis.put_version(sid, version, state, created, updated, expires)
        assert a.redis.load(sid)[1] == {"v": 2} and a.redis.meta(sid).version == 3
        assert a.replayed + b.replayed == 4
    finally:
        a.close()
        b.close()


def test_another_process_sees_journalled_sessions(durable_redis, tmp_path, ns, outage):
    """The ingress and the workers are separate processes: one journals, another reads."""
    script = textwrap.dedent(f"""
        from pathlib import Path
        from echo_ray.sessions import JournaledSessionStore
        from echo_ray.sessions import RedisSessionStore
        s = JournaledSessionStore(RedisSessionStore({durable_redis.url!r}, ttl_s=600,
                                  namespace={ns!r}), Path({str(tmp_path)!r}))
        sid = s.create().id
        s.save(sid, {{"from": "child"}}, 0)
        print(sid)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True)
    sid = out.stdout.strip()
    here = make_store(durable_redis, tmp_path, ns)
    try:
        meta, state = here.load(sid)
        assert meta.version == 1 and state == {"from": "child"}
        here.save(sid, {"from": "parent"}, 1)
        outage()
        wait_until(lambda: here.journal.pending() == 0, 15, "the journal to drain")
        assert here.redis.load(sid)[1] == {"from": "parent"}
    finally:
        here.close()


def test_redis_save_is_idempotent_when_a_reply_is_lost(durable_redis, ns):
    """redis-py resends a command whose reply was lost; the write id makes the resend
    answer like the first send instead of a version conflict (which would re-run it)."""
    store = RedisSessionStore(durable_redis.url, namespace=ns)
    sid = store.create().id
    mk, sk = store._keys(sid)
    args = [0, encode({"n": 1}), 60, time.time(), "write-1"]
    first = store._save([mk, sk, store._index], args)
    again = store._save([mk, sk, store._index], args)
    assert first[0] == again[0] == 1
    assert store._save([mk, sk, store._index], [0, encode({"n": 2}), 60, time.time(), "write-2"]) == [-2]
