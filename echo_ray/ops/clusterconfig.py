"""Check a `ray up` cluster config the way `ray up` does before it talks to a cloud.

`ray up` runs `prepare_config` (merge the provider's defaults, fill node-type bounds; for
`provider: local` turn the host list into a node type) and then `validate_config` (Ray's
JSON schema `ray-schema.json`, which rejects unknown keys, plus cross-field checks such as
`head_node_type` being a node type). Both are pure: no boto3, no network. Only after them
does the provider's `bootstrap_config` call the cloud, which we never do here.

On top of that, `check_cluster_config` checks what echo-ray needs from a cluster config:
local `file_mounts` sources exist, the Serve config the head deploys exists in the
checkout, and every node exports metrics on one fixed port with the dashboard on the head.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from echo_ray.ops.serveconfig import load_yaml


def ray_prepare_and_validate(config: Mapping) -> dict:
    """Ray's own `prepare_config` + `validate_config`; ValueError with Ray's message."""
    import click
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    if not isinstance(config, Mapping):
        raise ValueError(f"cluster config must be a mapping, got {type(config).__name__}")
    try:
        prepared = prepare_config(copy.deepcopy(dict(config)))
        validate_config(prepared)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ValueError(f"cluster config fails Ray's schema at {where}: {exc.message}") \
            from None
    except click.ClickException as exc:  # prepare_local's cli_logger.abort
        raise ValueError(f"cluster config rejected by Ray: {exc.message}") from None
    except (KeyError, AssertionError, NotImplementedError, RuntimeError) as exc:
        raise ValueError(f"cluster config rejected by Ray: {type(exc).__name__}: {exc}") \
            from None
    return prepared


def _port(commands: list[str], flag: str) -> set[str]:
    return {m.group(1) for c in commands for m in re.finditer(rf"{flag}[= ](\d+)", c)}


def check_cluster_config(config: Mapping | str | Path, root: str | Path = ".") -> dict:
    """Ray's checks plus echo-ray's (module docstring); returns the prepared config.

    `root` is where `ray up` runs from (relative `file_mounts` sources resolve there).
    """
    if isinstance(config, (str, Path)):
        config = load_yaml(config)
    prepared = ray_prepare_and_validate(config)
    root = Path(root)
    mounts = prepared.get("file_mounts") or {}
    for remote, local in mounts.items():
        src = (root / Path(local).expanduser()) if not Path(local).is_absolute() else Path(local)
        if not src.exists():
            raise ValueError(f"file_mounts[{remote!r}] source {local!r} does not exist under "
                             f"{root}")
        venv = next(iter((*src.glob("pyvenv.cfg"), *src.glob("*/pyvenv.cfg"))), None) \
            if src.is_dir() else None
        if venv is not None:
            # `ray up` hashes every file under a mount on each run, rsync_exclude or not.
            raise ValueError(f"file_mounts[{remote!r}] source {local!r} holds a virtualenv "
                             f"({venv.parent}), which `ray up` would read whole on every run; "
                             f"mount the folders the nodes need instead")
    head = [str(c) for c in prepared.get("head_start_ray_commands") or []]
    worker = [str(c) for c in prepared.get("worker_start_ray_commands") or []]
    if not any("ray start --head" in c for c in head):
        raise ValueError("head_start_ray_commands must run `ray start --head`")
    head_ports, worker_ports = _port(head, "--metrics-export-port"), _port(worker, "--metrics-export-port")
    if len(head_ports) != 1 or head_ports != worker_ports:
        raise ValueError(f"head and worker start commands must export metrics on one fixed "
                         f"--metrics-export-port, got head {sorted(head_ports)} and worker "
                         f"{sorted(worker_ports)}")
    if not _port(head, "--dashboard-port") or not any("--dashboard-host" in c for c in head):
        raise ValueError("the head must start the dashboard (--dashboard-host/--dashboard-port)")
    deploys = [c for c in head if " deploy " in f" {c} "]
    if not deploys:
        raise ValueError("head_start_ray_commands must deploy the Serve app after `ray start`")
    if head.index(deploys[0]) < next(i for i, c in enumerate(head) if "ray start --head" in c):
        raise ValueError("the Serve app must be deployed after the head starts")
    for cmd in deploys:
        for remote, local in mounts.items():
            for ref in re.findall(rf"{re.escape(remote)}/(\S+\.ya?ml)", cmd):
                if not (root / local / ref).is_file():
                    raise ValueError(f"{cmd!r} deploys {ref}, which is not in {root / local}")
    return prepared


def summary(prepared: Mapping) -> dict[str, Any]:
    """The autoscaling knobs of a prepared config, for printing."""
    return {"cluster_name": prepared.get("cluster_name"),
            "provider": prepared["provider"]["type"],
            "max_workers": prepared.get("max_workers"),
            "upscaling_speed": prepared.get("upscaling_speed"),
            "idle_timeout_minutes": prepared.get("idle_timeout_minutes"),
            "node_types": {k: {"min_workers": v.get("min_workers"),
                               "max_workers": v.get("max_workers")}
                           for k, v in prepared["available_node_types"].items()}}
