"""The served app with ECHO_RAY_API_TOKEN set: every endpoint but /healthz needs the bearer
token (401 + WWW-Authenticate otherwise), the token never reaches a log, and the body limit
from the replica's settings holds (by Content-Length and for streamed bodies)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.serve_app import API_TOKEN, AUTH, BODY_LIMIT

pytestmark = pytest.mark.ray
# (method, path, json body) for every route the app serves
ROUTES = [
    ("GET", "/readyz", None), ("GET", "/v1/stats", None), ("GET", "/openapi.json", None),
    ("GET", "/docs", None), ("POST", "/v1/sessions", None),
    ("GET", "/v1/sessions/" + "0" * 32, None), ("DELETE", "/v1/sessions/" + "0" * 32, None),
    ("POST", "/v1/process", {"type": "reasoning", "input": {"series": [0.0] * 30}}),
    ("POST", "/v1/memory", {"input": {"op": "retrieve", "query": {"text": "x"}}}),
    ("GET", "/v1/cache/stats", None), ("GET", "/v1/cache/k", None),
    ("PUT", "/v1/cache/k", {"value": 1}), ("DELETE", "/v1/cache/k", None),
    ("POST", "/v1/cache/invalidate", {"tags": ["t"]}), ("GET", "/no/such/route", None),
]


@pytest.fixture(scope="module")
def client(secure_app):
    with httpx.Client(base_url=secure_app, timeout=60) as c:
        yield c


def unauthorized(r: httpx.Response) -> dict:
    assert r.status_code == 401, (r.request.url, r.text)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == "unauthorized"
    assert API_TOKEN not in r.text
    return body["error"]


def test_healthz_is_open(client):
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize("method, path, body", ROUTES)
def test_every_other_route_needs_the_token(client, method, path, body):
    unauthorized(client.request(method, path, json=body))
    msg = unauthorized(client.request(method, path, json=body, headers={
        "Authorization": "Bearer " + API_TOKEN[:-1] + "x"}))["message"]
    assert "not valid" in msg
    unauthorized(client.request(method, path, json=body, headers={
        "Authorization": f"Basic {API_TOKEN}"}))  # wrong scheme
    r = client.request(method, path, json=body, headers=AUTH)
    assert r.status_code != 401 and r.status_code < 500, (path, r.status_code, r.text)


def test_the_token_never_reaches_a_log(client, ray_session):
    for _ in range(3):
        client.get("/v1/stats", headers=AUTH)
        client.get("/v1/stats", headers={"Authorization": f"Bearer {API_TOKEN}x"})
    logs = Path(ray_session._private.worker.global_worker.node.get_logs_dir_path())
    files = [p for p in logs.rglob("*") if p.is_file()]
    assert files, f"no log files under {logs}"
    needle = API_TOKEN.encode()
    leaked = [p for p in files if needle in p.read_bytes()]
    assert not leaked, f"the API token appears in {leaked}"


def test_body_limit_from_the_settings(client):
    big = b"x" * (BODY_LIMIT + 1)
    r = client.post("/v1/process", content=big, headers={**AUTH, "content-type":
                                                          "application/json"})
    assert r.status_code == 413 and str(BODY_LIMIT) in r.json()["error"]["message"]

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(BODY_LIMIT // 4096 + 2):
            yield b" " * 4096

    r = client.post("/v1/process", content=chunks(), headers={**AUTH, "content-type":
                                                               "application/json"})
    assert r.status_code == 413
    ok = client.post("/v1/process", content=b" " * (BODY_LIMIT - 100) + b'{"type": "x"}',
                     headers={**AUTH, "content-type": "application/json"})
    assert ok.status_code == 422  # under the limit: read and validated


def test_unauthenticated_large_bodies_are_refused_before_reading(client):
    r = client.post("/v1/process", content=b"x" * (4 * BODY_LIMIT),
                    headers={"content-type": "application/json"})
    assert r.status_code == 401


def test_typed_endpoints_take_no_processing_type_from_the_query(client):
    """Regression (found by the fuzz test): `?_kind=` used to pick the processing type."""
    spec = client.get("/openapi.json", headers=AUTH).json()
    assert not spec["paths"]["/v1/memory"]["post"].get("parameters")
    r = client.post("/v1/memory?_kind=reasoning", headers=AUTH, json={
        "input": {"op": "store", "items": [{"vector": [1.0, 0.0]}]}})
    assert r.status_code == 200 and r.json()["type"] == "memory", r.text


@pytest.mark.parametrize("path, body", [
    ("/v1/membrane_evolution", '{"input": {"steps": 1, "add_objects": {"\\ud800": 1}}}'),
    ("/v1/memory", '{"input": {"op": "store", "items": [{"text": "a\\udfffb"}]}}'),
])
def test_lone_surrogates_are_a_422_not_a_500(client, path, body):
    r = client.post(path, headers={**AUTH, "content-type": "application/json"}, content=body)
    assert r.status_code == 422 and "unicode" in r.json()["error"]["message"], r.text


def test_echo_rays_own_http_clients_send_the_token(secure_app, monkeypatch, tmp_path):
    """`make run`'s readiness poll, `echo-ray calibrate` and `echo-ray replay` send
    `Authorization: Bearer $ECHO_RAY_API_TOKEN` when it is set (else the poll never sees
    ready and every calibration or replay request is a 401)."""
    from echo_ray.ops.deploy import wait_http_ready
    from echo_ray.sim.arrivals import RateTrace
    from echo_ray.sim.calibrate import calibrate
    from echo_ray.sim.replay import ReplayRequest, replay

    monkeypatch.delenv("ECHO_RAY_API_TOKEN", raising=False)
    with pytest.raises(TimeoutError, match="HTTP 401|not ready"):
        wait_http_ready(f"{secure_app}/readyz", timeout_s=1.0)  # 401 all along
    monkeypatch.setenv("ECHO_RAY_API_TOKEN", API_TOKEN)
    wait_http_ready(f"{secure_app}/readyz", timeout_s=60.0)  # returns once /readyz answers 200
    doc = calibrate(secure_app, tmp_path / "cal.json", n=2, types=["membrane_evolution"],
                    warmup=0)
    assert doc["types"]["membrane_evolution"]["errors"] == 0, doc
    r = replay(secure_app, RateTrace.constant(5.0, 2.0, bin_seconds=2.0),
               request=ReplayRequest("/v1/stats", None, "GET"), progress=False)
    s = r.summary
    assert s["arrivals"] > 0 and s["http_status_counts"] == {200: s["arrivals"]}, s
