"""AgentPool: a pool of Ray actors of one class that can really grow and shrink.

Calls go to the member with the fewest calls in flight. The pool measures itself for the
ScalingOptimizer: arrivals per second since the last measurement, calls in flight over the
pool's slots (utilisation), and calls waiting beyond the slots (queue). Shrinking retires the
least busy members (newest first on ties), lets their calls finish (bounded wait), then kills
them. Latency and errors are not measured here (results are not fetched by the pool).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import ray
from ray.actor import ActorClass

from .optimizer import Sample


@dataclass
class _Member:
    handle: object
    serial: int
    inflight: list = field(default_factory=list)


class AgentPool:
    def __init__(self, actor_class: ActorClass, size: int = 1, *, init_args: tuple = (),
                 init_kwargs: dict | None = None, actor_options: dict | None = None,
                 slots_per_actor: int = 1, drain_timeout_s: float = 30.0) -> None:
        if not isinstance(actor_class, ActorClass):
            raise ValueError(f"actor_class must be a @ray.remote class, got {actor_class!r}")
        for name, value, low in (("size", size, 0), ("slots_per_actor", slots_per_actor, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(drain_timeout_s, (int, float)) or drain_timeout_s < 0:
            raise ValueError(f"drain_timeout_s must be a number >= 0, got {drain_timeout_s!r}")
        self.actor_class = actor_class
        self.init_args, self.init_kwargs = tuple(init_args), dict(init_kwargs or {})
        self.actor_options = dict(actor_options or {})
        self.slots_per_actor = slots_per_actor
        self.drain_timeout_s = float(drain_timeout_s)
        self._members: list[_Member] = []
        self._serial = 0
        self.submitted = 0
        self.completed = 0
        self._last_t: float | None = None
        self._last_submitted = 0
        self.resize(size)

    # ---- membership ------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self._members)

    @property
    def actors(self) -> list:
        return [m.handle for m in self._members]

    def resize(self, n: int) -> int:
        """Grow or shrink to `n` actors; returns the new size."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        while len(self._members) < n:
            handle = self.actor_class.options(**self.actor_options).remote(
                *self.init_args, **self.init_kwargs)
            self._members.append(_Member(handle, self._serial))
            self._serial += 1
        if len(self._members) > n:
            self._reap()
            order = sorted(self._members, key=lambda m: (len(m.inflight), -m.serial))
            retire = order[:len(self._members) - n]
            self._members = [m for m in self._members if m not in retire]
            pending = [ref for m in retire for ref in m.inflight]
            if pending:  # let their calls finish (bounded), then kill
                ray.wait(pending, num_returns=len(pending), timeout=self.drain_timeout_s,
                         fetch_local=False)
            for m in retire:
                self.completed += len(m.inflight)
                ray.kill(m.handle, no_restart=True)
        return self.size

    def shutdown(self) -> None:
        for m in self._members:
            ray.kill(m.handle, no_restart=True)
        self._members = []

    # ---- work ---------------------------------------------------------------------------
    def call(self, method: str, *args, **kwargs):
        """Call `method` on the least busy member; returns the ObjectRef."""
        if not self._members:
            raise ValueError("the pool is empty: resize it to at least 1 actor first")
        self._reap()
        member = min(self._members, key=lambda m: (len(m.inflight), m.serial))
        ref = getattr(member.handle, method).remote(*args, **kwargs)
        member.inflight.append(ref)
        self.submitted += 1
        return ref

    def in_flight(self) -> int:
        self._reap()
        return sum(len(m.inflight) for m in self._members)

    def _reap(self) -> None:
        for m in self._members:
            if m.inflight:
                done, m.inflight = ray.wait(m.inflight, num_returns=len(m.inflight),
                                            timeout=0, fetch_local=False)
                self.completed += len(done)

    # ---- measurement ----------------------------------------------------------------------
    def measure(self, t: float | None = None) -> Sample:
        """A Sample of the pool now (`t` on the caller's clock, default time.monotonic())."""
        now = time.monotonic() if t is None else float(t)
        inflight = self.in_flight()
        dt = None if self._last_t is None else now - self._last_t
        arrivals = self.submitted - self._last_submitted
        rate = arrivals / dt if dt and dt > 0 else 0.0
        self._last_t, self._last_submitted = now, self.submitted
        slots = self.size * self.slots_per_actor
        return Sample(t=now, request_rate=rate, replicas=self.size,
                      utilisation=inflight / slots if slots else float(inflight > 0),
                      ongoing_requests=float(inflight),
                      queue_length=float(max(0, inflight - slots)))
