"""No pickle on any data path: a pickle planted in Redis or on disk is refused with a clear
error and never unpickled. The planted payload creates a marker file when unpickled (shown by
the control test), so "the marker never appears" proves nothing ran it."""

from __future__ import annotations

import pickle
import sqlite3
import uuid
from pathlib import Path

import diskcache
import pytest

from echo_ray.cache import CacheConfig, MultiLevelCache
from echo_ray.cache.codec import CodecError, decode
from echo_ray.service.worker import CognitiveProcessor
from echo_ray.sessions import (
    EmbeddedSessionStore,
    JournaledSessionStore,
    RedisSessionStore,
    SessionCorrupt,
)


class Detonator:
    """Unpickling this touches `path`."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (Path(self.path),)


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "unpickled-marker"


@pytest.fixture
def payloads(marker) -> list[bytes]:
    """The same live payload in every pickle protocol (0 and 1 do not start with 0x80)."""
    return [pickle.dumps({"state": Detonator(marker)}, protocol=p) for p in range(6)]


def test_control_the_payload_is_live(tmp_path):
    other = tmp_path / "control"
    pickle.loads(pickle.dumps(Detonator(other)))  # noqa: S301 (this is the point)
    assert other.exists()


def test_codec_refuses_pickles(payloads, marker):
    for blob in payloads:
        with pytest.raises(CodecError):
            decode(blob)
    assert not marker.exists()


def test_embedded_store_refuses_a_pickle_in_sqlite(tmp_path, payloads, marker):
    store = EmbeddedSessionStore(tmp_path / "sessions")
    sid = store.create().id
    db = sqlite3.connect(store.path)
    for blob in payloads:
        with db:
            db.execute("UPDATE sessions SET state = ? WHERE id = ?", (blob, sid))
        with pytest.raises(SessionCorrupt, match="not an echo_ray codec payload"):
            store.load(sid)
    db.close()
    assert store.meta(sid).version == 0  # metadata still readable; the state is never loaded
    assert not marker.exists()


@pytest.mark.redis
def test_redis_store_refuses_a_pickle_in_redis(redis_server, payloads, marker):
    store = RedisSessionStore(redis_server.url, namespace=f"p{uuid.uuid4().hex[:8]}")
    sid = store.create().id
    for blob in payloads:
        store.r.set(store._keys(sid)[1], blob)
        with pytest.raises(SessionCorrupt, match="Redis"):
            store.load(sid)
    assert not marker.exists()


def test_journal_refuses_a_pickle_in_its_rows(tmp_path, payloads, marker):
    from echo_ray.ops.localcluster import free_port

    # Redis is down (nothing listens there), so the rows stay in the journal and are read
    down = RedisSessionStore(f"redis://127.0.0.1:{free_port()}/0")
    store = JournaledSessionStore(down, tmp_path)
    try:
        sid = "ab" * 16
        for blob in payloads:
            with store.journal.write() as db:
                store.journal.append(db, sid, "save", 1, 0.0, 0.0, 4e9, blob)
            with pytest.raises(SessionCorrupt, match="journal"):
                store.load(sid)
    finally:
        store.close()
    assert not marker.exists()


def test_worker_answers_a_clear_error_for_a_planted_pickle(tmp_path, payloads, marker):
    from echo_ray.service.engines import EngineCache
    from echo_ray.settings import Settings

    proc = CognitiveProcessor(Settings.from_env({}, paths={"data_dir": tmp_path}),
                              EngineCache(use_actors=False))
    sid = proc.store.create().id
    db = sqlite3.connect(proc.store.path)
    with db:
        db.execute("UPDATE sessions SET state = ? WHERE id = ?", (payloads[4], sid))
    db.close()
    out = proc.process("memory", {"op": "retrieve", "query": {"text": "x"}}, sid)
    assert not out["ok"] and out["status"] == 500 and out["code"] == "session_corrupt"
    assert "refusing to load" in out["message"] and "pickle" in out["message"]
    assert "Traceback" not in out["message"]
    assert not marker.exists()


@pytest.mark.redis
def test_result_cache_refuses_pickles_on_disk_and_in_redis(redis_server, tmp_path, payloads,
                                                           marker):
    ns = f"p{uuid.uuid4().hex[:8]}"
    cache = MultiLevelCache(CacheConfig(cache_dir=str(tmp_path), namespace=ns,
                                        redis_url=redis_server.url, object_store="off"))
    try:
        rogue = diskcache.Cache(str(tmp_path / ns / "entries"))
        rogue.set("pickled-object", Detonator(marker))  # diskcache pickles it (its own mode)
        rogue.set("pickled-bytes", payloads[5])  # raw bytes that are a pickle
        rogue.close()
        import redis

        client = redis.Redis.from_url(redis_server.url)
        for n, blob in enumerate(payloads):
            client.set(f"echo_ray:cache:{ns}:redis-{n}", blob)
        client.close()
        keys = ["pickled-object", "pickled-bytes"] + [f"redis-{n}" for n in range(6)]
        assert all(cache.get(k, "miss") == "miss" for k in keys)  # refused: a miss
        assert cache.get_many(keys) == {}
    finally:
        cache.close()
    assert not marker.exists()
