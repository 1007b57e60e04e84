"""The pure tiers: L1 memory, L2 compressed (thresholds, ratio), L3 disk (restart, no pickle)."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import time

import diskcache
import numpy as np
import pytest

from echo_ray.cache.entry import pack_entry, unpack_entry
from echo_ray.cache.tiers.base import PURGE_BATCH, PURGE_EVERY_READS
from echo_ray.cache.tiers.compressed import CompressedTier
from echo_ray.cache.tiers.disk import BytesOnlyDisk, DiskTier
from echo_ray.cache.tiers.memory import MemoryTier


def test_memory_tier_bounded_by_bytes_and_tags_follow_evictions(clock):
    tier = MemoryTier(max_bytes=100, policy="lru", clock=clock)
    tier.put("a", "A", nbytes=60, ttl=None, tags=["t"])
    tier.put("b", "B", nbytes=60, ttl=None, tags=["t"])  # evicts a
    assert tier.get("a") is None and tier.get("b").value == "B"
    assert tier.keys_for_tags(["t"]) == {"b"}
    snap = tier.snapshot()
    assert snap["evictions"] == 1 and snap["bytes"] == 60 and snap["items"] == 1
    assert snap["hits"] == 1 and snap["misses"] == 1 and snap["hit_ratio"] == 0.5


def test_memory_tier_ttl(clock):
    tier = MemoryTier(max_bytes=1000, clock=clock)
    tier.put("k", 1, nbytes=1, ttl=2.0)
    assert tier.get("k").ttl == pytest.approx(2.0)
    clock.advance(2.0)
    assert tier.get("k") is None


def test_compressed_tier_thresholds_and_ratio(clock):
    tier = CompressedTier(max_bytes=1 << 20, min_bytes=1024, min_saving=0.2, clock=clock)
    small = pack_entry("x" * 100)
    assert not tier.put("small", small, None) and tier.skipped_small == 1
    noise = pack_entry(np.random.default_rng(0).bytes(4096))
    assert not tier.put("noise", noise, None) and tier.skipped_incompressible == 1
    text = pack_entry({"readout": np.zeros(2048)}, ["model"])
    assert tier.put("zeros", text, ttl=5.0, tags=["model"])
    hit = tier.get("zeros")
    assert hit.value == text and hit.ttl == pytest.approx(5.0)
    assert tier.ratio > 10
    snap = tier.snapshot()
    assert snap["compression_ratio"] == pytest.approx(tier.ratio, rel=1e-3)
    assert snap["items"] == 1 and snap["bytes"] < len(text) // 10
    assert tier.keys_for_tags(["model"]) == {"zeros"}


def test_compressed_tier_thresholds_are_configurable():
    tier = CompressedTier(max_bytes=1 << 20, min_bytes=0, min_saving=0.0)
    assert tier.put("tiny", pack_entry("a" * 20), None)
    with pytest.raises(ValueError, match="min_saving"):
        CompressedTier(max_bytes=10, min_saving=1.5)
    with pytest.raises(ValueError, match="min_bytes"):
        CompressedTier(max_bytes=10, min_bytes=-1)


def test_disk_tier_round_trip_tags_and_ttl(tmp_path):
    tier = DiskTier(tmp_path, "ns")
    blob = pack_entry({"a": np.arange(5)}, ["t1", "t2"])
    assert tier.put("k", blob, ttl=60.0, tags=["t1", "t2"])
    hit = tier.get("k")
    assert hit.value == blob and 59 < hit.ttl <= 60
    value, tags = unpack_entry(hit.value)
    assert tags == ("t1", "t2")
    assert tier.keys_for_tags(["t1"]) == {"k"}
    tier.put("k", blob, ttl=None, tags=["t3"])  # re-tagging drops the old tags
    assert tier.keys_for_tags(["t1", "t2"]) == set() and tier.keys_for_tags(["t3"]) == {"k"}
    assert tier.get("k").ttl is None
    assert tier.delete("k") and tier.get("k") is None
    assert tier.keys_for_tags(["t3"]) == set()
    tier.close()


def test_disk_tier_expiry_is_real(tmp_path):
    tier = DiskTier(tmp_path)
    tier.put("k", b"v", ttl=0.05, tags=())
    for _ in range(200):  # bounded wait on the condition
        if tier.get("k") is None:
            break
        time.sleep(0.01)
    assert tier.get("k") is None


def test_disk_tier_survives_a_process_restart(tmp_path):
    writer = textwrap.dedent(f"""
        import numpy as np
        from echo_ray.cache import CacheConfig, MultiLevelCache
        cache = MultiLevelCache(CacheConfig(cache_dir={str(tmp_path)!r}, namespace="persist",
                                            object_store="off"))
        cache.put("weights", np.arange(6, dtype=np.float32).reshape(2, 3), tags=["model"])
        cache.put("meta", {{"epoch": 3}}, ttl=600)
        cache.close()
    """)
    subprocess.run([sys.executable, "-c", writer], check=True, timeout=120)
    from echo_ray.cache import CacheConfig, MultiLevelCache

    cache = MultiLevelCache(CacheConfig(cache_dir=str(tmp_path), namespace="persist",
                                        object_store="off"))
    np.testing.assert_array_equal(cache.get("weights"),
                                  np.arange(6, dtype=np.float32).reshape(2, 3))
    assert cache.get("meta") == {"epoch": 3}
    assert cache.stats()["tiers"]["l3"]["hits"] == 2
    assert cache.delete_by_tags(["model"]) == 1 and cache.get("weights") is None
    cache.close()


def test_disk_tier_never_pickles_or_unpickles(tmp_path):
    tier = DiskTier(tmp_path, "ns")
    # Someone writes a pickled value into our folder with plain diskcache...
    rogue = diskcache.Cache(str(tmp_path / "ns" / "entries"))
    rogue.set("evil", {"a": 1})  # diskcache pickles dicts
    rogue.close()
    assert tier.get("evil") is None  # ...we refuse to read it
    assert tier.stats.errors == 1 and "unpickle" in tier.stats.extra["last_error"]
    disk = BytesOnlyDisk(str(tmp_path))
    with pytest.raises(TypeError, match="bytes"):
        disk.store({"a": 1}, read=False)
    with pytest.raises(TypeError, match="str"):
        disk.put(("tuple", "key"))
    with pytest.raises(ValueError, match="unpickle"):
        disk.get(pickle.dumps("k"), raw=False)
    tier.close()


def test_disk_tier_counts_culled_rows(tmp_path):
    tier = DiskTier(tmp_path, size_limit_bytes=64 * 1024)
    for i in range(200):
        tier.put(f"k{i}", bytes(2000), ttl=None)
    snap = tier.snapshot()
    assert snap["evictions"] > 0 and snap["items"] < 200
    tier.close()


def test_compressed_tier_judges_large_entries_on_a_sample():
    tier = CompressedTier(max_bytes=64 * 2**20)
    noise = pack_entry(np.random.default_rng(1).random(2**17))  # 1 MiB of random floats
    assert not tier.put("noise", noise, None) and tier.skipped_incompressible == 1
    zeros = pack_entry(np.zeros(2**17))
    assert tier.put("zeros", zeros, None) and tier.get("zeros").value == zeros


def _fill_with_expiring(tier, n, put):
    for i in range(n):
        put(tier, f"old{i}", ttl=1.0 + i * 0.001, tags=["old", f"o{i}"])


def _put_l1(tier, key, ttl, tags=()):
    tier.put(key, key, nbytes=100, ttl=ttl, tags=tags)


def _put_l2(tier, key, ttl, tags=()):
    tier.put(key, pack_entry("z" * 4096), ttl=ttl, tags=tags)


@pytest.mark.parametrize("make, put", [
    (lambda clock, policy: MemoryTier(max_bytes=1 << 20, policy=policy, clock=clock), _put_l1),
    (lambda clock, policy: CompressedTier(max_bytes=1 << 20, policy=policy, min_bytes=0,
                                          clock=clock), _put_l2),
], ids=["l1", "l2"])
@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo", "tinylfu", "ttl", "arc"])
def test_in_process_tiers_drop_expired_entries_without_reading_them(make, put, policy, clock):
    """A long-running process writes entries that nobody reads again: writes of other keys
    purge them in bounded batches (soonest deadline first), tags included; live ones stay."""
    tier = make(clock, policy)
    n = 4 * PURGE_BATCH + 5
    _fill_with_expiring(tier, n, put)
    put(tier, "live", ttl=100.0, tags=["live"])
    put(tier, "forever", ttl=None)
    assert tier.snapshot()["items"] == n + 2
    clock.advance(1.0 + (n // 2) * 0.001)  # the first half (by deadline) has expired
    half = n // 2 + 1
    put(tier, "new0", ttl=100.0)
    first = half if policy == "ttl" else PURGE_BATCH  # the ttl policy purges all on a put
    snap = tier.snapshot()
    assert snap["items"] == n + 3 - first and snap["expirations"] == first
    assert tier.keys_for_tags([f"o{i}" for i in range(first)]) == set()
    assert tier.keys_for_tags([f"o{half}"]) == {f"old{half}"}
    for i in range(1, 4):
        put(tier, f"new{i}", ttl=100.0)
    assert tier.snapshot()["expirations"] == half  # only what had expired, no more
    clock.advance(1.0)  # now all of them
    for i in range(4, 8):
        put(tier, f"new{i}", ttl=100.0)
    snap = tier.snapshot()
    assert snap["expirations"] == n and snap["items"] == 2 + 8 and snap["hits"] == 0
    assert tier.keys_for_tags(["old"]) == set() and tier.keys_for_tags(["live"]) == {"live"}
    assert snap["evictions"] == 0 and snap["misses"] == 0  # never read, never evicted
    assert tier.get("live") is not None and tier.get("forever") is not None


@pytest.mark.parametrize("make", [
    lambda clock: MemoryTier(max_bytes=1 << 20, clock=clock),
    lambda clock: CompressedTier(max_bytes=1 << 20, min_bytes=0, clock=clock),
], ids=["l1", "l2"])
def test_in_process_tiers_purge_on_reads_of_other_keys_too(make, clock):
    tier = make(clock)
    put = _put_l1 if isinstance(tier, MemoryTier) else _put_l2
    put(tier, "hot", ttl=None)
    for i in range(10):
        put(tier, f"old{i}", ttl=1.0)
    clock.advance(2.0)
    for _ in range(PURGE_EVERY_READS):
        assert tier.get("hot") is not None
    assert tier.snapshot()["items"] == 1 and tier.snapshot()["expirations"] == 10
