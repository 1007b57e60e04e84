"""ForecastPolicy: a class-based Ray Serve autoscaling policy driven by the optimizer actor.

    serve.deployment(autoscaling_config={
        "min_replicas": 1, "max_replicas": 4, "upscale_delay_s": 5, "downscale_delay_s": 60,
        "policy": {"policy_function": "echo_ray.autoscaling.policy:ForecastPolicy",
                   "policy_kwargs": {"lead_time_s": 10, "replica_capacity_rps": 20}}})

Serve's controller instantiates the class once per deployment (with `policy_kwargs`) and calls
it about ten times a second from its event loop, then applies min/max, the up/down delays and
the scaling factors itself. The call must never block and never raise, so:

- a daemon thread owned by the policy pushes the newest metrics sample to the
  `ScalingOptimizerActor` every `poll_interval_s` and caches the decision it answers;
  `__call__` only reads that cache (no `ray.get` on the controller's loop);
- when there is no answer, or it is older than `stale_after_s` (actor killed, stuck, not
  created), the policy returns what Serve's own reactive rule
  (`replica_queue_length_autoscaling_policy`) returns for the same context;
- any exception inside falls back the same way and is logged once per kind.

Metrics come from the context the controller hands us (so any deployment works unchanged):
ongoing requests (running + queued) and queued requests; the derived utilisation is ongoing
requests over what the replicas hold at the target utilisation (so Serve's
`target_ongoing_requests` means `target_utilisation`, and the optimizer's ratio rule
`ceil(replicas * utilisation / target_utilisation)` is Serve's `ceil(ongoing /
target_ongoing_requests)`). Deployments that define `record_autoscaling_stats()` may add the
custom metrics `request_rate` (requests/s, summed over replicas), `p95_latency_ms` (max),
`error_rate` (mean) and `utilisation` (their busy fraction, mean over replicas); without
`request_rate` the forecast load is the number of ongoing requests, and
`replica_capacity_rps` (if set) must be in the same unit.

A reported busy fraction does not replace the derived utilisation: the sample's utilisation is
the larger of the two. A busy fraction is exact below saturation but stops at 1 and cannot see
requests waiting for a slot, so on its own a replica with a deep queue looks merely "full" and
the optimizer could grow only by `1 / target_utilisation` per scale-up cooldown; the ongoing
count grows with the queue. Each is a lower bound on the load relative to capacity, so their
maximum never hides a queue and never reads less than either source.

policy_kwargs: `actor_name`, `actor_namespace`, `create_actor` (True), `poll_interval_s`
(0.5), `stale_after_s` (5), `call_timeout_s` (2); every other key is a `ScalingConfig` field
(unknown keys raise ValueError). `min_instances`/`max_instances` default to the deployment's
`min_replicas`/`max_replicas`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
import weakref

from ray.serve.autoscaling_policy import replica_queue_length_autoscaling_policy

# Absolute imports: Serve cloudpickles this module's classes by value into the controller.
from echo_ray.autoscaling.actor import (
    DEFAULT_NAME,
    deployment_key,
    get_optimizer,
    get_or_create_optimizer,
)
from echo_ray.autoscaling.config import ScalingConfig

POLICY_PATH = "echo_ray.autoscaling.policy:ForecastPolicy"
OWN_KWARGS = ("actor_name", "actor_namespace", "create_actor", "poll_interval_s",
              "stale_after_s", "call_timeout_s")
log = logging.getLogger("ray.serve")  # the controller's log


def sample_from_context(ctx, target_utilisation: float) -> dict:
    """A `Sample` dict from a Serve `AutoscalingContext` (see the module docstring)."""
    replicas = int(ctx.current_num_replicas)
    ongoing = max(0.0, float(ctx.total_num_requests or 0.0))
    queued = ctx.total_queued_requests
    queued = max(0.0, float(queued)) if queued is not None else 0.0
    full = ctx.config.get_target_ongoing_requests() / target_utilisation  # per replica
    utilisation = ongoing / (max(replicas, 1) * full)
    sample = {"t": float(ctx.current_time or time.time()), "request_rate": ongoing,
              "utilisation": utilisation, "replicas": replicas, "ongoing_requests": ongoing,
              "queue_length": queued}
    if ctx.target_num_replicas is not None:
        sample["target_replicas"] = int(ctx.target_num_replicas)
    custom = ctx.aggregated_metrics or {}

    def values(name):
        return [float(v) for v in (custom.get(name) or {}).values()
                if v is not None and math.isfinite(v) and v >= 0]

    if rate := values("request_rate"):
        sample["request_rate"] = sum(rate)
    if p95 := values("p95_latency_ms"):
        sample["p95_latency_ms"] = max(p95)
    if err := values("error_rate"):
        sample["error_rate"] = min(1.0, sum(err) / len(err))
    if util := values("utilisation"):  # busy fraction: saturates at 1, blind to the queue
        sample["utilisation"] = max(utilisation, sum(util) / len(util))
    return sample


def choose(reactive: float, answer: dict | None, age_s: float | None,
           stale_after_s: float) -> tuple[float, str]:
    """The replica count to return and where it came from: the optimizer's target when its
    answer is fresh, else the reactive rule's."""
    if answer is None or age_s is None:
        return reactive, "reactive:no_answer"
    if age_s > stale_after_s:
        return reactive, "reactive:stale"
    return int(answer["desired_replicas"]), "forecast"


class _ActorLink:
    """State shared between a policy and its polling thread.

    The thread holds this object, never the policy, so a replaced policy is garbage
    collected and its thread stopped (weakref.finalize sets `stop`).
    """

    def __init__(self, name: str, namespace: str | None, create: bool,
                 poll_interval_s: float, call_timeout_s: float) -> None:
        self.name, self.namespace, self.create = name, namespace, create
        self.poll_interval_s, self.call_timeout_s = poll_interval_s, call_timeout_s
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.outbox: dict[str, tuple[dict, dict]] = {}  # resource -> newest (sample, config)
        self.answers: dict[str, tuple[dict, float]] = {}  # resource -> (decision, monotonic)
        self.calls = self.failures = 0
        self.last_error: str | None = None
        self.thread: threading.Thread | None = None
        self.autostart = True  # unit tests switch the thread off and set `answers` by hand

    def push(self, resource: str, sample: dict, config: dict) -> None:
        with self.lock:
            self.outbox[resource] = (sample, config)
            if self.thread is None and self.autostart:
                self.thread = threading.Thread(target=self.run, daemon=True,
                                               name=f"echo-ray-forecast-policy:{resource}")
                self.thread.start()

    def answer(self, resource: str) -> tuple[dict | None, float | None]:
        with self.lock:
            got = self.answers.get(resource)
        if got is None:
            return None, None
        return got[0], time.monotonic() - got[1]

    def run(self) -> None:
        import ray

        handle = None
        failed = 0  # consecutive failures: back off so a broken actor is not re-created 2x/s
        while not self.stop.is_set():
            with self.lock:
                batch, self.outbox = self.outbox, {}
            if batch:
                try:
                    if handle is None:
                        handle = (get_or_create_optimizer(self.name, self.namespace)
                                  if self.create else get_optimizer(self.name, self.namespace))
                    if handle is not None:
                        keys = list(batch)
                        refs = [handle.observe.remote(k, *batch[k]) for k in keys]
                        results = ray.get(refs, timeout=self.call_timeout_s)
                        now = time.monotonic()
                        with self.lock:
                            for k, decision in zip(keys, results, strict=True):
                                self.answers[k] = (decision, now)
                        self.calls += 1
                        failed = 0
                except Exception as exc:  # actor dead/slow: answers go stale -> reactive
                    handle = None
                    self.failures += 1
                    failed += 1
                    if self.last_error != type(exc).__name__:
                        log.warning("ForecastPolicy: optimizer actor %r unavailable (%s: %s); "
                                    "using the reactive rule until it answers", self.name,
                                    type(exc).__name__, exc)
                    self.last_error = type(exc).__name__
            self.stop.wait(min(30.0, self.poll_interval_s * 2 ** min(failed, 6)))


class ForecastPolicy:
    """Serve autoscaling policy: the optimizer's target when fresh, else Serve's reactive rule."""

    def __init__(self, *, actor_name: str | None = None, actor_namespace: str | None = None,
                 create_actor: bool = True, poll_interval_s: float = 0.5,
                 stale_after_s: float = 5.0, call_timeout_s: float = 2.0, **scaling) -> None:
        for name, value in (("poll_interval_s", poll_interval_s),
                            ("stale_after_s", stale_after_s),
                            ("call_timeout_s", call_timeout_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if not isinstance(create_actor, bool):
            raise ValueError(f"create_actor must be True or False, got {create_actor!r}")
        fields = {f.name for f in dataclasses.fields(ScalingConfig)}
        unknown = sorted(set(scaling) - fields)
        if unknown:
            raise ValueError(f"policy_kwargs has unknown keys {unknown}; expected ForecastPolicy "
                             f"keys {list(OWN_KWARGS)} or ScalingConfig fields {sorted(fields)}")
        # bad values fail here, at deploy time, not on the controller's tick
        self.target_utilisation = ScalingConfig.from_dict(scaling).target_utilisation
        self.scaling = dict(scaling)
        self.stale_after_s = float(stale_after_s)
        self.link = _ActorLink(actor_name or DEFAULT_NAME, actor_namespace, create_actor,
                               float(poll_interval_s), float(call_timeout_s))
        weakref.finalize(self, self.link.stop.set)
        self.last_source: str | None = None
        self._warned: set[str] = set()
        self._pushed_at = -math.inf  # build a sample only as often as the thread sends one

    def config_for(self, ctx) -> dict:
        """The ScalingConfig dict pushed to the actor: the policy kwargs, with the bounds
        taken from the deployment's autoscaling config unless given, and Serve gating (its
        delays apply, the optimizer's cooldowns do not). A quiet spell's peak is remembered
        for Serve's `downscale_delay_s` unless `scale_down_window_s` is given: the size Serve
        applies after its delay covers the whole dip it waited through."""
        cfg = {"min_instances": int(ctx.config.min_replicas),
               "max_instances": int(ctx.config.max_replicas), "serve_gated": True,
               "scale_down_window_s": float(ctx.config.downscale_delay_s), **self.scaling}
        cfg["min_instances"] = min(cfg["min_instances"], cfg["max_instances"])
        return cfg

    def __call__(self, ctx) -> tuple[float, dict]:
        try:
            reactive, _ = replica_queue_length_autoscaling_policy(ctx)
        except Exception as exc:  # keep the current target rather than raise
            self._warn("reactive", exc)
            reactive = ctx.target_num_replicas
        try:
            resource = deployment_key(ctx.app_name, ctx.deployment_name)
            now = time.monotonic()
            if now - self._pushed_at >= self.link.poll_interval_s:
                self._pushed_at = now
                self.link.push(resource, sample_from_context(ctx, self.target_utilisation),
                               self.config_for(ctx))
            answer, age = self.link.answer(resource)
            desired, source = choose(reactive, answer, age, self.stale_after_s)
        except Exception as exc:
            self._warn("forecast", exc)
            desired, source = reactive, "reactive:error"
        if source != self.last_source:
            log.info("ForecastPolicy for %s/%s: now using %s", ctx.app_name,
                     ctx.deployment_name, source)
            self.last_source = source
        return desired, {"echo_ray_source": source}

    def _warn(self, where: str, exc: Exception) -> None:
        key = f"{where}:{type(exc).__name__}"
        if key not in self._warned:
            self._warned.add(key)
            log.warning("ForecastPolicy %s step failed (%s: %s); falling back", where,
                        type(exc).__name__, exc)


def forecast_autoscaling_config(policy_kwargs: dict | None = None, **serve_fields) -> dict:
    """An `autoscaling_config` dict for `serve.deployment` that uses ForecastPolicy.

    `serve_fields` are Serve `AutoscalingConfig` fields (defaults: min 1, max 4 replicas,
    target_ongoing_requests 2, upscale_delay_s 15, downscale_delay_s 300: the optimizer's own
    cooldowns are off under Serve, so these are the only delays); Serve keeps applying
    the bounds and delays on top of the policy's answer. `policy_kwargs` go to ForecastPolicy.
    Both are validated here, not inside the controller.
    """
    from ray.serve.config import AutoscalingConfig

    kwargs = dict(policy_kwargs or {})
    ForecastPolicy(**kwargs)
    config = {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2.0,
              "upscale_delay_s": 15.0, "downscale_delay_s": 300.0, **serve_fields,
              "policy": {"policy_function": POLICY_PATH, "policy_kwargs": kwargs}}
    try:
        AutoscalingConfig(**config)
    except Exception as exc:  # pydantic's ValidationError is a ValueError subclass in v2
        raise ValueError(f"serve_fields do not make a valid Serve AutoscalingConfig: {exc}") \
            from None
    return config
