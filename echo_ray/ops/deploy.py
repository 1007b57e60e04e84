"""Apply a Serve config to a running Ray cluster and wait until it serves.

This is what `serve run CONFIG` does in-process (start Serve with the config's proxy
options, hand the config to the controller with `deploy_apps`), followed by a bounded wait
for every application to reach RUNNING. `serve deploy` sends the same config through the
dashboard's REST API and returns at once; we wait so scripts and `make` targets can rely on
the app being up when the command returns, and fail with Serve's own message when it is not.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from typing import Any

from echo_ray.connection import connect
from echo_ray.ops.serveconfig import check_serve_config
from echo_ray.settings import get_settings
from echo_ray.waiting import wait_until


def app_statuses(names=None) -> dict[str, dict]:
    """{app: {"status", "message", "deployments": {name: status}}} from `serve.status()`."""
    from ray import serve

    out = {}
    for name, app in serve.status().applications.items():
        if names is not None and name not in names:
            continue
        out[name] = {"status": str(app.status.value if hasattr(app.status, "value")
                                   else app.status),
                     "message": app.message,
                     "deployments": {d: str(s.status.value) for d, s in app.deployments.items()},
                     "errors": {d: _last_line(s.message) for d, s in app.deployments.items()
                                if s.message and "Error" in s.message}}
    return out


def _last_line(message: str) -> str:
    """The exception line of a deployment's message (Serve puts the traceback before it)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def wait_running(names, timeout_s: float = 300.0, poll_s: float = 1.0) -> dict[str, dict]:
    """Bounded wait until every app in `names` is RUNNING; RuntimeError on DEPLOY_FAILED,
    TimeoutError (with the last statuses) when time runs out."""
    names = set(names)
    seen: dict[str, dict] = {}

    def running() -> dict[str, dict] | None:
        seen.clear()
        seen.update(app_statuses(names))
        failed = {n: s for n, s in seen.items() if s["status"] == "DEPLOY_FAILED"}
        if failed:
            raise RuntimeError("deploy failed: " + "; ".join(
                f"{n}: {s['message']}" + "".join(f" {d}: {e}" for d, e in s["errors"].items())
                for n, s in failed.items()))
        done = len(seen) == len(names) and all(s["status"] == "RUNNING" for s in seen.values())
        return dict(seen) if done else None

    try:
        return wait_until(running, timeout_s, "applications RUNNING", interval_s=poll_s)
    except TimeoutError:
        raise TimeoutError(f"applications not RUNNING after {timeout_s:.0f}s: {seen}") from None


def deploy_config(data: Mapping, *, address: str | None = None,
                  timeout_s: float = 300.0) -> dict[str, dict]:
    """Check `data` (see serveconfig), deploy it on the cluster, wait until RUNNING."""
    from ray.serve._private import api as serve_api
    from ray.serve.config import gRPCOptions

    config = check_serve_config(data)
    connect(address, existing=True, namespace="serve")
    client = serve_api.serve_start(
        http_options=config.http_options.model_dump(),
        proxy_location=config.proxy_location,
        grpc_options=gRPCOptions(**config.grpc_options.model_dump()),
        controller_options=config.controller_options,
        global_logging_config=config.logging_config,
        global_tracing_config=config.tracing_config,
    )
    client.deploy_apps(config, _blocking=False)
    return wait_running([a.name for a in config.applications], timeout_s)


def http_base(config: Any) -> str:
    """Where the proxy of this config answers from this machine."""
    http = config.http_options
    host = "127.0.0.1" if http.host in ("0.0.0.0", "::", "") else http.host
    return f"http://{host}:{http.port}"


def wait_http_ready(url: str, timeout_s: float = 120.0) -> None:
    """Bounded wait until GET `url` answers 200 (e.g. the app's /readyz).

    Sends `Authorization: Bearer $ECHO_RAY_API_TOKEN` when that is set (the API requires it).
    """
    headers = get_settings().service.client_headers()
    last = ["no answer"]

    def ready() -> bool:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                        timeout=5) as r:
                last[0] = f"HTTP {r.status}"
                return r.status == 200
        except OSError as exc:
            last[0] = f"{type(exc).__name__}: {exc}"
            return False

    try:
        wait_until(ready, timeout_s, f"{url} ready", interval_s=0.5)
    except TimeoutError:
        raise TimeoutError(f"{url} not ready after {timeout_s:.0f}s ({last[0]})") from None


def shutdown(address: str | None = None, app: str | None = None) -> list[str]:
    """Delete one application, or shut Serve down (all apps and proxies); returns names."""
    from ray import serve

    connect(address, existing=True, namespace="serve")
    names = list(app_statuses())
    if app is not None:
        if app not in names:
            raise ValueError(f"app {app!r} is not deployed; deployed: {names}")
        serve.delete(app)
        return [app]
    serve.shutdown()
    return names
