"""Fixtures of the reliability tests: a durable private redis-server that can be stopped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # private_redis (import-mode=importlib)
from private_redis import PrivateRedis  # noqa: E402


@pytest.fixture(scope="module")
def durable_redis():
    """A private redis-server with an fsynced append-only file: stop()/start() keep the data,
    so an outage test can check that nothing acknowledged was lost."""
    server = PrivateRedis(durable=True)
    server.start()
    yield server
    server.stop()
