"""Loading request-rate traces: a `minute,requests` CSV or one count per line."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

NASA_TRACE = "nasa_http_1995_per_minute.csv"


def traces_dir() -> Path:
    """`ECHO_RAY_TRACES`, else the traces shipped in the repository (`data/traces`)."""
    from echo_ray.settings import get_settings

    return get_settings().paths.traces


def load_request_trace(path: str | os.PathLike) -> np.ndarray:
    """Request counts per interval as float64.

    Accepts a CSV with a header naming a `requests` column (other columns ignored), or a plain
    file with one number per line. Raises ValueError on anything else.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be an existing trace file, got {str(path)!r}")
    with path.open(newline="") as fh:
        first = fh.readline().strip()
        fh.seek(0)
        if "," in first:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or "requests" not in reader.fieldnames:
                raise ValueError(f"path {str(path)!r}: CSV must have a 'requests' column, "
                                 f"got columns {reader.fieldnames}")
            raw = [row["requests"] for row in reader]
        else:
            raw = [line.strip() for line in fh if line.strip()]
    try:
        counts = np.array([float(v) for v in raw], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"path {str(path)!r}: every count must be a number ({exc})") from None
    if counts.size == 0 or not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError(f"path {str(path)!r}: expected non-empty, finite, non-negative counts")
    return counts
