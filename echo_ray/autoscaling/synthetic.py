"""Seeded synthetic per-minute request traces, one generator per workload family.

Each family is built to have properties the tests can check (`SyntheticTrace.period` is the
season the detector must find, None for none; `info` holds the rest) and stands for a kind of
real trace a forecaster tuned on one web log would not have seen:

- daily_weekly: daily cycle whose height changes by weekday, Poisson counts (web traffic).
- timer_bursts: a low Poisson base plus bursts at fixed minutes of the hour (cron-style
  timer-triggered serverless functions).
- bursty_zeros: on/off traffic; "off" runs are zero-count minutes, "on" runs have a
  log-AR(1) rate (bursty social-media or batch clients).
- shifts_outages: daily cycle whose level jumps at random times, with outages (runs of zeros).
- trend_ramps: piecewise-linear ramps of the rate up and down, no season (launches, drains).

Counts are Poisson given the rate, so the noise is that of real per-minute counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from echo_ray.checks import integer

DAY = 1440
FAMILIES = ("daily_weekly", "timer_bursts", "bursty_zeros", "shifts_outages", "trend_ramps")


@dataclass(frozen=True)
class SyntheticTrace:
    family: str
    seed: int
    counts: np.ndarray  # requests per minute (what a trace file holds)
    rate: np.ndarray  # the expected count per minute the counts were drawn from
    period: int | None  # the season built in (None: none)
    test: int  # suggested test span (the last `test` minutes)
    info: dict = field(default_factory=dict)


def generate(family: str, seed: int = 0, days: float | None = None) -> SyntheticTrace:
    """The trace of `family` from `seed`; `days` overrides the family's default length."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {list(FAMILIES)}, got {family!r}")
    seed = integer("seed", seed, minimum=0)
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    default_days = {"timer_bursts": 2, "bursty_zeros": 7, "trend_ramps": 7}.get(family, 14)
    n = int(round((days or default_days) * DAY))
    if n < 2 * DAY // 24:
        raise ValueError(f"days must give at least 120 minutes, got {days!r}")
    t = np.arange(n)
    return globals()[f"_{family}"](rng, t, seed)


def _daily(t: np.ndarray, phase: float) -> np.ndarray:
    """Daily shape in [0.2, 1.8]: a trough at night and a broad afternoon peak."""
    x = 2 * np.pi * (t % DAY) / DAY - phase
    return 1.0 + 0.7 * np.sin(x) + 0.1 * np.sin(2 * x)


def _daily_weekly(rng, t, seed) -> SyntheticTrace:
    base = rng.uniform(20, 80)
    weekday = np.array([1.0, 1.05, 1.1, 1.05, 0.95, 0.6, 0.55])  # weekend dip
    week = weekday[(t // DAY) % 7]
    rate = base * _daily(t, rng.uniform(0, 2 * np.pi)) * week
    counts = rng.poisson(rate).astype(float)
    return SyntheticTrace("daily_weekly", seed, counts, rate, DAY, 2 * DAY,
                          {"base": base, "weekday_factor": weekday.tolist()})


def _timer_bursts(rng, t, seed) -> SyntheticTrace:
    base = rng.uniform(1, 4)
    minutes = np.sort(rng.choice(60, size=5, replace=False))
    heights = rng.uniform(20, 200, size=5)
    burst = np.zeros(60)
    burst[minutes] = heights
    rate = base * (1.0 + 0.3 * np.sin(2 * np.pi * t / DAY)) + burst[t % 60]
    counts = rng.poisson(rate).astype(float)
    return SyntheticTrace("timer_bursts", seed, counts, rate, 60, DAY // 4,
                          {"base": base, "burst_minutes": minutes.tolist(),
                           "burst_heights": heights.tolist()})


def _bursty_zeros(rng, t, seed) -> SyntheticTrace:
    n = t.size
    mean_off, mean_on = 6.0, 20.0  # mean run lengths, minutes (geometric)
    on = np.empty(n, dtype=bool)
    i, state = 0, bool(rng.random() < 0.5)
    while i < n:
        run = int(rng.geometric(1.0 / (mean_on if state else mean_off)))
        on[i: i + run] = state
        i += run
        state = not state
    log_rate = np.empty(n)  # AR(1) in log space around log(base): bursts of all sizes
    base, rho, sd = rng.uniform(5, 30), 0.95, 0.25
    x = 0.0
    for k in range(n):
        x = rho * x + sd * rng.standard_normal()
        log_rate[k] = x
    rate = np.where(on, base * np.exp(log_rate), 0.0)
    counts = rng.poisson(rate).astype(float)
    return SyntheticTrace("bursty_zeros", seed, counts, rate, None, DAY,
                          {"base": base, "off_fraction": float(1.0 - on.mean()),
                           "expected_off_fraction": mean_off / (mean_off + mean_on)})


def _shifts_outages(rng, t, seed) -> SyntheticTrace:
    n = t.size
    level = np.empty(n)
    shifts, i, lv = [], 0, rng.uniform(20, 60)
    while i < n:  # a new level every 1-3 days, 0.5x to 2x the last one
        run = int(rng.integers(DAY, 3 * DAY))
        level[i: i + run] = lv
        shifts.append(i)
        i += run
        lv = float(np.clip(lv * np.exp(rng.uniform(-0.7, 0.7)), 5, 200))
    rate = level * _daily(t, rng.uniform(0, 2 * np.pi))
    outage = np.zeros(n, dtype=bool)
    earliest = DAY if n > DAY + 1 else n // 2  # after the first day; in a day or less, its 2nd half
    for _ in range(max(1, n // (3 * DAY))):  # about one outage per 3 days, 30 min to 3 h
        start = int(rng.integers(earliest, n - 1))
        outage[start: start + int(rng.integers(30, 180))] = True
    rate = np.where(outage, 0.0, rate)
    counts = rng.poisson(rate).astype(float)
    return SyntheticTrace("shifts_outages", seed, counts, rate, DAY, 2 * DAY,
                          {"shift_starts": shifts[1:], "outage_fraction": float(outage.mean())})


def _trend_ramps(rng, t, seed) -> SyntheticTrace:
    n = t.size
    knots = [0]
    while knots[-1] < n:
        knots.append(knots[-1] + int(rng.integers(120, 720)))  # 2-12 h segments
    values = np.exp(rng.normal(np.log(40), 0.6, size=len(knots)))
    rate = np.interp(t, knots, values)
    counts = rng.poisson(rate).astype(float)
    return SyntheticTrace("trend_ramps", seed, counts, rate, None, DAY,
                          {"knots": knots, "knot_rates": values.tolist()})
