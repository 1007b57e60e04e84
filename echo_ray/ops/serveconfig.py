"""Load and check a Serve config (`serve deploy` / `serve run` / KubeRay `serveConfigV2`).

Serve's own schema (`ServeDeploySchema`) accepts unknown keys on purpose (older Serve
versions ignore options of newer ones), so a typo such as `max_replica: 8` deploys silently
with the default. `check_serve_config` adds what we want before a deploy:

- Serve's schema validation (types, ranges, unique names);
- no unknown keys at any level Serve knows (applications, deployments, actor options,
  HTTP/gRPC/logging/tracing options, `autoscaling_config` and its `policy`,
  `request_router_config`);
- an autoscaling `policy_function` that imports and accepts its `policy_kwargs`;
- a `request_router_class` that imports, and for our `EchoRequestRouter` a strategy that
  accepts its options;
- `runtime_env.env_vars` and the app builder's `args` that the settings model
  (echo_ray.settings) accepts.

Every problem raises ValueError naming where it is (e.g. `applications[0].deployments[1]`).
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def load_yaml(path: str | Path) -> dict:
    """A YAML mapping from `path`; ValueError if it is missing or not a mapping."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"config file {str(p)!r} does not exist")
    data = yaml.safe_load(p.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(p)!r} must hold a YAML mapping, got "
                         f"{type(data).__name__}")
    return data


def _model_of(annotation) -> tuple[type | None, bool]:
    """(pydantic model class, is_list) behind an annotation like Optional[List[Model]]."""
    from pydantic import BaseModel

    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            model, many = _model_of(arg)
            if model is not None:
                return model, many
        return None, False
    if origin in (list, typing.List):  # noqa: UP006 - matching what Ray annotates
        args = typing.get_args(annotation)
        model, _ = _model_of(args[0]) if args else (None, False)
        return model, model is not None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def _dict_models() -> dict[str, type]:
    """Fields Serve types as plain dicts but validates with a model later."""
    from ray.serve.config import AutoscalingConfig, AutoscalingPolicy, RequestRouterConfig

    return {"autoscaling_config": AutoscalingConfig, "policy": AutoscalingPolicy,
            "request_router_config": RequestRouterConfig}


def unknown_keys(data: Any, model: type, where: str = "") -> list[str]:
    """Paths of keys in `data` that `model` (recursively) does not define."""
    if not isinstance(data, Mapping):
        return []
    fields = model.model_fields
    known = set(fields) | {f.alias for f in fields.values() if f.alias}
    extra = _dict_models()
    found = []
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in known:
            found.append(path)
            continue
        name = key if key in fields else next(n for n, f in fields.items() if f.alias == key)
        sub, many = _model_of(fields[name].annotation)
        if sub is None and name in extra:
            sub, many = extra[name], False
        if sub is None:
            continue
        if many and isinstance(value, list):
            for i, item in enumerate(value):
                found += unknown_keys(item, sub, f"{path}[{i}]")
        elif isinstance(value, Mapping):
            found += unknown_keys(value, sub, path)
    return found


def _import(path: str, where: str):
    from ray._common.utils import import_attr

    try:
        return import_attr(path)
    except Exception as exc:
        raise ValueError(f"{where}: cannot import {path!r} ({type(exc).__name__}: {exc})") \
            from None


def _check_policy(policy: Mapping, where: str) -> None:
    target = policy.get("policy_function")
    if not isinstance(target, str):
        return  # Serve's default policy
    fn = _import(target, f"{where}.policy_function")
    kwargs = policy.get("policy_kwargs") or {}
    if isinstance(fn, type):
        try:
            fn(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}.policy_kwargs rejected by {target}: {exc}") from None


def _check_router(router: Mapping, where: str) -> None:
    from echo_ray.routing.router import ROUTER_CLASS_PATH

    cls_path = router.get("request_router_class")
    if not isinstance(cls_path, str):
        return
    _import(cls_path, f"{where}.request_router_class")
    if cls_path == ROUTER_CLASS_PATH:
        from echo_ray.routing.registry import make_strategy

        kwargs = dict(router.get("request_router_kwargs") or {})
        try:
            make_strategy(kwargs.pop("strategy", None), **kwargs)
        except ValueError as exc:
            raise ValueError(f"{where}.request_router_kwargs: {exc}") from None


def _check_env(env_vars: Mapping, args: Mapping, where: str) -> None:
    from echo_ray.settings import Settings

    bad = [k for k, v in env_vars.items() if not isinstance(v, str)]
    if bad:
        raise ValueError(f"{where}: env var values must be strings (quote them), not for {bad}")
    try:
        Settings.from_env(dict(env_vars), **args)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def check_serve_config(data: Mapping) -> Any:
    """Validate a Serve multi-application config; returns the `ServeDeploySchema`."""
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    if not isinstance(data, Mapping):
        raise ValueError(f"serve config must be a mapping, got {type(data).__name__}")
    try:
        schema = ServeDeploySchema.model_validate(dict(data))
    except ValidationError as exc:
        raise ValueError(f"serve config does not match Serve's schema:\n{exc}") from None
    except (ImportError, AttributeError) as exc:  # Serve imports policy paths while parsing
        raise ValueError(f"serve config names something that does not import: "
                         f"{type(exc).__name__}: {exc}") from None
    unknown = unknown_keys(data, ServeDeploySchema)
    if unknown:
        raise ValueError(f"serve config has keys Serve does not know (typos?): {unknown}")
    from ray.serve.config import AutoscalingConfig, RequestRouterConfig

    for i, app in enumerate(data["applications"]):
        env = (app.get("runtime_env") or {}).get("env_vars") or {}
        _check_env(env, app.get("args") or {}, f"applications[{i}] (runtime_env.env_vars, args)")
        for j, dep in enumerate(app.get("deployments") or []):
            where = f"applications[{i}].deployments[{j}] ({dep.get('name')})"
            auto = dep.get("autoscaling_config")
            if auto:
                try:
                    AutoscalingConfig(**{k: v for k, v in auto.items() if k != "policy"})
                except ValidationError as exc:
                    raise ValueError(f"{where}.autoscaling_config: {exc}") from None
                if auto.get("policy"):
                    _check_policy(auto["policy"], f"{where}.autoscaling_config.policy")
            router = dep.get("request_router_config")
            if router:
                _check_router(router, f"{where}.request_router_config")
                try:
                    RequestRouterConfig(**router)
                except ValidationError as exc:
                    raise ValueError(f"{where}.request_router_config: {exc}") from None
    return schema


def load_serve_config(path: str | Path) -> Any:
    """`check_serve_config` of a YAML file."""
    return check_serve_config(load_yaml(path))


def with_http(data: Mapping, *, host: str | None = None, port: int | None = None) -> dict:
    """A copy of the config with the proxy's host/port replaced (local runs, tests)."""
    out = copy.deepcopy(dict(data))
    http = dict(out.get("http_options") or {})
    if host is not None:
        http["host"] = host
    if port is not None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be an integer in 1..65535, got {port!r}")
        http["port"] = port
    out["http_options"] = http
    return out


def default_config(name: str = "echo-ray", route_prefix: str = "/") -> dict:
    """The app from code only (`echo_ray.app:build_app`, settings from the environment), for
    when no config file is at hand."""
    return {"applications": [{"name": name, "route_prefix": route_prefix,
                              "import_path": "echo_ray.app:build_app"}]}
