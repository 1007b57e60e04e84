"""SimConfig: the deployment being simulated (replicas, routing, limits) and the run settings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from echo_ray.checks import integer, positive
from echo_ray.routing.registry import resolve_strategy_name

from .service import ServiceModel


@dataclass(frozen=True)
class SimConfig:
    """One Serve deployment and how to simulate it.

    A replica admits up to `max_ongoing_requests` requests and serves `concurrency` of them
    at a time, FIFO (1 = a CPU-bound replica such as the DTESN worker). Requests that find no
    replica with room wait at the handle (the proxy's router), FIFO; `max_queued_requests`
    caps that queue (Serve's back-pressure, rejected = dropped) and a request that has waited
    there `timeout_s` is given up by its client (dropped). New replicas serve after
    `startup_s`. The control loop (metrics and the policy) runs every `tick_s` of simulated
    time.
    """

    service: ServiceModel = field(default_factory=lambda: ServiceModel.exponential(0.05))
    tick_s: float = 1.0
    startup_s: float = 30.0
    max_ongoing_requests: int = 5  # Serve's default
    concurrency: int = 1
    routing: str = "power_of_two"
    timeout_s: float | None = 30.0
    max_queued_requests: int | None = None  # Serve's default: unlimited
    slo_ms: float = 400.0
    price_per_replica_hour: float = 0.096
    seed: int = 0
    keep_requests: bool = True  # event mode: keep the per-request table

    def __post_init__(self) -> None:
        if not isinstance(self.service, ServiceModel):
            raise ValueError(f"service must be a ServiceModel, got {type(self.service).__name__}")
        positive("tick_s", self.tick_s)
        positive("startup_s", self.startup_s, strict=False)
        integer("max_ongoing_requests", self.max_ongoing_requests, minimum=1)
        integer("concurrency", self.concurrency, minimum=1)
        if self.concurrency > self.max_ongoing_requests:
            raise ValueError(f"concurrency must be <= max_ongoing_requests="
                             f"{self.max_ongoing_requests}, got {self.concurrency}")
        object.__setattr__(self, "routing", resolve_strategy_name(self.routing))
        if self.timeout_s is not None:
            positive("timeout_s", self.timeout_s)
        if self.max_queued_requests is not None:
            integer("max_queued_requests", self.max_queued_requests, minimum=0)
        positive("slo_ms", self.slo_ms)
        positive("price_per_replica_hour", self.price_per_replica_hour, strict=False)
        integer("seed", self.seed, minimum=0)

    @property
    def replica_rate(self) -> float:
        """Requests/s one fully busy replica completes."""
        return self.concurrency / self.service.mean_s

    def replace(self, **changes) -> SimConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["service"] = self.service.to_dict()
        return out


def check_run_inputs(workload, policy, config: SimConfig):
    """The (workload, policy, config) a simulator runs, checked; both modes start here."""
    from .arrivals import as_workload
    from .policies import SimPolicy

    if not isinstance(policy, SimPolicy):
        raise ValueError(f"policy must be a SimPolicy, got {type(policy).__name__}")
    if not isinstance(config, SimConfig):
        raise ValueError(f"config must be a SimConfig, got {type(config).__name__}")
    return as_workload(workload), policy, config
