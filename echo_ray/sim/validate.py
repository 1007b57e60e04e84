"""The simulator checked against real Serve: the same trace segment, live and simulated.

A segment of a trace is compressed `speedup` times and replayed open loop against a local
Serve app whose replicas sleep for an exponential service time (`echo_ray.sim.live`), once
per policy; the simulator then runs on exactly the same input, in the live run's wall-clock
units: the compressed trace (same arrivals: same seed), the same service model, bounds,
max_ongoing_requests, Serve AutoscalingConfig (so Serve's delays, look-back and metric
intervals are in the same seconds), Serve's control loop period as the tick, and the replica
start-up measured live. Both are cut into trace minutes (60 / speedup seconds of wall time)
and compared minute by minute:

- replicas: the per-minute mean of provisioned replicas (live: sampled from `serve.status()`);
  the share of minutes within +-1 of each other (target >= 0.9);
- latency: the per-minute p95 and the SLO-violation minutes (target: within +-20%, or each
  difference explained).

Pure logic here (no Ray at import); the live half is `run_live` (Serve) and the simulated
half `simulate_segment`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .arrivals import RateTrace
from .config import SimConfig
from .results import SERVED, SimResult, add_capacity_columns, minute_latency_from_requests

REPLICA_TOLERANCE = 1.0  # replicas, per minute
REPLICAS_WITHIN_TARGET = 0.9  # share of minutes
VIOLATION_TOLERANCE = 0.2  # relative, on violation minutes
SERVE_CONTROL_LOOP_S = 0.1  # ray.serve._private.constants.CONTROL_LOOP_INTERVAL_S
TUNED_DEFAULT = {"target_ongoing_requests": 1.0, "upscale_delay_s": 0.0,
                 "downscale_delay_s": 600.0}  # the sweep's pick on NASA (issue 17)
OURS_POLL_S = 0.5  # ForecastPolicy's default poll_interval_s


@dataclass(frozen=True)
class PolicySpec:
    """One policy, deployable live and buildable in the simulator from the same fields.

    kind "ray": Serve's default policy with `serve_fields` (AutoscalingConfig fields beyond
    the bounds; none = untouched defaults); kind "ours": ForecastPolicy with `ours`
    (ScalingConfig fields, its policy_kwargs).
    """

    name: str
    kind: str = "ray"
    serve_fields: dict = field(default_factory=dict)
    ours: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("ray", "ours"):
            raise ValueError(f"kind must be 'ray' or 'ours', got {self.kind!r}")

    def autoscaling_config(self, min_replicas: int, max_replicas: int) -> dict:
        """The deployment's `autoscaling_config` (live)."""
        if self.kind == "ray":
            return {"min_replicas": min_replicas, "max_replicas": max_replicas,
                    **self.serve_fields}
        from echo_ray.autoscaling.policy import forecast_autoscaling_config

        return forecast_autoscaling_config(dict(self.ours), min_replicas=min_replicas,
                                           max_replicas=max_replicas, **self.serve_fields)

    def sim_policy(self, min_replicas: int, max_replicas: int):
        """The simulator's policy with the same configuration."""
        from .policies import OursPolicy, ray_default

        if self.kind == "ray":
            p = ray_default(min_replicas, max_replicas, **self.serve_fields)
            p.name = self.name
            return p
        scaling = {k: v for k, v in self.ours.items()
                   if k not in ("poll_interval_s", "stale_after_s", "call_timeout_s",
                                "actor_name", "actor_namespace", "create_actor")}
        return OursPolicy(min_replicas, max_replicas, scaling=scaling,
                          serve_fields=self.serve_fields, name=self.name,
                          price_decisions=True,
                          poll_interval_s=float(self.ours.get("poll_interval_s", OURS_POLL_S)))

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "serve_fields": dict(self.serve_fields),
                "ours": dict(self.ours)}


def default_specs(tuned: dict | None = None, ours: dict | None = None) -> list[PolicySpec]:
    """ray_default (untouched), ray_tuned (`tuned`, default the NASA sweep's pick), ours."""
    return [PolicySpec("ray_default"),
            PolicySpec("ray_tuned", serve_fields=dict(tuned or TUNED_DEFAULT)),
            PolicySpec("ours", kind="ours", ours=dict(ours or {}))]


def busiest_segments(trace: RateTrace, count: int, minutes: float) -> list[float]:
    """Start times (s) of `count` non-overlapping `minutes`-long windows, busiest first
    (by requests), on whole bins."""
    span = max(1, math.ceil(minutes * 60.0 / trace.bin_seconds))
    rates = np.asarray(trace.rates, dtype=float)
    if rates.size < span:
        return [0.0]
    sums = np.convolve(rates, np.ones(span), mode="valid")
    taken: list[int] = []
    for i in np.argsort(-sums, kind="stable"):
        if all(abs(int(i) - j) >= span for j in taken):
            taken.append(int(i))
        if len(taken) == count:
            break
    return [j * trace.bin_seconds for j in taken]


def segment_config(base: SimConfig, startup_s: float) -> SimConfig:
    """The simulator's settings for a live comparison: Serve's control-loop period as the
    tick, the measured start-up, per-request table kept."""
    return base.replace(tick_s=SERVE_CONTROL_LOOP_S, startup_s=startup_s, keep_requests=True)


def simulate_segment(fast: RateTrace, spec: PolicySpec, config: SimConfig,
                     min_replicas: int, max_replicas: int,
                     router_start_s: float | None = None) -> SimResult:
    """The event simulator on the compressed segment (wall-clock units, like the live run);
    `router_start_s`: when the live handle's metric timers started (the replay's clock)."""
    from .engine import run_events

    policy = spec.sim_policy(min_replicas, max_replicas)
    if router_start_s is not None:
        policy.metrics.align(router_start_s)
    # the replay waits for every response (or its client timeout): so does the simulation
    drain = (config.timeout_s or 0.0) + 10.0 * config.service.mean_s * config.max_ongoing_requests
    return run_events(fast, policy, config, drain_s=drain)


def minute_table(result: SimResult, bin_s: float, slo_ms: float, service_rate: float,
                 n_minutes: int | None = None) -> pd.DataFrame:
    """Per trace minute (`bin_s` of wall time): arrivals, p95, SLO violation, mean running
    and provisioned replicas; the same for a live replay and a simulation."""
    req = result.requests
    if req is None:
        raise ValueError("the result has no per-request table (keep_requests=False)")
    arrival = req["arrival_s"].to_numpy(dtype=float)
    latency = req["latency_ms"].to_numpy(dtype=float) / 1000.0
    status = np.asarray(req["status"].cat.codes, dtype=np.int8)
    if n_minutes is None:
        n_minutes = max(1, math.ceil(float(result.timeline["dt"].sum()) / bin_s - 1e-9))
    minutes = minute_latency_from_requests(arrival, latency, status, n_minutes, bin_s)
    timeline = result.timeline[result.timeline["t"] < n_minutes * bin_s - 1e-9]
    return add_capacity_columns(minutes, timeline, service_rate, slo_ms, bin_s)


def agreement(live: pd.DataFrame, sim: pd.DataFrame,
              tolerance: float = REPLICA_TOLERANCE) -> dict:
    """Minute-by-minute agreement of two `minute_table`s of the same segment."""
    n = min(len(live), len(sim))
    lp = live["mean_provisioned"].to_numpy(dtype=float)[:n]
    sp = sim["mean_provisioned"].to_numpy(dtype=float)[:n]
    ok = np.abs(lp - sp) <= tolerance + 1e-9
    lv = int(live["slo_violation"].to_numpy()[:n].sum())
    sv = int(sim["slo_violation"].to_numpy()[:n].sum())
    both = live["slo_violation"].to_numpy()[:n] & sim["slo_violation"].to_numpy()[:n]
    return {"minutes": n, "replicas_within_1": round(float(ok.mean()) if n else math.nan, 4),
            "replica_minutes_off": [int(i) for i in np.flatnonzero(~ok)],
            "violation_minutes_live": lv, "violation_minutes_sim": sv,
            "violation_minutes_both": int(both.sum()),
            "violations_within_20pct": violations_agree(lv, sv)}


def violations_agree(live: int, sim: int, tolerance: float = VIOLATION_TOLERANCE) -> bool:
    """Within +-20% of the live count (a difference of one minute always passes: on a
    handful of minutes 20% is less than one)."""
    return abs(sim - live) <= max(1.0, tolerance * live)


def pooled(rows: Sequence[dict]) -> dict:
    """Agreement over several segments of one policy (minutes pooled)."""
    minutes = sum(r["minutes"] for r in rows)
    within = sum(r["replicas_within_1"] * r["minutes"] for r in rows)
    lv = sum(r["violation_minutes_live"] for r in rows)
    sv = sum(r["violation_minutes_sim"] for r in rows)
    return {"minutes": minutes,
            "replicas_within_1": round(within / minutes, 4) if minutes else math.nan,
            "violation_minutes_live": lv, "violation_minutes_sim": sv,
            "violation_minutes_both": sum(r["violation_minutes_both"] for r in rows),
            "replicas_ok": bool(minutes and within / minutes >= REPLICAS_WITHIN_TARGET),
            "violations_within_20pct": violations_agree(lv, sv)}


def startup_samples(timeline: pd.DataFrame) -> list[float]:
    """Replica start-up times seen in a sampled (t, running, provisioned) timeline: for each
    rise of the provisioned count, and each replica it adds, the time until that many
    replicas run (replicas whose rise a scale-down cut short are skipped)."""
    t = timeline["t"].to_numpy(dtype=float)
    run = timeline["running"].to_numpy(dtype=float)
    prov = timeline["provisioned"].to_numpy(dtype=float)
    out = []
    for i in range(1, len(t)):
        if not prov[i] > prov[i - 1]:
            continue
        for level in range(int(max(prov[i - 1], run[i - 1])) + 1, int(prov[i]) + 1):
            for j in range(i, len(t)):
                if prov[j] < level:
                    break
                if run[j] >= level:
                    out.append(float(t[j] - t[i]))
                    break
    return out


def save_live_run(result: SimResult, directory, name: str, segment: int) -> None:
    """A live replay's requests (CSV) and setup (JSON, with the raw replica polls)."""
    import json
    from pathlib import Path

    if result.requests is None:
        raise ValueError("the live run has no per-request table")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    result.requests.to_csv(d / f"{name}_{segment}_requests.csv", index=False)
    (d / f"{name}_{segment}_setup.json").write_text(json.dumps(
        {**result.setup, "summary": result.summary}, default=str))


def load_live_run(directory, name: str, segment: int, duration_s: float) -> SimResult:
    """A saved live replay back as a SimResult (requests, timeline, setup, summary), so the
    simulator side can be re-run on it without replaying."""
    import json
    from pathlib import Path

    from .replay import replica_timeline
    from .results import DROPPED, IN_FLIGHT

    d = Path(directory)
    req = pd.read_csv(d / f"{name}_{segment}_requests.csv")
    setup = json.loads((d / f"{name}_{segment}_setup.json").read_text())
    codes = {"in_flight": IN_FLIGHT, "served": SERVED, "dropped": DROPPED}
    status = req["status"].map(codes).to_numpy(dtype=np.int8)
    req["status"] = pd.Categorical.from_codes(status, ["in_flight", "served", "dropped"])
    samples = [tuple(x) for x in setup["replica_samples"]]
    timeline = replica_timeline(samples, req["arrival_s"].to_numpy(dtype=float), status,
                                duration_s)
    summary = setup.pop("summary", {})
    return SimResult(name, "replay", summary, pd.DataFrame(), timeline, pd.DataFrame(), req,
                     setup)


def samples_timeline(samples: Sequence[tuple[float, int, int]]) -> pd.DataFrame:
    """The raw (t, running, provisioned) polls as a frame."""
    return pd.DataFrame(list(samples), columns=["t", "running", "provisioned"])


def replica_seconds(timeline: pd.DataFrame, until_s: float) -> float:
    """Provisioned replica-seconds of a timeline up to `until_s` (the segment's end)."""
    t = timeline[timeline["t"] < until_s - 1e-9]
    return float((t["provisioned"] * t["dt"]).sum())


def table(rows: dict[str, dict]) -> str:
    """The agreement table, one line per policy."""
    lines = [f"   {'policy':<12} {'minutes':>7} {'replicas +-1':>12} {'violation min live':>19} "
             f"{'sim':>5} {'both':>5}  verdict"]
    for name, r in rows.items():
        verdict = ("replicas " + ("OK" if r["replicas_ok"] else "OFF") + ", violations "
                   + ("OK" if r["violations_within_20pct"] else "OFF"))
        lines.append(f"   {name:<12} {r['minutes']:>7} {r['replicas_within_1']:>12.0%} "
                     f"{r['violation_minutes_live']:>19} {r['violation_minutes_sim']:>5} "
                     f"{r['violation_minutes_both']:>5}  {verdict}")
    return "\n".join(lines)
