"""Fixtures of the reliability tests: a durable private redis-server that can be stopped."""

from __future__ import annotations

import pytest

from tests.support.redis_server import RedisServer


@pytest.fixture(scope="module")
def durable_redis():
    """A private redis-server with an fsynced append-only file: stop()/start() keep the data,
    so an outage test can check that nothing acknowledged was lost."""
    server = RedisServer(durable=True)
    server.start()
    yield server
    server.stop()
