"""The scaling event log: decisions flattened to one row each, as a pandas DataFrame.

A `Decision.to_dict()` is nested (sample, forecast, cost); a row is flat so it goes straight into
a DataFrame, a CSV file or a terminal table. Pure Python (pandas), no Ray.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

EVENT_COLUMNS = (
    "resource", "resource_type", "t", "action", "current_replicas", "previous_target",
    "desired_replicas", "applied_replicas", "triggers", "blocked_by", "reactive_need",
    "predictive_need", "ahead_replicas", "node_request", "capacity_rps", "capacity_source", "lead_time_s", "forecast_source",
    "forecast_point", "forecast_lower", "forecast_upper", "request_rate", "utilisation",
    "ongoing_requests", "p95_latency_ms", "error_rate", "queue_length", "replica_seconds",
    "cost", "benefit", "roi", "verdict",
)


def flatten_decision(resource: str, decision: Mapping, applied: int | None = None) -> dict:
    """One flat row from `Decision.to_dict()`; `applied` is the size the resource really has
    after the manager acted on it (None where someone else, e.g. Serve, applies it)."""
    if not isinstance(resource, str) or not resource:
        raise ValueError(f"resource must be a non-empty string, got {resource!r}")
    if not isinstance(decision, Mapping) or "desired_replicas" not in decision:
        raise ValueError("decision must be a Decision.to_dict() mapping with desired_replicas")
    sample = decision.get("sample") or {}
    forecast = decision.get("forecast") or {}
    cost = decision.get("cost") or {}
    return {
        "resource": resource,
        "resource_type": decision.get("resource_type"),
        "t": decision.get("t"),
        "action": decision.get("action"),
        "current_replicas": decision.get("current_replicas"),
        "previous_target": decision.get("previous_target"),
        "desired_replicas": decision.get("desired_replicas"),
        "applied_replicas": applied,
        "triggers": ";".join(decision.get("triggers") or ()),
        "blocked_by": decision.get("blocked_by"),
        "reactive_need": decision.get("reactive_need"),
        "predictive_need": decision.get("predictive_need"),
        "ahead_replicas": decision.get("ahead_replicas"),
        "node_request": decision.get("node_request"),
        "capacity_rps": decision.get("capacity_rps"),
        "capacity_source": decision.get("capacity_source"),
        "lead_time_s": decision.get("lead_time_s"),
        "forecast_source": decision.get("forecast_source"),
        "forecast_point": forecast.get("point"),
        "forecast_lower": forecast.get("lower"),
        "forecast_upper": forecast.get("upper"),
        "request_rate": sample.get("request_rate"),
        "utilisation": sample.get("utilisation"),
        "ongoing_requests": sample.get("ongoing_requests"),
        "p95_latency_ms": sample.get("p95_latency_ms"),
        "error_rate": sample.get("error_rate"),
        "queue_length": sample.get("queue_length"),
        "replica_seconds": cost.get("replica_seconds"),
        "cost": cost.get("cost"),
        "benefit": cost.get("benefit"),
        "roi": decision.get("roi"),
        "verdict": decision.get("verdict"),
    }


def is_event(row: Mapping) -> bool:
    """A row worth showing as an event: the target changed or a wanted change was held back."""
    return row.get("action") not in (None, "hold") or bool(row.get("blocked_by"))


def events_frame(rows: Iterable[Mapping], changes_only: bool = False) -> pd.DataFrame:
    """Rows (from `flatten_decision`) as a DataFrame with the standard columns, oldest first."""
    rows = [r for r in rows if not changes_only or is_event(r)]
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    if len(frame):
        frame = frame.sort_values("t", kind="stable").reset_index(drop=True)
    return frame


def export_frame(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write to `.csv` or `.parquet` (needs pyarrow or fastparquet), chosen by the suffix."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix in (".parquet", ".pq"):
        try:
            frame.to_parquet(path, index=False)
        except ImportError as exc:
            raise ValueError(f"path {str(path)!r}: Parquet export needs pyarrow or fastparquet "
                             f"installed ({exc}); use a .csv path instead") from None
    else:
        raise ValueError(f"path must end in .csv or .parquet, got {str(path)!r}")
    return path
