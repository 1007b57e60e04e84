"""Ray actors for agent-pool tests: an `Agent` whose `work` waits on a `Gate`, so a test holds
a known number of calls in flight (the pool's load) until it opens the gate."""

from __future__ import annotations

import ray


@ray.remote(num_cpus=0)
class Gate:
    def __init__(self) -> None:
        import asyncio

        self.event = asyncio.Event()

    async def wait(self) -> None:
        await self.event.wait()

    def open(self) -> None:
        self.event.set()


@ray.remote(num_cpus=0)
class Agent:
    async def work(self, gate) -> str:
        await gate.wait.remote()
        return "done"

    def ping(self) -> str:
        return "pong"
