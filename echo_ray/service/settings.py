"""Service configuration from environment variables (names as in the seed), validated once."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def _default_data_dir() -> Path:
    base = os.environ.get("CACHE_DIR")
    return Path(base) if base else Path.home() / ".cache" / "echo-ray"


def _get(env, name: str, kind, default):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        value = kind(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} must be a {kind.__name__}") from None
    if kind in (int, float) and value < 0:
        raise ValueError(f"environment variable {name}={raw!r} must not be negative")
    return value


# Replicas and their membrane actors use one BLAS thread each: Ray already runs one process
# per replica/actor, and OpenBLAS's own threads on top of them fight over the cores.
SINGLE_THREAD_BLAS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


@dataclass(frozen=True)
class ServiceSettings:
    redis_url: str | None = None            # REDIS_URL: sessions (and cache L4) in Redis
    session_ttl_s: int = 3600               # SESSION_TTL_SECONDS, refreshed on use
    max_sessions: int = 10_000              # MAX_CONCURRENT_SESSIONS -> 429 past it
    session_dir: Path = field(default_factory=lambda: _default_data_dir() / "sessions")
    enable_caching: bool = True             # ENABLE_CACHING: result cache
    cache_ttl_s: int = 300                  # CACHE_TTL_SECONDS
    max_request_bytes: int = 1 << 20        # MAX_REQUEST_BYTES -> 413 past it
    worker_max_ongoing: int = 8             # WORKER_MAX_ONGOING_REQUESTS
    worker_max_queued: int = 64             # WORKER_MAX_QUEUED_REQUESTS -> 503 past it
    min_instances: int = 1                  # MIN_INSTANCES: worker replicas, at least
    max_instances: int = 4                  # MAX_INSTANCES: worker replicas, at most
    predictive_scaling: bool = True         # PREDICTIVE_SCALING: ForecastPolicy, else Ray's
    lb_strategy: str | None = None          # LB_STRATEGY (default power_of_two)
    retry_after_s: int = 1
    # ECHO_RAY_API_TOKEN: when set, every endpoint but /healthz needs `Authorization: Bearer
    # <token>`. Kept out of repr (and so out of logs and error messages).
    api_token: str | None = field(default=None, repr=False)
    session_journal: bool = True            # SESSION_JOURNAL: Redis outages go to a local journal

    def __post_init__(self):
        if self.api_token is not None and (not isinstance(self.api_token, str)
                                           or len(self.api_token) < 16):
            raise ValueError("api_token (ECHO_RAY_API_TOKEN) must be a string of at least 16 "
                             "characters (e.g. `openssl rand -hex 32`)")

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            if not f.repr:
                shown.append(f"{f.name}={'<set>' if getattr(self, f.name) else None}")
            else:
                value = getattr(self, f.name)
                if f.name == "redis_url" and value:
                    value = redact_url(value)
                shown.append(f"{f.name}={value!r}")
        return f"ServiceSettings({', '.join(shown)})"

    __str__ = __repr__

    @classmethod
    def from_env(cls, env=None) -> ServiceSettings:
        env = os.environ if env is None else env
        return cls(
            redis_url=env.get("REDIS_URL") or None,
            session_ttl_s=_get(env, "SESSION_TTL_SECONDS", int, 3600),
            max_sessions=_get(env, "MAX_CONCURRENT_SESSIONS", int, 10_000),
            session_dir=Path(env["SESSION_DIR"]) if env.get("SESSION_DIR")
            else _default_data_dir() / "sessions",
            enable_caching=_get(env, "ENABLE_CACHING", bool, True),
            cache_ttl_s=_get(env, "CACHE_TTL_SECONDS", int, 300),
            max_request_bytes=_get(env, "MAX_REQUEST_BYTES", int, 1 << 20),
            worker_max_ongoing=_get(env, "WORKER_MAX_ONGOING_REQUESTS", int, 8),
            worker_max_queued=_get(env, "WORKER_MAX_QUEUED_REQUESTS", int, 64),
            min_instances=max(1, _get(env, "MIN_INSTANCES", int, 1)),
            max_instances=max(1, _get(env, "MAX_INSTANCES", int, 4)),
            predictive_scaling=_get(env, "PREDICTIVE_SCALING", bool, True),
            lb_strategy=env.get("LB_STRATEGY") or None,
            api_token=env.get("ECHO_RAY_API_TOKEN") or None,
            session_journal=_get(env, "SESSION_JOURNAL", bool, True),
        )


def redact_url(url: str) -> str:
    """`rediss://user:secret@host:6380/0` -> `rediss://user:***@host:6380/0` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}"))
