"""Unit tests for the pure routing strategies, the LB_STRATEGY registry and the simulator."""

from __future__ import annotations

from collections import Counter

import pytest

from echo_ray.routing import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    CpuBased,
    LeastConnections,
    LeastResponseTime,
    PowerOfTwo,
    ReplicaView,
    RoundRobin,
    Weighted,
    make_strategy,
    resolve_strategy_name,
)
from echo_ray.routing.sim import SCENARIOS, Scenario, simulate


def views(*in_flight: int, **kwargs) -> list[ReplicaView]:
    return [ReplicaView(f"r{i}", n, **kwargs) for i, n in enumerate(in_flight)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- shared contract ---------------------------------------------------------------------
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_unhealthy_replicas_are_never_chosen(name):
    strategy = make_strategy(name, seed=1)
    # The unhealthy replica looks best on every signal a strategy could use.
    sick = ReplicaView("sick", 0, {"cpu_percent": 0.0, "latency_ewma_s": 0.001,
                                   "capacity": 100.0}, healthy=False)
    busy = [ReplicaView(f"ok{i}", 5, {"cpu_percent": 90.0, "latency_ewma_s": 1.0})
            for i in range(3)]
    for _ in range(500):
        ranked = strategy.rank([sick, *busy])
        assert ranked and "sick" not in ranked
        strategy.on_complete(ranked[0], 1.0)
    assert strategy.rank([sick]) == []
    assert strategy.choose([sick]) is None


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_rank_returns_known_distinct_ids(name):
    ranked = make_strategy(name, seed=3).rank(views(2, 0, 1, 4))
    assert ranked and len(ranked) == len(set(ranked))
    assert set(ranked) <= {"r0", "r1", "r2", "r3"}


def test_bad_replica_lists_raise():
    with pytest.raises(ValueError, match="duplicate replica_id"):
        RoundRobin().rank([ReplicaView("a"), ReplicaView("a")])
    with pytest.raises(TypeError, match="ReplicaView"):
        RoundRobin().rank([{"replica_id": "a"}])
    with pytest.raises(ValueError, match="in_flight"):
        ReplicaView("a", -1)
    with pytest.raises(ValueError, match="replica_id"):
        ReplicaView("")
    with pytest.raises(ValueError, match="capacity"):
        ReplicaView("a", capacity=0)


# -- round robin -------------------------------------------------------------------------
def test_round_robin_strict_order():
    rr = RoundRobin()
    replicas = views(0, 0, 0)
    picks = [rr.choose(replicas) for _ in range(9)]
    assert picks == ["r0", "r1", "r2"] * 3
    assert rr.rank(replicas) == ["r0", "r1", "r2"]


def test_round_robin_ignores_load_and_continues_after_membership_change():
    rr = RoundRobin()
    assert [rr.choose(views(9, 0, 0)) for _ in range(2)] == ["r0", "r1"]
    # r2 becomes unhealthy: the rotation wraps to r0 instead of stalling.
    replicas = [ReplicaView("r0"), ReplicaView("r1"), ReplicaView("r2", healthy=False)]
    assert [rr.choose(replicas) for _ in range(3)] == ["r0", "r1", "r0"]


# -- weighted ----------------------------------------------------------------------------
def test_weighted_proportions_within_two_percent():
    weights = {"a": 1.0, "b": 2.0, "c": 7.0}
    strategy = Weighted(weights)
    replicas = [ReplicaView(rid) for rid in weights]
    counts = Counter(strategy.choose(replicas) for _ in range(10_000))
    for rid, weight in weights.items():
        assert abs(counts[rid] / 10_000 - weight / 10.0) <= 0.02


def test_weighted_is_smooth_and_derives_weights_from_capacity():
    strategy = Weighted()
    replicas = [ReplicaView("big", stats={"capacity": 3.0}), ReplicaView("small", capacity=1)]
    picks = [strategy.choose(replicas) for _ in range(8)]
    assert Counter(picks) == {"big": 6, "small": 2}
    # Smooth: the small replica is interleaved, not served after a burst of four.
    assert picks[:4].count("small") == 1


def test_weighted_rejects_bad_weights():
    with pytest.raises(ValueError, match=r"weights\['a'\]"):
        Weighted({"a": 0})


# -- least connections -------------------------------------------------------------------
def test_least_connections_avoids_the_busiest():
    strategy = LeastConnections(seed=0)
    replicas = views(5, 0, 3)
    assert strategy.rank(replicas) == ["r1", "r2", "r0"]


def test_least_connections_breaks_ties_at_random():
    strategy = LeastConnections(seed=0)
    firsts = Counter(strategy.choose(views(0, 0, 4)) for _ in range(400))
    assert set(firsts) == {"r0", "r1"}
    assert min(firsts.values()) > 120


# -- least response time -----------------------------------------------------------------
def test_least_response_time_prefers_fast_replicas_and_weighs_queue():
    clock = FakeClock()
    strategy = LeastResponseTime(decay_s=10.0, clock=clock)
    strategy.on_complete("r0", 0.5)
    strategy.on_complete("r1", 0.1)
    assert strategy.rank(views(0, 0)) == ["r1", "r0"]
    # 0.1 x (5 + 1) = 0.6 > 0.5 x (0 + 1): the slow but idle replica wins.
    assert strategy.rank(views(0, 5))[0] == "r0"


def test_least_response_time_peak_then_gradual_decay():
    clock = FakeClock()
    strategy = LeastResponseTime(decay_s=10.0, clock=clock)
    strategy.on_complete("r0", 0.1)
    strategy.on_complete("r0", 1.0)  # a slow observation takes over at once
    assert strategy.latency_of("r0") == pytest.approx(1.0)
    clock.now = 10.0  # one decay constant later a fast one pulls it down partly
    strategy.on_complete("r0", 0.1)
    expected = 1.0 * 0.36787944 + 0.1 * (1 - 0.36787944)
    assert strategy.latency_of("r0") == pytest.approx(expected, rel=1e-6)
    strategy.on_complete("r0", 0.01, ok=False)  # fast failures never lower it
    assert strategy.latency_of("r0") == pytest.approx(expected, rel=1e-6)


def test_least_response_time_uses_reported_latency_before_observing():
    strategy = LeastResponseTime(seed=0)
    replicas = [ReplicaView("a", stats={"latency_ewma_s": 0.9}),
                ReplicaView("b", stats={"latency_ewma_s": 0.1})]
    assert strategy.rank(replicas) == ["b", "a"]
    with pytest.raises(ValueError, match="decay_s"):
        LeastResponseTime(decay_s=0)


# -- cpu based ---------------------------------------------------------------------------
def test_cpu_based_prefers_cpu_headroom_but_counts_in_flight():
    strategy = CpuBased(seed=0)
    replicas = [ReplicaView("hot", 0, {"cpu_percent": 90.0}),
                ReplicaView("cool", 0, {"cpu_percent": 10.0})]
    assert strategy.rank(replicas) == ["cool", "hot"]
    # hot scores (0 + 1) / 0.2 = 5; cool with 5 in flight scores (5 + 1) / 0.9 = 6.7.
    replicas = [ReplicaView("hot", 0, {"cpu_percent": 90.0}),
                ReplicaView("cool", 5, {"cpu_percent": 10.0})]
    assert strategy.rank(replicas) == ["hot", "cool"]


def test_cpu_based_treats_unreported_replica_as_average():
    strategy = CpuBased(seed=0)
    replicas = [ReplicaView("new", 0), ReplicaView("a", 0, {"cpu_percent": 20.0}),
                ReplicaView("b", 0, {"cpu_percent": 80.0})]
    assert strategy.rank(replicas) == ["a", "new", "b"]
    with pytest.raises(ValueError, match="min_headroom"):
        CpuBased(min_headroom=0)


# -- power of two ------------------------------------------------------------------------
def test_power_of_two_picks_less_loaded_of_two_samples():
    strategy = PowerOfTwo(seed=0)
    replicas = views(9, 1, 4)
    seen = Counter()
    for _ in range(300):
        ranked = strategy.rank(replicas)
        assert len(ranked) == 2 and ranked[0] != ranked[1]
        assert replicas[int(ranked[0][1:])].in_flight < replicas[int(ranked[1][1:])].in_flight
        seen[ranked[0]] += 1
    assert "r0" not in seen and set(seen) == {"r1", "r2"}
    assert strategy.rank(views(3)) == ["r0"]


# -- registry / LB_STRATEGY --------------------------------------------------------------
def test_lb_strategy_env_default_and_override():
    from echo_ray.settings import Settings

    assert resolve_strategy_name() == DEFAULT_STRATEGY == "power_of_two"
    assert Settings.from_env({}).routing.strategy == DEFAULT_STRATEGY
    assert Settings.from_env({"LB_STRATEGY": "Least_Connections"}).routing.strategy \
        == "least_connections"
    assert resolve_strategy_name("weighted") == "weighted"


def test_invalid_lb_strategy_lists_valid_ones():
    from echo_ray.settings import Settings

    with pytest.raises(ValueError) as err:
        Settings.from_env({"LB_STRATEGY": "fastest"})
    message = str(err.value)
    assert "LB_STRATEGY='fastest'" in message
    assert all(name in message for name in STRATEGIES)


def test_make_strategy_rejects_unknown_options():
    with pytest.raises(ValueError, match="round_robin"):
        make_strategy("round_robin", weights={"a": 1})
    assert isinstance(make_strategy("weighted", weights={"a": 2}), Weighted)


def test_request_router_config_validates_at_startup(monkeypatch):
    from echo_ray.routing.router import ROUTER_CLASS_PATH, request_router_config

    monkeypatch.setenv("LB_STRATEGY", "bogus")
    with pytest.raises(ValueError, match="valid: round_robin"):
        request_router_config()
    monkeypatch.setenv("LB_STRATEGY", "least_response_time")
    config = request_router_config(stats_period_s=0.5, decay_s=5.0)
    assert config.request_router_class == ROUTER_CLASS_PATH
    assert config.request_router_kwargs == {"strategy": "least_response_time",
                                            "decay_s": 5.0}
    assert config.request_routing_stats_period_s == 0.5


# -- simulator ---------------------------------------------------------------------------
def test_simulator_matches_mm1_and_is_deterministic():
    # One FIFO replica at 50% load is an M/M/1 queue: mean response 1 / (1 - 0.5) = 2.
    scenario = Scenario("mm1", (1.0,), 0.5)
    a = simulate(RoundRobin(), scenario, n_requests=40_000, warmup=2_000, seed=7)
    b = simulate(RoundRobin(), scenario, n_requests=40_000, warmup=2_000, seed=7)
    assert a == b
    assert a.mean == pytest.approx(2.0, rel=0.1)
    assert a.stable


def test_simulator_reports_share_per_replica():
    result = simulate(Weighted(), SCENARIOS["slow_90"], n_requests=4_000, warmup=400)
    # Capacity-derived weights: the 5x slower replica gets 0.2 / 9.2 of the requests.
    assert result.share[0] == pytest.approx(0.2 / 9.2, abs=0.002)
    with pytest.raises(ValueError, match="load"):
        Scenario("bad", (1.0,), 1.2)
