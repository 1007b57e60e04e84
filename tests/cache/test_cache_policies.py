"""Eviction policies: order on hand-made sequences, TTL with a fake clock, TinyLFU admission."""

from __future__ import annotations

import cachetools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echo_ray.cache.eviction import (
    POLICIES,
    FIFOPolicy,
    FrequencyCounter,
    LFUPolicy,
    LRUPolicy,
    TinyLFUPolicy,
    TTLPolicy,
    make_policy,
)


def fill(policy, keys):
    for k in keys:
        policy.put(k, k.upper() if isinstance(k, str) else k)


def test_lru_evicts_least_recently_used():
    p = LRUPolicy(maxsize=3)
    fill(p, "abc")
    assert p.get("a") == "A"  # a is now the most recent
    p.put("d", "D")
    assert "b" not in p and set(p) == {"a", "c", "d"}
    p.put("c", "C2")  # an update is a use
    p.put("e", "E")
    assert set(p) == {"c", "d", "e"}
    assert p.evictions == 2


def test_fifo_ignores_reads_and_updates():
    p = FIFOPolicy(maxsize=3)
    fill(p, "abc")
    p.get("a")
    p.put("a", "A2")
    p.put("d", "D")
    assert set(p) == {"b", "c", "d"}
    p.put("e", "E")
    assert set(p) == {"c", "d", "e"}


def test_lfu_evicts_least_frequent_then_least_recent():
    p = LFUPolicy(maxsize=3)
    fill(p, "abc")
    p.get("a")
    p.get("a")
    p.get("c")
    p.put("d", "D")  # b has frequency 1, the lowest
    assert set(p) == {"a", "c", "d"}
    assert (p.frequency("a"), p.frequency("c"), p.frequency("d")) == (3, 2, 1)
    p.put("e", "E")  # d is the only key at frequency 1
    assert set(p) == {"a", "c", "e"}
    p.get("e")  # e and c both at 2: c is older in that bucket
    p.put("f", "F")
    assert set(p) == {"a", "e", "f"}


def test_lfu_delete_keeps_buckets_consistent():
    p = LFUPolicy(maxsize=2)
    fill(p, "ab")
    p.get("a")
    p.delete("b")  # the minimum bucket disappears
    p.put("c", "C")
    p.put("d", "D")
    assert set(p) == {"a", "d"}


def test_ttl_evicts_soonest_to_expire(clock):
    p = TTLPolicy(maxsize=3, ttl=100, clock=clock)
    p.put("a", 1, ttl=10)
    p.put("b", 2, ttl=5)
    p.put("c", 3)  # default ttl 100
    p.put("d", 4, ttl=50)
    assert set(p) == {"a", "c", "d"} and p.evictions == 1


def test_ttl_expired_entries_are_never_returned(clock):
    p = TTLPolicy(maxsize=10, ttl=100, clock=clock)
    p.put("short", 1, ttl=5)
    p.put("long", 2)
    clock.advance(4.99)
    assert p.get("short") == 1 and p.ttl_remaining("short") == pytest.approx(0.01)
    clock.advance(0.01)
    assert p.get("short") is None
    assert "short" not in p
    assert p.get("long") == 2
    clock.advance(200)
    assert p.get("long", "gone") == "gone"
    assert p.expirations == 2 and p.evictions == 0 and len(p) == 0


@pytest.mark.parametrize("name", ["lru", "lfu", "fifo", "tinylfu", "arc"])
def test_every_policy_honours_per_item_ttl(name, clock):
    p = make_policy(name, maxsize=10, clock=clock)
    p.put("k", "v", ttl=1.0)
    p.put("forever", "v")
    clock.advance(1.0)
    assert p.get("k") is None and "k" not in p
    assert p.get("forever") == "v"
    assert p.ttl_remaining("forever") is None


def test_expired_entries_make_room_in_ttl_policy(clock):
    p = TTLPolicy(maxsize=2, ttl=10, clock=clock)
    p.put("a", 1)
    p.put("b", 2)
    clock.advance(11)
    p.put("c", 3)
    p.put("d", 4)
    assert set(p) == {"c", "d"} and p.expirations == 2 and p.evictions == 0


def test_tinylfu_rejects_a_one_hit_wonder():
    p = TinyLFUPolicy(maxsize=100)
    hot = [f"hot{i}" for i in range(100)]
    for _ in range(3):
        for k in hot:
            if p.get(k) is None:
                p.put(k, k)
    assert len(p) == 100
    p.put("wonder", "w")  # lands in the 1-entry window
    p.put("next", "n")  # pushes the wonder out of the window: admission says no
    assert "wonder" not in p
    assert sum(k in p for k in hot) == 99  # one hot key is in the window slot's place
    # The same scan under LRU flushes hot keys instead.
    lru = LRUPolicy(maxsize=100)
    fill(lru, hot)
    fill(lru, ["wonder", "next"])
    assert "wonder" in lru and sum(k in lru for k in hot) == 98


def test_tinylfu_admits_a_candidate_used_more_than_the_victim():
    p = TinyLFUPolicy(maxsize=100)
    for i in range(100):
        p.put(i, i)
    for _ in range(5):
        p.sketch.increment("newcomer")
    p.sketch.flush()
    p.put("newcomer", 1)
    p.put("pusher", 2)
    assert "newcomer" in p  # it beat the probation victim (frequency 1)
    assert p.evictions >= 1


def test_tinylfu_ties_go_to_the_larger_region():
    """A candidate whose frequency ties with the victim's is admitted only when the window
    holds most of the cache (the adaptive split says recency wins, so a tie goes to the
    newer key, as in LRU); with a small window the incumbent stays (Caffeine's rule)."""
    for window, candidate_kept in ((5, False), (90, True)):
        evicted = []
        p = TinyLFUPolicy(maxsize=100, adapt="fixed", window_fraction=window / 100,
                          on_evict=lambda k, v, out=evicted: out.append(k))
        for i in range(100):
            p.put(i, i)  # every key used once: every count is 1
        p.sketch.flush()
        candidate, victim = next(iter(p._window)), next(iter(p._probation))
        assert p.frequency(candidate) == p.frequency(victim) == 1
        p.put("new", 0)  # the window's oldest entry leaves it and meets probation's
        assert evicted == ([victim] if candidate_kept else [candidate])


def test_tinylfu_regions_are_bounded():
    p = TinyLFUPolicy(maxsize=200)
    for rnd in range(3):
        for i in range(400):
            k = i % (50 + 100 * rnd)
            if p.get(k) is None:
                p.put(k, k)
    assert len(p) <= 200
    assert len(p._window) <= p.window_capacity
    assert p._protected_weight <= p.protected_capacity


def test_frequency_counter_counts_saturates_and_halves():
    s = FrequencyCounter(64, sample_factor=1000)  # batches of 1,000: no flush below
    for _ in range(20):
        s.increment("a")
    for _ in range(3):
        s.increment("b")
    s.increment("c")
    assert s.estimate("a") == 0  # increments reach the counts in batches
    s.flush()
    assert s.estimate("a") == 15  # capped like Caffeine's 4-bit counters
    assert s.estimate("b") == 3 and s.estimate("c") == 1 and s.estimate("never") == 0
    s.reset()
    assert s.estimate("a") == 7 and s.estimate("b") == 1
    assert s.estimate("c") == 0 and len(s) == 2  # a count halved to 0 is forgotten


def test_frequency_counter_halves_after_sample_size():
    s = FrequencyCounter(16, sample_factor=1)
    for i in range(s.sample_size + s.batch):
        s.increment(i % 4)
    assert s.resets >= 1
    assert s.additions < s.sample_size


def test_frequency_counter_batches_give_the_sequential_counts():
    """Batched increments, once flushed, give the counts sequential capped increments give."""
    import random

    s = FrequencyCounter(64, sample_factor=1000)  # no halving inside this test
    rng = random.Random(3)
    keys = [rng.randrange(200) for _ in range(3000)]
    expected: dict[int, int] = {}
    for k in keys:
        expected[k] = expected.get(k, 0) + 1
        s.increment(k)
    assert s.batch < len(keys)  # several flushes happened on the way
    s.flush()
    assert all(s.estimate(k) == min(15, c) for k, c in expected.items())


def test_byte_capacity_and_oversized_items():
    p = LRUPolicy(maxbytes=10, sizeof=len)
    assert p.put("a", "xxxx") and p.put("b", "yyyy")
    p.put("c", "zzzz")
    assert set(p) == {"b", "c"} and p.currbytes == 8
    assert p.put("big", "x" * 11) is False and "big" not in p
    p.put("b", "y" * 9)  # growing an entry evicts others
    assert set(p) == {"b"} and p.currbytes == 9


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_all_policies_share_the_interface(name):
    evicted = []
    p = make_policy(name, maxsize=4, maxbytes=100, sizeof=len,
                    on_evict=lambda k, v: evicted.append(k))
    for i in range(10):
        p.put(f"k{i}", "x" * 10)
    assert len(p) <= 4 and p.currbytes <= 100
    assert p.evictions == len(evicted) == 10 - len(p)
    key = next(iter(p))
    assert p.get(key) == "x" * 10 and key in p
    assert p.delete(key) and not p.delete(key)
    p.clear()
    assert len(p) == 0 and p.currbytes == 0


@pytest.mark.parametrize("kwargs, match", [
    ({}, "maxsize"),
    ({"maxsize": 0}, "maxsize"),
    ({"maxsize": 1.5}, "maxsize"),
    ({"maxbytes": 10}, "sizeof"),
    ({"maxsize": 3, "clock": 5}, "clock"),
])
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LRUPolicy(**kwargs)


def test_bad_arguments():
    with pytest.raises(ValueError, match="eviction policy must be one of"):
        make_policy("nope", maxsize=3)
    with pytest.raises(ValueError, match="ttl"):
        LRUPolicy(maxsize=3).put("a", 1, ttl=-1)
    with pytest.raises(ValueError, match="ttl"):
        TTLPolicy(maxsize=3, ttl=0)
    with pytest.raises(ValueError, match="sizeof must return"):
        LRUPolicy(maxbytes=3, sizeof=lambda v: -1).put("a", 1)


ops = st.lists(st.tuples(st.sampled_from(["get", "put", "delete"]), st.integers(0, 12)),
               max_size=200)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(ops)
def test_lru_matches_cachetools(sequence):
    ours, ref = LRUPolicy(maxsize=5), cachetools.LRUCache(maxsize=5)
    for op, key in sequence:
        if op == "get":
            assert ours.get(key) == ref.get(key)
        elif op == "put":
            ours.put(key, key * 2)
            ref[key] = key * 2
        else:
            assert ours.delete(key) == (ref.pop(key, None) is not None)
        assert sorted(ours) == sorted(ref)


@settings(max_examples=100, derandomize=True, deadline=None)
@given(ops, st.sampled_from(sorted(POLICIES)))
def test_policies_never_exceed_capacity(sequence, name):
    p = make_policy(name, maxsize=6)
    for op, key in sequence:
        if op == "get":
            value = p.get(key)
            assert value is None or value == key
        elif op == "put":
            p.put(key, key)
        else:
            p.delete(key)
        assert len(p) <= 6


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_purge_expired_drops_soonest_deadlines_first_and_at_most_limit(name, clock):
    kwargs = {"ttl": 1000.0} if name == "ttl" else {}
    p = make_policy(name, maxsize=1000, clock=clock, **kwargs)
    for i in range(10):
        p.put(f"k{i}", i, ttl=10.0 - i)  # k9 expires first
    p.put("k0", 0, ttl=50.0)  # a new deadline: its old row in the heap is stale
    p.put("live", 1, ttl=500.0)
    assert p.purge_expired(3) == 0  # nothing has expired yet
    clock.advance(9.5)  # k1..k9 have expired (deadlines 1..9), k0 has not
    assert p.purge_expired(3) == 3 and p.expirations == 3
    assert {f"k{i}" for i in (9, 8, 7)}.isdisjoint(p._data) and "k6" in p._data
    assert p.purge_expired() == 6 and p.purge_expired() == 0
    assert set(p._data) == {"k0", "live"} and p.expirations == 9 and p.evictions == 0


def test_deadline_heap_stays_proportional_to_live_entries(clock):
    p = LRUPolicy(maxsize=10, clock=clock)
    for i in range(10_000):  # the same 5 keys rewritten with new deadlines
        p.put(f"k{i % 5}", i, ttl=100.0)
    assert len(p._deadlines) <= 2 * len(p) + 65
    p.clear()
    assert p._deadlines == [] and p.purge_expired() == 0
