"""Apply a Serve config to a running Ray cluster and wait until it serves.

This is what `serve run CONFIG` does in-process (start Serve with the config's proxy
options, hand the config to the controller with `deploy_apps`), followed by a bounded wait
for every application to reach RUNNING. `serve deploy` sends the same config through the
dashboard's REST API and returns at once; we wait so scripts and `make` targets can rely on
the app being up when the command returns, and fail with Serve's own message when it is not.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Mapping
from typing import Any

from echo_ray.ops.localcluster import port_open
from echo_ray.ops.serveconfig import check_serve_config


def resolve_address(address: str | None) -> str:
    """`--address`, else RAY_ADDRESS, else "auto" (the latest `ray start` on this machine)."""
    return address or os.environ.get("RAY_ADDRESS") or "auto"


def connect(address: str | None = None, namespace: str = "serve") -> None:
    """ray.init on an existing cluster (default: Serve's namespace), quietly; no-op if
    connected. Fails at once when nothing listens at an explicit host:port."""
    import ray

    if ray.is_initialized():
        return
    from ray._private.authentication.authentication_token_setup import (
        maybe_enable_token_auth_if_token_available,
    )

    target = resolve_address(address)
    host, sep, port = target.rpartition(":")
    if sep and port.isdigit() and "://" not in target and not port_open(host, int(port), 3.0):
        # ray.init would retry for minutes before giving up on an address nobody serves.
        raise ConnectionError(f"no Ray cluster answers at {target} (is it started? "
                              "`echo-ray start`, or pass --address / RAY_ADDRESS)")
    # Ray only sends its auth token to an explicit address when told to; a local token
    # means the clusters started here use it (what `ray.init("auto")` assumes too).
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    ray.init(address=target, namespace=namespace, log_to_driver=False)


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
                     "deployments": {d: str(s.status.value) for d, s in app.deployments.items()}}
    return out


def wait_running(names, timeout_s: float = 300.0, poll_s: float = 1.0) -> dict[str, dict]:
    """Bounded wait until every app in `names` is RUNNING; RuntimeError on DEPLOY_FAILED,
    TimeoutError (with the last statuses) when time runs out."""
    names = set(names)
    deadline = time.monotonic() + timeout_s
    seen: dict[str, dict] = {}
    while True:
        seen = app_statuses(names)
        failed = {n: s for n, s in seen.items() if s["status"] == "DEPLOY_FAILED"}
        if failed:
            raise RuntimeError("deploy failed: " + "; ".join(
                f"{n}: {s['message']}" for n, s in failed.items()))
        if len(seen) == len(names) and all(s["status"] == "RUNNING" for s in seen.values()):
            return seen
        if time.monotonic() > deadline:
            raise TimeoutError(f"applications not RUNNING after {timeout_s:.0f}s: {seen}")
        time.sleep(poll_s)


def deploy_config(data: Mapping, *, address: str | None = None,
                  timeout_s: float = 300.0) -> dict[str, dict]:
    """Check `data` (see serveconfig), deploy it on the cluster, wait until RUNNING."""
    from ray.serve._private import api as serve_api
    from ray.serve.config import gRPCOptions

    config = check_serve_config(data)
    connect(address)
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
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    token = os.environ.get("ECHO_RAY_API_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                        timeout=5) as r:
                if r.status == 200:
                    return
                last = f"HTTP {r.status}"
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout_s:.0f}s ({last})")
        time.sleep(0.5)


def shutdown(address: str | None = None, app: str | None = None) -> list[str]:
    """Delete one application, or shut Serve down (all apps and proxies); returns names."""
    from ray import serve

    connect(address)
    names = list(app_statuses())
    if app is not None:
        if app not in names:
            raise ValueError(f"app {app!r} is not deployed; deployed: {names}")
        serve.delete(app)
        return [app]
    serve.shutdown()
    return names
