"""ScalingLoop: every resource under the loop. A thin adapter that periodically measures
resources that are not Serve deployments (agent pools, DTESN membrane actor groups), feeds
their samples to the shared `ScalingOptimizerActor` and applies its decisions, with no
manual `autoscale()`/`observe()` calls.

    loop = ScalingLoop(interval_s=5.0)
    loop.add("app/worker/r1/dtesn-ab12", system, settings.scaling.config("dtesn_membrane"))
    loop.start()          # a daemon thread; loop.stop() ends it

A resource is anything with `measure(t=None)` (a `Sample` or its dict: its own load signal),
`size` and `resize(n)` (AgentPool, DTESNSystem), and optionally `max_size`. The decision is the
optimizer's (pure; the same `ScalingOptimizer` that sizes Serve deployments, own-gated with the
config's cooldowns); this module only does the I/O: one `observe` call per resource per round,
awaited with a timeout (never from inside the Serve controller: the loop runs in a replica or
a driver), then `resize` and `mark_applied`, so the decisions are listed by
`echo-ray scaling events` and exported as the scaling gauges like a deployment's.
A failing resource or actor is logged once per kind and retried on the next round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .actor import DEFAULT_NAME, get_or_create_optimizer
from .config import ScalingConfig
from .optimizer import Sample

log = logging.getLogger(__name__)


def bounded_size(desired: int, max_size: int | None) -> int:
    """The size to apply: the decision, at least 1, at most what the resource can hold."""
    return max(1, desired if max_size is None else min(desired, max_size))


def config_for(config: ScalingConfig, max_size: int | None) -> dict:
    """The resource's ScalingConfig dict, its bounds within the resource's own limit."""
    if max_size is not None and config.max_instances > max_size:
        config = config.replace(max_instances=max_size,
                                min_instances=min(config.min_instances, max_size))
    return config.to_dict()


@dataclass
class _Entry:
    resource: Any
    config: dict


class ScalingLoop:
    def __init__(self, interval_s: float = 5.0, *, actor_name: str = DEFAULT_NAME,
                 actor_namespace: str | None = None, call_timeout_s: float = 10.0,
                 name: str = "echo-ray-scaling-loop") -> None:
        for field, value in (("interval_s", interval_s), ("call_timeout_s", call_timeout_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{field} must be a number > 0, got {value!r}")
        self.interval_s, self.call_timeout_s = float(interval_s), float(call_timeout_s)
        self.actor_name, self.actor_namespace, self.name = actor_name, actor_namespace, name
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._actor = None
        self._warned: set[str] = set()
        self.rounds = 0
        self.last_decisions: dict[str, dict] = {}

    # ---- resources -------------------------------------------------------------------------
    def add(self, name: str, resource: Any, config: ScalingConfig) -> str:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        for attr in ("measure", "resize", "size"):
            if not hasattr(resource, attr):
                raise ValueError(f"resource {name!r} has no {attr!r}: expected an AgentPool, a "
                                 "DTESNSystem or the like")
        if not isinstance(config, ScalingConfig):
            raise ValueError(f"config must be a ScalingConfig, got {type(config).__name__}")
        entry = _Entry(resource, config_for(config, getattr(resource, "max_size", None)))
        with self._lock:
            self._entries[name] = entry
        return name

    def remove(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)

    # ---- one round -------------------------------------------------------------------------
    def tick(self) -> dict[str, dict]:
        """Measure every resource, ask the optimizer actor, apply; returns the decisions."""
        import ray

        with self._lock:
            entries = dict(self._entries)
        if not entries:
            return {}
        samples = {}
        for name, entry in entries.items():
            try:
                measured = entry.resource.measure()
                samples[name] = (measured.to_dict() if isinstance(measured, Sample)
                                 else dict(measured))
            except Exception as exc:
                self._warn(f"measure:{name}", exc)
        actor = self._actor
        if actor is None:
            actor = self._actor = get_or_create_optimizer(self.actor_name, self.actor_namespace)
        names = list(samples)
        refs = [actor.observe.remote(n, samples[n], entries[n].config) for n in names]
        try:
            decisions = ray.get(refs, timeout=self.call_timeout_s)
        except Exception as exc:  # actor gone or slow: look it up again next round
            self._actor = None
            self._warn("optimizer", exc)
            return {}
        out = {}
        for name, decision in zip(names, decisions, strict=True):
            entry = entries[name]
            size = entry.resource.size
            want = bounded_size(int(decision["desired_replicas"]),
                                getattr(entry.resource, "max_size", None))
            try:
                if want != size:
                    entry.resource.resize(want)
                    size = entry.resource.size
            except Exception as exc:
                self._warn(f"resize:{name}", exc)
                size = entry.resource.size
            try:
                ray.get(actor.mark_applied.remote(name, size), timeout=self.call_timeout_s)
            except Exception as exc:
                self._warn("mark_applied", exc)
            out[name] = {**decision, "applied_replicas": size}
        self.last_decisions.update(out)
        self.rounds += 1
        return out

    # ---- the thread ------------------------------------------------------------------------
    def start(self) -> ScalingLoop:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name=self.name)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception as exc:  # never let the thread die: next round retries
                self._warn("tick", exc)
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def _warn(self, where: str, exc: Exception) -> None:
        key = f"{where}:{type(exc).__name__}"
        if key not in self._warned:
            self._warned.add(key)
            log.warning("scaling loop %s failed (%s: %s); retrying next round", where,
                        type(exc).__name__, exc)


def membrane_config(scaling: Any, n_membranes: int, **overrides: Any) -> ScalingConfig:
    """A membrane actor group's policy from the scaling settings (ScalingSection): its
    thresholds and cooldowns, 1 to `n_membranes` actors, capacity measured."""
    values: Mapping[str, Any] = {"min_instances": 1, "max_instances": n_membranes,
                                 "replica_capacity_rps": None, **overrides}
    return scaling.config("dtesn_membrane").replace(**values)
