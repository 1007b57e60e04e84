"""PNG plots of simulated or replayed runs (matplotlib, Agg backend: no display needed).

- `plot_run`: demand vs capacity, replicas over time, per-minute p95 latency against the SLO;
- `plot_compare`: the same three panels with one line per policy;
- `plot_frontier`: replica-hours against SLO-violation minutes of a sweep, its Pareto frontier.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .results import SimResult  # noqa: E402

COLORS = {"ours": "tab:blue", "ray_default": "tab:red", "static_peak": "tab:green",
          "static_mean": "tab:orange", "ray_tuned": "tab:purple",
          "ours_reactive": "tab:cyan"}


def _x(minutes, unit_s: float) -> np.ndarray:
    return minutes["minute"].to_numpy() * 60.0 / unit_s


def _unit(duration_s: float) -> tuple[float, str]:
    if duration_s > 2 * 86400:
        return 86400.0, "days"
    if duration_s > 3 * 3600:
        return 3600.0, "hours"
    return 60.0, "minutes"


def _p95(minutes) -> np.ndarray:
    """Per-minute p95 with infinite (mostly dropped) minutes drawn at the top of the plot."""
    p = minutes["p95_ms"].to_numpy(dtype=float)
    finite = p[np.isfinite(p)]
    top = max(finite.max() if finite.size else 1.0, 1.0) * 1.5
    return np.where(np.isinf(p), top, p)


def plot_run(result: SimResult, path: str | Path, title: str | None = None,
             dpi: int = 90) -> Path:
    m = result.minutes
    unit, label = _unit(len(m) * 60.0)
    x = _x(m, unit)
    slo = result.summary.get("slo_ms")
    fig, axes = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
    ax = axes[0]
    ax.plot(x, m["rate_rps"], lw=0.8, color="black", label="demand (arrivals/s)")
    ax.plot(x, m["capacity_rps"], lw=0.9, color="tab:blue", label="capacity of serving replicas")
    ax.set_ylabel("requests/s")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[1]
    ax.plot(x, m["mean_running"], lw=0.9, label="serving")
    ax.plot(x, m["mean_provisioned"], lw=0.8, ls="--", label="provisioned (incl. starting)")
    ax.set_ylabel("replicas")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[2]
    ax.plot(x, _p95(m), lw=0.8, color="tab:purple", label="p95 per minute")
    if slo:
        ax.axhline(slo, color="red", lw=0.8, ls=":", label=f"SLO {slo:g} ms")
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms)")
    ax.set_xlabel(label)
    ax.legend(loc="upper right", fontsize=8)
    s = result.summary
    fig.suptitle(title or (f"{result.policy} ({result.mode}): {s['slo_violation_minutes']} "
                           f"SLO-violation minutes, {s['replica_seconds'] / 3600:.0f} "
                           f"replica-hours, p99 {s['p99_ms']:.0f} ms"), fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_compare(results: Sequence[SimResult], path: str | Path, title: str | None = None,
                 dpi: int = 90, window: tuple[float, float] | None = None) -> Path:
    """Demand, replicas and per-minute p95 of several runs on one workload.

    `window` = (start_s, end_s) zooms on part of the run.
    """
    if not results:
        raise ValueError("results must not be empty")
    first = results[0].minutes
    lo, hi = (0.0, len(first) * 60.0) if window is None else window
    unit, label = _unit(hi - lo)
    fig, axes = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)

    def sel(m):
        t = m["minute"].to_numpy() * 60.0
        return (t >= lo) & (t < hi)

    s0 = sel(first)
    axes[0].plot(_x(first, unit)[s0], first["rate_rps"][s0], lw=0.7, color="black")
    axes[0].set_ylabel("demand (req/s)")
    slo = results[0].summary.get("slo_ms")
    for r in results:
        m, s = r.minutes, sel(r.minutes)
        color = COLORS.get(r.policy)
        axes[1].plot(_x(m, unit)[s], m["mean_provisioned"][s], lw=0.8, color=color,
                     label=r.policy)
        axes[2].plot(_x(m, unit)[s], _p95(m)[s], lw=0.7, color=color, label=r.policy)
    if slo:
        axes[2].axhline(slo, color="red", lw=0.8, ls=":", label=f"SLO {slo:g} ms")
    axes[1].set_ylabel("replicas (provisioned)")
    axes[1].legend(loc="upper right", fontsize=8, ncol=len(results))
    axes[2].set_yscale("log")
    axes[2].set_ylabel("p95 per minute (ms)")
    axes[2].set_xlabel(label)
    axes[2].legend(loc="upper right", fontsize=8, ncol=len(results) + 1)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_frontier(points: Sequence, frontier: Sequence, path: str | Path, title: str,
                  highlight: Sequence = (), dpi: int = 90) -> Path:
    """Every swept point (grey), the frontier (line), and `highlight` points labelled."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.scatter([p.replica_hours for p in points], [p.violation_minutes for p in points],
               s=12, color="grey", label="Ray default policy, swept")
    ax.plot([p.replica_hours for p in frontier], [p.violation_minutes for p in frontier],
            "-o", ms=4, lw=1, color="tab:red", label="Pareto frontier of the sweep")
    for i, p in enumerate(highlight):
        color = COLORS.get(p.name, f"C{i}")
        ax.scatter([p.replica_hours], [p.violation_minutes], s=60, marker="*", color=color,
                   zorder=3)
        ax.annotate(p.name, (p.replica_hours, p.violation_minutes), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_yscale("symlog", linthresh=10)  # linear below 10 minutes (0 must show), log above
    ticks = [v for v in (0, 5, 10, 30, 100, 300, 1000, 3000, 10000)
             if v <= max([p.violation_minutes for p in [*points, *highlight]] + [10]) * 1.5]
    ax.set_yticks(ticks, [str(v) for v in ticks])
    ax.set_xlabel("replica-hours")
    ax.set_ylabel("SLO-violation minutes")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
