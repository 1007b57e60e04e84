"""Run the notebooks (`pytest --nbmake notebooks`) against a live cluster of their own.

nbmake's notebook items take no fixtures, so this conftest does what a fixture would:
before the first notebook that talks to a cluster it starts `ray start --head` on free ports
with the app deployed (tests/support/live_app.py, shared with tests/ops when they run in the
same session), points the notebook kernel at it through ECHO_RAY_ADDRESS / ECHO_RAY_URL, and
stops it when the session ends. Every notebook runs with SMOKE=1 (small sizes). Notebooks that read the shared traces are
skipped, with the reason printed, when the traces folder is missing.
"""

from __future__ import annotations

import os
import sys

import pytest

from echo_ray.autoscaling.trace import traces_dir
from tests.support.live_app import shared_live_app, stop_shared

NEEDS_CLUSTER = {"01_quickstart.ipynb"}
NEEDS_TRACES = {"02_autoscaling.ipynb", "03_cache.ipynb"}
NEEDS_SIM = {"02_autoscaling.ipynb"}
_saved: dict[str, str | None] = {}


def _is_notebook(item) -> bool:
    return getattr(item, "nbmake", False)


def pytest_collection_modifyitems(config, items):
    """A notebook that talks to a cluster starts one: marked like the ops tests."""
    for item in items:
        if _is_notebook(item) and os.path.basename(item.filename) in NEEDS_CLUSTER:
            item.add_marker(pytest.mark.cluster)


def pytest_runtest_setup(item):
    if not _is_notebook(item):
        return
    name = os.path.basename(item.filename)
    if name in NEEDS_TRACES and not (traces_dir() / "cache").is_dir():
        reason = f"{name}: traces folder {traces_dir()} not found; set ECHO_RAY_TRACES"
        print(f"\nSKIP: {reason}", file=sys.stderr)
        pytest.skip(reason)
    if name in NEEDS_SIM:
        try:
            import echo_ray.sim.runner  # noqa: F401
        except ImportError as exc:
            reason = f"{name}: the simulator (echo_ray.sim) is not available ({exc})"
            print(f"\nSKIP: {reason}", file=sys.stderr)
            pytest.skip(reason)
    env = {"SMOKE": "1"}
    if name in NEEDS_CLUSTER:
        app = shared_live_app()
        env.update(ECHO_RAY_ADDRESS=app.cluster.address, ECHO_RAY_URL=app.base_url)
    for key, value in env.items():  # restored after the notebook: nothing else sees them
        _saved.setdefault(key, os.environ.get(key))
        os.environ[key] = value


def pytest_runtest_teardown(item):
    if not _is_notebook(item):
        return
    for key, value in _saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _saved.clear()


def pytest_sessionfinish(session):
    stop_shared()
