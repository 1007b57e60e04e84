"""Unit tests for replica stats (record_routing_stats payload) and the health check rule."""

from __future__ import annotations

import asyncio

import pytest

from echo_ray.routing import ReplicaStats, RoutingStatsMixin


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_track_counts_in_flight_latency_and_errors():
    clock = FakeClock()
    stats = ReplicaStats(clock=clock, latency_alpha=0.5)
    with stats.track():
        assert stats.in_flight == 1
        clock.now += 0.2
    with pytest.raises(KeyError), stats.track():
        clock.now += 0.4
        raise KeyError("boom")
    assert stats.in_flight == 0
    assert stats.latency_ewma_s == pytest.approx(0.3)  # 0.2, then halfway to 0.4
    assert stats.window_counts() == (2, 1)
    assert stats.error_rate == pytest.approx(0.5)


def test_cancellation_is_not_an_error():
    stats = ReplicaStats()
    with pytest.raises(asyncio.CancelledError), stats.track():
        raise asyncio.CancelledError
    assert stats.in_flight == 0
    assert stats.window_counts() == (0, 0)


def test_error_spike_fails_health_then_ages_out_of_window():
    clock = FakeClock()
    stats = ReplicaStats(clock=clock, error_window_s=30.0, error_rate_threshold=0.5,
                         min_requests=10)
    for _ in range(9):
        stats.record(0.01, ok=False)
    assert stats.health_problem() is None  # too few requests to call it a spike
    stats.record(0.01, ok=False)
    assert "error rate 10/10" in stats.health_problem()
    with pytest.raises(RuntimeError, match="replica unhealthy: error rate"):
        stats.check_health()
    assert stats.snapshot()["healthy"] is False
    clock.now += 31.0
    assert stats.health_problem() is None
    stats.check_health()


def test_dependency_check_failure_or_exception_is_a_problem():
    stats = ReplicaStats()
    assert stats.health_problem(lambda: None) is None
    assert stats.health_problem(lambda: "dtesn actors gone") == "dtesn actors gone"

    def raising() -> str | None:
        raise ConnectionError("actor died")

    assert "ConnectionError: actor died" in stats.health_problem(raising)
    with pytest.raises(RuntimeError, match="actor died"):
        stats.check_health(raising)


def test_snapshot_reports_process_resources():
    stats = ReplicaStats(capacity=2.0)
    stats.record(0.05)
    snap = stats.snapshot()
    assert snap["memory_rss_bytes"] > 10_000_000  # a Python process with numpy loaded
    assert snap["cpu_percent"] >= 0.0
    assert snap["in_flight"] == 0 and snap["requests"] == 1
    assert snap["latency_ewma_s"] == pytest.approx(0.05)
    assert snap["error_rate"] == 0.0 and snap["healthy"] is True
    assert snap["health_problem"] is None and snap["capacity"] == 2.0


def test_bad_options_raise():
    with pytest.raises(ValueError, match="error_rate_threshold"):
        ReplicaStats(error_rate_threshold=1.5)
    with pytest.raises(ValueError, match="min_requests"):
        ReplicaStats(min_requests=0)
    with pytest.raises(ValueError, match="latency_s"):
        ReplicaStats().record(-1.0)


class Worker(RoutingStatsMixin):
    def __init__(self) -> None:
        self.actors_alive = True

    async def dependency_problem(self):
        return None if self.actors_alive else "dtesn actors are gone"


def test_mixin_provides_serve_hooks():
    worker = Worker()
    snap = asyncio.run(worker.record_routing_stats())
    assert snap["healthy"] is True
    asyncio.run(worker.check_health())
    worker.actors_alive = False
    assert asyncio.run(worker.record_routing_stats())["health_problem"] \
        == "dtesn actors are gone"
    with pytest.raises(RuntimeError, match="dtesn actors are gone"):
        asyncio.run(worker.check_health())
    stats = worker.init_replica_stats(capacity=0.5)
    assert worker.replica_stats is stats and stats.capacity == 0.5
