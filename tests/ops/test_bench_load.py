"""benchmarks/bench_load.py in a tiny configuration (2 users, a few seconds) against the live
app: it runs end to end and writes the keys RESULTS.md and the coordinator read."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.live_app import ROOT

pytestmark = pytest.mark.cluster


def test_bench_load_tiny_run_writes_its_keys(live_app, tmp_path):
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_load.py"), "--url", live_app.base_url,
         "--json", str(out), "--steps", "2", "--step-seconds", "4", "--think-s", "0.3",
         "--calibrate-n", "2", "--plan-users", "100", "--settle-s", "1",
         "--calibration-misses", "2"],
        env=live_app.env(), capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert isinstance(doc["users_at_p95_50ms"], int)
    assert isinstance(doc["users_per_core"], float)
    assert isinstance(doc["sessions_alive"], int) and doc["sessions_alive"] >= 1
    assert doc["sim_vs_live"] == [] or {"users", "live_p95_ms", "sim_p95_ms", "live_rps",
                                        "sim_rps"} <= set(doc["sim_vs_live"][0])
    assert doc["p95_ms"] and all(v >= 0 for v in doc["p95_ms"].values())
    assert doc["mean_ms"] > 0 and 0 <= doc["error_rate"] <= 1
    assert [row["users"] for row in doc["steps"]] == [2]
    assert "CognitiveWorker" not in doc["steps"][0]["replicas"]  # --url: no dashboard given
    machine = doc["steps"][0]["machine"]  # the shared cores' use, load generator included
    assert machine["busy_cores"] > 0 and machine["cpu_ms_per_request"] >= 0
    if doc["sim_vs_live"]:  # the model, calibrated from the step's own answers
        assert [row["users"] for row in doc["sim_vs_live"]] == [2]
        assert doc["sim_model"]["calibrated_from"].endswith("2 users")
        assert [p["users"] for p in doc["plan"]] == [100] and doc["plan"][0]["nodes"] >= 1
    assert (tmp_path / "load.png").stat().st_size > 0
