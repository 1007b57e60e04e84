"""The app under test for the security tests: deployed with an API token and a small body limit."""

from __future__ import annotations

import time

import httpx

API_TOKEN = "test-token-" + "0123456789abcdef" * 2
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
BODY_LIMIT = 256 * 1024  # not the default (1 MiB): shows the replica's setting is applied


def deploy_app(serve_session, name: str, data_dir, token: str | None = None, **overrides) -> str:
    """build_app(settings) under /{name} on the shared Serve; waits (bounded) for /readyz."""
    from ray import serve

    from echo_ray.app import build_app
    from echo_ray.service.settings import ServiceSettings

    overrides.setdefault("max_instances", 1)
    settings = ServiceSettings(session_dir=data_dir / "sessions", api_token=token, **overrides)
    serve.run(build_app(settings), name=name, route_prefix=f"/{name}")
    url = f"{serve_session}/{name}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + 120
    while httpx.get(f"{url}/readyz", headers=headers, timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "app did not become ready"
        time.sleep(0.2)
    return url
