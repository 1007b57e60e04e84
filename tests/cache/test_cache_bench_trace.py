"""bench_cache.py --trace/--size: any trace (plain, gzip or zstd) gets the full comparison."""

from __future__ import annotations

import gzip
import json

import pytest
import zstandard

from tests.support.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_cache")


TRACE = "a\nb\nc\na\nb\nd\na\nb\nc\nd\n" * 20


@pytest.mark.parametrize("compress", ["plain", "gzip", "zstd"])
def test_user_trace_in_any_format(bench, tmp_path, compress):
    data = TRACE.encode()
    if compress == "gzip":
        data = gzip.compress(data)
    elif compress == "zstd":
        data = zstandard.ZstdCompressor().compress(data)
    path = tmp_path / f"mine.{compress}"
    path.write_bytes(data)
    out = tmp_path / "out.json"
    assert bench.main(["--trace", str(path), "--size", "3", "--json", str(out)]) == 0
    row = json.loads(out.read_text())["hit_ratio"]["mine-3"]
    assert set(row) == {"lru", "lfu", "fifo", "arc", "tinylfu", "tinylfu_climb",
                        "cachetools_lru", "cachetools_lfu", "theine", "optimal"}
    assert row["lru"] == row["cachetools_lru"]
    assert all(0 <= v <= row["optimal"] for v in row.values())


def test_optimal_on_a_hand_checked_sequence(bench):
    # size 2: a b c a b -> Belady keeps a (next at 3) and evicts b (next at 4) at c,
    # so a hits and b misses: 1 hit.
    assert bench.hits_optimal([0, 1, 2, 0, 1], 2) == 1
    assert bench.hits_optimal([0, 1, 0, 1], 2) == 2


def test_published_figures_on_the_real_traces(bench, traces_dir):
    keys = bench.load_trace(traces_dir / "cache" / "gli.trace.gz")
    assert len(keys) == 6015  # 6,016 lines, the last one blank
    pct = 100 / len(keys)
    assert round(bench.hits_ours("lru", keys, 1000) * pct, 2) == 11.21
    assert round(bench.hits_optimal(keys, 1000) * pct, 2) == 53.13


def test_bad_arguments(bench, tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--trace", str(tmp_path / "missing"), "--size", "3"])
    with pytest.raises(SystemExit):
        bench.main(["--size", "3"])
    with pytest.raises(SystemExit):
        bench.main(["--suite", "--trace", str(tmp_path / "t"), "--size", "3"])


def test_target_check(bench):
    row = {"lru": 30.0, "theine": 40.0, "arc": 45.0, "tinylfu": 39.5}
    assert bench.target_check(row, recency_heavy=False) == {"need": 39.0, "met": True}
    assert bench.target_check(row, recency_heavy=True)["met"] is False  # 5.5 below ARC
    assert bench.target_check({**row, "tinylfu": 29.9}, False)["met"] is False
