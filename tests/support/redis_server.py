"""Private redis-servers for tests, on a free loopback port (never the machine's 6379).

One class serves every Redis test: the session's plain server (tests/conftest.py) and the
reliability and security tests' variants, an append-only file fsynced on every write (so
stop/start keeps the data, like a production Redis restart), a password (`--requirepass`)
and TLS (`rediss://`, a self-signed certificate made with the openssl CLI). Why not
pytest-redis: it has no fsynced append-only file and no TLS, and the outage tests stop and
restart the server mid-test.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

from echo_ray.ops.localcluster import free_port
from echo_ray.waiting import wait_until


def make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, valid one day; the certificate is its own CA."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl CLI is needed to make a test certificate")
    cert, key = directory / "redis.crt", directory / "redis.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def redis_has_tls() -> bool:
    """True if this redis-server was built with TLS (it then accepts --tls-port)."""
    exe = shutil.which("redis-server")
    if exe is None:
        return False
    out = subprocess.run([exe, "--tls-port", "0", "--port", "0"], capture_output=True,
                         text=True, timeout=10)
    return "Configured to not listen anywhere" in out.stdout + out.stderr


class RedisServer:
    """Starts, stops and restarts one redis-server that this test session owns."""

    def __init__(self, password: str | None = None, durable: bool = False, tls: bool = False):
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.exe = exe
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="echo-ray-redis-")
        self.proc: subprocess.Popen | None = None
        self.password, self.durable, self.tls = password, durable, tls
        self.cert = self.key = None
        if tls:
            self.cert, self.key = make_self_signed_cert(Path(self.dir))

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        if self.tls:
            return (f"rediss://{auth}127.0.0.1:{self.port}/0"
                    f"?ssl_ca_certs={quote(str(self.cert))}&ssl_cert_reqs=required")
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        args = [self.exe, "--bind", "127.0.0.1", "--save", "", "--dir", self.dir,
                "--daemonize", "no"]
        if self.tls:
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file",
                     str(self.cert), "--tls-key-file", str(self.key), "--tls-ca-cert-file",
                     str(self.cert), "--tls-auth-clients", "no"]
        else:
            args += ["--port", str(self.port)]
        if self.durable:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, timeout, f"redis-server on port {self.port} answering",
                   interval_s=0.02)

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} exited "
                               f"({self.proc.returncode}) before answering")
        return self.ping()

    def ping(self) -> bool:
        import redis

        try:
            client = redis.Redis.from_url(self.url, socket_timeout=0.5,
                                          socket_connect_timeout=0.5)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.RedisError, OSError):
            return False

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
