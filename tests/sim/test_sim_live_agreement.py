"""The simulator validated against real Serve, cheaply: one short load step replayed live on
a local Serve app (sleep-based replicas, Serve's default autoscaling policy untouched) and
simulated on the same input; the per-10-s replica counts and SLO-violation bins must agree
within issue 17's tolerance (replicas within +-1 in >= 90% of bins, violation bins within
+-20% or one bin). Seeded; the live start-up is measured and fed to the simulator."""

from __future__ import annotations

import numpy as np
import pytest

from echo_ray.sim import RateTrace, ServiceModel, SimConfig
from echo_ray.sim import validate as va
from echo_ray.sim.live import replay_policy

pytestmark = pytest.mark.ray

BIN_S = 10.0  # the comparison's "minute"
MEAN_S = 0.4  # slow enough that a loaded machine's proxy and client are never the limit
# 8x the service time, not the benchmark's 4x: after the scale-up three replicas serve at
# utilisation ~0.5, where a 10-s bin's p95 (its 2nd-slowest of ~30 exponential answers) is
# 1.1-2.4 s, so a 1,600 ms threshold made those bins coin flips, live and simulated alike (the
# test failed twice in a row on them, 9 and 5 violation bins live, with every bin's replicas
# agreeing). At 3,200 ms only the overloaded bins (p95 4.6-14 s) count: whether both see the
# same overload.
SLO_MS = 3200.0
BOUNDS = (1, 3)


def test_simulated_ray_default_agrees_with_live_serve(serve_session):
    # 100 s at 3.5 req/s: one replica (2.5 req/s) is overloaded from the start, so Serve's
    # default policy (upscale_delay_s 30 after the first metrics push) scales up ~40 s in.
    trace = RateTrace.steps([3.5], [100.0], bin_seconds=10.0)
    spec = va.default_specs()[0]
    assert spec.name == "ray_default"
    live = replay_policy(spec, trace, serve_session, name="sim-live-agreement", speedup=1.0,
                         mean_s=MEAN_S, min_replicas=BOUNDS[0], max_replicas=BOUNDS[1],
                         seed=7, slo_ms=SLO_MS, poll_s=0.5, timeout_s=30.0)
    polls = va.samples_timeline(live.setup["replica_samples"])
    changes = polls[(polls["running"].diff() != 0) | (polls["provisioned"].diff() != 0)]
    seen = va.startup_samples(polls)
    assert seen, changes.to_dict("list")  # it did scale up live
    base = SimConfig(service=ServiceModel.exponential(MEAN_S), slo_ms=SLO_MS, seed=7,
                     max_ongoing_requests=5)
    sim = va.simulate_segment(trace, spec, va.segment_config(base, float(np.median(seen))),
                              *BOUNDS, router_start_s=live.setup["router_start_s"])
    lm = va.minute_table(live, BIN_S, SLO_MS, 1.0 / MEAN_S)
    sm = va.minute_table(sim, BIN_S, SLO_MS, 1.0 / MEAN_S, n_minutes=len(lm))
    a = va.agreement(lm, sm)
    detail = {"agreement": a, "startup": seen, "router_start_s": live.setup["router_start_s"],
              "live_changes": changes.round(1).values.tolist(),
              "sim_events": sim.events[["t", "from", "to"]].round(1).values.tolist(),
              "live": lm[["mean_provisioned", "p95_ms"]].round(1).to_dict("list"),
              "sim": sm[["mean_provisioned", "p95_ms"]].round(1).to_dict("list")}
    assert len(lm) == 10, detail
    assert a["replicas_within_1"] >= va.REPLICAS_WITHIN_TARGET, detail
    assert a["violations_within_20pct"], detail
