"""L4 against a private redis-server (the session's `redis_server`, never port 6379)."""

from __future__ import annotations

import numpy as np
import pytest

from echo_ray.cache import CacheConfig, MultiLevelCache
from echo_ray.cache.entry import pack_entry, unpack_entry
from echo_ray.cache.tiers.redis_tier import RedisTier
from echo_ray.waiting import wait_until

pytestmark = pytest.mark.redis


@pytest.fixture
def tier(redis_server, namespace):
    assert redis_server.port != 6379
    t = RedisTier(redis_server.url, namespace, backoff_base=0.02, backoff_max=0.2)
    yield t
    t.clear()
    t.close()


def test_namespaced_keys_ttl_and_tag_sets(tier, redis_client, namespace):
    blob = pack_entry({"w": np.ones(3)}, ["model"])
    assert tier.put("k", blob, ttl=30, tags=["model"])
    assert redis_client.get(f"echo_ray:cache:{namespace}:k") == blob
    assert 29_000 < redis_client.pttl(f"echo_ray:cache:{namespace}:k") <= 30_000  # SET EX
    assert redis_client.smembers(f"echo_ray:cache-tag:{namespace}:model") == {b"k"}
    assert redis_client.pttl(f"echo_ray:cache-tag:{namespace}:model") > 0
    hit = tier.get("k")
    assert hit.value == blob and 29 < hit.ttl <= 30
    value, tags = unpack_entry(hit.value)
    assert tags == ("model",) and list(value["w"]) == [1, 1, 1]


def test_fractional_ttl_and_no_ttl(tier, redis_client, namespace):
    tier.put("frac", b"x", ttl=1.5)
    assert 1000 < redis_client.pttl(f"echo_ray:cache:{namespace}:frac") <= 1500
    tier.put("forever", b"y", ttl=None, tags=["t"])
    assert redis_client.pttl(f"echo_ray:cache:{namespace}:forever") == -1
    assert redis_client.pttl(f"echo_ray:cache-tag:{namespace}:t") == -1
    assert tier.get("forever").ttl is None


def test_retag_delete_and_tag_invalidation(tier, redis_client, namespace):
    tier.put("a", b"1", ttl=60, tags=["t1", "t2"])
    tier.put("b", b"2", ttl=60, tags=["t2"])
    tier.put("a", b"1", ttl=60, tags=["t3"])  # re-tag: a leaves t1 and t2
    assert tier.keys_for_tags(["t1"]) == set()
    assert tier.keys_for_tags(["t2", "t3"]) == {"a", "b"}
    assert tier.delete_by_tags(["t2"]) == 1
    assert tier.get("b") is None and tier.get("a") is not None
    assert not redis_client.exists(f"echo_ray:cache-tag:{namespace}:t2")
    assert tier.delete("a") and not tier.delete("a")
    assert tier.keys_for_tags(["t3"]) == set()


def test_pipelined_multi_get(tier):
    for i in range(50):
        tier.put(f"k{i}", str(i).encode(), ttl=60)
    found = tier.get_many([f"k{i}" for i in range(0, 60, 2)])
    assert sorted(found) == sorted(f"k{i}" for i in range(0, 50, 2))
    assert found["k10"].value == b"10"
    assert tier.stats.hits == 25 and tier.stats.misses == 5


def test_clear_touches_only_our_namespace(tier, redis_server, redis_client, namespace):
    other = RedisTier(redis_server.url, namespace + "-other")
    try:
        other.put("keep", b"1", ttl=60, tags=["t"])
        redis_client.set("unrelated:key", b"1", ex=60)
        tier.put("gone", b"2", ttl=60, tags=["t"])
        assert tier.clear() >= 3  # item, tag set, key's tag set
        assert tier.get("gone") is None
        assert other.get("keep") is not None and redis_client.get("unrelated:key") == b"1"
    finally:
        other.clear()
        other.close()
        redis_client.delete("unrelated:key")


def test_bad_namespace(redis_server):
    with pytest.raises(ValueError, match="namespace"):
        RedisTier(redis_server.url, "a:b*")


def test_tag_invalidation_across_every_tier(tmp_path, redis_server, redis_client, namespace):
    config = CacheConfig(cache_dir=str(tmp_path), redis_url=redis_server.url,
                         namespace=namespace, object_store="off", l2_min_bytes=64)
    with MultiLevelCache(config) as a:
        a.put("r1", "x" * 300, tags=["run:1"])
        a.put("r2", {"y": 2}, tags=["run:1", "run:2"])
        a.put("keep", 3, tags=["run:2"])
        # A second cache (another replica) reads r1 from Redis only.
        other = CacheConfig(redis_url=redis_server.url, namespace=namespace,
                            object_store="off")
        with MultiLevelCache(other) as b:
            assert b.get("r1") == "x" * 300 and b.stats()["tiers"]["l4"]["hits"] == 1
        assert a.delete_by_tags(["run:1"]) == 2
        for tier in a.tiers:
            assert tier.get("r1") is None and tier.get("r2") is None
        assert not redis_client.exists(f"echo_ray:cache:{namespace}:r1")
        assert not redis_client.exists(f"echo_ray:cache-tag:{namespace}:run:1")
        assert a.get("keep") == 3
        a.clear()


def test_promotion_from_redis_keeps_ttl_and_tags(redis_server, namespace):
    config = CacheConfig(redis_url=redis_server.url, namespace=namespace, object_store="off")
    with MultiLevelCache(config) as writer, MultiLevelCache(config) as reader:
        writer.put("k", [1, 2, 3], ttl=40, tags=["t"])
        assert reader.get("k") == [1, 2, 3]
        hit = reader.l1.get("k")
        assert hit is not None and 38 < hit.ttl <= 40
        assert reader.l1.keys_for_tags(["t"]) == {"k"}
        writer.clear()


def test_redis_stopped_mid_test_no_exception_and_recovery(redis_server, redis_client,
                                                          namespace):
    config = CacheConfig(redis_url=redis_server.url, namespace=namespace, object_store="off")
    cache = MultiLevelCache(config)
    cache.l4.backoff_base, cache.l4.backoff_max = 0.02, 0.2
    cache.put("before", "v1", tags=["t"])
    redis_server.stop()
    try:
        assert cache.get("before") == "v1"  # L1 still serves
        cache.put("during", "v2", tags=["t"])  # no exception
        assert cache.get("during") == "v2"
        cache.l1.clear()
        cache.l2.clear()
        assert cache.get("before", "miss") == "miss"  # Redis read failed quietly: a miss
        assert isinstance(cache.delete("during"), bool)  # returns, never raises
        assert cache.delete_by_tags(["t"]) >= 0
        cache.clear()
        stats = cache.stats()["tiers"]["l4"]
        assert stats["errors"] >= 1 and stats["available"] is False
        assert stats["last_error"]
    finally:
        redis_server.start()

    def recovered() -> bool:
        cache.put("after", "v3")
        return cache.l4.available and bool(redis_client.exists(f"echo_ray:cache:{namespace}:after"))

    wait_until(recovered, 15, lambda: f"L4 back after the restart ({cache.stats()['tiers']['l4']})")
    assert cache.l4.reconnects >= 1
    cache.l1.clear()
    assert cache.get("after") == "v3"  # read back through Redis
    cache.clear()
    cache.close()
