"""Shared fixtures: one local Ray cluster per test session, one private redis-server."""

from __future__ import annotations

import os

# One BLAS thread per process: on 2 shared cores, OpenBLAS's own threads fight each other
# and Ray's workers (linear algebra measured 30-50x slower without this).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from redis_server import RedisServer  # noqa: E402

SINGLE_THREAD_BLAS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
TRACES = Path(os.environ.get("ECHO_RAY_TRACES", Path(__file__).parents[1] / ".." / "shared" / "traces"))


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
    if not TRACES.is_dir():
        pytest.skip(f"traces folder {TRACES} not found; set ECHO_RAY_TRACES to shared/traces")
    return TRACES


@pytest.fixture(scope="session")
def serve_session(ray_session):
    """Ray Serve on the shared cluster, HTTP proxy on a free loopback port; yields the base URL."""
    from ray import serve
    from redis_server import free_port

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
