"""MultiLevelCache without Ray: promotion, write-through, TTL, tags, config, bad input."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from echo_ray.cache import CacheConfig, MultiLevelCache
from echo_ray.cache.entry import pack_entry
from echo_ray.settings import Settings


@pytest.fixture
def cache(tmp_path, clock, namespace):
    config = CacheConfig(cache_dir=str(tmp_path), namespace=namespace, object_store="off",
                         l2_min_bytes=64)
    c = MultiLevelCache(config, clock=clock)
    yield c
    c.close()


def test_pure_use_does_not_import_ray():
    code = ("import sys, tempfile; from echo_ray.cache import MultiLevelCache, CacheConfig; "
            "c = MultiLevelCache(CacheConfig(cache_dir=tempfile.mkdtemp())); c.put('k', 1); "
            "assert c.get('k') == 1; c.stats(); assert 'ray' not in sys.modules, 'ray imported'")
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_write_through_and_promotion(cache):
    value = {"state": np.zeros(512)}
    cache.put("k", value, tags=["model"])
    assert cache.l1.get("k") is not None and cache.l2.get("k") is not None
    assert cache.l3.get("k") is not None
    cache.l1.delete("k")
    cache.l2.delete("k")
    got = cache.get("k")  # served by L3, promoted to L1 and L2
    np.testing.assert_array_equal(got["state"], value["state"])
    assert cache.l1.get("k") is not None and cache.l2.get("k") is not None
    assert cache.l1.keys_for_tags(["model"]) == {"k"}  # tags came along
    tiers = cache.stats()["tiers"]
    assert tiers["l3"]["hits"] == 2  # the direct check above plus the cache read


def test_promotion_from_l2_to_l1_keeps_remaining_ttl(cache, clock):
    cache.put("k", "x" * 500, ttl=10)
    cache.l1.delete("k")
    clock.advance(4)
    assert cache.get("k") == "x" * 500
    assert cache.l1.get("k").ttl == pytest.approx(6)


def test_per_item_ttl_and_default_ttl(tmp_path, clock):
    config = CacheConfig(default_ttl_seconds=30, enable_compression=False, object_store="off")
    c = MultiLevelCache(config, clock=clock)
    c.put("default", 1)
    c.put("short", 2, ttl=1)
    clock.advance(1.5)
    assert c.get("short") is None and c.get("default") == 1
    clock.advance(30)
    assert c.get("default") is None
    never = MultiLevelCache(CacheConfig(default_ttl_seconds=0, object_store="off"), clock=clock)
    never.put("k", 1)
    clock.advance(1e9)
    assert never.get("k") == 1


def test_tag_invalidation_across_local_tiers(cache):
    cache.put("a", "x" * 200, tags=["t1"])
    cache.put("b", "y" * 200, tags=["t1", "t2"])
    cache.put("c", "z", tags=["t2"])
    cache.put("d", "w")
    cache.l1.delete("a")  # a now only in L2 and L3
    assert cache.delete_by_tags(["t1"]) == 2
    for key in ("a", "b"):
        assert cache.get(key) is None
        assert cache.l3.get(key) is None
    assert cache.get("c") == "z" and cache.get("d") == "w"
    assert cache.delete_by_tags(["t2"]) == 1 and cache.get("c") is None


def test_retagging_removes_old_tags(cache):
    cache.put("k", 1, tags=["old"])
    cache.put("k", 2, tags=["new"])
    assert cache.delete_by_tags(["old"]) == 0
    assert cache.get("k") == 2


def test_delete_and_clear(cache):
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.delete("a") and not cache.delete("a")
    assert cache.get("a") is None
    cache.clear()
    assert cache.get("b") is None and cache.l3.get("b") is None


def test_cached_none_and_default(cache):
    cache.put("none", None)
    sentinel = object()
    assert cache.get("none", sentinel) is None
    assert cache.get("missing", sentinel) is sentinel


def test_get_many(cache):
    for i in range(5):
        cache.put(f"k{i}", i)
    cache.l1.delete("k3")
    assert cache.get_many(["k0", "k3", "nope"]) == {"k0": 0, "k3": 3}


def test_unencodable_value_touches_no_tier(cache):
    with pytest.raises(TypeError, match="set"):
        cache.put("k", {1, 2})
    assert cache.get("k") is None and cache.l3.get("k") is None


def test_corrupt_bytes_are_dropped_not_raised(cache):
    cache.l3.put("bad", b"\x80\x04garbage", ttl=None)
    assert cache.get("bad", "miss") == "miss"
    assert cache.l3.get("bad") is None  # removed so it cannot fail again


@pytest.mark.parametrize("key", ["", "x" * 513, "bad\nkey", 5, None])
def test_bad_keys(cache, key):
    with pytest.raises(ValueError, match="key"):
        cache.put(key, 1)
    with pytest.raises(ValueError, match="key"):
        cache.get(key)


def test_bad_tags_and_ttl(cache):
    with pytest.raises(ValueError, match="tags"):
        cache.put("k", 1, tags="single")
    with pytest.raises(ValueError, match="tag"):
        cache.put("k", 1, tags=[""])
    with pytest.raises(ValueError, match="at most 64"):
        cache.put("k", 1, tags=[f"t{i}" for i in range(65)])
    with pytest.raises(ValueError, match="ttl"):
        cache.put("k", 1, ttl=0)


def test_l1_eviction_falls_back_to_l2(clock):
    config = CacheConfig(max_memory_mb=0.01, l1_share=0.5, object_store="off",
                         eviction_policy="tinylfu", l2_min_bytes=64)
    c = MultiLevelCache(config, clock=clock)
    for i in range(40):
        c.put(f"k{i}", "z" * 400)
    stats = c.stats()["tiers"]
    assert stats["l1"]["evictions"] > 0 and stats["l1"]["policy"] == "tinylfu"
    assert all(c.get(f"k{i}") == "z" * 400 for i in range(40))  # L2 kept them all
    assert c.stats()["tiers"]["l2"]["hits"] > 0


def test_config_from_env():
    env = {"MAX_CACHE_MEMORY_MB": "64", "DEFAULT_TTL_SECONDS": "10", "EVICTION_POLICY": "TinyLFU",
           "ENABLE_COMPRESSION": "false", "REDIS_URL": "redis://127.0.0.1:1/0",
           "CACHE_DIR": "/tmp/x", "CACHE_NAMESPACE": "ns1", "CACHE_L2_MIN_BYTES": "2048"}
    config = Settings.from_env(env).cache_config()
    assert (config.max_memory_mb, config.default_ttl, config.eviction_policy) == (64, 10, "tinylfu")
    assert config.enable_compression is False and config.l1_bytes == 64 * 2**20
    assert (config.redis_url, config.cache_dir, config.namespace) == (
        "redis://127.0.0.1:1/0", "/tmp/x", "ns1")
    defaults = Settings.from_env({}).cache_config()
    assert (defaults.max_memory_mb, defaults.default_ttl_seconds, defaults.eviction_policy,
            defaults.enable_compression, defaults.redis_url) == (512, 300, "lru", True, None)
    assert defaults.cache_dir.endswith("echo-ray/cache")  # embedded default: L3 on disk
    assert Settings.from_env({"CACHE_DIR": "off"}).cache_config().cache_dir is None
    assert defaults.l2_min_bytes == 1024 and defaults.l2_min_saving == 0.2


@pytest.mark.parametrize("env, match", [
    ({"MAX_CACHE_MEMORY_MB": "lots"}, "MAX_CACHE_MEMORY_MB"),
    ({"ENABLE_COMPRESSION": "maybe"}, "ENABLE_COMPRESSION"),
    ({"EVICTION_POLICY": "clock"}, "eviction_policy"),
    ({"CACHE_NAMESPACE": "a:b"}, "namespace"),
    ({"DEFAULT_TTL_SECONDS": "-1"}, "default_ttl_seconds"),
])
def test_config_bad_env(env, match):
    with pytest.raises(ValueError, match=match):
        Settings.from_env(env).cache_config()


def test_entry_format_is_codec_bytes():
    blob = pack_entry([1, 2], ["b", "a"])
    from echo_ray.cache.codec import decode

    assert decode(blob) == [1, ["a", "b"], [1, 2]]
