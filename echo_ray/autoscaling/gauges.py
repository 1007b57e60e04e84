"""Prometheus metrics of scaling decisions, exported through `ray.util.metrics`.

Ray's metrics agent serves them with every other Ray metric (Prometheus/Grafana), tagged by
`resource` (e.g. "app/deployment", "agents:planner") and `resource_type`:

- echo_ray_scaling_forecast{bound=point|lower|upper}: forecast load at the lead time
- echo_ray_scaling_desired_replicas / echo_ray_scaling_current_replicas
- echo_ray_scaling_cost_per_hour: current replicas x price per replica-hour
- echo_ray_scaling_decisions_total{action}: changes of target (holds are not counted)
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class ScalingGauges:
    """Thin wrapper; a process without Ray metrics support just does not export."""

    def __init__(self) -> None:
        try:
            from ray.util import metrics

            keys = ("resource", "resource_type")
            self.forecast = metrics.Gauge(
                "echo_ray_scaling_forecast", "Forecast load at the lead time (point and "
                "80% interval)", tag_keys=(*keys, "bound"))
            self.desired = metrics.Gauge(
                "echo_ray_scaling_desired_replicas", "Replica target decided by the optimizer",
                tag_keys=keys)
            self.current = metrics.Gauge(
                "echo_ray_scaling_current_replicas", "Replicas running when the decision was "
                "made", tag_keys=keys)
            self.cost_rate = metrics.Gauge(
                "echo_ray_scaling_cost_per_hour", "Current replicas x price per replica-hour",
                tag_keys=keys)
            self.decisions = metrics.Counter(
                "echo_ray_scaling_decisions_total", "Changes of replica target",
                tag_keys=(*keys, "action"))
            self.enabled = True
        except Exception as exc:  # no Ray worker in this process
            log.debug("scaling metrics disabled: %s", exc)
            self.enabled = False

    def record(self, resource: str, decision: dict, price_per_replica_hour: float) -> None:
        """Export one `Decision.to_dict()`; never raises (metrics must not break scaling)."""
        if not self.enabled:
            return
        try:
            tags = {"resource": resource, "resource_type": str(decision["resource_type"])}
            forecast = decision.get("forecast")
            if forecast:
                for bound in ("point", "lower", "upper"):
                    self.forecast.set(float(forecast[bound]), tags={**tags, "bound": bound})
            self.desired.set(decision["desired_replicas"], tags=tags)
            self.current.set(decision["current_replicas"], tags=tags)
            self.cost_rate.set(decision["current_replicas"] * price_per_replica_hour, tags=tags)
            if decision["action"] != "hold":
                self.decisions.inc(1, tags={**tags, "action": decision["action"]})
        except Exception as exc:
            log.warning("could not export scaling metrics for %s: %s", resource, exc)
