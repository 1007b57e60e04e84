"""Load balancing for Serve deployments: pure strategies plus a thin Serve router.

Everything importable from here is Ray-free; the Serve adapter lives in
`echo_ray.routing.router` (import it where Ray is available).
"""

from .base import ReplicaView, Strategy
from .cpu_based import CpuBased
from .least_connections import LeastConnections
from .least_response_time import LeastResponseTime
from .power_of_two import PowerOfTwo
from .registry import (
    DEFAULT_STRATEGY,
    ENV_VAR,
    STRATEGIES,
    make_strategy,
    resolve_strategy_name,
)
from .round_robin import RoundRobin
from .stats import ReplicaStats, RoutingStatsMixin
from .weighted import Weighted

__all__ = [
    "DEFAULT_STRATEGY",
    "ENV_VAR",
    "STRATEGIES",
    "CpuBased",
    "LeastConnections",
    "LeastResponseTime",
    "PowerOfTwo",
    "ReplicaStats",
    "ReplicaView",
    "RoundRobin",
    "RoutingStatsMixin",
    "Strategy",
    "Weighted",
    "make_strategy",
    "resolve_strategy_name",
]
