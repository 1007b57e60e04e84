"""Fixtures for the cache tests: a fake clock, unique namespaces, Redis helpers."""

from __future__ import annotations

import itertools
import uuid

import pytest


class FakeClock:
    """A clock that only moves when told to (seconds)."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


_counter = itertools.count()


@pytest.fixture
def namespace() -> str:
    """A namespace no other test uses (Redis keys, disk folders, holder actors)."""
    return f"t{next(_counter)}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def redis_client(redis_server):
    import redis

    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()
