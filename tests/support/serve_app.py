"""The cognitive app deployed on the session's Serve (tests/conftest.py `serve_session`), for
the API and security tests, and the settings of its secured variant."""

from __future__ import annotations

import httpx

from echo_ray.waiting import wait_until

API_TOKEN = "test-token-" + "0123456789abcdef" * 2
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
BODY_LIMIT = 256 * 1024  # not the default (1 MiB): shows the replica's setting is applied


def deploy_app(serve_session: str, name: str, data_dir, *, max_instances: int,
               token: str | None = None, service: dict | None = None,
               sessions: dict | None = None) -> str:
    """build_app(settings) under /{name}, data under `data_dir`; waits (bounded) for /readyz
    and returns its URL. `service` and `sessions` are those settings sections' fields;
    `max_instances` is explicit: the app is autoscaled by ForecastPolicy, kept small here."""
    from ray import serve

    from echo_ray.app import build_app
    from echo_ray.settings import Settings

    settings = Settings.from_env({}, paths={"data_dir": data_dir},
                                 service={**(service or {}), "api_token": token},
                                 sessions=sessions or {}, scaling={"max_instances": max_instances})
    serve.run(build_app(settings), name=name, route_prefix=f"/{name}")
    url = f"{serve_session}/{name}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    wait_until(lambda: httpx.get(f"{url}/readyz", headers=headers, timeout=30).status_code == 200,
               120, f"app {name} ready", interval_s=0.2)
    return url
