"""`echo-ray start | deploy | stop` (echo_ray/ops/cli.py) against the live cluster: a broken
config is refused before anything changes, `stop --app` removes the app, `start` on a running
cluster deploys it again and waits until it serves, `--address` wins over RAY_ADDRESS."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
import typer
import yaml
from typer.testing import CliRunner

from echo_ray.ops.cli import register
from echo_ray.ops.localcluster import free_port


def test_free_port_never_hands_out_a_port_twice_in_a_row():
    # a cluster's seven ports are drawn one after another: the kernel may repeat a closed one
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)


def test_register_adds_the_commands_to_a_typer_app():
    app = typer.Typer()

    @app.command()
    def status() -> None:
        """Already there."""

    register(app)
    out = CliRunner().invoke(app, ["--help"]).output
    for name in ("start", "deploy", "stop", "status"):
        assert name in out
    assert "--address" in CliRunner().invoke(app, ["deploy", "--help"]).output


def test_deploy_without_a_cluster_fails_fast_with_a_message():
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "echo_ray.ops.cli", "deploy",
                           "deployments/serve_config.yaml", "--address", f"127.0.0.1:{port}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in " ".join(done.stdout.split())


@pytest.mark.cluster
def test_deploy_of_a_broken_config_is_refused_and_changes_nothing(live_app, tmp_path):
    broken = yaml.safe_load(live_app.config_path.read_text())
    broken["applications"][0]["deployments"][1]["autoscaling_config"]["max_replica"] = 9
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    done = live_app.cli("deploy", str(path), timeout_s=60)
    assert done.returncode == 1
    assert "autoscaling_config.max_replica" in done.stdout
    assert httpx.get(f"{live_app.base_url}/readyz", timeout=30).status_code == 200


PROBE = """
import sys
import ray
from ray import serve


@serve.deployment(ray_actor_options={"num_cpus": 0})
class Probe:
    def __call__(self, request) -> str:
        return "probe"


ray.init(address=sys.argv[1], namespace="serve", log_to_driver=False)
serve.run(Probe.bind(), name="ops-probe", route_prefix="/ops-probe")
"""


@pytest.mark.cluster
@pytest.mark.timeout(240)
def test_stop_app_removes_only_that_app_and_address_wins(live_app, tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    done = subprocess.run([sys.executable, str(script), live_app.cluster.address],
                          env=live_app.env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert httpx.get(f"{live_app.base_url}/ops-probe", timeout=30).text == "probe"

    env = live_app.env(RAY_ADDRESS="127.0.0.1:1")  # --address must win over this
    stop = subprocess.run([sys.executable, "-m", "echo_ray.ops.cli", "stop", "--app",
                           "ops-probe", "--address", live_app.cluster.address],
                          env=env, capture_output=True, text=True, timeout=120)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "ops-probe" in stop.stdout
    assert httpx.get(f"{live_app.base_url}/ops-probe", timeout=30).status_code == 404
    assert httpx.get(f"{live_app.base_url}/readyz", timeout=30).status_code == 200

    missing = live_app.cli("stop", "--app", "no-such-app", timeout_s=120)
    assert missing.returncode == 1
    assert "no-such-app" in missing.stdout and "echo-ray" in missing.stdout


@pytest.mark.cluster
@pytest.mark.timeout(240)
def test_start_on_a_running_cluster_deploys_and_waits_until_it_serves(live_app):
    port = live_app.base_url.rsplit(":", 1)[1]
    start = live_app.cli("start", "--port", str(live_app.cluster.ports.gcs),
                         "--config", str(live_app.config_path), "--http-port", port,
                         "--timeout", "180", timeout_s=240)
    assert start.returncode == 0, start.stdout + start.stderr
    out = " ".join(start.stdout.split())
    assert "Using the Ray cluster already running" in out
    assert "echo-ray │ RUNNING" in out or "echo-ray | RUNNING" in out
    assert f"serving on {live_app.base_url}" in out
    assert httpx.get(f"{live_app.base_url}/readyz", timeout=30).json()["status"] == "ready"
