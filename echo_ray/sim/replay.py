"""`echo-ray replay`: drive a live endpoint with a trace, open loop, and measure it.

Arrival times come from the trace exactly as in the simulator (Poisson within each bin, same
seed -> same times), compressed by `speedup`; each request is issued at its time whatever
happened to the earlier ones (open loop: a slow server does not slow the offered load down,
as it would with a closed-loop client). At most `max_connections` are on the wire at once;
the others wait in arrival order and that wait counts in their latency and timeout, like
the handle queue in the simulator. A rich progress bar shows sent and finished requests.
The result has the simulator's shape: per-request, per-minute (trace minutes, i.e.
60 / speedup seconds of wall time) and per-second tables, summary and plots, so a simulation
and a replay of the same trace can be compared line by line.

Replica counts are known only if a `replica_counter` is given (e.g. from `serve.status()`);
without it replica-seconds and capacity are NaN.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import numpy as np
import pandas as pd

from echo_ray.settings import get_settings

from .arrivals import RateTrace
from .results import (
    DROPPED,
    IN_FLIGHT,
    SERVED,
    SimResult,
    add_capacity_columns,
    minute_latency_from_requests,
    percentiles_ms,
    summarise,
)

ReplicaCounter = Callable[[], tuple[int, int]]  # -> (running, provisioned)


@dataclass(frozen=True)
class ReplayRequest:
    """What each request sends: POST `path` with `body` (JSON)."""

    path: str = "/v1/reasoning"
    body: dict | None = None
    method: str = "POST"


async def _send_all(url: str, times: np.ndarray, request: ReplayRequest, timeout_s: float,
                    max_connections: int, progress: bool,
                    replica_counter: ReplicaCounter | None, poll_s: float):
    n = len(times)
    sent = np.full(n, np.nan)
    latency = np.full(n, np.nan)
    status = np.zeros(n, dtype=np.int8)
    codes = np.zeros(n, dtype=np.int32)
    samples: list[tuple[float, int, int]] = []
    limits = httpx.Limits(max_connections=max_connections,
                          max_keepalive_connections=max_connections)
    done = asyncio.Event()
    finished = [0]
    bar = None
    if progress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(TextColumn("[bold]replay[/bold] {task.description}"), BarColumn(),
                       MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    # At most `max_connections` requests on the wire; later arrivals wait here, in arrival
    # order, and that wait counts in their latency (httpx's own pool is quadratic in the
    # number of waiting requests, which an overloaded server makes large).
    slots = asyncio.Semaphore(max_connections)
    async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s,
                                 limits=limits, headers=get_settings().service.client_headers()) as client:
        start = time.perf_counter()

        async def one(i: int) -> None:
            due = start + times[i]  # the arrival time: latency and timeout count from here
            try:
                await asyncio.wait_for(slots.acquire(), max(0.0, due + timeout_s
                                                            - time.perf_counter()))
            except asyncio.TimeoutError:  # waited the whole timeout for a connection
                status[i] = DROPPED
            else:
                sent[i] = time.perf_counter() - start
                try:
                    remaining = max(0.001, due + timeout_s - time.perf_counter())
                    r = await client.request(request.method, request.path, json=request.body,
                                             timeout=remaining)
                    codes[i] = r.status_code
                    if r.status_code < 400:
                        latency[i] = time.perf_counter() - due
                        status[i] = SERVED
                    else:
                        status[i] = DROPPED
                except httpx.HTTPError:
                    status[i] = DROPPED
                finally:
                    slots.release()
            finished[0] += 1
            if bar is not None:
                bar.update(task, advance=1)
            if finished[0] == n:
                done.set()

        async def poll() -> None:
            while not done.is_set():
                running, provisioned = await asyncio.to_thread(replica_counter)
                samples.append((time.perf_counter() - start, running, provisioned))
                try:
                    await asyncio.wait_for(done.wait(), poll_s)
                except asyncio.TimeoutError:
                    pass

        if bar is not None:
            bar.start()
            task = bar.add_task(f"{url}{request.path}", total=n)
        poller = asyncio.create_task(poll()) if replica_counter else None
        tasks = []
        try:
            for i, t in enumerate(times):
                delay = start + t - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(i)))
            if n == 0:
                done.set()
            await asyncio.gather(*tasks)
        finally:
            done.set()
            if poller is not None:
                await poller
            if bar is not None:
                bar.stop()
        wall = time.perf_counter() - start
    return sent, latency, status, codes, samples, wall, start


def replay(url: str, trace: RateTrace, speedup: float = 1.0, seed: int = 0,
           request: ReplayRequest | None = None, timeout_s: float = 30.0,
           max_connections: int = 256, progress: bool = True,
           replica_counter: ReplicaCounter | None = None, poll_s: float = 1.0,
           slo_ms: float = 400.0, service_rate: float | None = None,
           price_per_replica_hour: float = 0.096, name: str = "replay") -> SimResult:
    """Replay `trace` (compressed `speedup` times) against `url`; see the module docstring."""
    if not speedup > 0:
        raise ValueError(f"speedup must be > 0, got {speedup!r}")
    fast = trace.compressed(speedup)
    times = fast.arrivals(np.random.default_rng([seed, 1]))  # the simulator's arrivals
    request = request or ReplayRequest()
    wall0 = time.perf_counter()
    sent, latency, status, codes, samples, wall, started = asyncio.run(_send_all(
        url, times, request, timeout_s, max_connections, progress, replica_counter, poll_s))
    duration = fast.duration_s
    bin_s = 60.0 / speedup
    n_minutes = max(1, math.ceil(duration / bin_s - 1e-9))
    minutes = minute_latency_from_requests(times, latency, status, n_minutes, bin_s)
    timeline = replica_timeline(samples, times, status, duration)
    rate = service_rate if service_rate else math.nan
    minutes = add_capacity_columns(minutes, timeline, rate, slo_ms, bin_s)
    if replica_counter is None:
        replica_seconds = math.nan
    else:
        replica_seconds = float((timeline["provisioned"] * timeline["dt"]).sum())
    lag = sent - times
    summary = summarise(
        name, "replay", minutes, timeline, percentiles_ms(latency[status == SERVED]),
        arrivals=len(times), served=int((status == SERVED).sum()),
        dropped=int((status == DROPPED).sum()), in_flight=int((status == IN_FLIGHT).sum()),
        replica_seconds=replica_seconds, service_rate=rate, slo_ms=slo_ms,
        price_per_replica_hour=price_per_replica_hour, decision_ms=math.nan, events=0,
        wall_s=time.perf_counter() - wall0)
    summary.update(expected_requests=fast.expected_requests(), speedup=speedup,
                   send_lag_p99_ms=float(np.nanpercentile(lag, 99) * 1000.0) if len(lag) else 0.0,
                   replay_wall_s=wall,
                   http_status_counts={int(k): int(v) for k, v in
                                       zip(*np.unique(codes[codes > 0], return_counts=True))})
    requests = pd.DataFrame({"arrival_s": times, "sent_s": sent, "latency_ms": latency * 1000.0,
                             "http_status": codes,
                             "status": pd.Categorical.from_codes(
                                 status, ["in_flight", "served", "dropped"])})
    events = pd.DataFrame(columns=["t", "policy", "from", "to", "running", "reason"])
    return SimResult(name, "replay", summary, minutes, timeline, events, requests,
                     setup={"url": url, "path": request.path, "speedup": speedup, "seed": seed,
                            "trace": trace.name, "started_perf_counter": started,
                            # the raw replica-count polls: (wall s, running, provisioned)
                            "replica_samples": [(round(t, 3), r, p) for t, r, p in samples]})


def replica_timeline(samples: list[tuple[float, int, int]], times: np.ndarray, status: np.ndarray,
              duration: float) -> pd.DataFrame:
    """Per-second arrivals, plus replica counts held from each poll to the next."""
    n = max(1, math.ceil(duration))
    t = np.arange(n, dtype=float)
    idx = np.minimum(times.astype(np.int64), n - 1) if len(times) else np.zeros(0, np.int64)
    arrivals = np.bincount(idx, minlength=n)[:n]
    dropped = np.bincount(idx[status == DROPPED], minlength=n)[:n] if len(idx) else arrivals * 0
    running = np.full(n, np.nan)
    provisioned = np.full(n, np.nan)
    if samples:
        st = np.array([s[0] for s in samples])
        pos = np.clip(np.searchsorted(st, t + 1.0, side="right") - 1, 0, len(samples) - 1)
        running = np.array([samples[p][1] for p in pos], dtype=float)
        provisioned = np.array([samples[p][2] for p in pos], dtype=float)
    return pd.DataFrame({"t": t, "dt": np.ones(n), "arrivals": arrivals, "dropped": dropped,
                         "running": running, "provisioned": provisioned})
