"""The settings model: documented names, one default each, clear errors, masked secrets, the
data-directory rule, thresholds reaching the served policy, and the generated reference."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from echo_ray.autoscaling.config import ScalingConfig
from echo_ray.cache.config import CacheConfig
from echo_ray.settings import (
    REFERENCE_PATH,
    REPO_ROOT,
    Settings,
    SettingsError,
    get_settings,
    markdown,
    redact_url,
    variables,
)

TOKEN = "t" * 32
PASSWORD = "s3cret-pass"


def test_documented_names_set_their_fields():
    s = Settings.from_env({
        "REDIS_URL": "redis://127.0.0.1:6380/0", "SESSION_TTL_SECONDS": "60",
        "MAX_CONCURRENT_SESSIONS": "5", "SESSION_JOURNAL": "off", "ENABLE_CACHING": "no",
        "CACHE_TTL_SECONDS": "7", "MAX_REQUEST_BYTES": "2048", "WORKER_MAX_ONGOING_REQUESTS": "3",
        "WORKER_MAX_QUEUED_REQUESTS": "9", "MIN_INSTANCES": "2", "MAX_INSTANCES": "6",
        "PREDICTIVE_SCALING": "false", "AUTO_SCALING_ENABLED": "1", "LB_STRATEGY": " Round_Robin ",
        "ECHO_RAY_HTTP_HOST": "0.0.0.0", "ECHO_RAY_HTTP_PORT": "9000",
        "MAX_CACHE_MEMORY_MB": "64", "EVICTION_POLICY": "TinyLFU", "CACHE_NAMESPACE": "ns1",
        "RAY_ADDRESS": "127.0.0.1:6390", "ECHO_RAY_SCALING_NAMESPACE": "ns",
        "UNRELATED": "x", "TARGET_LATENCY_MS": ""})  # empty = unset
    assert s.sessions.redis_url_value() == "redis://127.0.0.1:6380/0"
    assert (s.sessions.ttl_s, s.sessions.max_sessions, s.sessions.journal) == (60, 5, False)
    assert (s.service.enable_caching, s.service.cache_ttl_s, s.service.max_request_bytes) == (
        False, 7, 2048)
    assert (s.service.worker_max_ongoing, s.service.worker_max_queued) == (3, 9)
    assert (s.service.http_host, s.service.http_port) == ("0.0.0.0", 9000)
    assert (s.scaling.min_instances, s.scaling.max_instances) == (2, 6)
    assert s.scaling.predictive is False and s.scaling.enabled is True
    assert s.scaling.target_latency_ms == ScalingConfig.target_latency_ms
    assert s.routing.strategy == "round_robin"
    assert (s.cache.max_memory_mb, s.cache.eviction_policy, s.cache.namespace) == (
        64.0, "tinylfu", "ns1")
    assert (s.cluster.address, s.cluster.namespace) == ("127.0.0.1:6390", "ns")


def test_one_default_per_setting():
    s = Settings.from_env({})
    # MAX_INSTANCES: 4 for the served worker and for ScalingConfig alike.
    assert s.scaling.max_instances == ScalingConfig().max_instances == 4
    scaling = s.scaling.config()
    for name, value in ScalingConfig().to_dict().items():
        if name not in ("resource_type", "lead_time_s"):  # the served worker starts in ~15 s
            assert getattr(scaling, name) == value, name
    assert s.cache_config() == CacheConfig(redis_url=None,
                                           cache_dir=str(s.paths.data_dir / "cache"))
    assert s.routing.strategy == "power_of_two" and s.sessions.redis_url is None


def test_data_directory_holds_everything(tmp_path):
    s = Settings.from_env({"ECHO_RAY_DATA_DIR": str(tmp_path)})
    assert (s.paths.sessions, s.paths.journal, s.paths.checkpoints, s.paths.cache) == (
        tmp_path / "sessions", tmp_path / "journal", tmp_path / "checkpoints",
        tmp_path / "cache")
    assert s.cache_config().cache_dir == str(tmp_path / "cache")
    results = s.cache_config(namespace="results", cache_dir=str(tmp_path / "r"), redis_url=None)
    assert (results.namespace, results.cache_dir) == ("results", str(tmp_path / "r"))
    # CACHE_DIR is the disk tier's folder and nothing else: off turns L3 off, sessions stay.
    off = Settings.from_env({"ECHO_RAY_DATA_DIR": str(tmp_path), "CACHE_DIR": "off"})
    assert off.paths.cache is None and off.cache_config().cache_dir is None
    assert off.paths.sessions == tmp_path / "sessions"
    assert off.paths.checkpoints == tmp_path / "checkpoints"
    moved = Settings.from_env({"ECHO_RAY_DATA_DIR": str(tmp_path), "CACHE_DIR": "/x/l3",
                               "SESSION_DIR": "/x/s", "ECHO_RAY_CHECKPOINT_DIR": "/x/c"})
    assert (moved.paths.cache, moved.paths.sessions, moved.paths.checkpoints) == (
        Path("/x/l3"), Path("/x/s"), Path("/x/c"))
    assert moved.paths.journal == tmp_path / "journal"
    assert Settings.from_env({}).paths.traces == REPO_ROOT / "data" / "traces"


@pytest.mark.parametrize("env, variable", [
    ({"MAX_INSTANCES": "lots"}, "MAX_INSTANCES"),
    ({"MIN_INSTANCES": "0"}, "MIN_INSTANCES"),
    ({"MIN_INSTANCES": "5", "MAX_INSTANCES": "3"}, "MAX_INSTANCES=3 must be >= MIN_INSTANCES=5"),
    ({"ENABLE_CACHING": "maybe"}, "ENABLE_CACHING"),
    ({"SESSION_TTL_SECONDS": "-1"}, "SESSION_TTL_SECONDS"),
    ({"MAX_CACHE_MEMORY_MB": "lots"}, "MAX_CACHE_MEMORY_MB"),
    ({"EVICTION_POLICY": "clock"}, "EVICTION_POLICY"),
    ({"CACHE_NAMESPACE": "a:b"}, "CACHE_NAMESPACE"),
    ({"SCALE_UP_THRESHOLD": "1.5"}, "SCALE_UP_THRESHOLD"),
    ({"TARGET_UTILISATION": "0.95"}, "TARGET_UTILISATION"),
    ({"LB_STRATEGY": "fastest"}, "LB_STRATEGY"),
    ({"ECHO_RAY_HTTP_PORT": "70000"}, "ECHO_RAY_HTTP_PORT"),
    ({"ECHO_RAY_API_TOKEN": "short"}, "ECHO_RAY_API_TOKEN"),
    ({"REDIS_URL": "http://u:pw@h/0"}, "REDIS_URL"),
])
def test_bad_values_name_the_variable(env, variable):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(env)
    with pytest.raises(ValueError):  # SettingsError is a ValueError
        Settings.from_env(env)


def test_secrets_never_show():
    url = f"rediss://user:{PASSWORD}@h:6380/0"
    s = Settings.from_env({"REDIS_URL": url, "ECHO_RAY_API_TOKEN": TOKEN,
                           "RAY_AUTH_TOKEN": "r" * 24})
    assert s.service.api_token.get_secret_value() == TOKEN
    assert s.sessions.redis_url_value() == url
    assert s.service.client_headers() == {"Authorization": f"Bearer {TOKEN}"}
    shown = s.effective()
    assert shown["sessions"]["redis_url"] == "rediss://user:***@h:6380/0"
    assert shown["service"]["api_token"] == "***" and shown["cluster"]["auth_token"] == "***"
    for text in (repr(s), str(s), str(shown), repr(s.cache_config())):
        assert TOKEN not in text and PASSWORD not in text and "r" * 24 not in text
    with pytest.raises(SettingsError) as info:  # nor do they in errors
        Settings.from_env({"ECHO_RAY_API_TOKEN": "tooshort-secret"})
    assert "tooshort-secret" not in str(info.value)
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact_url("redis://:p@ss@h/0") == "redis://:***@h/0"  # even unencoded


def test_thresholds_reach_the_served_policy():
    from echo_ray.app import worker_replica_options

    s = Settings.from_env({"SCALE_UP_THRESHOLD": "0.9", "SCALE_DOWN_THRESHOLD": "0.2",
                           "MIN_INSTANCES": "2", "MAX_INSTANCES": "5", "LEAD_TIME_S": "20"})
    kwargs = s.scaling.policy_kwargs()
    assert (kwargs["scale_up_threshold"], kwargs["scale_down_threshold"]) == (0.9, 0.2)
    assert kwargs["lead_time_s"] == 20.0
    options = worker_replica_options(s.scaling)
    auto = options["autoscaling_config"]
    assert (auto["min_replicas"], auto["max_replicas"], auto["initial_replicas"]) == (2, 5, 2)
    assert auto["policy"]["policy_function"] == "echo_ray.autoscaling.policy:ForecastPolicy"
    assert auto["policy"]["policy_kwargs"] == kwargs
    config = s.scaling.config()
    assert (config.scale_up_threshold, config.scale_down_threshold) == (0.9, 0.2)
    assert (config.min_instances, config.max_instances) == (2, 5)
    # PREDICTIVE_SCALING=false: Ray's default policy, same bounds; AUTO_SCALING_ENABLED=false:
    # a fixed MIN_INSTANCES replicas.
    reactive = worker_replica_options(
        Settings.from_env({"PREDICTIVE_SCALING": "false"}).scaling)["autoscaling_config"]
    assert "policy" not in reactive and reactive["max_replicas"] == 4
    fixed = Settings.from_env({"AUTO_SCALING_ENABLED": "false", "MIN_INSTANCES": "3",
                               "MAX_INSTANCES": "3"})
    assert worker_replica_options(fixed.scaling) == {"num_replicas": 3}


def test_python_values_win_over_the_environment():
    s = Settings.from_env({"MIN_INSTANCES": "2", "MAX_INSTANCES": "3"},
                          scaling={"max_instances": 7})
    assert (s.scaling.min_instances, s.scaling.max_instances) == (2, 7)
    assert Settings(**s.model_dump()) == s
    assert pickle.loads(pickle.dumps(s)) == s  # ships to Ray replicas as it is
    with pytest.raises(ValidationError, match="frozen"):
        s.scaling.max_instances = 3


def test_get_settings_follows_the_environment(monkeypatch):
    monkeypatch.setenv("MAX_INSTANCES", "6")
    first = get_settings()
    assert first.scaling.max_instances == 6 and get_settings() is first  # built once
    monkeypatch.setenv("MAX_INSTANCES", "8")
    assert get_settings().scaling.max_instances == 8
    monkeypatch.setenv("MAX_INSTANCES", "many")
    with pytest.raises(SettingsError, match="MAX_INSTANCES"):
        get_settings()


def test_nothing_is_read_at_import():
    code = ("import echo_ray.settings, echo_ray.cache, echo_ray.autoscaling, echo_ray.routing, "
            "echo_ray.dtesn.checkpoint, echo_ray.autoscaling.actor; print('ok')")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "MAX_INSTANCES": "bogus",
           "LB_STRATEGY": "bogus", "ECHO_RAY_SCALING_NAMESPACE": ""}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_every_variable_is_documented_once():
    names = variables()
    assert len(names) == len(set(names))
    text = markdown()
    assert all(f"| `{name}` |" in text for name in names)


def test_committed_reference_is_generated():
    committed = (REPO_ROOT / REFERENCE_PATH).read_text()
    assert committed == markdown(), ("docs/reference/configuration.md is stale: "
                                     "run `python -m echo_ray.settings --markdown`")


# ---- the Ray address rule ------------------------------------------------------------------
def _record_init(monkeypatch) -> list:
    """Pure unit test of the rule: record what `ray.init` would get instead of starting Ray."""
    import ray

    calls: list = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    return calls


def test_without_an_address_drivers_start_a_private_cluster(monkeypatch):
    from echo_ray.connection import connect

    calls = _record_init(monkeypatch)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert connect(num_cpus=2, namespace="x") is None
    assert calls == [{"address": "local", "log_to_driver": False, "num_cpus": 2,
                      "namespace": "x"}]


def test_an_address_nobody_serves_fails_at_once(monkeypatch):
    from echo_ray.connection import connect
    from echo_ray.ops.localcluster import free_port

    calls = _record_init(monkeypatch)
    dead = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("RAY_ADDRESS", dead)
    for address in (None, dead):  # RAY_ADDRESS or the argument, existing cluster or not
        for existing in (False, True):
            with pytest.raises(ConnectionError, match=dead):
                connect(address, existing=existing)
    assert calls == []


def test_echo_ray_config_masks_secrets(monkeypatch):
    import json

    from typer.testing import CliRunner

    from echo_ray.cli import app

    monkeypatch.setenv("ECHO_RAY_API_TOKEN", TOKEN)
    monkeypatch.setenv("REDIS_URL", f"redis://:{PASSWORD}@127.0.0.1:6380/0")
    monkeypatch.setenv("MAX_INSTANCES", "6")
    runner = CliRunner()
    out = runner.invoke(app, ["config", "--json"])
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert shown["scaling"]["max_instances"] == 6 and shown["service"]["api_token"] == "***"
    assert shown["sessions"]["redis_url"] == "redis://:***@127.0.0.1:6380/0"
    table = runner.invoke(app, ["config"])
    assert table.exit_code == 0 and "MAX_INSTANCES" in table.output
    for text in (out.output, table.output):
        assert TOKEN not in text and PASSWORD not in text
    monkeypatch.setenv("MAX_INSTANCES", "lots")
    bad = runner.invoke(app, ["config"])
    assert bad.exit_code == 1 and "MAX_INSTANCES" in bad.output
