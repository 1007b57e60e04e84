"""Nodes ahead of demand (issue 17 item 6): ask Ray's autoscaler for nodes before the replicas
that need them exist.

Ray's autoscaler adds a node when something is already waiting for one, so a replica the
forecast asked for still waits a node's whole start-up (minutes) on top of its own. When the
forecast's upper bound at the node start-up time (`node_startup_s`) says more replicas will
be needed than run now, the optimizer asks for room for all of them at once with
`ray.autoscaler.sdk.request_resources(bundles=[replica_resources] * n)`; when the forecast
falls back to what runs, the request is released (`request_resources(bundles=[])`).

`request_resources` asks for a total, not an increment: "enough nodes so that the bundles fit,
taking into account existing resource usage", and each call replaces the previous one. So
the bundles are the forecast's replica count (running ones included), and one process (the
optimizer actor) sends the union of every resource's request.

Pure functions decide (`replicas_ahead`, `ahead_bundles`); `NodeRequests` keeps the
per-resource requests and calls the SDK only when the union changes. `request_resources`
writes to the GCS (a short RPC, no waiting for nodes), and it never runs inside the Serve
controller's policy loop: ForecastPolicy's thread hands samples to the optimizer actor, which
decides and calls it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping

from .config import ScalingConfig
from .forecast import Forecast

log = logging.getLogger(__name__)


def node_horizon_steps(cfg: ScalingConfig, max_horizon: int) -> int:
    """Forecast steps from the newest complete step to now + node start-up (capped at what
    the forecaster can see; set `forecast_max_horizon` to cover `node_startup_s`)."""
    ahead = math.ceil(cfg.node_startup_s / cfg.forecast_step_s - 1e-9) + 1
    return max(1, min(max_horizon, ahead))


def replicas_ahead(forecast: Forecast | None, capacity: float | None,
                   cfg: ScalingConfig) -> int | None:
    """Replicas the forecast's upper bound at the node start-up time asks for, at the target
    utilisation, within the bounds; None without a forecast or a capacity."""
    if forecast is None or not capacity:
        return None
    need = math.ceil(max(0.0, forecast.upper) / (capacity * cfg.target_utilisation) - 1e-9)
    return min(max(need, cfg.min_instances), cfg.max_instances)


def peak_ahead(forecasts: Iterable[Forecast | None], capacity: float | None,
               cfg: ScalingConfig) -> int | None:
    """The most replicas any of `forecasts` (one per step from now to the node start-up time)
    asks for: a node asked for now comes only after the start-up, so the request must cover
    every step until then, not only the last one (a peak that ends before the start-up time
    would otherwise release the request just as the replicas that need its nodes start)."""
    wanted = [n for n in (replicas_ahead(f, capacity, cfg) for f in forecasts) if n is not None]
    return max(wanted) if wanted else None


def ahead_bundles(ahead: int | None, running: int,
                  replica_resources: Mapping[str, float] | None) -> list[dict[str, float]]:
    """The bundles to request: one per replica the forecast wants at the node start-up time,
    when that is more than run now (else none: the request is released). The running ones are
    counted in: the request is a total that Ray's autoscaler fits beside what runs."""
    if not replica_resources or ahead is None or ahead <= running:
        return []
    return [dict(replica_resources) for _ in range(ahead)]


def _request_resources(bundles: list[dict[str, float]]) -> None:
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=bundles)


class NodeRequests:
    """Each resource's bundles; `update` sends the union to Ray's autoscaler when it changed.

    `send` is the SDK call (`request_resources(bundles=...)`), replaceable in unit tests.
    """

    def __init__(self, send: Callable[[list[dict[str, float]]], None] | None = None) -> None:
        self.send = send or _request_resources
        self.by_resource: dict[str, list[dict[str, float]]] = {}
        self.sent: list[dict[str, float]] | None = None  # the standing request (None: never)
        self.calls = 0
        self.failures = 0

    def bundles(self) -> list[dict[str, float]]:
        return [b for name in sorted(self.by_resource) for b in self.by_resource[name]]

    def update(self, resource: str, bundles: list[dict[str, float]]) -> bool:
        """Record `resource`'s bundles; send the union if it changed. True when sent."""
        if bundles:
            self.by_resource[resource] = bundles
        else:
            self.by_resource.pop(resource, None)
        union = self.bundles()
        if union == (self.sent or []) and self.sent is not None:
            return False
        if not union and self.sent is None:
            return False  # nothing asked yet: nothing to release
        try:
            self.send(union)
        except Exception as exc:  # no autoscaler (a fixed cluster), GCS busy: retry next time
            self.failures += 1
            if self.failures == 1:
                log.warning("request_resources failed (%s: %s); nodes are not provisioned "
                            "ahead until it succeeds", type(exc).__name__, exc)
            return False
        self.sent = union
        self.calls += 1
        return True
