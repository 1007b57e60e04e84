"""deployments/cluster-env.sh, which the cluster configs' start commands source: on the head
it starts a password-protected Redis bound to the head's address and exports REDIS_URL; on a
worker it exports the same REDIS_URL; a missing secrets file stops the start with a message.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import redis

from echo_ray.ops.localcluster import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deployments" / "cluster-env.sh"


def source(tmp: Path, *args: str, secrets: Path, port: int) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "ECHO_RAY_SECRETS": str(secrets),
           "ECHO_RAY_REDIS_PORT": str(port)}
    cmd = (f'. {SCRIPT} "$@" || exit 3; echo "REDIS_URL=$REDIS_URL"; '
           'echo "RAY_AUTH_MODE=$RAY_AUTH_MODE" >&2')
    return subprocess.run(["bash", "-c", cmd, "sh", *args], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.redis
def test_head_starts_redis_and_every_node_gets_the_same_url(tmp_path):
    secrets = tmp_path / "redis.env"
    secrets.write_text("REDIS_PASSWORD=s3cret-for-test\nRAY_AUTH_TOKEN=t0ken-for-test\n")
    port = free_port()
    head = source(tmp_path, "127.0.0.1", "--start-redis", secrets=secrets, port=port)
    pidfile = tmp_path / ".echo-ray-redis" / "redis.pid"
    try:
        assert head.returncode == 0, head.stderr
        url = head.stdout.strip().removeprefix("REDIS_URL=")
        assert url == f"redis://:s3cret-for-test@127.0.0.1:{port}/0"
        # Ray's token authentication on, the token where Ray's later commands find it
        assert "RAY_AUTH_MODE=token" in head.stderr
        token_file = tmp_path / ".ray" / "auth_token"
        assert token_file.read_text() == "t0ken-for-test"
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        # the start returns once its Redis answers: the first ping needs no retry
        assert redis.Redis.from_url(url, socket_timeout=5).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, socket_timeout=5).ping()
        # the password is in a 0600 config file, not on redis-server's command line
        pid = int(pidfile.read_text())
        assert "s3cret" not in Path(f"/proc/{pid}/cmdline").read_text()
        assert oct((tmp_path / ".echo-ray-redis" / "redis.conf").stat().st_mode & 0o777) == "0o600"
        # a second start of the head leaves the running Redis alone; a worker gets the same URL
        again = source(tmp_path, "127.0.0.1", "--start-redis", secrets=secrets, port=port)
        assert again.returncode == 0 and int(pidfile.read_text()) == pid
        worker = source(tmp_path, "127.0.0.1", secrets=secrets, port=port)
        assert worker.stdout.strip() == head.stdout.strip()
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)


def test_an_external_redis_url_is_passed_through_and_nothing_is_started(tmp_path):
    secrets = tmp_path / "redis.env"
    secrets.write_text("REDIS_URL=rediss://:pw@redis.example.internal:6380/2\n"
                       "RAY_AUTH_TOKEN=t0ken-for-test\n")
    out = source(tmp_path, "10.0.0.1", "--start-redis", secrets=secrets, port=free_port())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "REDIS_URL=rediss://:pw@redis.example.internal:6380/2"
    assert not (tmp_path / ".echo-ray-redis").exists()


@pytest.mark.parametrize("content", [None, "# nothing set\n"], ids=["missing", "empty"])
def test_without_secrets_the_start_stops_with_a_message(tmp_path, content):
    secrets = tmp_path / "redis.env"
    if content is not None:
        secrets.write_text(content)
    out = source(tmp_path, "10.0.0.1", secrets=secrets, port=free_port())
    assert out.returncode == 3
    assert "make cluster-secret" in out.stderr or "neither REDIS_URL" in out.stderr


def test_without_a_ray_token_the_start_stops_with_a_message(tmp_path):
    secrets = tmp_path / "redis.env"
    secrets.write_text("REDIS_URL=redis://:pw@10.0.0.1:6380/0\n")
    out = source(tmp_path, "10.0.0.1", secrets=secrets, port=free_port())
    assert out.returncode == 3
    assert "RAY_AUTH_TOKEN" in out.stderr and "make cluster-secret" in out.stderr
