"""The simulator validated against real Serve, cheaply: one short load step replayed live on
a local Serve app (sleep-based replicas, Serve's default autoscaling policy untouched) and
simulated on the same input. Seeded; the live start-up is measured and fed to the simulator.

One 100-s run is one draw: over 20 seeds the simulator itself gave 3 to 8 SLO-violation bins
on this step (the overloaded first bin and the bin where the backlog drains lie near the SLO),
so one live draw against one simulated draw at issue 17's +-1 bin was a coin flip (it failed in
CI with 3 live). The live run is therefore held against the simulator's distribution over
`SIM_SEEDS`: per-10-s replicas within +-1 of the per-bin median in >= 90% of bins, and the live
violation bins within the simulated range widened by one bin. The benchmark
(`bench_autoscaling.py`, its live segments) pools many minutes and keeps +-20%."""

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
SIM_SEEDS = range(40)


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
    config = va.segment_config(SimConfig(service=ServiceModel.exponential(MEAN_S),
                                         slo_ms=SLO_MS, max_ongoing_requests=5),
                               float(np.median(seen)))
    lm = va.minute_table(live, BIN_S, SLO_MS, 1.0 / MEAN_S)
    assert len(lm) == 10, lm.to_dict("list")
    sims = [va.minute_table(va.simulate_segment(trace, spec, config.replace(seed=s), *BOUNDS,
                                                router_start_s=live.setup["router_start_s"]),
                            BIN_S, SLO_MS, 1.0 / MEAN_S, n_minutes=len(lm))
            for s in SIM_SEEDS]
    median = sims[0].copy()
    median["mean_provisioned"] = np.median([m["mean_provisioned"] for m in sims], axis=0)
    a = va.agreement(lm, median)
    sim_violations = sorted(int(m["slo_violation"].sum()) for m in sims)
    live_violations = int(lm["slo_violation"].sum())
    detail = {"replicas_within_1": a["replicas_within_1"], "startup": seen,
              "router_start_s": live.setup["router_start_s"],
              "live_changes": changes.round(1).values.tolist(),
              "live": lm[["mean_provisioned", "p95_ms"]].round(1).to_dict("list"),
              "sim_median_provisioned": median["mean_provisioned"].round(1).tolist(),
              "violations_live": live_violations, "violations_sim": sim_violations}
    assert a["replicas_within_1"] >= va.REPLICAS_WITHIN_TARGET, detail
    assert sim_violations[0] - 1 <= live_violations <= sim_violations[-1] + 1, detail
