"""Replay and calibration against a real local Serve app (a tiny deployment of our own)."""

from __future__ import annotations

import math

import httpx
import pytest

from echo_ray.sim import RateTrace, load_calibration
from echo_ray.sim.calibrate import calibrate
from echo_ray.sim.replay import ReplayRequest, replay
from echo_ray.waiting import wait_until

pytestmark = pytest.mark.ray

APP = "sim-replay-test"


@pytest.fixture(scope="module")
def work_url(serve_session):
    from ray import serve

    from echo_ray.sim.live import app, replica_counter

    serve.run(app(mean_s=0.0, min_replicas=1, autoscale=False), name=APP,
              route_prefix=f"/{APP}")
    url = f"{serve_session}/{APP}"

    def answers() -> bool:
        try:
            return httpx.post(url, timeout=10).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answers, 60, "the test deployment answering", interval_s=0.2)
    yield url, replica_counter(APP)
    serve.delete(APP)


def test_replay_sends_the_expected_number_of_requests(work_url):
    url, counter = work_url
    trace = RateTrace.steps([20, 60], [6, 6], bin_seconds=3)  # 12 s, ~480 requests
    # A generous per-request timeout: on a loaded 2-core machine a 6 s replay has taken 36 s,
    # and a request the client gave up on is not what this test is about. Not compressed: at
    # 60 req/s the one client loop keeps its send times on the 2 cores it shares.
    r = replay(url, trace, speedup=1.0, seed=4, request=ReplayRequest("/", None),
               timeout_s=180.0, progress=True, replica_counter=counter, poll_s=0.5)
    s = r.summary
    expected = trace.expected_requests()
    assert s["expected_requests"] == expected
    assert abs(s["arrivals"] - expected) < 5 * math.sqrt(expected)
    assert s["served"] == s["arrivals"] and s["dropped"] == 0, s
    assert s["http_status_counts"] == {200: s["arrivals"]}, s
    # open loop: the arrivals are the simulator's, sent on time (generous: the 2 cores are
    # shared with the Serve proxy and replica)
    req = r.requests
    lag = (req["sent_s"] - req["arrival_s"]).median()
    assert lag < 1.0, lag
    assert r.minutes["arrivals"].sum() == s["arrivals"]
    # one replica all along: replica-seconds = seconds replayed
    assert s["replica_seconds"] == pytest.approx(r.timeline["dt"].sum(), rel=0.05), \
        r.timeline[["t", "running", "provisioned"]].to_dict("list")


def test_calibration_file_feeds_the_service_model(work_url, tmp_path):
    url, _ = work_url
    doc = calibrate(url, tmp_path / "cal.json", n=5, types=["reasoning", "memory"], warmup=1)
    assert set(doc["types"]) == {"reasoning", "memory"}
    assert all(v["n"] == 5 and v["errors"] == 0 for v in doc["types"].values())
    model = load_calibration(tmp_path / "cal.json")
    assert model.kind == "empirical" and len(model.samples_s) == 10
    assert model.mean_s == pytest.approx(
        sum(sum(v["latency_ms"]) for v in doc["types"].values()) / 10 / 1000)
