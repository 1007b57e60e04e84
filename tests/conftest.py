"""Shared fixtures: one local Ray cluster per test session, one private redis-server."""

from __future__ import annotations

import os

# One BLAS thread per process: on 2 shared cores, OpenBLAS's own threads fight each other
# and Ray's workers (linear algebra measured 30-50x slower without this).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer

SINGLE_THREAD_BLAS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}

# A test that uses one of these fixtures starts (or joins) what the marker names, so it must
# carry that marker: `-m "not ray and not cluster"` then selects exactly the quick tests.
MARKER_OF_FIXTURE = {"ray_session": "ray", "serve_session": "ray", "live_app": "cluster",
                     "redis_server": "redis", "durable_redis": "redis"}


def pytest_collection_modifyitems(config, items):
    """Refuse to run a test that uses a cluster or Redis fixture without its marker."""
    missing = [f"{item.nodeid}: uses {fixture}, not marked {marker}"
               for item in items
               for fixture, marker in MARKER_OF_FIXTURE.items()
               if fixture in getattr(item, "fixturenames", ())
               and item.get_closest_marker(marker) is None]
    if missing:
        raise pytest.UsageError("unmarked tests:\n  " + "\n  ".join(missing))


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray cluster shared by every test in the session."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=4, include_dashboard=False, namespace="echo_ray_tests",
                 log_to_driver=False, runtime_env={"env_vars": SINGLE_THREAD_BLAS})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def redis_server():
    """A private redis-server on a free port, owned by this test session."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def traces_dir() -> Path:
    """The traces in data/traces (or ECHO_RAY_TRACES); a missing folder is an error, not a skip."""
    from echo_ray.autoscaling.trace import traces_dir as configured

    path = configured()
    assert path.is_dir(), f"traces folder {path} not found (data/traces, or ECHO_RAY_TRACES)"
    return path


@pytest.fixture(scope="session")
def serve_session(ray_session):
    """Ray Serve on the shared cluster, HTTP proxy on a free loopback port; yields the base URL."""
    from ray import serve

    from echo_ray.ops.localcluster import free_port

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
