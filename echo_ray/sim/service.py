"""Service-time models of one replica and the calibration file that feeds them.

A replica serves requests one at a time (FIFO) by default; each request takes a service time
drawn from a `ServiceModel`: fixed, exponential, or empirical (resampled from times measured
against the live service by `echo-ray calibrate`). The calibration file is JSON:

    {"format": "echo-ray-calibration", "version": 1, "url": ..., "created_unix": ...,
     "method": ..., "types": {"reasoning": {"latency_ms": [...], "n": 20, "errors": 0,
     "mean_ms": ..., "p50_ms": ..., "p95_ms": ..., "p99_ms": ...}, ...},
     "mix": {"reasoning": 0.5, ...}}

`mix` weights the processing types (default: equal); the empirical model draws a type by its
weight, then one of that type's measured times.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echo_ray.checks import positive

CALIBRATION_FORMAT = "echo-ray-calibration"
CALIBRATION_VERSION = 1
KINDS = ("exponential", "fixed", "empirical")


@dataclass(frozen=True)
class ServiceModel:
    """Service time per request, in seconds."""

    kind: str = "exponential"
    mean_s: float = 0.05
    samples_s: tuple[float, ...] = ()  # empirical: the measured times
    weights: tuple[float, ...] = ()  # empirical: probability of each sample (default equal)
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "empirical":
            s = np.asarray(self.samples_s, dtype=float)
            if s.size == 0 or not np.isfinite(s).all() or (s <= 0).any():
                raise ValueError("samples_s must be a non-empty list of times > 0 for an "
                                 "empirical service model")
            w = np.asarray(self.weights or np.ones(s.size), dtype=float)
            if w.shape != s.shape or (w < 0).any() or not w.sum() > 0:
                raise ValueError("weights must be >= 0, one per sample, not all zero")
            w = w / w.sum()
            object.__setattr__(self, "samples_s", tuple(float(x) for x in s))
            object.__setattr__(self, "weights", tuple(float(x) for x in w))
            object.__setattr__(self, "mean_s", float((s * w).sum()))
        else:
            positive("mean_s", self.mean_s)

    @classmethod
    def exponential(cls, mean_s: float) -> ServiceModel:
        return cls("exponential", positive("mean_s", mean_s))

    @classmethod
    def fixed(cls, mean_s: float) -> ServiceModel:
        return cls("fixed", positive("mean_s", mean_s))

    @property
    def rate(self) -> float:
        """Requests/s one busy server completes (1 / mean)."""
        return 1.0 / self.mean_s

    @property
    def scv(self) -> float:
        """Squared coefficient of variation (1 exponential, 0 fixed)."""
        if self.kind == "exponential":
            return 1.0
        if self.kind == "fixed":
            return 0.0
        s, w = np.asarray(self.samples_s), np.asarray(self.weights)
        var = float((w * (s - self.mean_s) ** 2).sum())
        return var / self.mean_s ** 2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == "exponential":
            return rng.exponential(self.mean_s, n)
        if self.kind == "fixed":
            return np.full(n, self.mean_s)
        return rng.choice(np.asarray(self.samples_s), size=n, p=np.asarray(self.weights))

    def describe(self) -> str:
        if self.kind == "empirical":
            return (f"empirical ({len(self.samples_s)} measured times, mean "
                    f"{self.mean_s * 1000:.1f} ms, SCV {self.scv:.2f}{', ' + self.source if self.source else ''})")
        return f"{self.kind}, mean {self.mean_s * 1000:.1f} ms"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mean_ms": self.mean_s * 1000.0, "scv": self.scv,
                "samples": len(self.samples_s), "source": self.source}

    @classmethod
    def parse(cls, spec: str) -> ServiceModel:
        """"exp:50ms", "fixed:0.1s", "exponential:80" (ms) or a calibration file path."""
        if not isinstance(spec, str) or not spec:
            raise ValueError(f"service must be a non-empty string, got {spec!r}")
        if ":" in spec and not os.path.exists(spec):
            kind, _, value = spec.partition(":")
            kind = {"exp": "exponential"}.get(kind.strip().lower(), kind.strip().lower())
            value = value.strip().lower()
            scale = 1.0
            if value.endswith("ms"):
                value, scale = value[:-2], 1e-3
            elif value.endswith("s"):
                value, scale = value[:-1], 1.0
            else:
                scale = 1e-3
            try:
                mean = float(value) * scale
            except ValueError:
                raise ValueError(f"service {spec!r}: expected KIND:TIME such as exp:50ms") \
                    from None
            if kind not in ("exponential", "fixed"):
                raise ValueError(f"service {spec!r}: kind must be exp or fixed (or give a "
                                 f"calibration file)")
            return cls(kind, mean)
        return load_calibration(spec)


# ---- calibration file ------------------------------------------------------------------
def summarise_latencies(latency_ms) -> dict:
    x = np.asarray(latency_ms, dtype=float)
    if x.size == 0:
        return {"n": 0, "mean_ms": None, "p50_ms": None, "p95_ms": None, "p99_ms": None}
    return {"n": int(x.size), "mean_ms": float(x.mean()),
            "p50_ms": float(np.percentile(x, 50)), "p95_ms": float(np.percentile(x, 95)),
            "p99_ms": float(np.percentile(x, 99))}


def write_calibration(path: str | os.PathLike, types: dict[str, dict], url: str, method: str,
                      mix: dict[str, float] | None = None) -> dict:
    """Write the calibration JSON; `types[name]` needs `latency_ms` (list) and `errors`."""
    out_types = {}
    for name, entry in types.items():
        lat = [float(v) for v in entry["latency_ms"]]
        out_types[name] = {"latency_ms": lat, "errors": int(entry.get("errors", 0)),
                           **summarise_latencies(lat)}
    doc = {"format": CALIBRATION_FORMAT, "version": CALIBRATION_VERSION, "url": url,
           "created_unix": time.time(), "method": method, "types": out_types,
           "mix": mix or {name: 1.0 for name in out_types}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    return doc


def read_calibration(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"calibration must be an existing file, got {str(path)!r}")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"calibration {str(path)!r} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != CALIBRATION_FORMAT:
        raise ValueError(f"calibration {str(path)!r}: expected format {CALIBRATION_FORMAT!r}")
    if not isinstance(doc.get("types"), dict) or not doc["types"]:
        raise ValueError(f"calibration {str(path)!r}: 'types' must be a non-empty object")
    return doc


def load_calibration(path: str | os.PathLike, types: list[str] | None = None,
                     mix: dict[str, float] | None = None) -> ServiceModel:
    """An empirical ServiceModel from a calibration file (types weighted by `mix`)."""
    doc = read_calibration(path)
    available = {k: v for k, v in doc["types"].items() if v.get("latency_ms")}
    chosen = list(types) if types else list(available)
    unknown = [t for t in chosen if t not in available]
    if unknown:
        raise ValueError(f"types {unknown} have no measurements in {str(path)!r}; "
                         f"measured: {sorted(available)}")
    weights_by_type = mix or doc.get("mix") or {}
    samples, weights = [], []
    for name in chosen:
        lat = np.asarray(available[name]["latency_ms"], dtype=float) / 1000.0
        w = float(weights_by_type.get(name, 1.0))
        if not (w >= 0 and math.isfinite(w)):
            raise ValueError(f"mix[{name!r}] must be a number >= 0, got {w!r}")
        samples.extend(lat.tolist())
        weights.extend([w / lat.size] * lat.size)
    return ServiceModel("empirical", samples_s=tuple(samples), weights=tuple(weights),
                        source=f"{Path(path).name}: {', '.join(chosen)}")
