"""Checkpoint storage without Ray: which store the settings choose, .npz bytes round-trip on a
local path (plain or `file://` URI) and in a real private redis-server, nothing unpickled."""

from __future__ import annotations

import io

import numpy as np
import pytest

from echo_ray.dtesn.checkpoint import (
    CheckpointLocation,
    checkpoint_location,
    decode_state,
    encode_state,
)
from echo_ray.settings import Settings

STATE = {"steps": 42, "states": {0: np.arange(5.0), 3: np.linspace(-1, 1, 5)}}


def same(a: dict | None, b: dict) -> bool:
    return (a is not None and a["steps"] == b["steps"] and sorted(a["states"]) == sorted(b["states"])
            and all(np.array_equal(a["states"][k], b["states"][k]) for k in b["states"]))


def location(env: dict[str, str], uri: str | None = None) -> CheckpointLocation:
    return checkpoint_location(uri, Settings.from_env(env))


def test_the_rule_uri_then_redis_url_then_the_data_dir(tmp_path):
    redis = "redis://:pw@10.0.0.1:6379/0"
    data = {"ECHO_RAY_DATA_DIR": str(tmp_path)}
    assert location(data) == CheckpointLocation("fs", str(tmp_path / "checkpoints"))
    assert location({**data, "REDIS_URL": redis}) == CheckpointLocation("redis", redis)
    assert location({**data, "REDIS_URL": redis, "ECHO_RAY_CHECKPOINT_URI": "s3://b/ck"}) \
        == CheckpointLocation("fs", "s3://b/ck")
    assert location({**data, "REDIS_URL": redis, "ECHO_RAY_CHECKPOINT_URI": "redis"}) \
        == CheckpointLocation("redis", redis)
    assert location(data, "redis://127.0.0.1:1/2") == CheckpointLocation("redis",
                                                                         "redis://127.0.0.1:1/2")
    with pytest.raises(ValueError, match="REDIS_URL is not set"):
        location({**data, "ECHO_RAY_CHECKPOINT_URI": "redis"})


def test_node_local_is_a_local_path_only(tmp_path):
    assert CheckpointLocation("fs", str(tmp_path)).node_local
    assert CheckpointLocation("fs", f"file://{tmp_path}").node_local
    assert not CheckpointLocation("redis", "redis://127.0.0.1:1").node_local
    assert "pw" not in CheckpointLocation("redis", "redis://:pw@h:1").describe()


@pytest.mark.parametrize("form", ["path", "uri"])
def test_local_store_round_trips_and_leaves_no_temp_file(tmp_path, form):
    target = str(tmp_path) if form == "path" else f"file://{tmp_path}"
    store = CheckpointLocation("fs", target).open("sys-a")
    assert store.load("group-0") is None
    store.save("group-0", STATE)
    store.save("group-0", {**STATE, "steps": 43})  # overwritten in place
    assert same(store.load("group-0"), {**STATE, "steps": 43})
    assert sorted(p.name for p in (tmp_path / "sys-a").iterdir()) == ["group-0.npz"]
    # another system's checkpoints are apart
    assert CheckpointLocation("fs", target).open("sys-b").load("group-0") is None


@pytest.mark.redis
def test_redis_store_round_trips_with_one_key_per_group(redis_server):
    import redis

    store = CheckpointLocation("redis", redis_server.url).open("sys-r")
    assert store.load("group-1") is None
    store.save("group-1", STATE)
    assert same(store.load("group-1"), STATE)
    keys = redis.Redis.from_url(redis_server.url).keys("echo-ray:checkpoint:sys-r:*")
    assert keys == [b"echo-ray:checkpoint:sys-r:group-1"]


def test_a_pickled_array_is_refused_not_unpickled():
    buf = io.BytesIO()
    np.savez(buf, steps=np.asarray(1), m0=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        decode_state(buf.getvalue())
    assert same(decode_state(encode_state(STATE)), STATE)
