"""Serve adapter: `EchoRequestRouter` runs a pure strategy inside Serve's request router.

This is the only module of `echo_ray.routing` that imports Ray. Serve calls
`choose_replicas` for each routing attempt; we drop replicas that report
`healthy: False` in their routing stats, drop those whose queue (per Serve's queue-length
cache) is at `max_ongoing_requests`, and let the strategy rank the rest. Each ranked
replica is returned as its own rank, so Serve tries them strictly in strategy order.
When every healthy replica is full we return them all as one rank (Serve probes their
real queue lengths) and set `should_backoff`, so Serve waits before retrying instead of
spinning. Completed requests feed their latency back to the strategy.

Use `request_router_config()` to build the deployment option; it resolves
`LB_STRATEGY` in the driver so a bad value fails at startup.
"""

from __future__ import annotations

import time
from typing import Any

from ray.serve.config import RequestRouterConfig
from ray.serve.request_router import (
    PendingRequest,
    ReplicaID,
    RequestRouter,
    RunningReplica,
)

from echo_ray.routing.base import ReplicaView, Strategy
from echo_ray.routing.registry import make_strategy, resolve_strategy_name

ROUTER_CLASS_PATH = "echo_ray.routing.router:EchoRequestRouter"
_MAX_TRACKED_REQUESTS = 100_000
_MAX_EARLY_COMPLETIONS = 10_000  # also holds rejected attempts, which never match


def strategy_name(strategy: str | None) -> str:
    """`strategy`, else the `LB_STRATEGY` setting (the registry itself reads no settings)."""
    if strategy is None:
        from echo_ray.settings import get_settings

        strategy = get_settings().routing.strategy
    return resolve_strategy_name(strategy)


class EchoRequestRouter(RequestRouter):
    """Serve `RequestRouter` delegating the choice to an `echo_ray.routing` strategy.

    `request_router_kwargs`: `strategy` (name; default from `LB_STRATEGY`, then
    power_of_two) plus that strategy's own options (e.g. `weights`, `alpha`, `seed`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._strategy: Strategy | None = None
        self._local_in_flight: dict[ReplicaID, int] = {}
        self._started: dict[str, tuple[ReplicaID, float]] = {}
        # Completions that arrived before Serve reported the request as routed (a fast
        # request's done-callback can run before `on_request_routed`): (request id, replica).
        self._completed_early: dict[tuple[str, ReplicaID], None] = {}

    def initialize_state(self, strategy: str | None = None, **strategy_kwargs: Any) -> None:
        self._strategy = make_strategy(strategy_name(strategy), **strategy_kwargs)

    @property
    def strategy(self) -> Strategy:
        if self._strategy is None:  # Serve always calls initialize_state; be safe anyway
            self.initialize_state()
        assert self._strategy is not None
        return self._strategy

    @property
    def strategy_name(self) -> str:
        return self.strategy.name

    def in_flight(self, replica: RunningReplica) -> int:
        """Requests in flight on a replica as this router knows them.

        The larger of Serve's queue-length cache (the replica's own count, which includes
        other routers' requests, as of its last report) and our own bookkeeping of requests
        sent and not yet completed (the replica may report its count from just before it
        accepted ours, or the cache entry may have gone stale).
        """
        local = self._local_in_flight.get(replica.replica_id, 0)
        cached = self.replica_queue_len_cache.get(replica.replica_id)
        return local if cached is None else max(local, int(cached))

    def view_of(self, replica: RunningReplica) -> ReplicaView:
        stats = replica.routing_stats or {}
        return ReplicaView(
            replica_id=replica.replica_id.unique_id,
            in_flight=self.in_flight(replica),
            stats=stats,
            healthy=stats.get("healthy", True) is not False,
            capacity=replica.max_ongoing_requests,
        )

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        by_id = {r.replica_id.unique_id: r for r in candidate_replicas}
        views = [self.view_of(r) for r in candidate_replicas]
        healthy = [by_id[v.replica_id] for v in views if v.healthy]
        available = {r.replica_id.unique_id for r in self.select_available_replicas(healthy)}
        all_full = not available
        if pending_request is not None:
            pending_request.routing_context.should_backoff = all_full
        if all_full:
            # Let Serve probe the real queue lengths of every healthy replica.
            return [healthy] if healthy else []
        ranked = self.strategy.rank([v for v in views if v.replica_id in available])
        return [[by_id[rid]] for rid in ranked]

    def on_request_routed(self, pending_request: PendingRequest, replica_id: ReplicaID,
                          result: Any) -> None:
        request_id = pending_request.metadata.internal_request_id
        if self._completed_early.pop((request_id, replica_id), 0) is None:
            return  # already finished: counting it now would leave it in flight for ever
        if len(self._started) >= _MAX_TRACKED_REQUESTS:  # completions lost: drop oldest
            self._forget(next(iter(self._started)))
        self._started[request_id] = (replica_id, time.monotonic())
        self._local_in_flight[replica_id] = self._local_in_flight.get(replica_id, 0) + 1

    def on_request_completed(self, replica_id: ReplicaID, internal_request_id: str) -> None:
        started = self._started.get(internal_request_id)
        if started is None:  # not routed yet (or a rejected attempt): remember it
            if len(self._completed_early) >= _MAX_EARLY_COMPLETIONS:
                self._completed_early.pop(next(iter(self._completed_early)))
            self._completed_early[(internal_request_id, replica_id)] = None
            return
        # A rejected attempt on another replica completes with the same request id.
        if started[0] != replica_id:
            return
        self._forget(internal_request_id)
        self.strategy.on_complete(replica_id.unique_id, time.monotonic() - started[1])

    def _forget(self, request_id: str) -> None:
        replica_id, _ = self._started.pop(request_id)
        left = self._local_in_flight.get(replica_id, 0) - 1
        if left > 0:
            self._local_in_flight[replica_id] = left
        else:
            self._local_in_flight.pop(replica_id, None)


def request_router_config(strategy: str | None = None, *, stats_period_s: float = 2.0,
                          stats_timeout_s: float | None = None,
                          **strategy_options: Any) -> RequestRouterConfig:
    """The `request_router_config` deployment option for an echo_ray strategy.

    `strategy` defaults to `LB_STRATEGY` (then power_of_two); an unknown name or bad
    options raise ValueError here, at app build time, listing the valid names.
    """
    name = strategy_name(strategy)
    make_strategy(name, **strategy_options)  # validate options before deploying
    if not isinstance(stats_period_s, int | float) or not stats_period_s > 0:
        raise ValueError(f"stats_period_s must be a number > 0, got {stats_period_s!r}")
    timeout = stats_timeout_s if stats_timeout_s is not None else max(3 * stats_period_s, 1.0)
    return RequestRouterConfig(
        request_router_class=ROUTER_CLASS_PATH,
        request_router_kwargs={"strategy": name, **strategy_options},
        request_routing_stats_period_s=stats_period_s,
        request_routing_stats_timeout_s=timeout,
    )
