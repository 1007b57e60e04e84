"""The capacity-planning commands: simulate, compare, scenarios, calibrate, replay.

Mount them on the main typer app with `register(app)` (they become `echo-ray simulate`, ...),
or run `python -m echo_ray.sim.cli --help` on their own.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

POLICY_HELP = "ours | ray-default | static (= static-peak) | static-mean | static:N"


def _trace(trace: str, bin_seconds: float, start_hours: float, hours: float | None):
    from .arrivals import RateTrace

    t = RateTrace.load(trace, bin_seconds)
    return t.window(start_hours * 3600.0, None if hours is None else hours * 3600.0)


def _config(service: str, slo_ms: float, startup_s: float, max_ongoing: int, routing: str,
            seed: int, tick_s: float, timeout_s: float, keep_requests: bool):
    from .config import SimConfig
    from .service import ServiceModel

    return SimConfig(service=ServiceModel.parse(service), slo_ms=slo_ms, startup_s=startup_s,
                     max_ongoing_requests=max_ongoing, routing=routing, seed=seed,
                     tick_s=tick_s, timeout_s=timeout_s if timeout_s > 0 else None,
                     keep_requests=keep_requests)


def _policy_name(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    return "static_peak" if key == "static" else key


def _print_table(df, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in df.columns:
        table.add_column(str(c), justify="right")
    for _, row in df.iterrows():
        table.add_row(*[f"{v:,.1f}" if isinstance(v, float) else str(v) for v in row])
    Console().print(table)


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


TraceOpt = typer.Option("nasa", help="'nasa' or a `minute,requests` CSV / one count per line")
BinOpt = typer.Option(60.0, help="seconds per trace bin")
StartOpt = typer.Option(0.0, help="skip this many hours of the trace")
HoursOpt = typer.Option(24.0, help="simulate this many hours of the trace")
PeakOpt = typer.Option(40, help="scale the trace so its peak needs this many replicas "
                                 "(0: use the trace's rates as they are)")
ServiceOpt = typer.Option("exp:50ms", help="exp:50ms | fixed:0.1s | a calibration JSON file")
SloOpt = typer.Option(400.0, help="p95 latency target (ms)")
StartupOpt = typer.Option(30.0, help="replica start-up time (s)")
OngoingOpt = typer.Option(5, help="max_ongoing_requests per replica")
RoutingOpt = typer.Option("power_of_two", help="routing strategy (echo_ray.routing)")
ModeOpt = typer.Option("fluid", help="event (exact, per request) | fluid (fast, per tick)")
SeedOpt = typer.Option(0, help="random seed")
TickOpt = typer.Option(1.0, help="control-loop period (s)")
TimeoutOpt = typer.Option(30.0, help="clients give up after waiting this long at the handle "
                                     "(0: never)")
OutOpt = typer.Option(Path("sim-out"), help="output folder (CSV, JSON, PNG)")


def simulate(trace: str = TraceOpt, policy: str = typer.Option("ours", help=POLICY_HELP),
             mode: str = ModeOpt, bin_seconds: float = BinOpt, start_hours: float = StartOpt,
             hours: float = HoursOpt, peak_replicas: int = PeakOpt, service: str = ServiceOpt,
             slo_ms: float = SloOpt, startup_s: float = StartupOpt, max_ongoing: int = OngoingOpt,
             routing: str = RoutingOpt, seed: int = SeedOpt, tick_s: float = TickOpt,
             timeout_s: float = TimeoutOpt, out: Path = OutOpt) -> None:
    """Simulate one policy on a trace: summary, CSV tables and plots."""
    from .plots import plot_run
    from .runner import plan
    from .runner import simulate as run

    try:
        cfg = _config(service, slo_ms, startup_s, max_ongoing, routing, seed, tick_s, timeout_s,
                      keep_requests=mode == "event")
        p = plan(_trace(trace, bin_seconds, start_hours, hours), cfg, peak_replicas or None)
        result = run(p, _policy_name(policy), mode)
    except ValueError as exc:
        _fail(exc)
    result.to_csv(out)
    png = plot_run(result, out / f"{result.policy}.png")
    import pandas as pd

    _print_table(pd.DataFrame([{k: v for k, v in result.summary.items()
                                if not isinstance(v, dict)}]).T.reset_index()
                 .rename(columns={"index": "measure", 0: "value"}),
                 f"{result.policy} on {p.describe().get('trace')} ({mode})")
    typer.echo(f"wrote {out}/ ({png.name}, CSV, summary JSON)")


def compare(trace: str = TraceOpt,
            policies: str = typer.Option("ours,ray-default,static-peak,static-mean",
                                         help="comma-separated: " + POLICY_HELP),
            mode: str = ModeOpt, bin_seconds: float = BinOpt, start_hours: float = StartOpt,
            hours: float = HoursOpt, peak_replicas: int = PeakOpt, service: str = ServiceOpt,
            slo_ms: float = SloOpt, startup_s: float = StartupOpt, max_ongoing: int = OngoingOpt,
            routing: str = RoutingOpt, seed: int = SeedOpt, tick_s: float = TickOpt,
            timeout_s: float = TimeoutOpt, out: Path = OutOpt) -> None:
    """All policies on one trace and seed: one table, one plot."""
    from .plots import plot_compare
    from .runner import compare as run
    from .runner import plan

    try:
        cfg = _config(service, slo_ms, startup_s, max_ongoing, routing, seed, tick_s, timeout_s,
                      keep_requests=False)
        p = plan(_trace(trace, bin_seconds, start_hours, hours), cfg, peak_replicas or None)
        results, table = run(p, [_policy_name(x) for x in policies.split(",") if x.strip()],
                             mode)
    except ValueError as exc:
        _fail(exc)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "compare.csv", index=False)
    for r in results:
        r.to_csv(out)
    plot_compare(results, out / "compare.png", title=f"{p.describe().get('trace')} ({mode})")
    (out / "plan.json").write_text(json.dumps(p.describe(), indent=1, default=str))
    _print_table(table, f"policies on {p.describe().get('trace')} ({mode}, seed {seed})")
    typer.echo(f"wrote {out}/compare.csv, compare.png")


def scenarios(out: Path = typer.Option(Path("scenarios"), help="report folder"),
              trace: str = typer.Option("", help="trace for the cost scenario (default: 6 h "
                                                 "of the NASA trace)"),
              bin_seconds: float = BinOpt, service: str = ServiceOpt,
              factor: float = typer.Option(1.0, help="stretch (>1) or shrink scenario lengths"),
              startup_s: float = StartupOpt, seed: int = SeedOpt) -> None:
    """The five validation scenarios: a Markdown report with plots, every number computed."""
    from .arrivals import RateTrace
    from .scenarios import run_scenarios
    from .service import ServiceModel

    try:
        t = RateTrace.load(trace, bin_seconds) if trace else None
        path = run_scenarios(out, trace=t, service=ServiceModel.parse(service), factor=factor,
                             seed=seed, startup_s=startup_s)
    except ValueError as exc:
        _fail(exc)
    typer.echo(f"wrote {path}")


def calibrate(url: str = typer.Option(..., help="base URL of the running echo-ray API"),
              out: Path = typer.Option(Path("calibration.json"), help="calibration file"),
              n: int = typer.Option(20, help="measured requests per type"),
              types: str = typer.Option("", help="comma-separated types (default: all six)"),
              warmup: int = typer.Option(2, help="unmeasured requests first")) -> None:
    """Measure service times per processing type; write the file the simulator reads."""
    from .calibrate import calibrate as run

    try:
        doc = run(url, out, n=n, types=[t for t in types.split(",") if t] or None,
                  warmup=warmup)
    except ValueError as exc:
        _fail(exc)
    import pandas as pd

    rows = [{"type": k, "n": v["n"], "errors": v["errors"], "mean_ms": v["mean_ms"],
             "p50_ms": v["p50_ms"], "p95_ms": v["p95_ms"]} for k, v in doc["types"].items()]
    _print_table(pd.DataFrame(rows), f"service times at {url}")
    typer.echo(f"wrote {out}")


def replay(trace: str = typer.Option(..., help="'nasa' or a trace file"),
           url: str = typer.Option(..., help="base URL to drive"),
           speedup: float = typer.Option(10.0, help="time compression (10: a trace minute "
                                                    "lasts 6 s)"),
           bin_seconds: float = BinOpt, start_hours: float = StartOpt,
           minutes: float = typer.Option(10.0, help="trace minutes to replay"),
           scale: float = typer.Option(1.0, help="multiply the trace's rates"),
           path: str = typer.Option("/v1/reasoning", help="request path"),
           body: str = typer.Option("", help="JSON body (default: a small reasoning request)"),
           slo_ms: float = SloOpt, seed: int = SeedOpt,
           timeout_s: float = typer.Option(30.0, help="per-request timeout (s)"),
           ray_address: str = typer.Option("", help="Ray address, to record replica counts"),
           app_name: str = typer.Option("", help="Serve application (with --ray-address)"),
           deployment: str = typer.Option("", help="Serve deployment (with --ray-address)"),
           out: Path = typer.Option(Path("replay-out"), help="output folder")) -> None:
    """Open-loop replay of a trace against a live endpoint, with a progress bar."""
    from .calibrate import DEFAULT_REQUESTS
    from .plots import plot_run
    from .replay import ReplayRequest
    from .replay import replay as run

    try:
        t = _trace(trace, bin_seconds, start_hours, minutes / 60.0).scaled(scale)
        payload = json.loads(body) if body else {"input": DEFAULT_REQUESTS["reasoning"],
                                                 "options": {"cache": False}}
    except (ValueError, json.JSONDecodeError) as exc:
        _fail(exc)
    counter = None
    if ray_address:
        from echo_ray.connection import connect

        from .live import replica_counter

        connect(ray_address, existing=True)
        counter = replica_counter(app_name, deployment)
    result = run(url, t, speedup=speedup, seed=seed, request=ReplayRequest(path, payload),
                 timeout_s=timeout_s, replica_counter=counter, slo_ms=slo_ms)
    result.to_csv(out)
    plot_run(result, out / "replay.png")
    s = result.summary
    typer.echo(f"sent {int(s['arrivals'])} (expected {s['expected_requests']:.0f}), served "
               f"{int(s['served'])}, dropped {int(s['dropped'])}; p50 {s['p50_ms']:.1f} ms, "
               f"p99 {s['p99_ms']:.1f} ms, SLO-violation minutes {s['slo_violation_minutes']}; "
               f"wrote {out}/")


COMMANDS = (simulate, compare, scenarios, calibrate, replay)


def register(app: typer.Typer) -> typer.Typer:
    """Add the five commands to `app` (e.g. echo_ray.cli.app)."""
    for command in COMMANDS:
        app.command(name=command.__name__)(command)
    return app


sim_app = register(typer.Typer(help="Capacity planning: simulate, compare, scenarios, "
                                    "calibrate, replay.", no_args_is_help=True))

if __name__ == "__main__":
    sim_app()
