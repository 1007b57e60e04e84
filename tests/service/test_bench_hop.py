"""benchmarks/bench_hop.py --quick runs both sides (actor hop, in-process) in one run on real
Ray and writes the figures RESULTS.md quotes."""

from __future__ import annotations

import json

import pytest

from tests.support.benchmarks import load_benchmark

pytestmark = pytest.mark.ray


def test_bench_hop_quick_writes_both_sides(ray_session, tmp_path):
    out = tmp_path / "hop.json"
    assert load_benchmark("bench_hop").main(["--quick", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["quick"] and res["single"] and res["concurrent"] and res["requests"]
    for row in res["single"] + res["requests"]:
        assert row["actors_ms"]["median"] > 0 and row["in_process_ms"]["median"] > 0
        assert row["ratio"] > 0 and row["load"] >= 0
    for row in res["concurrent"]:
        assert row["actors_rps"]["median"] > 0 and row["in_process_rps"]["median"] > 0
    assert {r["type"] for r in res["requests"]} == {"reasoning", "memory", "grammar",
                                                     "agent_evaluation", "multi_modal"}
    w = res["weights"]
    assert w["largest_bytes"] <= w["total_bytes"] < w["worker_process_uss_bytes"]["median"]
    for side in ("actors_only", "placed"):  # a replica's start and memory, both ways
        r = res["replica"][side]
        assert r["start_s"]["median"] > 0 and r["actors"]["median"] >= 1
        assert r["replica_uss"]["median"] > 0 and r["actors_uss"]["median"] > 0
    assert ray_session.is_initialized()  # it used the session's Ray and left it running
