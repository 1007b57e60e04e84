"""cluster.yaml (AWS) and deployments/cluster.local.yaml pass the checks `ray up` applies
before it talks to a cloud (Ray's prepare_config + validate_config), and broken copies fail."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from echo_ray.ops.clusterconfig import check_cluster_config

ROOT = Path(__file__).resolve().parents[2]
AWS = ROOT / "cluster.yaml"
LOCAL = ROOT / "deployments" / "cluster.local.yaml"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_aws_config_passes_rays_own_preparation_and_schema():
    prepared = prepare_config(copy.deepcopy(load(AWS)))
    validate_config(prepared)  # raises on any schema or cross-field problem
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] == "head"
    assert set(prepared["available_node_types"]) == {"head", "cpu_worker"}
    worker = prepared["available_node_types"]["cpu_worker"]
    assert 0 < worker["min_workers"] <= worker["max_workers"] <= prepared["max_workers"]
    assert prepared["upscaling_speed"] > 0 and prepared["idle_timeout_minutes"] > 0
    # setup_commands install echo-ray on every node (prepare_config merges them in).
    for key in ("head_setup_commands", "worker_setup_commands"):
        assert any("pip install" in c and "echo-ray" in c for c in prepared[key])


def test_local_config_passes_rays_own_preparation_and_schema():
    prepared = prepare_config(copy.deepcopy(load(LOCAL)))
    validate_config(prepared)
    assert prepared["provider"]["type"] == "local"
    (node_type,) = prepared["available_node_types"].values()
    assert node_type["min_workers"] == 1 and node_type["max_workers"] == 2


@pytest.mark.parametrize("path", [AWS, LOCAL], ids=["aws", "local"])
def test_echo_ray_checks_pass_from_the_repo_root(path):
    prepared = check_cluster_config(path, root=ROOT)
    head = " ".join(prepared["head_start_ray_commands"])
    assert "--metrics-export-port=8080" in head and "--dashboard-port=8265" in head
    assert "deployments/serve_config.yaml" in head


def _set(path, value):
    def change(cfg):
        node = cfg
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _drop(path):
    def change(cfg):
        node = cfg
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return change


BROKEN_AWS = {
    "misspelled top-level key": _set(["idle_timeout_minute"], 5),
    "max_workers not an integer": _set(["max_workers"], "eight"),
    "negative upscaling_speed": _set(["upscaling_speed"], -1),
    "node type without node_config": _drop(["available_node_types", "cpu_worker", "node_config"]),
    "head_node_type not a node type": _set(["head_node_type"], "gpu_head"),
    "min_workers above max_workers": _set(["available_node_types", "cpu_worker", "min_workers"], 20),
    "unknown docker key": _set(["docker", "imagee"], "x"),
}


@pytest.mark.parametrize("change", BROKEN_AWS.values(), ids=BROKEN_AWS.keys())
def test_broken_aws_copies_fail_rays_validation(change):
    broken = load(AWS)
    change(broken)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        validate_config(prepare_config(broken))
    with pytest.raises(ValueError):
        check_cluster_config(broken, root=ROOT)


def test_broken_local_copy_without_hosts_fails():
    broken = load(LOCAL)
    del broken["provider"]["worker_ips"]
    with pytest.raises(ValueError, match="worker_ips"):
        check_cluster_config(broken, root=ROOT)


ECHO_RAY_BREAKS = {
    "metrics port only on the head": ("worker_start_ray_commands", 1,
                                       lambda c: c.replace("--metrics-export-port=8080", "")),
    "deploys a config that is not there": ("head_start_ray_commands", 2,
                                           lambda c: c.replace("serve_config", "nope")),
    "no dashboard on the head": ("head_start_ray_commands", 1,
                                 lambda c: c.replace("--dashboard-host=0.0.0.0", "")
                                 .replace("--dashboard-port=8265", "")),
}


@pytest.mark.parametrize("key,index,edit", ECHO_RAY_BREAKS.values(), ids=ECHO_RAY_BREAKS.keys())
def test_configs_that_ray_accepts_but_would_not_run_echo_ray_fail(key, index, edit):
    broken = load(AWS)
    broken[key][index] = edit(broken[key][index])
    validate_config(prepare_config(copy.deepcopy(broken)))  # Ray itself has no objection
    with pytest.raises(ValueError):
        check_cluster_config(broken, root=ROOT)


def test_missing_file_mount_source_fails():
    broken = load(AWS)
    broken["file_mounts"] = {"~/echo-ray": "no-such-checkout"}
    with pytest.raises(ValueError, match="file_mounts"):
        check_cluster_config(broken, root=ROOT)


def test_a_mount_that_holds_a_virtualenv_fails(tmp_path):
    """`ray up` hashes every file of a mount on each run (rsync_exclude or not): a checkout
    mounted whole reads its .venv, and a dangling symlink there fails `ray up`."""
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    broken = load(AWS)
    broken["file_mounts"] = {"~/echo-ray": str(tmp_path)}
    with pytest.raises(ValueError, match="virtualenv"):
        check_cluster_config(broken, root=ROOT)
