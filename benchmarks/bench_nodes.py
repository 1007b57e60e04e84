"""Nodes ahead of demand in the simulator (issue 17 item 6): ours with worker nodes that take
minutes to start, without and with the optimizer's node request (request_resources for the
replicas the forecast wants at the node start-up time), on seeded synthetic trace families
(echo_ray/autoscaling/synthetic.py; never the shared or data/ traces).

Same policy, same trace, same seed: only the node request differs. Prints per family the
SLO-violation minutes, node-hours, replica-hours, replica time spent waiting for a node, and
the with/without ratios; `--json` writes them.

    PYTHONPATH=$PWD python benchmarks/bench_nodes.py --families trend_ramps daily_weekly

`--live` runs the same comparison on Ray's fake multi-node cluster instead (as root: each run
in private namespaces; tests/multinode/test_multinode_autoscaler.py holds the scenario): one
worker node to start, a sleep-based worker of 1 CPU a replica, a load that steps up for 40 s
every 160 s (four times), reactive then ahead; it prints when the first node request stood and
the first replica waited for a node, replica-seconds waiting, node-seconds, each node's
arrival, the requests' latency, and for each step how long the request had stood, the nodes
up when it came and those that came in the minute before.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from echo_ray.autoscaling.synthetic import FAMILIES
from echo_ray.sim.arrivals import RateTrace
from echo_ray.sim.config import SimConfig
from echo_ray.sim.fluid import run_fluid
from echo_ray.sim.nodes import NodeCluster
from echo_ray.sim.policies import OursPolicy
from echo_ray.sim.runner import plan

KEYS = ("slo_violation_minutes", "node_hours", "replica_seconds", "replica_node_wait_s",
        "nodes_launched", "peak_nodes", "p95_ms", "scaling_events")


def run_family(family: str, args) -> dict:
    rates = RateTrace.synthetic(family, args.seed, args.days)
    cfg = SimConfig(startup_s=args.startup_s, tick_s=1.0, seed=args.seed)
    p = plan(rates, cfg, args.peak_replicas)
    # the forecaster must see as far as a node takes to start: 10 s steps, horizon to cover it
    step = 10.0
    scaling = {**p.ours_scaling(), "node_startup_s": args.node_startup_s,
               "forecast_step_s": step,
               "forecast_max_horizon": int(args.node_startup_s // step) + 2}
    out = {"family": family, "seed": args.seed, "days": args.days,
           "peak_replicas": p.peak_replicas, "max_replicas": p.max_replicas}
    for ahead in (False, True):
        policy = OursPolicy(p.min_replicas, p.max_replicas, scaling=scaling,
                            price_decisions=False)
        nodes = NodeCluster(args.replicas_per_node, args.node_startup_s, args.idle_timeout_s,
                            initial_replicas=policy.initial_replicas(), ahead=ahead)
        t0 = time.perf_counter()
        r = run_fluid(p.workload, policy, cfg, nodes=nodes)
        row = {k: r.summary[k] for k in KEYS}
        row["replica_hours"] = row.pop("replica_seconds") / 3600.0
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        out["ahead" if ahead else "reactive"] = row
    a, b = out["ahead"], out["reactive"]
    out["ratio"] = {k: (a[k] / b[k] if b[k] else None)
                    for k in ("slo_violation_minutes", "node_hours", "replica_hours",
                              "replica_node_wait_s")}
    return out


def run_live() -> list[dict]:
    """Both modes on the fake multi-node cluster, reactive first; their summaries."""
    from tests.multinode.test_multinode_autoscaler import nodes_summary
    from tests.support.multinode import run_isolated, sandbox_unavailable

    reason = sandbox_unavailable()
    if reason:
        raise SystemExit(f"--live needs private namespaces: {reason}")
    scenario = Path(__file__).resolve().parents[1] / "tests/multinode/test_multinode_autoscaler.py"
    out = []
    print(f"{'mode':<10}{'1st request s':>14}{'1st wait s':>11}{'replica-s waiting':>18}"
          f"{'node-s':>8}{'nodes':>6}{'p50 ms':>8}{'p95 ms':>9}"
          "  arrivals (s: replicas waiting before)")
    for mode in ("reactive", "ahead"):
        run = run_isolated(scenario, f"scenario_nodes_{mode}", timeout_s=1100)
        summary = {"mode": mode, **nodes_summary(run), "sent": run["sent"],
                   "failed": run["failed"], "timeline": run["timeline"]}
        out.append(summary)
        fmt = lambda v: "-" if v is None else f"{v:g}"  # noqa: E731
        arrivals = ", ".join(f"{a['t']:g}: {a['replicas_waiting_before']}"
                             for a in summary["arrivals"])
        print(f"{mode:<10}{fmt(summary['first_node_request_t']):>14}"
              f"{fmt(summary['first_replica_waiting_t']):>11}"
              f"{summary['replica_s_waiting_for_a_node']:>18}{summary['node_s']:>8}"
              f"{summary['peak_nodes']:>6}"
              f"{fmt(summary['p50_ms']):>8}{fmt(summary['p95_ms']):>9}  {arrivals}")
        for st in summary["steps"]:
            print(f"{'':<10}step up at {st['at']:g} s: request stood {st['request_stood_s']:g} s,"
                  f" {st['nodes_at_step']} node(s) up, came in the minute before: "
                  f"{st['nodes_came_in_the_minute_before'] or '-'}; replica-s waiting for a "
                  f"node during the step: {st['replica_s_waiting']}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=["trend_ramps", "daily_weekly"],
                    choices=FAMILIES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--peak-replicas", type=int, default=40)
    ap.add_argument("--replicas-per-node", type=int, default=4)
    ap.add_argument("--node-startup-s", type=float, default=180.0)
    ap.add_argument("--idle-timeout-s", type=float, default=300.0)
    ap.add_argument("--startup-s", type=float, default=30.0, help="a replica's own start-up")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--live", action="store_true",
                    help="on Ray's fake multi-node cluster instead of the simulator (root)")
    args = ap.parse_args()
    if args.live:
        live = run_live()
        if args.json:
            args.json.write_text(json.dumps({"live": live}, indent=2, default=float))
        return
    results = []
    print(f"nodes ahead of demand: ours, {args.replicas_per_node} replicas per node, nodes "
          f"start in {args.node_startup_s:g} s, idle timeout {args.idle_timeout_s:g} s, "
          f"replicas start in {args.startup_s:g} s; {args.days:g} day(s), seed {args.seed}")
    print(f"{'family':<16}{'mode':<10}{'viol. min':>10}{'node-h':>9}{'replica-h':>11}"
          f"{'node wait s':>12}{'launched':>9}{'p95 ms':>9}")
    for family in args.families:
        out = run_family(family, args)
        results.append(out)
        for mode in ("reactive", "ahead"):
            r = out[mode]
            print(f"{family:<16}{mode:<10}{r['slo_violation_minutes']:>10.0f}"
                  f"{r['node_hours']:>9.1f}{r['replica_hours']:>11.1f}"
                  f"{r['replica_node_wait_s']:>12,.0f}{r['nodes_launched']:>9}"
                  f"{r['p95_ms']:>9.0f}")
        ratio = out["ratio"]
        fmt = {k: "-" if v is None else f"{v:.2f}x" for k, v in ratio.items()}
        print(f"{'':<16}{'ahead/re':<10}{fmt['slo_violation_minutes']:>10}"
              f"{fmt['node_hours']:>9}{fmt['replica_hours']:>11}"
              f"{fmt['replica_node_wait_s']:>12}")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: v for k, v in vars(args).items()
                                                  if k != "json"}, "results": results},
                                        indent=2, default=float))


if __name__ == "__main__":
    main()
