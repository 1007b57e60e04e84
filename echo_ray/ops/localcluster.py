"""A single-node Ray cluster started with `ray start --head`, on ports we choose.

Why not `ray stop`: it stops every Ray process on the machine, including clusters that are
not ours (a test session's, another user's). A cluster started with `block=True` runs under
one `ray start --block` process in its own process group; `stop()` ends that process (Ray
then tears its own children down) and, if anything is left after the timeout, that group.

Every port (GCS, dashboard, dashboard agent, runtime-env agent, client server, metrics) is
given explicitly so two clusters on one machine never collide, and `temp_dir` keeps this
cluster's `ray_current_cluster` and Prometheus service-discovery file apart from
`/tmp/ray`, so `ray.init()` elsewhere never picks this cluster up by accident.

Loopback only: Ray turns `--node-ip-address 127.0.0.1` into the machine's own address, and
then the GCS, raylet, metrics agent and workers listen on every interface. Ray keeps a
single-node cluster on loopback only where it thinks clusters are unsupported (macOS,
Windows); `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` asks for that behaviour here. Every process
of the cluster gets it, and so must every driver (`LOOPBACK_ENV`, `prefer_loopback`): a
driver without it would look for the cluster at the machine's address.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from echo_ray.settings import LOOPBACK_ENV
from echo_ray.waiting import wait_until

SD_FILE = "prom_metrics_service_discovery.json"
# Ray 2.60 enables token authentication for new local clusters, but a client given an
# explicit address only sends the token when told to: cluster and clients both say so.
AUTH_ENV = {"RAY_AUTH_MODE": "token"}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


def loopback_only(address: str | None) -> bool:
    """True if `address` ("host:port", or "auto": the latest `ray start` here) is a cluster
    that listens on loopback only (one started with LOOPBACK_ENV)."""
    if not address or address == "auto":
        from ray._private.utils import read_ray_address

        address = read_ray_address()
    host, sep, port = (address or "").rpartition(":")
    if not sep or host not in LOOPBACK_HOSTS or not port.isdigit():
        return False
    from ray._raylet import node_ip_address_from_perspective  # type: ignore[attr-defined]

    own = node_ip_address_from_perspective(None)
    if own.startswith("127.") or own == "::1":
        return False  # no other address here: nothing to choose between
    return port_open("127.0.0.1", int(port)) and not port_open(own, int(port))


SERVE_LOOPBACK_HOOK = "echo_ray.ops.localcluster.serve_grpc_on_loopback"


def serve_grpc_on_loopback() -> None:
    """Worker setup hook (runtime_env `worker_process_setup_hook`, which `prefer_loopback`
    gives drivers of a loopback-only cluster): Serve 2.60 binds every replica's inter-deployment
    gRPC server to [::]:0, with no option to choose; in a process of a loopback-only
    cluster (LOOPBACK_ENV), bind it to 127.0.0.1 instead. A no-op anywhere else."""
    from echo_ray.settings import loopback_mode

    if not loopback_mode():
        return
    from ray.serve._private import replica

    original = replica.add_port_to_grpc_server
    if getattr(original, "loopback", False):
        return

    def add_port_on_loopback(server, address: str):
        if address.startswith("[::]:"):
            address = "127.0.0.1:" + address.rsplit(":", 1)[1]
        return original(server, address)

    setattr(add_port_on_loopback, "loopback", True)  # noqa: B010 (marks the wrapper as ours)
    replica.add_port_to_grpc_server = add_port_on_loopback


def prefer_loopback(address: str | None) -> dict:
    """Before `ray.init(address)`: a driver of a loopback-only cluster must keep 127.0.0.1
    as its node address too (Ray reads the switch at import, so set both). Returns the
    runtime_env for `ray.init`: on such a cluster, the hook that keeps Serve's replica gRPC
    servers on loopback (the actors this driver starts, Serve's controller and replicas
    included, inherit it)."""
    if not loopback_only(address):
        return {}
    from echo_ray.settings import enter_loopback_mode

    enter_loopback_mode()
    return {"worker_process_setup_hook": SERVE_LOOPBACK_HOOK}


def ensure_auth_token() -> None:
    """Create Ray's default auth token (~/.ray/auth_token) if there is none, as
    `ray.init()` does for a new local cluster."""
    from echo_ray.settings import get_settings

    cluster = get_settings().cluster
    if cluster.auth_token is not None or cluster.auth_token_path is not None:
        return
    from ray._private.authentication.authentication_token_setup import (
        _get_default_token_path,
        generate_and_save_token,
    )

    if not _get_default_token_path().exists():
        generate_and_save_token()


_HANDED_OUT: deque[int] = deque(maxlen=256)  # this process's recent free_port answers
_HANDED_OUT_LOCK = threading.Lock()


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now, and not one this process handed out
    lately: the kernel may give a just-closed port again, and a cluster's ports must differ."""
    with _HANDED_OUT_LOCK:
        for _ in range(100):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _HANDED_OUT:
                _HANDED_OUT.append(port)
                return port
    raise OSError("no free TCP port on 127.0.0.1 in 100 tries")


def ray_executable() -> str:
    """The `ray` script next to this interpreter (the venv's), else the one on PATH."""
    here = Path(sys.executable).with_name("ray")
    if here.exists():
        return str(here)
    found = shutil.which("ray")
    if not found:
        raise FileNotFoundError("the `ray` command was not found next to "
                                f"{sys.executable} nor on PATH")
    return found


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout_s):
        return True
    return False


@dataclass
class Ports:
    gcs: int = field(default_factory=free_port)
    dashboard: int = field(default_factory=free_port)
    metrics_export: int = field(default_factory=free_port)
    client_server: int = field(default_factory=free_port)
    dashboard_agent_listen: int = field(default_factory=free_port)
    dashboard_agent_grpc: int = field(default_factory=free_port)
    runtime_env_agent: int = field(default_factory=free_port)


@dataclass
class LocalCluster:
    """Handle on one `ray start --head` cluster on 127.0.0.1."""

    ports: Ports
    temp_dir: Path
    proc: subprocess.Popen | None = None  # the `ray start --block` process, if blocking
    log_path: Path | None = None
    owns_temp_dir: bool = False
    loopback_env: dict[str, str] = field(default_factory=lambda: dict(LOOPBACK_ENV))

    @property
    def address(self) -> str:
        """The GCS address, what `ray.init(address=...)` and RAY_ADDRESS take."""
        return f"127.0.0.1:{self.ports.gcs}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.dashboard}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics_export}/metrics"

    @property
    def service_discovery_file(self) -> Path:
        """Ray keeps the list of metrics endpoints here (the file Prometheus' file_sd reads)."""
        return self.temp_dir / SD_FILE

    def auth_headers(self) -> dict[str, str]:
        """The bearer token Ray's dashboard wants (token auth is on for our clusters)."""
        from echo_ray.settings import get_settings

        token = get_settings().cluster.ray_auth_token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def env(self, **extra: str) -> dict[str, str]:
        """This process's environment pointed at this cluster (for subprocesses)."""
        from echo_ray.settings import child_environ

        return child_environ({**AUTH_ENV, **self.loopback_env, "RAY_ADDRESS": self.address, **extra},
                             drop=("RAY_DASHBOARD_ADDRESS",))

    @classmethod
    def start(cls, *, ports: Ports | None = None, temp_dir: str | Path | None = None,
              ray_default_temp_dir: bool = False, num_cpus: int | None = None,
              object_store_mb: int | None = 256, block: bool = True,
              env: dict[str, str] | None = None, extra_args: list[str] | None = None,
              timeout_s: float = 180.0) -> LocalCluster:
        """Start the head and wait (bounded) until the GCS and the dashboard answer.

        `block=True` (tests, notebooks): the cluster lives under one process we own; call
        `stop()`. `block=False` (`echo-ray start`): Ray daemonises, `ray stop` ends it.
        `ray_default_temp_dir=True` keeps Ray's /tmp/ray (so `ray status`, `ray stop` and
        the shipped prometheus.yml find it); otherwise a private `temp_dir` (made if None).
        """
        if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int)
                                     or num_cpus < 1):
            raise ValueError(f"num_cpus must be an integer >= 1, got {num_cpus!r}")
        ports = ports or Ports()
        owns = temp_dir is None and not ray_default_temp_dir
        if ray_default_temp_dir:
            from ray._common.utils import get_default_ray_temp_dir

            tmp = Path(get_default_ray_temp_dir())
        else:
            # Unix socket paths must stay under ~100 bytes: keep the temp dir short.
            tmp = Path(temp_dir) if temp_dir else Path(tempfile.mkdtemp(prefix="eray",
                                                                        dir="/tmp"))
        tmp.mkdir(parents=True, exist_ok=True)
        cmd = [ray_executable(), "start", "--head", "--node-ip-address", "127.0.0.1",
               "--port", str(ports.gcs),
               "--dashboard-host", "127.0.0.1", "--dashboard-port", str(ports.dashboard),
               "--include-dashboard", "true",
               "--metrics-export-port", str(ports.metrics_export),
               "--ray-client-server-port", str(ports.client_server),
               "--dashboard-agent-listen-port", str(ports.dashboard_agent_listen),
               "--dashboard-agent-grpc-port", str(ports.dashboard_agent_grpc),
               "--runtime-env-agent-port", str(ports.runtime_env_agent),
               "--disable-usage-stats"]
        if not ray_default_temp_dir:
            cmd += ["--temp-dir", str(tmp)]
        if num_cpus is not None:
            cmd += ["--num-cpus", str(num_cpus)]
        if object_store_mb:
            cmd += ["--object-store-memory", str(int(object_store_mb) << 20)]
        cmd += list(extra_args or [])
        if block:
            cmd.append("--block")
        ensure_auth_token()
        from echo_ray.settings import child_environ

        full_env = child_environ({**AUTH_ENV, **LOOPBACK_ENV, **(env or {})},
                                 drop=("RAY_ADDRESS", "RAY_DASHBOARD_ADDRESS"))
        # Tear down at once on SIGTERM (no drain wait for a local test cluster).
        full_env.setdefault("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "0")
        log_path = tmp / f"ray-start-{ports.gcs}.log"
        loopback = {k: full_env[k] for k in LOOPBACK_ENV}
        cluster = cls(ports=ports, temp_dir=tmp, log_path=log_path, owns_temp_dir=owns,
                      loopback_env=loopback)
        with open(log_path, "wb") as log:
            if block:
                cluster.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                env=full_env, start_new_session=True,
                                                preexec_fn=_term_with_parent)
            else:
                done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                                      timeout=timeout_s)
                if done.returncode != 0:
                    raise RuntimeError(f"`ray start` failed (exit {done.returncode}):\n"
                                       f"{cluster.log_tail()}")
        try:
            cluster.wait_ready(timeout_s)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def wait_ready(self, timeout_s: float) -> None:
        """Until the head's raylet is registered: the GCS and the dashboard answer seconds
        before it on a busy machine, and a driver that connects then finds no node."""
        def up():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"`ray start` exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            return (port_open("127.0.0.1", self.ports.gcs)
                    and port_open("127.0.0.1", self.ports.dashboard)
                    and self.alive_nodes() > 0)

        wait_until(up, timeout_s, f"Ray head on {self.address} (dashboard {self.dashboard_url})",
                   interval_s=0.25)

    def alive_nodes(self) -> int:
        """Nodes the GCS lists as alive (the dashboard's state API; 0 when it does not answer)."""
        import httpx

        try:
            r = httpx.get(f"{self.dashboard_url}/api/v0/nodes", headers=self.auth_headers(),
                          params={"filter_keys": "state", "filter_predicates": "=",
                                  "filter_values": "ALIVE"}, timeout=5)
            return len(r.json()["data"]["result"]["result"]) if r.status_code == 200 else 0
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return 0

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path and self.log_path.exists():
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def stop(self, timeout_s: float = 30.0) -> None:
        """End this cluster's processes only (see the module docstring)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if proc is not None:
            # Ray's children (raylet, workers) may outlive `ray start` by a moment; they
            # are in the process group we created for it, and nothing else is.
            try:
                wait_until(lambda: not _group_alive(proc.pid), 15, "Ray processes exiting",
                           interval_s=0.25)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        if self.owns_temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def _term_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, so a killed test run or notebook
    server does not leave the cluster behind (Ray cleans up on SIGTERM)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PDEATHSIG


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
