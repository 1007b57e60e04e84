"""The synthetic access-pattern families have the properties they are named for."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from echo_ray.cache import workloads
from echo_ray.cache.eviction import make_policy


def hit_ratio(name, keys, size):
    p = make_policy(name, maxsize=size)
    hits = 0
    for k in keys:
        if p.get(k) is None:
            p.put(k, k)
        else:
            hits += 1
    return hits / len(keys)


@pytest.mark.parametrize("name", sorted(workloads.FAMILIES))
def test_seeded_and_sized(name):
    gen = workloads.FAMILIES[name][0]
    a, b = gen(20_000, seed=1), gen(20_000, seed=1)
    assert a == b and len(a) >= 20_000 and all(type(k) is int for k in a[:100])
    assert gen(20_000, seed=2) != a


def test_recency_scans():
    n, every, length = 60_000, 20_000, 2_000
    keys = workloads.recency_scans(n, seed=4, scan_every=every, scan_length=length)
    assert len(keys) == n + 2 * length  # two scans inside 60k requests
    counts = Counter(keys)
    scan = keys[every:every + length]
    assert all(counts[k] == 1 for k in scan)  # scan keys are one-time
    assert scan == list(range(scan[0], scan[0] + length))
    # Recency: most re-references are to keys created a few hundred keys earlier, so
    # LRU gets far more at 2,000 entries than at 200.
    assert hit_ratio("lru", keys, 2_000) > hit_ratio("lru", keys, 200) + 0.15
    # One request in 3 creates a key, one in 5 reads the hot set.
    body = keys[:every]
    hot = sum(k < 1_000 for k in body) / len(body)
    assert 0.17 < hot < 0.23


def test_zipf_rank_frequency():
    n, n_keys, alpha = 200_000, 10_000, 0.9
    keys = workloads.zipf(n, seed=5, n_keys=n_keys, alpha=alpha)
    freq = np.array(sorted(Counter(keys).values(), reverse=True), dtype=float)
    p = workloads.zipf_probabilities(n_keys, alpha)
    assert freq[0] / n == pytest.approx(p[0], rel=0.05)
    slope = np.polyfit(np.log(np.arange(1, 101)), np.log(freq[:100]), 1)[0]
    assert slope == pytest.approx(-alpha, abs=0.1)
    # Frequency beats recency here.
    assert hit_ratio("lfu", keys, 500) > hit_ratio("lru", keys, 500) + 0.05


def test_loop():
    keys = workloads.loop(10_000, seed=6, length=1_500)
    assert len(set(keys)) == 1_500
    assert all(keys[i] == keys[i + 1_500] for i in range(len(keys) - 1_500))
    assert hit_ratio("lru", keys, 1_400) == 0.0


def test_shifting_working_set():
    set_size, phase, shift = 1_000, 10_000, 0.5
    keys = workloads.shifting(40_000, seed=7, set_size=set_size, phase=phase, shift=shift)
    phases = [set(keys[i:i + phase]) for i in range(0, 40_000, phase)]
    assert all(len(s) <= set_size for s in phases)
    for old, new in zip(phases, phases[1:]):
        assert len(new - old) >= 0.4 * set_size  # about half the set is new each phase
        assert len(new & old) >= 0.3 * set_size


def test_mix_blocks_are_disjoint_families():
    keys = workloads.mix(80_000, seed=8, block=5_000)
    assert len(keys) == 80_000
    ranges = [{k // 10**9 for k in keys[i:i + 5_000]} for i in range(0, 20_000, 5_000)]
    assert ranges == [{0}, {1}, {2}, {3}]


def test_bad_arguments():
    with pytest.raises(ValueError, match="n must be positive"):
        workloads.zipf(0)
    with pytest.raises(ValueError, match="shift"):
        workloads.shifting(10, shift=2.0)
    with pytest.raises(ValueError, match="new_fraction"):
        workloads.recency_scans(10, new_fraction=0.9, hot_fraction=0.5)
