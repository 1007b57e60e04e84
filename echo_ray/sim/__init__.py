"""Capacity planning: a trace-driven simulator of Serve scaling, scenarios and live replay.

The simulator runs the same policy and router code as production: the routing strategies of
`echo_ray.routing`, Ray Serve's default autoscaling policy through Ray's own functions on the
simulated clock, and our `ScalingOptimizer` through ForecastPolicy's decision path. Two modes:
`run_events` (exact, request by request) and `run_fluid` (time-stepped, for scale runs).
Ray is imported only by the Serve-driven policies and the live modules.
"""

from .arrivals import ClosedPopulation, RateTrace
from .config import SimConfig
from .engine import run_events
from .fluid import run_fluid
from .policies import Observation, OursPolicy, ServePolicy, SimPolicy, StaticPolicy, ray_default
from .results import SimResult, comparison_table
from .runner import POLICIES, compare, make_policy, plan, simulate
from .service import ServiceModel, load_calibration

__all__ = [
    "POLICIES",
    "ClosedPopulation",
    "Observation",
    "OursPolicy",
    "RateTrace",
    "ServePolicy",
    "ServiceModel",
    "SimConfig",
    "SimPolicy",
    "SimResult",
    "StaticPolicy",
    "compare",
    "comparison_table",
    "load_calibration",
    "make_policy",
    "plan",
    "ray_default",
    "run_events",
    "run_fluid",
    "simulate",
]
