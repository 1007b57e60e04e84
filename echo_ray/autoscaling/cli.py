"""`echo-ray scaling events|cost`: read the ScalingOptimizerActor's history on a running cluster.

Mounted by echo_ray/cli.py as `app.add_typer(scaling_app, name="scaling")`. Connects to
RAY_ADDRESS (default "auto"); inside a process where Ray is already up it uses that.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from .actor import DEFAULT_NAME, get_optimizer
from .events import events_frame, export_frame
from .usage import cost_frame

scaling_app = typer.Typer(help="Predictive autoscaling: decisions and cost.",
                          no_args_is_help=True)

NAME = typer.Option(DEFAULT_NAME, "--actor", help="Name of the ScalingOptimizerActor.")
NAMESPACE = typer.Option(None, "--namespace",
                         help="Its namespace (default ECHO_RAY_SCALING_NAMESPACE or echo_ray).")
OUT = typer.Option(None, "--out", help="Write to this .csv (or .parquet) file instead.")

EVENT_VIEW = ["resource", "t", "action", "current_replicas", "previous_target",
              "desired_replicas", "triggers", "blocked_by", "forecast_source",
              "forecast_upper", "request_rate", "utilisation", "cost", "roi", "verdict"]
COST_VIEW = ["resource", "resource_type", "replica_hours", "mean_replicas", "cost",
             "efficiency", "efficiency_basis", "samples"]


def _actor(name: str, namespace: str | None):
    import ray

    from echo_ray.connection import connect

    try:
        connect(existing=True, logging_level="ERROR")
    except ConnectionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    actor = get_optimizer(name, namespace)
    if actor is None:
        typer.echo(f"no scaling optimizer actor {name!r} in namespace "
                   f"{namespace or 'default'}: is a deployment using ForecastPolicy running?",
                   err=True)
        raise typer.Exit(code=1)
    return ray, actor


def _show(frame: pd.DataFrame, columns: list[str], title: str, out: Path | None) -> None:
    if out is not None:
        try:
            export_frame(frame, out)
        except ValueError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=2) from None
        typer.echo(f"wrote {len(frame)} rows to {out}")
        return
    if frame.empty:
        typer.echo(f"{title}: nothing recorded yet")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for _, row in frame[columns].iterrows():
        table.add_row(*[_fmt(v) for v in row])
    Console(width=240).print(table)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@scaling_app.command("events")
def events(resource: str = typer.Option(None, help="Only this resource (e.g. app/deployment)."),
           all_decisions: bool = typer.Option(False, "--all",
                                              help="Every decision, not only changes."),
           limit: int = typer.Option(50, help="Show the last N rows (0 = all)."),
           actor_name: str = NAME, namespace: str = NAMESPACE, out: Path = OUT) -> None:
    """Scaling decisions: target changes and blocked changes (or every decision with --all)."""
    ray, actor = _actor(actor_name, namespace)
    rows = ray.get(actor.events.remote(resource, not all_decisions, limit or None))
    _show(events_frame(rows), EVENT_VIEW, "scaling events", out)


@scaling_app.command("cost")
def cost(resource: str = typer.Option(None, help="Only this resource."),
         actor_name: str = NAME, namespace: str = NAMESPACE, out: Path = OUT) -> None:
    """Replica-hours, cost and efficiency (served demand / provisioned capacity) per resource."""
    ray, actor = _actor(actor_name, namespace)
    reports = ray.get(actor.usage.remote(resource))
    _show(cost_frame(reports), COST_VIEW, "scaling cost", out)
