"""A live echo-ray for tests and notebooks: a `ray start --head` cluster of our own with
deployments/serve_config.yaml deployed through the CLI, as a user would.

The cluster is separate from the test session's `ray.init()` cluster (a process can only be
connected to one), lives in its own temp dir and process group, and is stopped at exit.
The deployed config is the repository's, with only the proxy address (127.0.0.1, a free
port) and the data directories (inside the cluster's temp dir) changed, and tracing turned
on (echo_ray/ops/tracing.py: Ray's startup hook plus Serve's tracing config, spans written
to `<temp dir>/spans`) so the tests can follow a request across processes.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from echo_ray.ops.deploy import wait_http_ready
from echo_ray.ops.localcluster import LocalCluster, free_port
from echo_ray.ops.serveconfig import load_yaml, with_http
from echo_ray.ops.tracing import TRACE_DIR_ENV

KEEP_ENV = "ECHO_RAY_OPS_KEEP_LOGS"
TRACING_HOOK = "echo_ray.ops.tracing:setup_ray_tracing"
SERVE_TRACING = {"enabled": True,
                 "exporter_import_path": "echo_ray.ops.tracing:serve_span_processors"}

ROOT = Path(__file__).resolve().parents[2]
SERVE_CONFIG = ROOT / "deployments" / "serve_config.yaml"
# Ray reports metrics every 10 s by default; tests do not wait that long. Not faster than
# 3 s: the agent drops a gauge not refreshed within 2 report intervals, and on a busy
# machine 1 s reports arrive late (the scaling gauges then vanish between scrapes).
FAST_METRICS = {"RAY_metrics_report_interval_ms": "3000"}


@dataclass
class LiveApp:
    cluster: LocalCluster
    base_url: str
    config_path: Path
    deploy_seconds: float
    spans_dir: Path | None = None

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a subprocess (CLI, notebook kernel) aimed at this cluster."""
        tracing = {TRACE_DIR_ENV: str(self.spans_dir)} if self.spans_dir else {}
        return self.cluster.env(ECHO_RAY_ADDRESS=self.cluster.address,
                                ECHO_RAY_URL=self.base_url, **tracing, **extra)

    def cli(self, *args: str, timeout_s: float = 300.0) -> subprocess.CompletedProcess:
        """`python -m echo_ray.ops.cli ARGS` against this cluster."""
        return subprocess.run([sys.executable, "-m", "echo_ray.ops.cli", *args],
                              env=self.env(), capture_output=True, text=True,
                              timeout=timeout_s, cwd=ROOT)

    def stop(self) -> None:
        self.cluster.stop()
        if os.environ.get(KEEP_ENV):  # keep Ray's logs and the spans to look at a failure
            print(f"[ops] kept {self.cluster.temp_dir} ({KEEP_ENV} is set)", file=sys.stderr)
        else:
            shutil.rmtree(self.cluster.temp_dir, ignore_errors=True)


def local_copy(config: Path, workdir: Path, port: int, tracing: bool = False,
               app_args: dict | None = None) -> Path:
    """The config with the proxy on 127.0.0.1:`port` and app data under `workdir`;
    `app_args` sections (e.g. `{"sessions": {"max_sessions": 20000}}`) update the app's."""
    data = with_http(load_yaml(config), host="127.0.0.1", port=port)
    for section, values in (app_args or {}).items():
        for app in data["applications"]:
            app.setdefault("args", {}).setdefault(section, {}).update(values)
    if tracing:
        data["tracing_config"] = dict(SERVE_TRACING)
    data_dir = workdir / "data"
    for app in data["applications"]:
        env = app.setdefault("runtime_env", {}).setdefault("env_vars", {})
        env["ECHO_RAY_DATA_DIR"] = str(data_dir)
        env["SESSION_DIR"] = str(data_dir / "sessions")  # the same; for the service's own reader
    out = workdir / "serve_config.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def start_live_app(config: Path = SERVE_CONFIG, *, num_cpus: int = 6, tracing: bool = True,
                   timeout_s: float = 240.0, app_args: dict | None = None) -> LiveApp:
    """Start a cluster and deploy `config` on it with `echo_ray.ops.cli deploy` (with
    `app_args` over the config's application args, see `local_copy`)."""
    tmp = Path(tempfile.mkdtemp(prefix="eray", dir="/tmp"))  # short: Unix socket paths
    spans = tmp / "spans" if tracing else None
    env = dict(FAST_METRICS, **({TRACE_DIR_ENV: str(spans)} if spans else {}))
    extra = ["--tracing-startup-hook", TRACING_HOOK] if tracing else []
    try:
        cluster = LocalCluster.start(temp_dir=tmp, num_cpus=num_cpus, env=env,
                                     extra_args=extra)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        port = free_port()
        path = local_copy(config, cluster.temp_dir, port, tracing=tracing, app_args=app_args)
        app = LiveApp(cluster, f"http://127.0.0.1:{port}", path, 0.0, spans)
        t0 = time.monotonic()
        done = app.cli("deploy", str(path), "--timeout", str(timeout_s),
                       timeout_s=timeout_s + 60)
        if done.returncode != 0:
            raise RuntimeError(f"`echo_ray.ops.cli deploy` failed ({done.returncode}):\n"
                               f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        wait_http_ready(f"{app.base_url}/readyz", 120)
        app.deploy_seconds = time.monotonic() - t0
        return app
    except BaseException:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_shared: dict[str, LiveApp] = {}


def shared_live_app() -> LiveApp:
    """One live app per process (tests and notebooks share it); stopped at exit."""
    if "app" not in _shared:
        _shared["app"] = start_live_app()
        atexit.register(stop_shared)
    return _shared["app"]


def stop_shared() -> None:
    app = _shared.pop("app", None)
    if app is not None:
        app.stop()
