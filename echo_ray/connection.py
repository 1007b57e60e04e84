"""Which Ray cluster a command uses, by one rule (the CLI, the demo, benchmarks, notebooks).

An address given (argument, else `RAY_ADDRESS`) is used, and fails at once when nothing
answers there; otherwise a private local cluster is started. Never a bare `ray.init()`, which
attaches silently to whatever cluster Ray last recorded on this machine, dead or alive.
"""

from __future__ import annotations

from typing import Any

from echo_ray.settings import Settings, get_settings


def ray_address(address: str | None = None, settings: Settings | None = None) -> str | None:
    """The Ray address to use: `address`, else `RAY_ADDRESS`, else None (none was given)."""
    return address or (settings or get_settings()).cluster.address or None


def connect(address: str | None = None, *, existing: bool = False,
            **init_kwargs: Any) -> str | None:
    """`ray.init` by the one rule; returns the address used (None: a new private cluster).

    With an address (argument, else `RAY_ADDRESS`) connect there, failing at once when nothing
    listens at a host:port. Without one: `existing=False` starts a private local cluster
    (`ray.init(address="local")`: never the one Ray last recorded, which may be dead);
    `existing=True` uses the cluster last started on this machine and fails at once when it
    does not answer. No-op when Ray is already initialised.
    """
    import ray

    if ray.is_initialized():
        return None
    kwargs = {"log_to_driver": False, **init_kwargs}
    target = ray_address(address)
    if target is None and not existing:
        ray.init(address="local", **kwargs)
        return None
    for name in _NEW_CLUSTER_ONLY:  # a running cluster has its own; Ray refuses them
        kwargs.pop(name, None)
    if target is None or target == "auto":
        target = _recorded_address()
    _check_listening(target)
    # Ray only sends its auth token to an explicit address when told to; a local token
    # means the clusters started here use it (what `ray.init("auto")` assumes too).
    from ray._private.authentication.authentication_token_setup import (
        maybe_enable_token_auth_if_token_available,
    )

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    from echo_ray.ops.localcluster import prefer_loopback

    hook = prefer_loopback(target)  # a loopback-only cluster (`make run`): stay on loopback
    if hook:
        kwargs["runtime_env"] = {**hook, **(kwargs.get("runtime_env") or {})}
    ray.init(address=target, **kwargs)
    return target


_NEW_CLUSTER_ONLY = ("num_cpus", "num_gpus", "resources", "object_store_memory",
                     "include_dashboard", "dashboard_host", "dashboard_port")


def _recorded_address() -> str:
    """The cluster `ray start` last recorded on this machine (never just any running one)."""
    from ray._private.services import get_ray_address_from_environment

    found = get_ray_address_from_environment(None, None)
    if not found:
        raise ConnectionError("no Ray cluster was started on this machine (`echo-ray start`, "
                              "or pass --address / set RAY_ADDRESS)")
    return found


def _check_listening(target: str) -> None:
    import contextlib
    import socket

    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or "://" in target:
        return
    with contextlib.suppress(OSError), socket.create_connection((host, int(port)), 3.0):
        return
    # ray.init would retry for minutes before giving up on an address nobody serves.
    raise ConnectionError(f"no Ray cluster answers at {target} (is it started? `echo-ray "
                          "start`, or pass --address / set RAY_ADDRESS)")
