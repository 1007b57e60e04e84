"""`echo-ray calibrate`: measure service times per processing type against a live endpoint.

For each processing type one stateless request (no session, `options.cache = false` so the
result cache is bypassed) is sent `n` times, one at a time after `warmup` unmeasured ones, so
no request ever queues behind another: the latency measured is the service time as a client
sees it (HTTP and ingress included). The times go into the calibration file that
`ServiceModel` reads (`service.py` documents the format). Types that fail are recorded with
their errors and left out of the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from echo_ray.cognitive.examples import EXAMPLE_REQUESTS
from echo_ray.settings import get_settings

from .service import write_calibration

# One small, valid, stateless request per processing type (the `input` of POST /v1/<type>).
DEFAULT_REQUESTS: dict[str, dict] = EXAMPLE_REQUESTS


def calibrate(url: str, out: str | Path, n: int = 20, types: list[str] | None = None,
              warmup: int = 2, timeout_s: float = 120.0,
              progress: Callable[[str, int], None] | None = None) -> dict:
    """Measure and write the calibration file; returns its contents."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    chosen = list(types) if types else list(DEFAULT_REQUESTS)
    unknown = [t for t in chosen if t not in DEFAULT_REQUESTS]
    if unknown:
        raise ValueError(f"types {unknown} are not processing types; "
                         f"valid: {sorted(DEFAULT_REQUESTS)}")
    base = url.rstrip("/")
    measured: dict[str, dict] = {}
    with httpx.Client(timeout=timeout_s, headers=get_settings().service.client_headers()) as client:
        for kind in chosen:
            body = {"input": DEFAULT_REQUESTS[kind], "options": {"cache": False}}
            latency, errors, last_error = [], 0, None
            for i in range(warmup + n):
                t0 = time.perf_counter()
                try:
                    r = client.post(f"{base}/v1/{kind}", json=body)
                    ok = r.status_code == 200
                    if not ok:
                        last_error = f"HTTP {r.status_code}: {r.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, last_error = False, f"{type(exc).__name__}: {exc}"
                elapsed_ms = (time.perf_counter() - t0) * 1000.0
                if i < warmup:
                    continue
                if ok:
                    latency.append(elapsed_ms)
                else:
                    errors += 1
                if progress:
                    progress(kind, i - warmup + 1)
            measured[kind] = {"latency_ms": latency, "errors": errors}
            if last_error and not latency:
                measured[kind]["last_error"] = last_error
    method = (f"{n} sequential stateless requests per type after {warmup} warm-up, "
              f"result cache bypassed; client-side latency")
    doc = write_calibration(out, measured, url=base, method=method)
    for kind, entry in measured.items():
        if "last_error" in entry:
            doc["types"][kind]["last_error"] = entry["last_error"]
    return doc
