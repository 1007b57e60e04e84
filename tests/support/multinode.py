"""A multi-node Ray cluster on one machine, for tests: a head and N worker nodes, each worker
node with a disk of its own, every node started and stopped by process id.

Why the namespaces:
- A worker node is a machine of its own only if it cannot see the others' files. Each one
  runs in its own mount namespace with a private tmpfs over the data directories (~/.cache,
  where echo-ray keeps sessions and checkpoints by default, and the Ray temp dir).
- `ray stop` (which `ray up`/`ray down` configs run) kills every Ray process it can see, and
  Ray resolves 127.0.0.1 to the machine's own address, exposing the test cluster. So a
  scenario runs inside a private PID + network + mount namespace (`run_isolated`): loopback
  is its own, 127.0.0.1 is every node's address, and its processes see only each other.

Where `unshare` is refused (no root, no user namespaces), `sandbox_unavailable()` says why
and the tests skip with that reason.

Self-contained on purpose (no project test helpers): the sandboxed child imports this file by
path, before anything else is set up.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [p for p in (str(ROOT),) if p not in sys.path]

from echo_ray.ops.localcluster import (  # noqa: E402
    AUTH_ENV,
    LocalCluster,
    Ports,
    _term_with_parent,
    ensure_auth_token,
    free_port,
    ray_executable,
)
from echo_ray.waiting import wait_until  # noqa: E402

RESULT_PREFIX = "MULTINODE-RESULT "
SANDBOX = ["unshare", "--pid", "--net", "--mount", "--fork", "--mount-proc", "--kill-child"]
# Worker nodes join a head on 127.0.0.1: they must be allowed to be cluster nodes, and node
# deaths must be noticed within seconds (tests kill nodes), not Ray's default ~30 s.
CLUSTER_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
               "RAY_health_check_period_ms": "1000",
               "RAY_health_check_timeout_ms": "1000",
               "RAY_health_check_failure_threshold": "5",
               "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def sandbox_unavailable() -> str | None:
    """Why the private namespaces cannot be made here, or None if they can."""
    if shutil.which("unshare") is None:
        return "the `unshare` command is not installed (util-linux)"
    if shutil.which("ip") is None:
        return "the `ip` command is not installed (iproute2), needed to bring loopback up"
    probe = subprocess.run([*SANDBOX, "sh", "-c",
                            "ip link set lo up && unshare --mount sh -c "
                            "'mount -t tmpfs tmpfs /mnt && umount /mnt'"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return ("`unshare --pid --net --mount` (and a tmpfs mount inside it) was refused: "
                f"{(probe.stderr or probe.stdout).strip()[:300]} (needs root)")
    return None


def run_isolated(file: str | Path, function: str, *, timeout_s: float,
                 env: dict[str, str] | None = None, private_net: bool = True) -> dict:
    """Run `function()` from `file` inside a private PID + network + mount namespace and
    return the JSON it returns. Its output goes to our stderr (pytest shows it on failure).
    `private_net=False` keeps the machine's network (to see what a cluster exposes on it);
    PIDs and mounts stay private, so `ray stop` inside still reaches only our processes.

    The child leads its own process group; on timeout the whole group is killed, and the
    namespace's init dying takes every process in it along (--kill-child)."""
    # ~/.cache (echo-ray's default data directory) on a tmpfs of the sandbox's own: what the
    # head writes there stays out of the machine's; worker nodes mount their own over it.
    cache = Path.home() / ".cache"
    script = (f'{"ip link set lo up && " if private_net else ""}mkdir -p {cache} && '
              f'mount -t tmpfs -o size=512m tmpfs {cache} && exec "$0" '
              f'{Path(__file__).resolve()} {Path(file).resolve()} {function}')
    sandbox = SANDBOX if private_net else [a for a in SANDBOX if a != "--net"]
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), full_env.get("PYTHONPATH", "")])
    # The output goes to a file that outlives a timeout, so a hang can be looked at.
    log = Path(tempfile.mkstemp(prefix=f"multinode-{function}-", suffix=".log")[1])
    with open(log, "w") as out:
        proc = subprocess.Popen([*sandbox, "bash", "-c", script, sys.executable],
                                stdout=out, stderr=subprocess.STDOUT, env=full_env,
                                start_new_session=True, preexec_fn=_term_with_parent)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            proc.wait(30)
            raise TimeoutError(f"{function} did not finish within {timeout_s:g}s; its "
                               f"output is in {log}") from None
    text = log.read_text(errors="replace")
    sys.stderr.write(text[-20000:])
    for line in reversed(text.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
            if isinstance(result, dict) and "error" in result:
                raise RuntimeError(f"{function} failed in the sandbox (output in {log}):\n"
                                   f"{result['error']}")
            log.unlink()
            return result
    raise RuntimeError(f"{function} in the sandbox gave no result (exit {proc.returncode}); "
                       f"output in {log}, ending:\n{text[-4000:]}")


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@dataclass
class WorkerNode:
    """One worker node: `unshare --mount` + tmpfs mounts + `ray start --block`, in its own
    process group (pgid == pid of the `unshare` process)."""

    name: str
    proc: subprocess.Popen
    log_path: Path
    ports: dict[str, int]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """The machine dies: SIGKILL to every process of the node at once."""
        kill_group(self.proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Orderly: SIGTERM to the group, SIGKILL what is left after `timeout_s`."""
        if self.proc.poll() is None:
            kill_group(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: not group_alive(self.proc.pid), timeout_s,
                       f"{self.name} exiting", interval_s=0.25)
        self.kill()

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path.exists():
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


@dataclass
class MultiNodeCluster:
    """A head (`LocalCluster`, 0 CPUs by default: a head that only coordinates) and worker
    nodes joined to it on 127.0.0.1. Use inside `run_isolated`."""

    head: LocalCluster
    workers: list[WorkerNode] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    private_dirs: list[Path] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.head.address

    @classmethod
    def start(cls, num_workers: int, *, head_cpus: int = 0, worker_cpus: int = 1,
              env: dict[str, str] | None = None, timeout_s: float = 180.0) -> MultiNodeCluster:
        ensure_auth_token()
        full_env = {**CLUSTER_ENV, **(env or {})}
        tmp = Path(tempfile.mkdtemp(prefix="eraymn", dir="/tmp"))
        head_args = ["--num-cpus", str(head_cpus)] if head_cpus == 0 else []
        head = LocalCluster.start(ports=Ports(), temp_dir=tmp / "head",
                                  num_cpus=head_cpus or None, env=full_env,
                                  extra_args=head_args, timeout_s=timeout_s)
        head.owns_temp_dir = True
        private = [Path.home() / ".cache", tmp / "node"]
        cluster = cls(head=head, env=full_env, private_dirs=private)
        try:
            for _ in range(num_workers):
                cluster.add_worker(cpus=worker_cpus, wait=False)
            cluster.wait_nodes(num_workers + 1, timeout_s)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def add_worker(self, *, cpus: int = 1, wait: bool = True,
                   timeout_s: float = 120.0) -> WorkerNode:
        name = f"worker{len(self.workers) + 1}"
        names = ("node_manager", "object_manager", "metrics_export", "dashboard_agent_listen",
                 "dashboard_agent_grpc", "runtime_env_agent")
        ports = {n: free_port() for n in names}
        low = 20000 + 1000 * len(self.workers)
        cmd = [ray_executable(), "start", "--address", self.address,
               "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus),
               "--temp-dir", str(self.private_dirs[1]),
               "--node-manager-port", str(ports["node_manager"]),
               "--object-manager-port", str(ports["object_manager"]),
               "--metrics-export-port", str(ports["metrics_export"]),
               "--dashboard-agent-listen-port", str(ports["dashboard_agent_listen"]),
               "--dashboard-agent-grpc-port", str(ports["dashboard_agent_grpc"]),
               "--runtime-env-agent-port", str(ports["runtime_env_agent"]),
               "--min-worker-port", str(low), "--max-worker-port", str(low + 999),
               "--object-store-memory", str(128 << 20), "--disable-usage-stats", "--block"]
        mounts = " && ".join(f"mkdir -p {d} && mount -t tmpfs -o size=512m tmpfs {d}"
                             for d in self.private_dirs)
        script = f'{mounts} && exec "$@"'
        log_path = self.head.temp_dir / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                     "bash", "-c", script, "ray", *cmd],
                                    stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, **AUTH_ENV, **self.env},
                                    start_new_session=True, preexec_fn=_term_with_parent)
        node = WorkerNode(name, proc, log_path, ports)
        self.workers.append(node)
        if wait:
            self.wait_nodes(len(self.alive_workers()) + 1, timeout_s)
        return node

    def alive_workers(self) -> list[WorkerNode]:
        return [w for w in self.workers if w.proc.poll() is None]

    def connect(self) -> None:
        """Make this process a driver of the cluster (once)."""
        from echo_ray.ops.deploy import connect

        connect(self.address)

    def alive_nodes(self) -> list[dict]:
        """Ray's view of the alive nodes (this process becomes a driver)."""
        import ray

        self.connect()
        return [n for n in ray.nodes() if n["Alive"]]

    def wait_nodes(self, count: int, timeout_s: float) -> None:
        """Until exactly `count` nodes are alive in the GCS's view."""
        def ready():
            for w in self.workers:
                if w.proc.poll() is not None and w.proc.returncode not in (-9, -15):
                    raise RuntimeError(f"{w.name} exited with {w.proc.returncode}:\n"
                                       f"{w.log_tail()}")
            return len(self.alive_nodes()) == count

        wait_until(ready, timeout_s, f"{count} alive Ray nodes", interval_s=0.5)

    def kill_worker(self, node: WorkerNode) -> float:
        """Kill one worker node's whole process group; return the monotonic time of the kill."""
        t = time.monotonic()
        node.kill()
        return t

    def stop(self) -> None:
        for w in self.workers:
            w.stop(timeout_s=20)
        self.head.stop()


def _child_main(file: str, function: str) -> None:
    """In the sandbox: load `file` by path, call `function()`, print its JSON result."""
    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here.parent), str(here.parent.parent)]
    spec = importlib.util.spec_from_file_location(f"_multinode_{Path(file).stem}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        result = getattr(module, function)()
    except BaseException:  # the test reports it; Ray's exit hooks could hang on a dead GCS
        import traceback

        result = {"error": traceback.format_exc()}
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    _child_main(sys.argv[1], sys.argv[2])
