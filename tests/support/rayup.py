"""Machines on one host for `ray up`: each a private network, PID and mount namespace with its
own home, /tmp and sshd, joined by a bridge, so Ray's cluster launcher can SSH into them as
into real hosts (tests/multinode/test_multinode_ray_up.py).

Why a bridge and not 127.0.0.1 / 127.0.0.2 on one loopback: two Ray nodes in one network
namespace collide on the ports the shipped config names. Ray 2.60 binds a node whose address
is not 127.0.0.1 on every interface (reporter_agent.py: the metrics exporter on ""; the
dashboard agent on its address *and* 127.0.0.1), so a worker at 127.0.0.2 asks for
0.0.0.0:8080 and 127.0.0.1:52365, which the head at 127.0.0.1 already holds. On a bridge each
machine has its own network stack and address (10.97.0.x), as on a LAN, and the config's
ports and commands stay exactly those shipped.

Why each machine's own PID namespace: the config's `ray stop` lines stop every Ray process
they can see. The worker's `ray stop` must not reach the head's processes.

Why each machine's own home and /tmp: `~/echo-ray`, `~/echo-venv`, `~/.bashrc`,
`~/ray_bootstrap*` and Ray's /tmp/ray (session dirs, the local provider's cluster state) are
per host on real machines; here they are directories of the test's work dir, bind-mounted
over /root and /tmp inside the machine, so nothing touches the real /root or /tmp.

The machines have no route beyond the bridge (no PyPI): each home gets a pip.conf that points
pip at a wheelhouse prepared before (`ensure_wheelhouse`), the way a host behind a package
mirror is configured. The config's own setup commands stay those shipped.

Use inside `tests.support.multinode.run_isolated` (the outer PID + net + mount namespace).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from echo_ray.waiting import wait_until
from tests.support.multinode import ROOT, kill_group, sandbox_unavailable

SUBNET = "10.97.0"
CLIENT_IP = f"{SUBNET}.254"  # the test itself, where `ray up` runs (the user's laptop)
BRIDGE = "erbr0"
# What `bash --login` gives root on Debian (/etc/profile): the `python3` a node's setup
# commands find before ~/echo-venv exists.
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SSHD_CANDIDATES = ("/usr/sbin/sshd", "openssh/usr/sbin/sshd")  # the second under the venv


def venv_dirs() -> list[Path]:
    """Where `make` keeps unpacked tools and caches: the checkout's .venv, else the venv
    this Python runs in (a git worktree sharing another checkout's venv)."""
    return list(dict.fromkeys([ROOT / ".venv", Path(sys.prefix)]))


def find_sshd() -> str | None:
    """The machine's sshd, else Debian's openssh-server that `make sshd-tools` unpacks."""
    for candidate in SSHD_CANDIDATES:
        for base in ([Path("/")] if candidate.startswith("/") else venv_dirs()):
            path = base / candidate
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    return None


def rayup_unavailable() -> str | None:
    """Why the `ray up` test cannot run here, or None."""
    reason = sandbox_unavailable()
    if reason:
        return reason
    if ROOT.resolve().is_relative_to("/tmp"):
        # every machine, and the sandbox the test runs in, mounts its own /tmp: a checkout
        # (and its .venv wheelhouse) under /tmp would be hidden from them
        return (f"the checkout {ROOT} is under /tmp, which each test machine replaces with a "
                "private one: run this test from a checkout outside /tmp")
    if find_sshd() is None:
        return ("no sshd: neither /usr/sbin/sshd nor Debian's openssh-server unpacked into "
                ".venv/openssh (`make sshd-tools`, which `make test` runs)")
    for tool, why in (("ssh", "the cluster launcher's SSH client (openssh-client)"),
                      ("ssh-keygen", "keys for the test (openssh-client)"),
                      ("rsync", "`ray up` copies file_mounts with rsync (Debian: rsync)")):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed: {why}"
    if shutil.which("python3", path=NODE_PATH) is None:
        return f"no python3 on a login shell's PATH ({NODE_PATH}) for the nodes' virtualenv"
    probe = subprocess.run(
        ["unshare", "--net", "sh", "-c",
         "ip link add erprobe0 type veth peer name erprobe1 && ip link add erprobe2 type bridge"],
        capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"veth/bridge links refused: {(probe.stderr or probe.stdout).strip()[:300]}"
    return None


def runtime_requirements() -> list[str]:
    """echo-ray's runtime dependencies (pyproject.toml), what `pip install -e` resolves."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the caller skips with this reason
        raise RuntimeError("reading pyproject.toml needs Python >= 3.11 (tomllib)") from None
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [*data["project"]["dependencies"], *data["build-system"]["requires"]]


def ensure_wheelhouse(timeout_s: float = 900.0) -> Path:
    """Wheels for `pip install -e ~/echo-ray` on a node, with the nodes' own python3, at the
    versions of requirements.lock; downloaded once (needs the network) and kept in the venv
    (`ray-up/wheels`) until the lock, the dependencies or that python3 change. Resolving with
    the nodes' interpreter matters: markers such as `python_full_version < "3.11.3"`
    (redis's async-timeout) depend on it. RuntimeError when it cannot be prepared."""
    python3 = shutil.which("python3", path=NODE_PATH)
    assert python3 is not None
    version = subprocess.run([python3, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    requirements = runtime_requirements()
    key = hashlib.sha256("\n".join([version, (ROOT / "requirements.lock").read_text(),
                                    *requirements]).encode()).hexdigest()[:16]
    base = venv_dirs()[0] if venv_dirs()[0].is_dir() else venv_dirs()[-1]
    home = base / "ray-up"
    wheels, stamp = home / "wheels", home / "wheels.key"
    if stamp.is_file() and stamp.read_text().strip() == key:
        return wheels
    shutil.rmtree(wheels, ignore_errors=True)
    downloader = home / "pip-venv"  # a venv of the nodes' python3: its pip resolves for them
    env = {"PATH": NODE_PATH, "HOME": str(Path.home())}
    steps = [[python3, "-m", "venv", "--clear", str(downloader)],
             [str(downloader / "bin" / "python"), "-m", "pip", "download", "-q",
              "--disable-pip-version-check", "-d", str(wheels),
              "-c", str(ROOT / "requirements.lock"), *requirements, "pip"]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, env=env, timeout=timeout_s)
        if done.returncode != 0:
            raise RuntimeError(f"could not prepare the wheelhouse ({' '.join(step[:4])} ...): "
                               f"{(done.stderr or done.stdout).strip()[-1500:]}")
    shutil.rmtree(downloader, ignore_errors=True)
    stamp.write_text(key + "\n")
    return wheels


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {(done.stderr or done.stdout).strip()}")
    return done


@dataclass
class Machine:
    """One host: its own network namespace (address on the bridge), PID and mount namespaces
    (home, /tmp, /run of its own) and an sshd on port 22, started by process id."""

    name: str
    ip: str
    home: Path
    log_path: Path
    proc: subprocess.Popen | None = None

    def stop(self) -> None:
        """The machine's power switch: its PID namespace's init dies, and every process of
        the machine with it (sshd, Ray, a daemonised redis-server)."""
        if self.proc is None:
            return
        kill_group(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Lan:
    """A bridge with the test on CLIENT_IP and machines on SUBNET.1, .2, ...; inside
    `run_isolated` only (it mounts over /tmp and /run and creates links)."""

    def __init__(self, work: Path, sshd: str, wheelhouse: Path):
        self.work, self.sshd, self.wheelhouse = work, sshd, wheelhouse
        self.machines: list[Machine] = []
        self.ssh_dir = work / "ssh"
        self.key = self.ssh_dir / "id_ed25519"

    def setup(self) -> None:
        # The outer sandbox's own /tmp (ray up keeps its cluster state and SSH control sockets
        # in /tmp/ray...) and /run (ip netns).
        for path in ("/tmp", "/run"):
            sh("mount", "-t", "tmpfs", "-o", "mode=1777" if path == "/tmp" else "mode=755",
               "tmpfs", path)
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{CLIENT_IP}/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        self.ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "echo-ray-ray-up-test",
           "-f", str(self.key))
        authorized = self.ssh_dir / "authorized_keys"
        authorized.write_text(Path(f"{self.key}.pub").read_text())
        authorized.chmod(0o600)
        # sshd's privilege-separation user, which Debian's package would add to /etc/passwd:
        # here only in the machines' view of /etc/passwd.
        passwd = self.work / "passwd"
        passwd.write_text(Path("/etc/passwd").read_text().rstrip("\n")
                          + "\nsshd:x:65500:65534::/run/sshd:/usr/sbin/nologin\n")

    def add_machine(self, name: str) -> Machine:
        index = len(self.machines) + 1
        ip = f"{SUBNET}.{index}"
        mdir = self.work / name
        home, tmp = mdir / "home", mdir / "tmp"
        shutil.copytree("/etc/skel", home, symlinks=True)  # a new user's home (useradd -m)
        home.chmod(0o700)
        tmp.mkdir(mode=0o1777)
        tmp.chmod(0o1777)
        # A host behind a package mirror: pip's user config names the wheelhouse, so the
        # config's `pip install` lines run as shipped.
        (home / ".config" / "pip").mkdir(parents=True)
        (home / ".config" / "pip" / "pip.conf").write_text(
            f"[global]\nno-index = true\nfind-links = {self.wheelhouse}\n")
        hostkey = self.ssh_dir / f"host_{name}"
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey))
        config = mdir / "sshd_config"
        config.write_text("\n".join([
            f"ListenAddress {ip}:22", f"HostKey {hostkey}",
            "PermitRootLogin prohibit-password", "PubkeyAuthentication yes",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
            f"AuthorizedKeysFile {self.ssh_dir / 'authorized_keys'}",
            "StrictModes no",  # the work dir sits under world-writable /var/tmp
            "PidFile none", "MaxStartups 100", "MaxSessions 100", "LogLevel INFO", ""]))
        sh("ip", "netns", "add", name)
        sh("ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}-br")
        sh("ip", "link", "set", f"{name}-br", "master", BRIDGE, "up")
        sh("ip", "link", "set", name, "netns", name)
        for cmd in (["addr", "add", f"{ip}/24", "dev", name], ["link", "set", name, "up"],
                    ["link", "set", "lo", "up"], ["route", "add", "default", "via", CLIENT_IP]):
            sh("ip", "-n", name, *cmd)
        script = " && ".join([
            f"mount --bind {home} /root", f"mount --bind {tmp} /tmp",
            "mount -t tmpfs -o mode=755 tmpfs /run", "mkdir -m 755 /run/sshd",
            f"mount --bind {self.work / 'passwd'} /etc/passwd",
            f'exec {self.sshd} -D -e -f {config}'])
        machine = Machine(name, ip, home, mdir / "sshd.log")
        with open(machine.log_path, "wb") as log:
            machine.proc = subprocess.Popen(
                ["ip", "netns", "exec", name, "unshare", "--pid", "--mount", "--fork",
                 "--mount-proc", "--kill-child", "--propagation", "private",
                 "bash", "-c", script],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={"PATH": NODE_PATH, "HOME": "/root", "LANG": "C.UTF-8"})
        self.machines.append(machine)
        return machine

    def wait_ssh(self, machine: Machine, timeout_s: float = 120.0) -> None:
        def up() -> bool:
            if machine.proc is not None and machine.proc.poll() is not None:
                raise RuntimeError(f"{machine.name}'s sshd exited:\n{machine.log_tail()}")
            with socket.socket() as s:
                s.settimeout(2)
                return s.connect_ex((machine.ip, 22)) == 0

        wait_until(up, timeout_s, f"sshd on {machine.ip}:22", interval_s=0.2)

    def ssh(self, machine: Machine, command: str, timeout_s: float = 120.0
            ) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ssh", "-i", str(self.key), "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
             f"root@{machine.ip}", command],
            capture_output=True, text=True, timeout=timeout_s)

    def stop(self) -> None:
        for machine in reversed(self.machines):
            machine.stop()
