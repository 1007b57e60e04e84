"""Observability: promtool checks the config and unit-tests the alert rules; a real
Prometheus (Debian's `prometheus` package) discovers our live cluster's metrics through the
file Ray writes, scrapes them, evaluates our rules, and answers every Grafana panel query."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from echo_ray.ops.localcluster import free_port
from echo_ray.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deployments" / "prometheus"
DASHBOARD = ROOT / "deployments" / "grafana" / "echo-ray.json"
WAIT_S = 90.0
SCALING_SERIES = '{__name__=~"ray_echo_ray_scaling.*"}'


def tool(name: str) -> str:
    """On PATH, else where `make test` unpacks Debian's package (.venv/prometheus)."""
    path = shutil.which(name)
    unpacked = ROOT / ".venv" / "prometheus" / "usr" / "bin" / name
    if path is None and unpacked.is_file():
        path = str(unpacked)
    if path is None:
        reason = (f"`{name}` is not installed (Debian package `prometheus`; `make test` "
                  "installs it where apt-get works)")
        print(f"\nSKIP: {reason}")
        pytest.skip(reason)
    return path


def test_promtool_checks_config_and_rules():
    promtool = tool("promtool")
    for args in (["check", "config", str(PROM_DIR / "prometheus.yml")],
                 ["check", "rules", *map(str, sorted((PROM_DIR / "rules").glob("*.yml")))],
                 ["test", "rules", str(PROM_DIR / "tests" / "echo-ray.rules.test.yml")]):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"


def test_promtool_rejects_a_broken_rule(tmp_path):
    promtool = tool("promtool")
    rules = yaml.safe_load((PROM_DIR / "rules" / "echo-ray.rules.yml").read_text())
    rules["groups"][0]["rules"][0]["expr"] = "sum(rate(ray_echo_ray_requests_total[1m])"
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(rules))
    done = subprocess.run([promtool, "check", "rules", str(bad)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every Grafana target, with the dashboard variables filled."""
    doc = json.loads(DASHBOARD.read_text())
    out = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$lead", "15s").replace("$__rate_interval", "1m")
            out.append((panel["title"], expr))
    return out


@pytest.fixture(scope="module")
def prometheus(live_app, tmp_path_factory):
    """Our prometheus.yml, aimed at the live cluster's service-discovery file."""
    binary = tool("prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    # Fast, but with room for a slow metrics endpoint on a busy machine.
    config["global"].update(scrape_interval="2s", evaluation_interval="1s",
                            scrape_timeout="2s")
    config["rule_files"] = [str(PROM_DIR / "rules" / "*.yml")]
    (job,) = config["scrape_configs"]
    job["file_sd_configs"][0]["files"] = [str(live_app.cluster.service_discovery_file)]
    job["file_sd_configs"][0]["refresh_interval"] = "1s"
    # Ray lists the node's own address; scrape the same ports over loopback.
    job["relabel_configs"] = [{"source_labels": ["__address__"], "regex": "[^:]+:(\\d+)",
                               "target_label": "__address__", "replacement": "127.0.0.1:$1"}]
    (work / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = open(work / "prometheus.log", "wb")
    proc = subprocess.Popen([binary, f"--config.file={work / 'prometheus.yml'}",
                             f"--storage.tsdb.path={work / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def ready():
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {(work / 'prometheus.log').read_text()}")
        try:
            return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, 30, "Prometheus ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def query(url: str, expr: str) -> list[dict]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]


def value(url: str, expr: str) -> float | None:
    result = query(url, expr)
    return float(result[0]["value"][1]) if result else None


def eventually(predicate, timeout_s: float, what: str, state):
    """wait_until, failing with `state()` (what Prometheus has) when time runs out."""
    try:
        return wait_until(predicate, timeout_s, what, interval_s=1.0)
    except TimeoutError:
        pytest.fail(f"{what}: not within {timeout_s:.0f}s; {state()}")


def targets(url: str) -> list:
    data = httpx.get(f"{url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    return [(t["scrapeUrl"], t["health"], t["lastError"]) for t in data]


@pytest.mark.cluster
@pytest.mark.timeout(300)
def test_prometheus_scrapes_our_metrics_and_evaluates_our_rules(live_app, prometheus):
    series = [0.1, 0.4, 0.9, 0.4] * 8
    with httpx.Client(base_url=live_app.base_url, timeout=120) as client:
        for i in range(6):  # 3 distinct inputs, each twice: misses then result-cache hits
            r = client.post("/v1/reasoning", json={"input": {
                "series": [x + (i % 3) / 100 for x in series], "horizon": 2}})
            assert r.status_code == 200, r.text
        # Semantic 422 (counted: the ingress validated it, not FastAPI's body parsing).
        r = client.post("/v1/process", json={"type": "reasoning", "input": {"series": [1.0]}})
        assert r.status_code == 422, r.text

    expected = {
        'sum(ray_echo_ray_requests_total{type="reasoning",status="200"})': 6,
        'sum(ray_echo_ray_requests_total{type="reasoning",status="422"})': 1,
        'sum(ray_echo_ray_result_cache_total{outcome="hit"})': 3,
        'sum(ray_echo_ray_request_latency_ms_count{type="reasoning"})': 7,
        'sum(ray_echo_ray_processing_seconds_count{type="reasoning"})': 3,
        'sum(ray_echo_ray_cache_misses_total)': 1,
    }

    def all_seen():
        got = {e: value(prometheus, e) for e in expected}
        return got if all(v is not None and v >= expected[e] for e, v in got.items()) else None

    eventually(all_seen, WAIT_S, "our metrics in Prometheus",
               lambda: f"{ {e: value(prometheus, e) for e in expected} } targets "
                       f"{targets(prometheus)}")

    # scraped successfully (the latest scrape alone may time out on a loaded machine)
    up = (f'max_over_time(up{{job="ray",instance="127.0.0.1:'
          f'{live_app.cluster.ports.metrics_export}"}}[5m])')
    eventually(lambda: value(prometheus, up) == 1, WAIT_S, "the Ray target up",
               lambda: targets(prometheus))
    def rules_ok():
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return (groups, rules) if rules and all(r["health"] == "ok" for r in rules) else None

    def rule_state():
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        return [(r.get("name"), r["health"], r.get("lastError")) for g in groups
                for r in g["rules"] if r["health"] != "ok"]

    groups, rules = eventually(rules_ok, WAIT_S, "every rule evaluated without error",
                               rule_state)
    assert {g["name"] for g in groups} == {"echo-ray.records", "echo-ray.slo",
                                            "echo-ray.scaling", "echo-ray.dependencies"}
    # Recording rules computed from live data (rates need two scrapes).
    for record in ("echo_ray:request_latency_ms:p95_5m", "echo_ray:requests:rate1m",
                   "echo_ray:result_cache_hit:ratio_rate5m", "echo_ray:cache_hit:ratio_rate5m",
                   "echo_ray:request_slow:ratio_rate5m"):
        eventually(lambda r=record: query(prometheus, r), WAIT_S, f"recording rule {record}",
                   lambda: f"targets {targets(prometheus)}")
    assert value(prometheus, "echo_ray:request_errors:ratio_rate5m") == 0.0
    firing = [a["labels"]["alertname"] for a in httpx.get(
        f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        if a["labels"]["alertname"].startswith("EchoRay") and a["state"] == "firing"]
    assert firing == []

    # Every Grafana panel query is valid PromQL here; the core panels have data.
    for _title, expr in dashboard_queries():
        query(prometheus, expr)
    for title in ("Latency percentiles", "Requests by type and status",
                  "Replicas: desired vs actual", "Cache hit ratio per tier"):
        panel_has_data(prometheus, title)


def panel_has_data(prometheus: str, title: str) -> None:
    exprs = [e for t, e in dashboard_queries() if t == title]
    assert exprs, title
    eventually(lambda: any(query(prometheus, e) for e in exprs), WAIT_S,
               f"data for panel {title!r}", lambda: f"queries {exprs}")


@pytest.mark.cluster
@pytest.mark.timeout(300)
def test_prometheus_sees_the_optimizers_scaling_metrics(live_app, prometheus):
    """The ForecastPolicy in the Serve controller feeds the optimizer actor twice a second;
    the actor's gauges (desired/current replicas, cost rate) are refreshed on every answer,
    so they disappear when it stops answering."""
    eventually(lambda: query(prometheus, 'ray_echo_ray_scaling_desired_replicas'
                                         '{resource="echo-ray/CognitiveWorker"}'),
               45, "the optimizer's replica gauge for the worker (if it is gone, look "
               "for 'ForecastPolicy' in the Serve controller log: ECHO_RAY_OPS_KEEP_LOGS=1 "
               "keeps it)",
               lambda: f"scaling series: {query(prometheus, SCALING_SERIES)}")
    panel_has_data(prometheus, "Cost rate")
