"""All of echo-ray's configuration: one typed model, the only module that reads the environment.

Each field names the environment variable that sets it (the names the README has always
documented: `REDIS_URL`, `CACHE_DIR`, `MAX_INSTANCES`, ...). `get_settings()` reads the process
environment (and re-reads it when it changes), `Settings.from_env(mapping)` reads a mapping
(tests, a Serve config's `env_vars`), `Settings(section={...})` takes values in Python.
Nothing is read at import. A bad value raises `SettingsError` naming the variable.

Files: one data directory (`ECHO_RAY_DATA_DIR`, default `~/.cache/echo-ray`) holds everything
echo-ray writes, one subfolder each: `sessions/`, `journal/`, `checkpoints/`, `cache/` (the
disk tier, L3). `SESSION_DIR`, `ECHO_RAY_CHECKPOINT_DIR` and `CACHE_DIR` move one of them
elsewhere and mean exactly that folder (`CACHE_DIR=off`: no disk tier).

Ray: `connect()` is the one way to reach Ray. It uses the address given (argument, else
`RAY_ADDRESS`); without one it starts a private local cluster, or with `existing=True` (the
commands that act on a running cluster) it uses the cluster last started on this machine, and
fails at once when nothing answers there rather than retrying for minutes.

`python -m echo_ray.settings --markdown` writes the configuration reference
(docs/reference/configuration.md) from this model.
"""

from __future__ import annotations

import argparse
import contextvars
import functools
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from echo_ray.autoscaling.config import ScalingConfig
from echo_ray.cache.config import CacheConfig
from echo_ray.routing.registry import DEFAULT_STRATEGY, STRATEGIES

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_PATH = Path("docs") / "reference" / "configuration.md"
# Replicas and their membrane actors use one BLAS thread each: Ray already runs one process
# per replica/actor, and OpenBLAS's own threads on top of them fight over the cores.
SINGLE_THREAD_BLAS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
OFF_WORDS = ("off", "none", "false", "0")


class SettingsError(ValueError):
    """A configuration value is wrong; the message names the variable and the reason."""


def _env(var: str, default: Any = None, doc: str = "", *, shown: str | None = None,
         **kwargs: Any) -> Any:
    """A field set by environment variable `var`; `shown` is the default as the docs show it."""
    extra: Any = {"env": var, "shown": shown}
    if callable(default):
        return Field(default_factory=default, description=doc, json_schema_extra=extra,
                     **kwargs)
    return Field(default, description=doc, json_schema_extra=extra, **kwargs)


def _var(info: FieldInfo) -> str | None:
    extra = info.json_schema_extra
    var = extra.get("env") if isinstance(extra, dict) else None
    return var if isinstance(var, str) else None


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def variables(cls) -> dict[str, str]:
        """{field name: environment variable} of the fields the environment sets."""
        return {name: var for name, info in cls.model_fields.items()
                if (var := _var(info)) is not None}


class ServiceSection(_Section):
    """The HTTP service: where it listens, who may call it, request limits, result cache."""

    http_host: str = _env("ECHO_RAY_HTTP_HOST", "127.0.0.1",
                          "where `echo-ray start` binds the HTTP proxy", min_length=1)
    http_port: int = _env("ECHO_RAY_HTTP_PORT", 8000, "HTTP proxy port", ge=1, le=65535)
    api_token: SecretStr | None = _env(
        "ECHO_RAY_API_TOKEN", None,
        "bearer token of at least 16 characters (e.g. `openssl rand -hex 32`): every endpoint "
        "but `/healthz` then needs `Authorization: Bearer <token>`; unset: no authentication",
        shown="unset")
    max_request_bytes: int = _env("MAX_REQUEST_BYTES", 1 << 20, "413 past it", ge=1)
    enable_caching: bool = _env("ENABLE_CACHING", True, "the result cache")
    cache_ttl_s: int = _env("CACHE_TTL_SECONDS", 300, "TTL of cached results", ge=0)
    worker_max_ongoing: int = _env("WORKER_MAX_ONGOING_REQUESTS", 8,
                                   "requests one worker replica runs at once", ge=1)
    worker_max_queued: int = _env("WORKER_MAX_QUEUED_REQUESTS", 64,
                                  "requests queued per worker replica; past it: 503", ge=0)
    worker_warm_up: bool = _env("WORKER_WARM_UP", True,
                                "a worker replica runs each type's example request in its "
                                "constructor, before Serve routes to it (no cold first "
                                "requests after a scale-up)")
    worker_inprocess_max_work: int = _env(
        "WORKER_INPROCESS_MAX_WORK", 100_000,
        "a worker replica encodes in its own process, without the membrane-actor hop, when "
        "time steps x reservoir units of the tree (summed over a batch) is at most this; larger "
        "work goes to the actors; `0` = always the actors (the default is the threshold "
        "benchmarks/bench_hop.py measured)",
        ge=0)
    retry_after_s: int = Field(default=1, ge=0, description="`Retry-After` of 503 answers")
    ingress_min_replicas: int = _env("INGRESS_MIN_REPLICAS", 1, "ingress replicas, at least",
                                     ge=1)
    ingress_max_replicas: int = _env("INGRESS_MAX_REPLICAS", 2, "ingress replicas, at most "
                                     "(Serve autoscales the ingress between the two)", ge=1)
    ingress_target_ongoing: int = _env("INGRESS_TARGET_ONGOING_REQUESTS", 32,
                                       "requests in flight per ingress replica that Serve's "
                                       "autoscaler aims at", ge=1)

    @model_validator(mode="after")
    def _ingress_bounds(self) -> ServiceSection:
        if self.ingress_max_replicas < self.ingress_min_replicas:
            raise ValueError(f"INGRESS_MAX_REPLICAS={self.ingress_max_replicas} must be >= "
                             f"INGRESS_MIN_REPLICAS={self.ingress_min_replicas}")
        return self

    def ingress_autoscaling_config(self) -> dict[str, Any]:
        """The ingress's Serve `autoscaling_config` (Ray's default policy): it is cheap
        per request, so it scales on requests in flight, with the worker's delays."""
        return {"min_replicas": self.ingress_min_replicas,
                "max_replicas": self.ingress_max_replicas,
                "initial_replicas": self.ingress_min_replicas,
                **SERVE_AUTOSCALING, "target_ongoing_requests": self.ingress_target_ongoing}

    @field_validator("api_token")
    @classmethod
    def _token_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (e.g. `openssl rand -hex 32`)")
        return value

    def client_headers(self) -> dict[str, str]:
        """What a client of this service sends: the bearer token when one is set."""
        if self.api_token is None:
            return {}
        return {"Authorization": f"Bearer {self.api_token.get_secret_value()}"}


class SessionsSection(_Section):
    """Cognitive sessions: where they live and for how long."""

    redis_url: SecretStr | None = _env(
        "REDIS_URL", None, "sessions (and cache L4) in Redis, e.g. `redis://127.0.0.1:6380/0`; "
        "unset: embedded SQLite store in the data directory, no L4", shown="unset")
    ttl_s: int = _env("SESSION_TTL_SECONDS", 3600, "session TTL, refreshed on use", ge=1)
    max_sessions: int = _env("MAX_CONCURRENT_SESSIONS", 10_000, "429 past it", ge=1)
    journal: bool = _env("SESSION_JOURNAL", True,
                         "with `REDIS_URL`: session writes during a Redis outage go to a local "
                         "journal and are replayed into Redis; `false`: they answer 503")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and urlsplit(value.get_secret_value()).scheme not in (
                "redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    def redis_url_value(self) -> str | None:
        """The URL itself (with its password), for the Redis client only."""
        return self.redis_url.get_secret_value() if self.redis_url is not None else None


class CacheSection(_Section):
    """The multi-level cache's tiers (echo_ray.cache.CacheConfig without its paths and Redis)."""

    max_memory_mb: float = _env("MAX_CACHE_MEMORY_MB", CacheConfig.max_memory_mb,
                                "memory for L1 and L2 together")
    default_ttl_seconds: float = _env("DEFAULT_TTL_SECONDS", CacheConfig.default_ttl_seconds,
                                      "TTL of entries put without one; `0` = never expire")
    eviction_policy: str = _env("EVICTION_POLICY", CacheConfig.eviction_policy,
                                "L1/L2 policy: `lru`, `lfu`, `fifo`, `ttl`, `arc`, `tinylfu`")
    enable_compression: bool = _env("ENABLE_COMPRESSION", CacheConfig.enable_compression,
                                    "the L2 compressed tier")
    namespace: str = _env("CACHE_NAMESPACE", CacheConfig.namespace,
                          "isolates keys in Redis and on disk (`[A-Za-z0-9_.-]`)")
    l1_share: float = _env("CACHE_L1_SHARE", CacheConfig.l1_share,
                           "L1's share of the memory when L2 is on (all of it when off)")
    l2_min_bytes: int = _env("CACHE_L2_MIN_BYTES", CacheConfig.l2_min_bytes,
                             "smallest encoded entry L2 takes")
    l2_min_saving: float = _env("CACHE_L2_MIN_SAVING", CacheConfig.l2_min_saving,
                                "least saving (fraction) compression must achieve for L2")
    compression_level: int = _env("CACHE_COMPRESSION_LEVEL", CacheConfig.compression_level,
                                  "zstd level")
    disk_limit_mb: float = _env("CACHE_DISK_LIMIT_MB", CacheConfig.disk_limit_mb,
                                "size limit of the disk tier")
    object_store: str = _env("CACHE_OBJECT_STORE", CacheConfig.object_store,
                             "`auto` (when Ray is running), `on`, `off`")
    object_store_min_bytes: int = _env("CACHE_OBJECT_STORE_MIN_BYTES",
                                       CacheConfig.object_store_min_bytes,
                                       "smallest numpy array the object store takes")
    object_store_max_mb: float = _env("CACHE_OBJECT_STORE_MAX_MB",
                                      CacheConfig.object_store_max_mb,
                                      "bytes the holder actor keeps (LRU beyond)")

    @field_validator("eviction_policy", "object_store", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> CacheSection:
        _checked(self, lambda: self.config(redis_url=None, cache_dir=None))
        return self

    def config(self, *, redis_url: str | None, cache_dir: Path | str | None,
               **overrides: Any) -> CacheConfig:
        """A CacheConfig of these tiers with the given Redis URL and disk folder."""
        values = {**self.model_dump(), "redis_url": redis_url,
                  "cache_dir": None if cache_dir is None else str(cache_dir)}
        return CacheConfig(**{**values, **overrides})


# The scaling fields that go to the policy as they are (ScalingConfig fields of the same name).
_POLICY_FIELDS = (
    "scale_up_threshold", "scale_down_threshold", "target_utilisation", "target_latency_ms",
    "max_error_rate", "max_queue_length", "scale_down_window_s", "scale_up_cooldown_s",
    "scale_down_cooldown_s", "lead_time_s", "replica_capacity_rps", "forecast_step_s",
    "forecast_max_horizon", "seasonal_period", "price_per_replica_hour",
    "violation_cost_per_hour", "cost_window_s", "roi_threshold", "roi_veto", "node_startup_s")
# Serve's own autoscaling fields for the worker (not configurable by environment).
# The delays are the only gate under ForecastPolicy (serve_gated): 15 s / 300 s measured best
# in the simulator on NASA day 5 (benchmarks/RESULTS.md).
SERVE_AUTOSCALING = {"target_ongoing_requests": 4, "upscale_delay_s": 15.0,
                     "downscale_delay_s": 300.0}


class ScalingSection(_Section):
    """The worker's replica bounds and the predictive policy's thresholds (ScalingConfig)."""

    enabled: bool = _env("AUTO_SCALING_ENABLED", True,
                         "autoscale the worker; `false`: a fixed `MIN_INSTANCES` replicas")
    predictive: bool = _env("PREDICTIVE_SCALING", True,
                            "scale the worker with our ForecastPolicy; `false`: Ray's default "
                            "policy")
    min_instances: int = _env("MIN_INSTANCES", 1, "worker replicas, at least", ge=1)
    # One default for MAX_INSTANCES everywhere: ScalingConfig's (4, what the service served).
    max_instances: int = _env("MAX_INSTANCES", ScalingConfig.max_instances,
                              "worker replicas, at most", ge=1)
    scale_up_threshold: float = _env("SCALE_UP_THRESHOLD", ScalingConfig.scale_up_threshold,
                                     "utilisation that triggers a scale-up")
    scale_down_threshold: float = _env("SCALE_DOWN_THRESHOLD",
                                       ScalingConfig.scale_down_threshold,
                                       "utilisation below which a scale-down may happen")
    target_utilisation: float = _env("TARGET_UTILISATION", ScalingConfig.target_utilisation,
                                     "sizing target per replica")
    target_latency_ms: float = _env("TARGET_LATENCY_MS", ScalingConfig.target_latency_ms,
                                    "p95 latency SLO")
    max_error_rate: float = _env("MAX_ERROR_RATE", ScalingConfig.max_error_rate,
                                 "error fraction that triggers a scale-up")
    max_queue_length: float = _env("MAX_QUEUE_LENGTH", ScalingConfig.max_queue_length,
                                   "queued requests that trigger a scale-up")
    scale_down_window_s: float = _env("SCALE_DOWN_WINDOW_S", ScalingConfig.scale_down_window_s,
                                      "how long the quiet conditions must hold")
    scale_up_cooldown_s: float = _env("SCALE_UP_COOLDOWN_S", ScalingConfig.scale_up_cooldown_s,
                                      "since the last scale-up")
    scale_down_cooldown_s: float = _env("SCALE_DOWN_COOLDOWN_S",
                                        ScalingConfig.scale_down_cooldown_s,
                                        "since the last change in either direction")
    # The served worker takes about 15 s to start (ScalingConfig's generic default is 10).
    lead_time_s: float = _env("LEAD_TIME_S", 15.0,
                              "replica start-up time = how far ahead to forecast")
    replica_capacity_rps: float | None = _env(
        "REPLICA_CAPACITY_RPS", None, "one replica's requests/s at 100% busy; unset: measured",
        shown="unset")
    forecast_step_s: float = _env("FORECAST_STEP_S", ScalingConfig.forecast_step_s,
                                  "the forecaster sees one mean request rate per step")
    forecast_max_horizon: int = _env("FORECAST_MAX_HORIZON", ScalingConfig.forecast_max_horizon,
                                     "steps the forecaster can look ahead")
    seasonal_period: int | None = _env("SEASONAL_PERIOD", None,
                                       "steps per season for Holt-Winters; unset: off",
                                       shown="unset")
    price_per_replica_hour: float = _env("PRICE_PER_REPLICA_HOUR",
                                         ScalingConfig.price_per_replica_hour,
                                         "price per replica-hour (stand-in: AWS m5.large "
                                         "on-demand)")
    violation_cost_per_hour: float = _env("VIOLATION_COST_PER_HOUR",
                                          ScalingConfig.violation_cost_per_hour,
                                          "price of SLO-violation time, per 60 violation "
                                          "minutes (10: 0.167 a minute), weighed against "
                                          "PRICE_PER_REPLICA_HOUR")
    cost_window_s: float = _env("COST_WINDOW_S", ScalingConfig.cost_window_s,
                                "how long a change is assumed to stay in place")
    roi_threshold: float = _env("ROI_THRESHOLD", ScalingConfig.roi_threshold,
                                "|ROI| below this is neutral")
    node_startup_s: float = _env("NODE_STARTUP_S", ScalingConfig.node_startup_s,
                                 "a worker node's start-up time: when the forecast that far "
                                 "ahead wants more worker replicas than run, ask Ray's "
                                 "autoscaler for their nodes in advance (request_resources); "
                                 "0: off. Set FORECAST_MAX_HORIZON to cover it", ge=0)
    membrane_interval_s: float = _env("MEMBRANE_SCALING_INTERVAL_S", 5.0,
                                      "how often each worker replica measures its DTESN "
                                      "membrane actor groups and resizes them through the "
                                      "scaling optimizer (same thresholds and cooldowns, 1 "
                                      "actor to one per membrane); 0: their size stays fixed",
                                      ge=0)
    roi_veto: bool = _env("ROI_VETO", ScalingConfig.roi_veto,
                          "veto a change whose predicted benefit (violation time avoided, "
                          "priced) is below its cost (replica time); recorded as blocked by "
                          "`roi_veto`. Measured triggers are never vetoed")

    @field_validator("replica_capacity_rps", "seasonal_period", mode="before")
    @classmethod
    def _none_words(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip().lower() in OFF_WORDS[:2] \
            else value

    @model_validator(mode="after")
    def _check(self) -> ScalingSection:
        if self.max_instances < self.min_instances:
            raise ValueError(f"MAX_INSTANCES={self.max_instances} must be >= "
                             f"MIN_INSTANCES={self.min_instances}")
        _checked(self, lambda: self.config())
        return self

    def policy_kwargs(self) -> dict[str, Any]:
        """ForecastPolicy's `policy_kwargs` (the ScalingConfig fields; Serve gives the bounds)."""
        return {name: getattr(self, name) for name in _POLICY_FIELDS}

    def config(self, resource_type: str = "serve_replica", **overrides: Any) -> ScalingConfig:
        """The ScalingConfig these settings describe (for the optimizer, the simulator...)."""
        return ScalingConfig(resource_type=resource_type, min_instances=self.min_instances,
                             max_instances=self.max_instances,
                             **{**self.policy_kwargs(), **overrides})

    def serve_bounds(self) -> dict[str, Any]:
        """The worker's Serve replica bounds and delays (the app adds the policy)."""
        return {"min_replicas": self.min_instances, "max_replicas": self.max_instances,
                "initial_replicas": self.min_instances, **SERVE_AUTOSCALING}


class RoutingSection(_Section):
    """How Serve routes requests to the worker's replicas."""

    strategy: str = _env("LB_STRATEGY", DEFAULT_STRATEGY,
                         "routing strategy of the worker: "
                         + ", ".join(f"`{name}`" for name in STRATEGIES))

    @field_validator("strategy", mode="before")
    @classmethod
    def _known(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        key = value.strip().lower()
        if key not in STRATEGIES:
            raise ValueError(f"{value!r} is not a routing strategy; valid: "
                             f"{', '.join(STRATEGIES)}")
        return key


class PathsSection(_Section):
    """Where echo-ray keeps its files: one data directory, one subfolder per kind."""

    RESOLVED: ClassVar[tuple[str, ...]] = ("sessions", "journal", "checkpoints", "cache",
                                           "traces")

    data_dir: Path = _env("ECHO_RAY_DATA_DIR", lambda: Path.home() / ".cache" / "echo-ray",
                          "the data directory: `sessions/`, `journal/`, `checkpoints/` and "
                          "`cache/` (L3) inside it unless moved below",
                          shown="`~/.cache/echo-ray`")
    session_dir: Path | None = _env("SESSION_DIR", None, "the embedded session store",
                                    shown="`$ECHO_RAY_DATA_DIR/sessions`")
    checkpoint_dir: Path | None = _env("ECHO_RAY_CHECKPOINT_DIR", None,
                                       "membrane-state checkpoints",
                                       shown="`$ECHO_RAY_DATA_DIR/checkpoints`")
    checkpoint_uri: str | None = _env(
        "ECHO_RAY_CHECKPOINT_URI", None,
        "where DTESN checkpoints go: a storage URI (`s3://...`, `gs://...`, a path) read "
        "through pyarrow.fs, `redis` (the sessions' `REDIS_URL`) or a `redis://` URL; unset: "
        "`REDIS_URL` when set, else the checkpoint folder (node-local: refused on a "
        "multi-node cluster)", shown="unset")
    cache_dir: str | None = _env("CACHE_DIR", None,
                                 "the cache's disk tier L3 (`CACHE_DIR/<namespace>/`); "
                                 "`off`: no L3", shown="`$ECHO_RAY_DATA_DIR/cache`")
    traces_dir: Path | None = _env("ECHO_RAY_TRACES", None, "request-rate and cache traces",
                                   shown="`data/traces` of the repository")

    @property
    def sessions(self) -> Path:
        return self.session_dir or self.data_dir / "sessions"

    @property
    def journal(self) -> Path:
        """The session journal (SQLite) for Redis outages."""
        return self.data_dir / "journal"

    @property
    def checkpoints(self) -> Path:
        return self.checkpoint_dir or self.data_dir / "checkpoints"

    @property
    def cache(self) -> Path | None:
        """The L3 folder, or None when `CACHE_DIR=off`."""
        if self.cache_dir is None:
            return self.data_dir / "cache"
        return None if self.cache_dir.strip().lower() in OFF_WORDS else Path(self.cache_dir)

    @property
    def traces(self) -> Path:
        return self.traces_dir or REPO_ROOT / "data" / "traces"


class ClusterSection(_Section):
    """The Ray cluster: its address and the namespace of echo-ray's named actors."""

    address: str | None = _env("RAY_ADDRESS", None,
                               "Ray cluster (host:port, `ray://...`, `auto`); unset: drivers "
                               "start a private local cluster, `echo-ray stop/deploy/status` "
                               "use the last one started on this machine", shown="unset")
    namespace: str = _env("ECHO_RAY_SCALING_NAMESPACE", "echo_ray",
                          "Ray namespace of the scaling optimizer actor", min_length=1)
    auth_token: SecretStr | None = _env("RAY_AUTH_TOKEN", None,
                                        "Ray's cluster auth token (Ray's own variable)",
                                        shown="unset")
    auth_token_path: Path | None = _env("RAY_AUTH_TOKEN_PATH", None,
                                        "file holding Ray's auth token (Ray's own variable)",
                                        shown="`~/.ray/auth_token`")

    def ray_auth_token(self) -> str | None:
        """Ray's auth token: `RAY_AUTH_TOKEN`, else the token file, else None."""
        if self.auth_token is not None:
            return self.auth_token.get_secret_value()
        path = self.auth_token_path or Path.home() / ".ray" / "auth_token"
        return path.read_text().strip() or None if path.is_file() else None


class TracingSection(_Section):
    """OpenTelemetry spans (echo_ray.ops.tracing); off unless one of these is set."""

    otlp_endpoint: str | None = _env("OTEL_EXPORTER_OTLP_ENDPOINT", None,
                                     "export spans over OTLP/HTTP (e.g. http://jaeger:4318)",
                                     shown="unset")
    trace_dir: Path | None = _env("ECHO_RAY_TRACE_DIR", None,
                                  "write finished spans as JSON lines, one file per process",
                                  shown="unset")


_environ: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "echo_ray_settings_environ", default=None)


class _FlatEnvSource(PydanticBaseSettingsSource):
    """Reads each section's variables (flat names, not `SECTION__FIELD`); empty means unset."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the sections whole

    def __call__(self) -> dict[str, Any]:
        environ = _environ.get()
        environ = os.environ if environ is None else environ
        out: dict[str, Any] = {}
        for section, field, var in _variables():
            raw = environ.get(var)
            if raw is not None and raw.strip() != "":
                out.setdefault(section, {})[field] = raw.strip()
        return out


class Settings(BaseSettings):
    """Everything configurable, by section. Immutable; build a new one to change it."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    service: ServiceSection = Field(default_factory=lambda: ServiceSection())
    sessions: SessionsSection = Field(default_factory=lambda: SessionsSection())
    cache: CacheSection = Field(default_factory=lambda: CacheSection())
    scaling: ScalingSection = Field(default_factory=lambda: ScalingSection())
    routing: RoutingSection = Field(default_factory=lambda: RoutingSection())
    paths: PathsSection = Field(default_factory=lambda: PathsSection())
    cluster: ClusterSection = Field(default_factory=lambda: ClusterSection())
    tracing: TracingSection = Field(default_factory=lambda: TracingSection())

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(_explain(exc)) from None

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                   dotenv_settings, file_secret_settings):
        return init_settings, _FlatEnvSource(settings_cls)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **sections: Any) -> Settings:
        """Settings from `environ` (default: the process environment); `sections` (dicts of
        field values, e.g. `paths={"data_dir": tmp}`) win over it."""
        token = _environ.set(environ)
        try:
            return cls(**sections)
        finally:
            _environ.reset(token)

    def cache_config(self, **overrides: Any) -> CacheConfig:
        """The cache's CacheConfig: its tiers, `REDIS_URL` for L4, the data directory's L3."""
        return self.cache.config(**{"redis_url": self.sessions.redis_url_value(),
                                    "cache_dir": self.paths.cache, **overrides})

    def effective(self) -> dict[str, dict[str, Any]]:
        """Every setting as plain JSON values, secrets masked (what `echo-ray config` shows)."""
        out = self.model_dump(mode="json")
        out["paths"].update({name: None if (p := getattr(self.paths, name)) is None else str(p)
                             for name in PathsSection.RESOLVED})
        token = self.service.api_token
        out["service"]["api_token"] = None if token is None else "***"
        url = self.sessions.redis_url_value()
        out["sessions"]["redis_url"] = None if url is None else redact_url(url)
        out["cluster"]["auth_token"] = None if self.cluster.auth_token is None else "***"
        return out


def _variables() -> Iterator[tuple[str, str, str]]:
    """(section, field, variable) for every field the environment sets."""
    for section, info in Settings.model_fields.items():
        for field, var in _section_type(info).variables().items():
            yield section, field, var


def _section_type(info: FieldInfo) -> type[_Section]:
    """The section model a Settings field holds."""
    model = info.annotation
    assert isinstance(model, type) and issubclass(model, _Section), model
    return model


def _checked(section: _Section, build) -> None:
    """Run a dataclass's own checks; their messages name fields, ours the variables."""
    try:
        build()
    except ValueError as exc:
        message = str(exc)
        for field, var in type(section).variables().items():
            if message.startswith(field):
                message = f"{var} ({field}){message[len(field):]}"
                break
        raise ValueError(message) from None


def _explain(exc: ValidationError) -> str:
    """One line per problem, naming the variable and (unless secret) the value given."""
    names = {(s, f): v for s, f, v in _variables()}
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"])
        var = names.get((loc[0], loc[1])) if len(loc) >= 2 else None
        if var is None:
            where = ".".join(loc) or "settings"
            lines.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
            continue
        secret = loc[1] in ("api_token", "redis_url", "auth_token")
        given = "" if secret or isinstance(err.get("input"), dict) else f"={err['input']!r}"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{var}{given} ({'.'.join(loc[:2])}): {msg}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def variables() -> list[str]:
    """Every environment variable echo-ray reads."""
    return [var for _, _, var in _variables()]


@functools.lru_cache(maxsize=8)
def _settings_for(snapshot: tuple[tuple[str, str], ...]) -> Settings:
    return Settings.from_env(dict(snapshot))


def get_settings() -> Settings:
    """The settings of this process's environment, built once per distinct environment."""
    snapshot = tuple((var, os.environ[var]) for var in variables() if var in os.environ)
    return _settings_for(snapshot)


def child_environ(extra: Mapping[str, str] | None = None,
                  drop: tuple[str, ...] = ()) -> dict[str, str]:
    """This process's environment plus `extra`, minus `drop`: for a subprocess to inherit."""
    env = {**os.environ, **(extra or {})}
    for name in drop:
        env.pop(name, None)
    return env


# Ray's single-machine mode (its default on macOS/Windows): node address 127.0.0.1, nothing
# listening beyond loopback. Local heads run with it (echo_ray.ops.localcluster).
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def loopback_mode() -> bool:
    """True in a process of a loopback-only Ray cluster (started with LOOPBACK_ENV)."""
    return all(os.environ.get(k) == v for k, v in LOOPBACK_ENV.items())


def enter_loopback_mode() -> None:
    """Make this process (and its children) use 127.0.0.1 as its Ray node address. Ray
    reads the switch at import, so the imported constant is set as well."""
    from ray._private import ray_constants

    os.environ.update(LOOPBACK_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False


def redact_url(url: str) -> str:
    """`rediss://user:secret@host:6380/0` -> `rediss://user:***@host:6380/0` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}"))


# ---- the configuration reference -----------------------------------------------------------
def _shown(info: FieldInfo) -> str:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if extra.get("shown"):
        return str(extra["shown"])
    value = info.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def markdown() -> str:
    """The configuration reference: every variable, its default and meaning, by section."""
    lines = ["# Configuration reference", "",
             "<!-- Generated by `python -m echo_ray.settings --markdown` from "
             "echo_ray/settings.py; do not edit. -->", "",
             "echo-ray reads these environment variables, and no others, in "
             "`echo_ray/settings.py`. Empty values count as unset; booleans take "
             "`true/false`, `1/0`, `yes/no`, `on/off`. A bad value stops the start with an error "
             "naming the variable. `echo-ray config` prints the effective settings "
             "(secrets masked).", ""]
    for section, info in Settings.model_fields.items():
        model = _section_type(info)
        lines += [f"## {section}", "", (model.__doc__ or "").strip(), "",
                  "| variable | default | meaning |", "|---|---|---|"]
        for field in model.variables():
            finfo = model.model_fields[field]
            meaning = (finfo.description or "").replace("|", "\\|")
            lines.append(f"| `{_var(finfo)}` | {_shown(finfo)} | {meaning} |")
        lines.append("")
    lines += ["## Files", "",
              "Everything echo-ray writes lives in the data directory (`ECHO_RAY_DATA_DIR`): "
              "`sessions/` (embedded session store), `journal/` (session journal during Redis "
              "outages), `checkpoints/` (membrane states) and `cache/` (the cache's disk tier, "
              "one subfolder per namespace). `SESSION_DIR`, `ECHO_RAY_CHECKPOINT_DIR` and "
              "`CACHE_DIR` each move exactly one of them.", "",
              "## Ray address", "",
              "Drivers (benchmarks, `echo-ray demo`, tests) connect to `--address` or "
              "`RAY_ADDRESS` when given, and otherwise start a private local cluster; they never "
              "attach to a cluster Ray merely recorded. `echo-ray stop`, `deploy`, `status` and "
              "`scaling` act on a running cluster: without an address they use the one last "
              "started on this machine and fail at once if it does not answer.", ""]
    return "\n".join(lines)


def write_reference(path: Path | None = None) -> Path:
    """Write `markdown()` to docs/reference/configuration.md (or `path`)."""
    path = path or REPO_ROOT / REFERENCE_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown())
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m echo_ray.settings",
                                     description="echo-ray's settings.")
    parser.add_argument("--markdown", nargs="?", const=str(REPO_ROOT / REFERENCE_PATH),
                        metavar="PATH", help="write the configuration reference "
                                             f"(default {REFERENCE_PATH})")
    args = parser.parse_args(argv)
    if args.markdown:
        print(f"wrote {write_reference(Path(args.markdown))}")
    else:
        import json

        print(json.dumps(get_settings().effective(), indent=2))


if __name__ == "__main__":
    main()
