"""(c) The cluster grows and shrinks: Ray's autoscaler over its fake multi-node provider
(`provider: type: fake_multinode`; the config is written here, Ray 2.60's wheel lacks
fake_multi_node/example.yaml). A 0-CPU head; worker nodes of 1 CPU, 0 to 3 of them. The app
is deployed from deployments/serve_config.yaml (ForecastPolicy, shortened windows so the test
runs in minutes). A load step makes ForecastPolicy ask for more cognitive worker replicas
(1 CPU each) than fit; the autoscaler adds worker nodes; when the load stops the replicas go
and the idle nodes are removed after `idle_timeout_minutes`. Every node's arrival and
departure is recorded (benchmarks/RESULTS.md).

Runs in a private PID + network + mount namespace: the fake provider wants the GCS on
<node address>:6379, and Ray's cleanup may `ray stop`.
"""

from __future__ import annotations

import pytest

from tests.support.multinode import CLUSTER_ENV, ROOT, run_isolated, sandbox_unavailable

pytestmark = pytest.mark.multinode

MAX_NODES, IDLE_TIMEOUT_MIN, CLIENTS = 3, 0.25, 12
LOAD_MAX_S, SHRINK_MAX_S = 150.0, 360.0


def fake_cluster_config() -> dict:
    """What fake_multi_node/example.yaml holds in Ray's repository, with our node types."""
    empty: list = []
    return {
        "cluster_name": "echo-ray-fake", "max_workers": MAX_NODES,
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True,
                     "disable_node_updaters": True, "disable_launch_config_check": True},
        "auth": {"ssh_user": "ubuntu"}, "docker": {},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            "cpu_worker": {"resources": {"CPU": 1}, "node_config": {}, "min_workers": 0,
                           "max_workers": MAX_NODES}},
        "head_node_type": "ray.head.default", "upscaling_speed": 1.0,
        "idle_timeout_minutes": IDLE_TIMEOUT_MIN,
        "initialization_commands": empty, "setup_commands": empty,
        "head_setup_commands": empty, "worker_setup_commands": empty,
        "head_start_ray_commands": empty, "worker_start_ray_commands": empty,
        "file_mounts": {}, "cluster_synced_files": empty,
        "file_mounts_sync_continuously": False, "rsync_exclude": empty, "rsync_filter": empty}


def app_config(port: int) -> dict:
    from echo_ray.ops.serveconfig import load_yaml, with_http

    data = with_http(load_yaml(ROOT / "deployments" / "serve_config.yaml"),
                     host="127.0.0.1", port=port)
    data["proxy_location"] = "HeadOnly"
    (app,) = data["applications"]
    for dep in app["deployments"]:
        if dep["name"] == "CognitiveWorker":
            auto = dep["autoscaling_config"]
            auto.update(min_replicas=1, initial_replicas=1, max_replicas=MAX_NODES,
                        target_ongoing_requests=2, upscale_delay_s=2, downscale_delay_s=10)
            auto["policy"]["policy_kwargs"].update(
                lead_time_s=5, scale_up_cooldown_s=5, scale_down_window_s=10,
                scale_down_cooldown_s=10)
    return data


def scenario_grow_and_shrink() -> dict:
    import json
    import threading
    import time
    from pathlib import Path

    import httpx
    import ray
    from redis_server import RedisServer

    from echo_ray.ops.deploy import deploy_config
    from echo_ray.ops.localcluster import LocalCluster, Ports, free_port

    redis = RedisServer()
    redis.start()
    workdir = Path("/tmp") / f"erayas{free_port()}"
    workdir.mkdir()
    config_path = workdir / "fake_cluster.json"
    config_path.write_text(json.dumps(fake_cluster_config()))
    env = {**CLUSTER_ENV, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1",
           "REDIS_URL": redis.url}
    head = LocalCluster.start(ports=Ports(gcs=6379), temp_dir=workdir / "ray", env=env,
                              extra_args=["--num-cpus", "0",
                                          f"--autoscaling-config={config_path}"])
    head.owns_temp_dir = True
    events: list[dict] = []
    stop_watch = threading.Event()
    t0 = time.monotonic()
    try:
        from echo_ray.connection import connect

        connect(head.address)

        alive: set[str] = set()

        def poll() -> None:
            """Record the worker nodes that came or went since the last poll."""
            nonlocal alive
            now = {n["NodeID"] for n in ray.nodes()
                   if n["Alive"] and n["Resources"].get("CPU", 0) > 0}
            t = round(time.monotonic() - t0, 1)
            events.extend({"t": t, "node": n[-5:], "event": "added"} for n in now - alive)
            events.extend({"t": t, "node": n[-5:], "event": "removed"} for n in alive - now)
            alive = now

        def watch():
            while not stop_watch.is_set():
                poll()
                stop_watch.wait(1.0)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        port = free_port()
        deploy_config(app_config(port), address=head.address, timeout_s=300)
        deployed_at = round(time.monotonic() - t0, 1)
        base = f"http://127.0.0.1:{port}"

        def workers() -> int:
            return sum(1 for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0))

        stop_load = threading.Event()
        sent = [0]

        def actors_on_workers() -> dict[str, list[str]]:
            """The live actors on each live worker node (what keeps a node from idling)."""
            from ray.util.state import list_actors

            nodes = {n["NodeID"] for n in ray.nodes()
                     if n["Alive"] and n["Resources"].get("CPU", 0) > 0}
            out: dict[str, list[str]] = {n[-5:]: [] for n in nodes}
            for a in list_actors(filters=[("state", "=", "ALIVE")], limit=1000):
                if a.node_id in nodes:
                    out[a.node_id[-5:]].append(a.class_name)
            return out

        def why_kept() -> dict | None:
            """The optimizer's last decision for the worker (what holds its replicas)."""
            from echo_ray.autoscaling.actor import get_optimizer

            actor = get_optimizer()
            d = ray.get(actor.recommend.remote("echo-ray/CognitiveWorker")) if actor else None
            if d is None:
                return None
            s, f = d["sample"], d.get("forecast") or {}
            return {k: d[k] for k in ("desired_replicas", "previous_target", "reactive_need",
                                      "predictive_need", "capacity_rps", "triggers")} | {
                "utilisation": s["utilisation"], "request_rate": s["request_rate"],
                "p95_latency_ms": s["p95_latency_ms"], "forecast_upper": f.get("upper"),
                "forecast_point": f.get("point")}

        def client():
            series = [0.1, 0.4, 0.9, 0.4] * 16
            with httpx.Client(base_url=base, timeout=60) as c:
                while not stop_load.is_set():
                    c.post("/v1/reasoning", json={"input": {"series": series, "horizon": 8},
                                                  "options": {"cache": False}})
                    sent[0] += 1

        load_start = round(time.monotonic() - t0, 1)
        clients = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
        for c in clients:
            c.start()
        peak = 0
        deadline = time.monotonic() + LOAD_MAX_S
        while time.monotonic() < deadline and peak < MAX_NODES:
            peak = max(peak, workers())
            stop_load.wait(1.0)
        stop_load.set()
        for c in clients:
            c.join(90)
        load_end = round(time.monotonic() - t0, 1)
        deadline = time.monotonic() + SHRINK_MAX_S
        while time.monotonic() < deadline and workers() > 1:
            stop_watch.wait(1.0)
        final = workers()
        last = why_kept()
        kept = actors_on_workers()
        stop_watch.set()
        watcher.join(10)
        poll()  # the last change, if it came after the watcher's last look
        return {"deployed_at_s": deployed_at, "load_start_s": load_start,
                "load_end_s": load_end, "requests": sent[0], "peak_workers": peak,
                "final_workers": final, "last_decision": last, "actors_on_workers": kept,
                "events": events,
                "idle_timeout_s": IDLE_TIMEOUT_MIN * 60}
    finally:
        stop_watch.set()
        head.stop()
        redis.stop()


@pytest.mark.redis
@pytest.mark.timeout(1000)
def test_the_autoscaler_adds_worker_nodes_under_load_and_removes_them_when_idle():
    reason = sandbox_unavailable()
    if reason:
        print(f"SKIP multinode: {reason}")
        pytest.skip(reason)
    out = run_isolated(__file__, "scenario_grow_and_shrink", timeout_s=940)
    print("autoscaler timeline:", out)
    added = [e for e in out["events"] if e["event"] == "added"]
    removed = [e for e in out["events"] if e["event"] == "removed"]
    assert out["peak_workers"] >= 2, "the load step did not make the autoscaler add a node"
    assert any(e["t"] > out["load_start_s"] for e in added)
    # Idle nodes go: a replica's membrane actors stay on its node (service/engines.py
    # on_this_node), so no 0-CPU actor spilled onto an idle node holds it.
    assert removed and out["final_workers"] <= 1, (
        f"idle worker nodes not removed: {out['events']}, actors {out['actors_on_workers']}")
    assert all(e["t"] >= out["load_end_s"] for e in removed), out["events"]
