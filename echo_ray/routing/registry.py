"""Strategy names, the `LB_STRATEGY` setting and construction by name.

An unknown name fails at startup with the list of valid ones, instead of surfacing
later as a routing error inside Serve's proxy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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


def resolve_strategy_name(name: str | None = None,
                          environ: Mapping[str, str] | None = None) -> str:
    """`name` if given, else `LB_STRATEGY`, else the default; ValueError if unknown."""
    source = "strategy"
    if name is None:
        env = os.environ if environ is None else environ
        name = env.get(ENV_VAR) or DEFAULT_STRATEGY
        source = ENV_VAR
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
