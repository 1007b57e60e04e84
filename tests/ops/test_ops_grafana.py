"""deployments/grafana/echo-ray.json and the Prometheus rules only use metrics the code
exports (under the names Ray gives them) or rules we record, and the dashboard has the
panels operators need. (Tests/ops/test_ops_prometheus.py runs every panel query live.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from echo_ray.cache.metrics import _COUNTERS, _GAUGES

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deployments" / "grafana" / "echo-ray.json"
RULES = ROOT / "deployments" / "prometheus" / "rules" / "echo-ray.rules.yml"
METRIC_CALL = re.compile(r"metrics\.(Counter|Gauge|Histogram)\(\s*\"(echo_ray_\w+)\"", re.S)


def exported_names() -> set[str]:
    """Names Prometheus sees: Ray adds `ray_`, counters end in `_total`, histograms get
    `_bucket`/`_count`/`_sum`."""
    found: list[tuple[str, str]] = []
    for path in (ROOT / "echo_ray").rglob("*.py"):
        found += METRIC_CALL.findall(path.read_text())
    found += [("Counter", f"echo_ray_cache_{n}") for n in _COUNTERS]
    found += [("Gauge", f"echo_ray_cache_{n}") for n in _GAUGES]
    names = set()
    for kind, name in found:
        if kind == "Counter":
            names.add("ray_" + (name if name.endswith("_total") else f"{name}_total"))
        elif kind == "Histogram":
            names |= {f"ray_{name}_{s}" for s in ("bucket", "count", "sum")}
        else:
            names.add(f"ray_{name}")
    return names


def recorded() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["record"] for g in groups for r in g["rules"] if "record" in r}


def referenced(expr: str, prefix: str) -> set[str]:
    return set(re.findall(rf"\b({prefix}[a-z0-9_:]*)", expr))


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_code_exports_the_metrics_this_checks_against():
    names = exported_names()
    for must in ("ray_echo_ray_requests_total", "ray_echo_ray_request_latency_ms_bucket",
                 "ray_echo_ray_result_cache_total", "ray_echo_ray_cache_hits_total",
                 "ray_echo_ray_scaling_forecast", "ray_echo_ray_scaling_cost_per_hour"):
        assert must in names


def test_dashboard_and_rules_reference_only_real_series():
    names, records = exported_names(), recorded()
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]
    groups = yaml.safe_load(RULES.read_text())["groups"]
    exprs += [r["expr"] for g in groups for r in g["rules"]]
    for expr in exprs:
        for name in referenced(expr, "ray_echo_ray_"):
            assert name in names, f"{name} (in {expr!r}) is not exported by the code"
        for name in referenced(expr, "echo_ray:"):
            assert name in records, f"{name} (in {expr!r}) is not a recording rule"


def test_dashboard_has_the_operator_panels():
    doc = dashboard()
    assert doc["uid"] == "echo-ray" and doc["schemaVersion"] >= 36
    titles = {p["title"] for p in doc["panels"]}
    for needed in ("Served load vs forecast and its 80% interval",
                   "Replicas: desired vs actual", "Latency percentiles",
                   "Cache hit ratio per tier", "Cost rate", "SLO burn"):
        assert needed in titles
    forecast = next(p for p in doc["panels"] if p["title"].startswith("Served load"))
    bounds = {b for t in forecast["targets"] for b in re.findall(r'bound="(\w+)"', t["expr"])}
    assert bounds == {"point", "lower", "upper"}
    variables = {v["name"] for v in doc["templating"]["list"]}
    assert {"datasource", "lead"} <= variables


def test_panels_are_well_formed():
    ids = set()
    for p in dashboard()["panels"]:
        assert p["id"] not in ids
        ids.add(p["id"])
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24 and g["h"] > 0
        assert p["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)) and refs
        assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"])
