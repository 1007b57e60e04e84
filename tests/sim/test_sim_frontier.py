"""Tuned-baseline sweep: grid, Pareto frontier, best config and the targets on tiny known cases."""

from __future__ import annotations

import pytest

from echo_ray.sim.frontier import (
    Point,
    best_config,
    config_name,
    dominates,
    pareto_frontier,
    sweep_configs,
    versus,
)

A = Point("a", replica_hours=10, violation_minutes=50)
B = Point("b", replica_hours=20, violation_minutes=10)
C = Point("c", replica_hours=30, violation_minutes=0)
D = Point("d", replica_hours=25, violation_minutes=20)  # dominated by B
E = Point("e", replica_hours=20, violation_minutes=12)  # dominated by B (same cost)


def test_grid_is_the_issue_sweep():
    grid = sweep_configs()
    assert len(grid) == 6 * 3 * 3
    assert {g["target_ongoing_requests"] for g in grid} == {1, 2, 3, 4, 6, 8}
    assert config_name(grid[0]) == "ray(t=1,up=0,down=60)"


def test_frontier_drops_dominated_points_cheapest_first():
    assert dominates(B, D) and dominates(B, E) and not dominates(A, B)
    assert [p.name for p in pareto_frontier([D, C, E, A, B])] == ["a", "b", "c"]
    assert pareto_frontier([A, A]) == [A]


def test_best_config_minimises_the_priced_total():
    # 1 violation minute worth 1 replica-hour: a 60, b 30, c 30; on a tie fewer violations win
    assert best_config([A, B, C], 1.0, 1.0).name == "c"
    assert best_config([A, B, C], 1.0, 0.1).name == "a"  # violations cheap: cheapest wins
    assert best_config([A, B, C, D], 1.0, 0.5).name == "b"  # 25 vs 15 vs 30 vs 35
    with pytest.raises(ValueError):
        best_config([], 1.0, 1.0)


def test_versus_targets():
    best = Point("best", replica_hours=100, violation_minutes=40)
    # half the violations at the same cost: met
    assert versus(Point("o", 100, 20), best) == {"slo_ratio": 0.5, "cost_ratio": 1.0,
                                                  "met": True}
    # 0.8x cost at equal violations: met
    assert versus(Point("o", 80, 40), best)["met"]
    # 0.57x violations at 0.79x cost: the cost target holds
    assert versus(Point("o", 79, 23), best)["met"]
    # 0.57x violations at 0.85x cost: neither target
    out = versus(Point("o", 85, 23), best)
    assert not out["met"] and out["slo_ratio"] == pytest.approx(0.575)
    # cheaper but more violations: not met
    assert not versus(Point("o", 50, 41), best)["met"]
    # a baseline with no violations: ours with some is infinitely worse
    assert versus(Point("o", 50, 3), Point("b", 100, 0)) == {"slo_ratio": None,
                                                             "cost_ratio": 0.5, "met": False}
