"""Closed-loop clients for the node-loss test: each keeps its own session, stores items and
retrieves earlier ones, and records every answer (status, Retry-After, time)."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Outcome:
    sent: int = 0
    ok: int = 0
    failures: list[dict] = field(default_factory=list)  # {"t", "status", "retry_after", "op"}
    acked: dict[str, list[str]] = field(default_factory=dict)  # session -> acknowledged ids
    last_ok: list[float] = field(default_factory=list)


def client_loop(base_url: str, n: int, stop: threading.Event, out: Outcome,
                lock: threading.Lock, t0: float, seed: int) -> None:
    import httpx

    rng = random.Random(seed)
    with httpx.Client(base_url=base_url, timeout=30) as client:
        sid = None
        while sid is None and not stop.is_set():
            r = client.post("/v1/sessions")
            if r.status_code == 201:
                sid = r.json()["session_id"]
        ids: list[str] = []
        k = 0
        while not stop.is_set():
            if not ids or rng.random() < 0.5:
                item = f"c{n}-{k}"
                k += 1
                body = {"session_id": sid, "input": {"op": "store", "items": [
                    {"text": f"echo item {item}", "id": item}]}}
                op = "store"
            else:
                item = rng.choice(ids)
                body = {"session_id": sid, "options": {"cache": False}, "input": {
                    "op": "retrieve", "query": {"text": f"echo item {item}"}, "k": 1}}
                op = "retrieve"
            try:
                r = client.post("/v1/memory", json=body)
                status, retry_after = r.status_code, r.headers.get("retry-after")
            except httpx.HTTPError as exc:
                status, retry_after = f"{type(exc).__name__}", None
            t = time.monotonic() - t0
            with lock:
                out.sent += 1
                if status == 200:
                    out.ok += 1
                    out.last_ok.append(t)
                    if op == "store":
                        ids.append(item)
                        out.acked.setdefault(sid, []).append(item)
                else:
                    out.failures.append({"t": round(t, 2), "status": status,
                                         "retry_after": retry_after, "op": op,
                                         "body": r.text[:300] if status != 200 and
                                         not isinstance(status, str) else ""})


def verify(base_url: str, acked: dict[str, list[str]]) -> list[str]:
    """Acknowledged items that a retrieve no longer finds."""
    import httpx

    lost = []
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for sid, items in acked.items():
            for item in items:
                for _ in range(5):  # a 503 here is a retry, not a loss
                    r = client.post("/v1/memory", json={
                        "session_id": sid, "options": {"cache": False}, "input": {
                            "op": "retrieve", "query": {"text": f"echo item {item}"}, "k": 1}})
                    if r.status_code != 503:
                        break
                    time.sleep(float(r.headers.get("retry-after", "1")))
                matches = r.json()["result"]["matches"] if r.status_code == 200 else []
                if not matches or matches[0]["id"] != item:
                    lost.append(item)
    return lost
