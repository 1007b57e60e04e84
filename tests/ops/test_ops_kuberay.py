"""deployments/kuberay/rayservice.yaml: a RayService whose serveConfigV2 is exactly
deployments/serve_config.yaml, with in-tree autoscaling, resources and probes.

No RayService CRD schema ships in a Python or Debian package we can install, so these are
structural checks of the fields KubeRay reads (ray.io/v1)."""

from __future__ import annotations

from pathlib import Path

import ray
import yaml

from echo_ray.ops.manifests import embed_serve_config
from echo_ray.ops.serveconfig import check_serve_config

ROOT = Path(__file__).resolve().parents[2]
SERVE = ROOT / "deployments" / "serve_config.yaml"
RAYSERVICE = ROOT / "deployments" / "kuberay" / "rayservice.yaml"


def manifest() -> dict:
    return yaml.safe_load(RAYSERVICE.read_text())


def cpu(quantity) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def containers() -> list[dict]:
    spec = manifest()["spec"]["rayClusterConfig"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_serve_config_v2_is_serve_config_yaml_verbatim():
    embedded = manifest()["spec"]["serveConfigV2"]
    assert embedded == SERVE.read_text(), (
        "serveConfigV2 drifted from deployments/serve_config.yaml: run "
        "`python -m echo_ray.ops.manifests`")
    check_serve_config(yaml.safe_load(embedded))


def test_sync_tool_rewrites_only_the_serve_config_block():
    text = RAYSERVICE.read_text()
    assert embed_serve_config(text, SERVE.read_text()) == text
    drifted = embed_serve_config(text, "applications: []\n")
    assert yaml.safe_load(drifted)["spec"]["serveConfigV2"] == "applications: []\n"
    assert yaml.safe_load(drifted)["spec"]["rayClusterConfig"] == \
        manifest()["spec"]["rayClusterConfig"]
    assert embed_serve_config(drifted, SERVE.read_text()) == text


def test_rayservice_shape_and_autoscaling():
    doc = manifest()
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayService"
    cluster = doc["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["rayVersion"] == ray.__version__
    assert cluster["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    (group,) = cluster["workerGroupSpecs"]
    assert 1 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    params = [cluster["headGroupSpec"]["rayStartParams"], group["rayStartParams"]]
    assert {p["metrics-export-port"] for p in params} == {"8080"}  # as in cluster.yaml
    assert all(isinstance(v, str) for p in params for v in p.values()), \
        "rayStartParams values must be strings"


def test_every_container_has_resources_and_probes():
    for c in containers():
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), (c["name"], kind)
        assert cpu(c["resources"]["requests"]["cpu"]) <= cpu(c["resources"]["limits"]["cpu"])
        for probe in ("readinessProbe", "livenessProbe"):
            assert c[probe]["exec"]["command"], (c["name"], probe)
            assert c[probe]["periodSeconds"] > 0
        assert not c["image"].endswith(":latest")
        assert c["lifecycle"]["preStop"]["exec"]["command"]


def test_serve_port_and_replica_cpus_fit_the_pods():
    serve = yaml.safe_load(SERVE.read_text())
    port = serve["http_options"]["port"]
    for c in containers():
        assert port in {p["containerPort"] for p in c["ports"]}, c["name"]
    (app,) = serve["applications"]
    deps = {d["name"]: d for d in app["deployments"]}
    worker_cpus = deps["CognitiveWorker"]["ray_actor_options"]["num_cpus"]
    worker_pod = manifest()["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    limit = cpu(worker_pod["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"])
    assert 0 < worker_cpus <= limit
    max_replicas = deps["CognitiveWorker"]["autoscaling_config"]["max_replicas"]
    assert max_replicas * worker_cpus <= worker_pod["maxReplicas"] * limit, \
        "the worker group cannot hold max_replicas cognitive workers"


def test_dockerfile_uses_the_ray_version_of_the_manifest():
    text = (ROOT / "deployments" / "kuberay" / "Dockerfile").read_text()
    assert f"rayproject/ray:{ray.__version__}-" in text
    assert f"rayproject/ray:{ray.__version__}-" in (ROOT / "cluster.yaml").read_text()
