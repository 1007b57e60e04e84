"""Workloads for the simulator: request-rate traces (open arrivals) and closed populations.

A `RateTrace` is a piecewise-constant arrival rate: one rate (requests/s) per bin of
`bin_seconds`. It comes from a real trace (per-minute counts such as the NASA log), from any
`minute,requests` CSV or one-count-per-line file, from a seeded synthetic family
(`echo_ray.autoscaling.synthetic`), or from a synthetic pattern. Arrivals within a bin are a
Poisson process (a Poisson count, uniform times), so the same trace and seed always give the
same requests. A `ClosedPopulation` is N users who each send a request, wait for the
answer, think for an exponential time and send the next one.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from echo_ray.autoscaling.trace import NASA_TRACE, load_request_trace, traces_dir
from echo_ray.checks import integer, positive

TRACE_ALIASES = {"nasa": NASA_TRACE}


def resolve_trace_path(trace: str | os.PathLike) -> Path:
    """A trace file path; "nasa" means the NASA trace in `ECHO_RAY_TRACES`.

    Raises ValueError naming the folder when the trace cannot be found.
    """
    if isinstance(trace, str) and trace.lower() in TRACE_ALIASES:
        path = traces_dir() / TRACE_ALIASES[trace.lower()]
        if not path.is_file():
            raise ValueError(f"trace {trace!r}: {path} not found; set ECHO_RAY_TRACES to the "
                             f"folder holding {TRACE_ALIASES[trace.lower()]}")
        return path
    path = Path(trace)
    if not path.is_file():
        raise ValueError(f"trace must be 'nasa' or an existing file, got {str(trace)!r}")
    return path


@dataclass(frozen=True)
class RateTrace:
    """Arrival rate (requests/s) per bin of `bin_seconds`; `name` says where it came from."""

    rates: np.ndarray
    bin_seconds: float = 60.0
    name: str = "trace"

    def __post_init__(self) -> None:
        rates = np.asarray(self.rates, dtype=float)
        if rates.ndim != 1 or rates.size == 0 or not np.isfinite(rates).all() \
                or (rates < 0).any():
            raise ValueError("rates must be a non-empty 1-D array of finite rates >= 0")
        positive("bin_seconds", self.bin_seconds)
        object.__setattr__(self, "rates", rates)

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_counts(cls, counts, bin_seconds: float = 60.0, name: str = "trace") -> RateTrace:
        """Requests per bin -> rates."""
        bin_seconds = positive("bin_seconds", bin_seconds)
        return cls(np.asarray(counts, dtype=float) / bin_seconds, bin_seconds, name)

    @classmethod
    def load(cls, trace: str | os.PathLike, bin_seconds: float = 60.0) -> RateTrace:
        """A `minute,requests` CSV (or one count per line at `bin_seconds`), or "nasa"."""
        path = resolve_trace_path(trace)
        return cls.from_counts(load_request_trace(path), bin_seconds, name=path.stem)

    @classmethod
    def synthetic(cls, family: str, seed: int = 0, days: float | None = None) -> RateTrace:
        """A seeded synthetic family of `echo_ray.autoscaling.synthetic` (per-minute counts,
        as a trace file holds them), named after the family."""
        from echo_ray.autoscaling.synthetic import generate

        return cls.from_counts(generate(family, seed, days).counts, 60.0, name=family)

    @classmethod
    def constant(cls, rate: float, duration_s: float, bin_seconds: float = 10.0) -> RateTrace:
        n = max(1, math.ceil(positive("duration_s", duration_s) / bin_seconds))
        return cls(np.full(n, positive("rate", rate, strict=False)), bin_seconds, "constant")

    @classmethod
    def steps(cls, levels, durations_s, bin_seconds: float = 10.0) -> RateTrace:
        """Rate `levels[i]` for `durations_s[i]` seconds, one after the other."""
        levels, durations_s = list(levels), list(durations_s)
        if not levels or len(levels) != len(durations_s):
            raise ValueError("levels and durations_s must be non-empty and of equal length")
        parts = [np.full(max(1, round(positive("durations_s", d) / bin_seconds)),
                         positive("levels", lv, strict=False))
                 for lv, d in zip(levels, durations_s)]
        return cls(np.concatenate(parts), bin_seconds, "steps")

    @classmethod
    def ramp(cls, start: float, end: float, duration_s: float, hold_before_s: float = 0.0,
             hold_after_s: float = 0.0, bin_seconds: float = 10.0) -> RateTrace:
        """Flat at `start`, a straight line to `end` over `duration_s`, flat at `end`."""
        start = positive("start", start, strict=False)
        end = positive("end", end, strict=False)
        before = np.full(round(positive("hold_before_s", hold_before_s, strict=False)
                               / bin_seconds), start)
        n = max(1, round(positive("duration_s", duration_s) / bin_seconds))
        line = start + (end - start) * (np.arange(n) + 0.5) / n
        after = np.full(round(positive("hold_after_s", hold_after_s, strict=False)
                              / bin_seconds), end)
        return cls(np.concatenate([before, line, after]), bin_seconds, "ramp")

    # ---- transformations ---------------------------------------------------------------
    @property
    def duration_s(self) -> float:
        return float(self.rates.size * self.bin_seconds)

    @property
    def peak_rate(self) -> float:
        return float(self.rates.max())

    @property
    def mean_rate(self) -> float:
        return float(self.rates.mean())

    def scaled(self, factor: float) -> RateTrace:
        return RateTrace(self.rates * positive("factor", factor, strict=False),
                         self.bin_seconds, self.name)

    def window(self, start_s: float = 0.0, duration_s: float | None = None) -> RateTrace:
        """The bins from `start_s` on, `duration_s` long (whole bins)."""
        first = int(positive("start_s", start_s, strict=False) // self.bin_seconds)
        last = self.rates.size if duration_s is None else \
            first + max(1, math.ceil(positive("duration_s", duration_s) / self.bin_seconds))
        if first >= self.rates.size:
            raise ValueError(f"start_s={start_s} is past the end of the trace "
                             f"({self.duration_s:.0f} s)")
        return RateTrace(self.rates[first:last], self.bin_seconds, self.name)

    def compressed(self, speedup: float) -> RateTrace:
        """The same requests in 1/speedup of the time (bins shorter, rates higher)."""
        speedup = positive("speedup", speedup)
        return RateTrace(self.rates * speedup, self.bin_seconds / speedup, self.name)

    def rate_at(self, t) -> np.ndarray:
        """Rate in force at time(s) t (0 past the end)."""
        idx = np.floor(np.asarray(t, dtype=float) / self.bin_seconds).astype(np.int64)
        inside = (idx >= 0) & (idx < self.rates.size)
        return np.where(inside, self.rates[np.clip(idx, 0, self.rates.size - 1)], 0.0)

    def expected_requests(self) -> float:
        return float(self.rates.sum() * self.bin_seconds)

    # ---- arrivals ----------------------------------------------------------------------
    def arrivals(self, rng: np.random.Generator) -> np.ndarray:
        """Sorted arrival times: a Poisson number of uniform times in each bin."""
        counts = rng.poisson(self.rates * self.bin_seconds)
        starts = np.repeat(np.arange(self.rates.size) * self.bin_seconds, counts)
        times = starts + rng.uniform(0.0, self.bin_seconds, starts.size)
        times.sort()
        return times


@dataclass(frozen=True)
class ClosedPopulation:
    """`users` users, each thinking Exp(`think_s`) between getting an answer and asking again.

    Offered load is about users / (think_s + response time) requests/s.
    """

    users: int
    think_s: float
    duration_s: float
    name: str = field(default="closed")

    def __post_init__(self) -> None:
        integer("users", self.users, minimum=1)
        positive("think_s", self.think_s)
        positive("duration_s", self.duration_s)

    @property
    def nominal_rate(self) -> float:
        """Requests/s if responses were instant."""
        return self.users / self.think_s


Workload = RateTrace | ClosedPopulation


def as_workload(workload) -> Workload:
    if not isinstance(workload, RateTrace | ClosedPopulation):
        raise ValueError(f"workload must be a RateTrace or ClosedPopulation, got "
                         f"{type(workload).__name__}")
    return workload


def workload_duration(workload: Workload) -> float:
    return workload.duration_s
