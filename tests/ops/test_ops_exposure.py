"""`echo-ray start` (what `make run` runs) listens on loopback only: every LISTEN socket of
every process of the cluster (GCS, raylet, dashboard and its agent, metrics, runtime-env
agent, Serve's proxy and replicas) is on 127.0.0.0/8.

Run in a private PID + mount namespace (the machine's network, so an interface other than
loopback would show): `echo-ray stop --cluster` runs `ray stop`, which there reaches only
this cluster, and a tmpfs over /tmp/ray keeps Ray's default temp dir (which `echo-ray start`
uses, as `ray status` expects) apart from the machine's.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from tests.support.multinode import run_isolated, sandbox_unavailable


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def scenario_make_run_listeners() -> dict:
    import json
    import os
    import subprocess
    import urllib.request

    import psutil

    from echo_ray.ops.localcluster import free_port, ray_executable

    os.makedirs("/tmp/ray", exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/tmp/ray"], check=True)
    echo_ray = str(Path(ray_executable()).with_name("echo-ray"))
    http = free_port()
    env = {**os.environ, "ECHO_RAY_HTTP_PORT": str(http), "MIN_INSTANCES": "1",
           "MAX_INSTANCES": "1"}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([echo_ray, "start", "--port", str(free_port()),
                           "--dashboard-port", str(free_port()),
                           "--metrics-export-port", str(free_port()), "--num-cpus", "2",
                           "--timeout", "240"], env=env, capture_output=True, text=True,
                          timeout=400)
    print(done.stdout[-3000:], done.stderr[-3000:])
    if done.returncode != 0:
        return {"started": False}
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/readyz", timeout=30) as r:
        ready = r.status
    # ingress -> cognitive worker, replica to replica (their gRPC servers now on loopback)
    body = json.dumps({"input": {"series": [0.1, 0.4, 0.9, 0.4] * 8, "horizon": 4}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{http}/v1/reasoning", data=body,
                                 headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        reasoning = r.status
    listening = []
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    listening.append([proc.info["name"], conn.laddr.ip, conn.laddr.port])
        except psutil.Error:
            pass
    subprocess.run([echo_ray, "stop", "--cluster"], env=env, capture_output=True, timeout=120)
    return {"started": True, "ready": ready, "reasoning": reasoning, "listening": listening}


@pytest.mark.multinode
@pytest.mark.timeout(480)
def test_make_run_listens_on_loopback_only():
    reason = sandbox_unavailable()
    if reason:
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    out = run_isolated(__file__, "scenario_make_run_listeners", timeout_s=420,
                       private_net=False)
    assert out["started"], "echo-ray start failed (its output is above)"
    assert out["ready"] == 200 and out["reasoning"] == 200
    names = {name for name, _, _ in out["listening"]}
    assert {"gcs_server", "raylet"} <= names, out["listening"]
    exposed = [x for x in out["listening"] if not _loopback(x[1])]
    assert not exposed, f"listening beyond loopback: {exposed}"
