"""deployments/serve_config.yaml: strict checks, broken copies fail, and deployed on a live
cluster (through the CLI, as `serve run CONFIG` does) it answers with our autoscaling policy
and request router in place."""

from __future__ import annotations

import copy
from pathlib import Path

import httpx
import pytest
import yaml

from echo_ray.autoscaling.policy import POLICY_PATH
from echo_ray.ops.serveconfig import check_serve_config, load_serve_config, unknown_keys
from echo_ray.routing.router import ROUTER_CLASS_PATH

ROOT = Path(__file__).resolve().parents[2]
SERVE = ROOT / "deployments" / "serve_config.yaml"


def config() -> dict:
    return yaml.safe_load(SERVE.read_text())


def worker(cfg: dict) -> dict:
    (app,) = cfg["applications"]
    return next(d for d in app["deployments"] if d["name"] == "CognitiveWorker")


def test_config_passes_the_strict_checks_and_names_our_parts():
    schema = load_serve_config(SERVE)
    (app,) = schema.applications
    assert app.import_path == "echo_ray.app:build_app"
    w = worker(config())
    assert w["autoscaling_config"]["policy"]["policy_function"] == POLICY_PATH
    assert w["request_router_config"]["request_router_class"] == ROUTER_CLASS_PATH


def test_deployment_names_exist_in_the_app():
    from ray.serve._private.build_app import build_app

    from echo_ray.app import build_app as echo_app

    (app_cfg,) = config()["applications"]
    built = {d.name for d in build_app(echo_app(app_cfg["args"]), name="check").deployments}
    assert {d["name"] for d in app_cfg["deployments"]} == built


BROKEN = {
    "typo in autoscaling": lambda c: worker(c)["autoscaling_config"].update(max_replica=8),
    "unknown policy kwarg": lambda c: worker(c)["autoscaling_config"]["policy"]
    ["policy_kwargs"].update(lead_time=3),
    "policy that does not import": lambda c: worker(c)["autoscaling_config"]["policy"]
    .update(policy_function="echo_ray.autoscaling.policy:NoSuchPolicy"),
    "unknown routing strategy": lambda c: worker(c)["request_router_config"]
    ["request_router_kwargs"].update(strategy="fastest"),
    "bad env value": lambda c: c["applications"][0]["runtime_env"]["env_vars"]
    .update(SCALE_UP_THRESHOLD="high"),
    "unquoted env value": lambda c: c["applications"][0]["runtime_env"]["env_vars"]
    .update(CACHE_TTL_SECONDS=300),
    "bad builder arg": lambda c: c["applications"][0]["args"]["service"]
    .update(cache_ttl_s="soon"),
    "unknown builder arg": lambda c: c["applications"][0]["args"]["sessions"]
    .update(ttl=60),
    "negative max_ongoing_requests": lambda c: worker(c).update(max_ongoing_requests=-1),
    "typo in actor options": lambda c: worker(c)["ray_actor_options"].update(num_cpu=1),
    "typo at the top": lambda c: c.update(http_option={"port": 1}),
}


@pytest.mark.parametrize("change", BROKEN.values(), ids=BROKEN.keys())
def test_broken_copies_fail(change):
    broken = copy.deepcopy(config())
    change(broken)
    with pytest.raises(ValueError):
        check_serve_config(broken)


def test_serve_itself_would_accept_a_typo_that_we_reject():
    from ray.serve.schema import ServeDeploySchema

    broken = copy.deepcopy(config())
    worker(broken)["autoscaling_config"]["max_replica"] = 8
    ServeDeploySchema.model_validate(broken)  # Serve ignores unknown keys on purpose
    assert unknown_keys(broken, ServeDeploySchema) == [
        "applications[0].deployments[1].autoscaling_config.max_replica"]


@pytest.mark.cluster
@pytest.mark.timeout(300)
def test_deployed_config_answers_and_runs_our_policy_and_router(live_app):
    with httpx.Client(base_url=live_app.base_url, timeout=120) as client:
        assert client.get("/readyz").json()["status"] == "ready"
        series = [0.1, 0.4, 0.9, 0.4] * 8
        r = client.post("/v1/reasoning", json={"input": {"series": series, "horizon": 3}})
        assert r.status_code == 200, r.text
        assert len(r.json()["result"]["predictions"]) == 3
        sid = client.post("/v1/sessions").json()["session_id"]
        r = client.post("/v1/memory", json={"session_id": sid, "input": {
            "op": "store", "items": [{"text": "deep tree echo"}]}})
        assert r.status_code == 200, r.text
    # What Serve runs, read back from the cluster's dashboard (the API `serve status` uses).
    details = httpx.get(f"{live_app.cluster.dashboard_url}/api/serve/applications/",
                        headers=live_app.cluster.auth_headers(), timeout=30).json()
    app = details["applications"]["echo-ray"]
    assert app["status"] == "RUNNING"
    running = app["deployments"]["CognitiveWorker"]["deployment_config"]
    wanted = worker(config())
    assert running["autoscaling_config"]["policy"] == wanted["autoscaling_config"]["policy"]
    assert running["autoscaling_config"]["max_replicas"] == \
        wanted["autoscaling_config"]["max_replicas"]
    router = running["request_router_config"]
    assert router["request_router_class"] == ROUTER_CLASS_PATH
    assert router["request_router_kwargs"] == {"strategy": "power_of_two"}
    assert running["max_ongoing_requests"] == wanted["max_ongoing_requests"]
