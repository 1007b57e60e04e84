"""EchoRequestRouter on a real local Serve app (3 replicas behind the HTTP proxy)."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest
import ray
from ray import serve
from starlette.requests import Request

from echo_ray.routing.router import request_router_config
from echo_ray.routing.stats import RoutingStatsMixin
from echo_ray.waiting import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.timeout(90)]


@ray.remote(num_cpus=0)
class Gate:
    """Holds requests until the test opens it; records which replica is holding."""

    def __init__(self) -> None:
        import asyncio

        self.opened = asyncio.Event()
        self.holder: str | None = None

    async def hold(self, replica: str) -> None:
        self.holder = replica
        await self.opened.wait()

    def get_holder(self) -> str | None:
        return self.holder

    def open(self) -> None:
        self.opened.set()


@serve.deployment(num_replicas=3, max_ongoing_requests=8, ray_actor_options={"num_cpus": 0},
                  health_check_period_s=60.0)
class Probe(RoutingStatsMixin):
    """Answers with its replica id; `?hold` parks on the gate, `?down` breaks a dependency."""

    def __init__(self, gate=None) -> None:
        self.replica = serve.get_replica_context().replica_id.unique_id
        self.gate = gate
        self.down = False

    def dependency_problem(self) -> str | None:
        return "test marked a dependency down" if self.down else None

    async def __call__(self, request: Request) -> dict:
        with self.replica_stats.track():
            health = "ok"
            if "hold" in request.query_params:
                await self.gate.hold.remote(self.replica)
            if "down" in request.query_params:
                self.down = True
                try:
                    await self.check_health()
                except RuntimeError as exc:
                    health = str(exc)
            return {"replica": self.replica, "health": health}


@pytest.fixture
def deploy(serve_session):
    """Deploy Probe under a unique name/prefix; yields an httpx client; deletes the app."""
    deployed: list[str] = []
    clients: list[httpx.Client] = []

    def _deploy(strategy: str, *, gate=None, stats_period_s: float = 1.0) -> httpx.Client:
        name = f"routing_{strategy}_{uuid.uuid4().hex[:8]}"
        config = request_router_config(strategy, stats_period_s=stats_period_s, seed=0)
        serve.run(Probe.options(request_router_config=config).bind(gate), name=name,
                  route_prefix=f"/{name}")
        deployed.append(name)
        client = httpx.Client(base_url=f"{serve_session}/{name}", timeout=30.0)
        clients.append(client)
        # Wait until the proxy's router has seen every replica.
        seen: set[str] = set()
        wait_until(lambda: seen.add(replica_of(client)) or len(seen) == 3, 30.0,
                   "all 3 replicas to answer")
        return client

    yield _deploy
    for client in clients:
        client.close()
    for name in deployed:
        serve.delete(name)


def replica_of(client: httpx.Client, params: dict | None = None) -> str:
    response = client.get("/", params=params)
    response.raise_for_status()
    return response.json()["replica"]


def test_round_robin_visits_replicas_in_order(deploy):
    client = deploy("round_robin")
    visits = [replica_of(client) for _ in range(9)]
    order = sorted(set(visits))
    assert len(order) == 3
    start = order.index(visits[0])
    assert visits == [order[(start + i) % 3] for i in range(9)]


def test_least_connections_sends_new_work_away_from_busy_replica(deploy):
    """While one replica holds a request, the two idle ones take nearly all new work.

    Not all: the router's counts come from Serve's queue-length cache and completion
    callbacks, which can lag answers the client already has. Then all three replicas look
    equally loaded for a moment and the random tie-break may pick the busy one; a CI run
    on 2026-12-04 saw that once in 20 requests (cause not pinned down; 0 in 300 here
    under CPU and proxy load). A router that ignored the counts would send it about a
    third: 3 or fewer of 30 has a chance of 0.3% then.
    """
    gate = Gate.remote()
    client = deploy("least_connections", gate=gate)
    held: dict[str, str] = {}
    # Its own client, so the held request outlives the 30-s timeout of the probes.
    holder = httpx.Client(base_url=client.base_url, timeout=120.0)
    holder_thread = threading.Thread(
        target=lambda: held.update(replica=replica_of(holder, {"hold": "1"})))
    holder_thread.start()
    try:
        busy = wait_until(lambda: ray.get(gate.get_holder.remote()), 30.0,
                          "a replica to hold the request")
        visits = [replica_of(client) for _ in range(30)]
    finally:
        gate.open.remote()
        holder_thread.join(timeout=30.0)
        holder.close()
    assert held["replica"] == busy
    busy_at = [i for i, v in enumerate(visits) if v == busy]
    assert len(busy_at) <= 3, f"busy {busy} visited at {busy_at} of {visits}"
    assert len(set(visits) - {busy}) == 2  # the two idle replicas share the new work


def test_replica_failing_check_health_stops_receiving_requests(deploy):
    # Serve's own health check (every 60 s here) would replace the replica much later;
    # this checks that our router stops using it as soon as its stats say unhealthy.
    client = deploy("round_robin", stats_period_s=0.2)
    response = client.get("/", params={"down": "1"})
    response.raise_for_status()
    sick, health = response.json()["replica"], response.json()["health"]
    assert "test marked a dependency down" in health  # its check_health now fails

    streak = {"clean": 0}

    def avoided_for_a_while() -> bool:
        streak["clean"] = 0 if replica_of(client) == sick else streak["clean"] + 1
        return streak["clean"] >= 12

    wait_until(avoided_for_a_while, 30.0, "the router to stop sending to the sick replica")
    # Round-robin over the remaining two; with the sick one included it would be every 3rd.
    assert sick not in {replica_of(client) for _ in range(6)}
