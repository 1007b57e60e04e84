"""Strategy names, the `LB_STRATEGY` setting (read by echo_ray.settings) and construction by name.

An unknown name fails at startup with the list of valid ones, instead of surfacing
later as a routing error inside Serve's proxy.
"""

from __future__ import annotations

from typing import Any

from .base import Strategy
from .cpu_based import CpuBased
from .least_connections import LeastConnections
from .least_response_time import LeastResponseTime
from .power_of_two import PowerOfTwo
from .round_robin import RoundRobin
from .weighted import Weighted

ENV_VAR = "LB_STRATEGY"
DEFAULT_STRATEGY = "power_of_two"

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (RoundRobin, Weighted, LeastConnections, LeastResponseTime, CpuBased,
                PowerOfTwo)
}


def resolve_strategy_name(name: str | None = None) -> str:
    """`name` if given, else the default; ValueError if unknown. (`LB_STRATEGY` is read by
    echo_ray.settings, whose `routing.strategy` the app passes here.)"""
    source = "strategy"
    if name is None:
        return DEFAULT_STRATEGY
    if not isinstance(name, str):
        raise ValueError(f"{source} must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in STRATEGIES:
        raise ValueError(f"{source}={name!r} is not a routing strategy; "
                         f"valid: {', '.join(STRATEGIES)}")
    return key


def make_strategy(name: str | None = None, **kwargs: Any) -> Strategy:
    """Build a strategy by name (default from `LB_STRATEGY`); kwargs go to its constructor."""
    cls = STRATEGIES[resolve_strategy_name(name)]
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad options for strategy {cls.name!r}: {exc}") from None
