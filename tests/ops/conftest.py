"""A live echo-ray of our own for the ops tests: `ray start --head` on free ports in a
private temp dir, deployments/serve_config.yaml deployed through the CLI (see
tests/support/live_app.py). Separate from the session's `ray_session` cluster."""

from __future__ import annotations

import pytest

from tests.support.live_app import shared_live_app, stop_shared


@pytest.fixture(scope="session")
def live_app():
    app = shared_live_app()
    print(f"\n[ops] live app on {app.base_url} (Ray {app.cluster.address}); deployed in "
          f"{app.deploy_seconds:.0f}s")
    yield app
    stop_shared()
