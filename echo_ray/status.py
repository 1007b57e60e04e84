"""`echo-ray status`: applications, deployments, replicas with their routing stats, and the
routing strategy each deployment uses (from Serve's own instance details)."""

from __future__ import annotations

import ray
from ray import serve


def collect(timeout_s: float = 5.0) -> list[dict]:
    """One row per replica (deployments without replicas get one row), as plain dicts."""
    from ray.serve.context import _get_global_client

    serve.status()  # connects to the running Serve instance (raises if there is none)
    details = _get_global_client().get_serve_details()
    rows = []
    for app_name, app in details.get("applications", {}).items():
        for dep_name, dep in app.get("deployments", {}).items():
            conf = dep.get("deployment_config", {}) or {}
            router = conf.get("request_router_config") or {}
            kwargs = router.get("request_router_kwargs") or {}
            strategy = kwargs.get("strategy") or router.get("request_router_class", "default")
            base = {"app": app_name, "deployment": dep_name, "status": dep.get("status"),
                    "strategy": strategy.rsplit(":", 1)[-1] if isinstance(strategy, str) else "?"}
            replicas = dep.get("replicas") or []
            if not replicas:
                rows.append({**base, "replica": "-", "state": "-", "stats": {}})
            for rep in replicas:
                stats = {}
                name = rep.get("actor_name")
                if name and rep.get("state") == "RUNNING":
                    try:
                        actor = ray.get_actor(name, namespace="serve")
                        stats = ray.get(actor.record_routing_stats.remote(), timeout=timeout_s)
                    except Exception as exc:  # a replica that does not answer says so
                        stats = {"error": type(exc).__name__}
                rows.append({**base, "replica": rep.get("replica_id"), "state": rep.get("state"),
                             "stats": stats or {}})
    return rows


def main(address: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from echo_ray.connection import connect

    connect(address, existing=True, namespace="serve")
    rows = collect()
    table = Table(title="echo-ray on Ray Serve")
    for col in ("app", "deployment", "status", "strategy", "replica", "state", "in flight",
                "latency ms", "errors", "cpu %", "rss MB"):
        table.add_column(col)
    for r in rows:
        s = r["stats"]

        def fmt(key, scale=1.0, d=1, s=s):
            return f"{s[key] * scale:.{d}f}" if isinstance(s.get(key), (int, float)) else "-"
        table.add_row(r["app"], r["deployment"], str(r["status"]), r["strategy"],
                      str(r["replica"]), str(r["state"]), fmt("in_flight", d=0),
                      fmt("latency_ewma_s", 1000), fmt("error_rate", 100),
                      fmt("cpu_percent"), fmt("memory_rss_bytes", 1 / 2**20))
    Console().print(table)
