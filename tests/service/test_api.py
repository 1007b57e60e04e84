"""The cognitive API over real HTTP against a real local Serve app (membranes in Ray actors)."""

from __future__ import annotations

import concurrent.futures as cf
import json

import httpx
import numpy as np
import pytest
from scipy.stats import spearmanr

from echo_ray.cognitive.reber import corrupt, embedded_reber
from echo_ray.dtesn.datasets import mackey_glass, scale_to_unit
from echo_ray.waiting import wait_until
from tests.support.serve_app import deploy_app
from tests.support.workloads import modal_sample, walker

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def api(serve_session, tmp_path_factory):
    from ray import serve

    data_dir = tmp_path_factory.mktemp("embedded")
    url = deploy_app(serve_session, "echo-embedded", data_dir, max_instances=2)
    with httpx.Client(base_url=url, timeout=120) as client:
        client.data_dir = data_dir  # the app's session store, for tests that expire a session
        yield client
    serve.delete("echo-embedded")


def new_session(api) -> str:
    r = api.post("/v1/sessions")
    assert r.status_code == 201, r.text
    return r.json()["session_id"]


def ok(r: httpx.Response) -> dict:
    assert r.status_code == 200, r.text
    return r.json()


def error(r: httpx.Response, status: int, *words: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert "Traceback" not in r.text
    for w in words:
        assert w in body["error"]["message"], body
    return body["error"]


def random_strings(rng, n):
    return ["".join(chr(97 + c) for c in rng.integers(0, 26, rng.integers(8, 17))) for _ in range(n)]


def one_edit(s, rng):
    i, c = int(rng.integers(len(s))), chr(97 + int(rng.integers(26)))
    op = int(rng.integers(3))
    if op == 0:
        c = c if c != s[i] else chr(97 + (ord(c) - 96) % 26)
        return s[:i] + c + s[i + 1:]
    return s[:i] + c + s[i:] if op == 1 else s[:i] + s[i + 1:]


def test_health_docs_and_session_lifecycle(api):
    assert ok(api.get("/healthz")) == {"status": "ok"}
    assert ok(api.get("/readyz"))["status"] == "ready"
    spec = ok(api.get("/openapi.json"))
    for path in ("/v1/process", "/v1/memory", "/v1/sessions", "/v1/cache/{key}"):
        assert path in spec["paths"]
    assert api.get("/docs").status_code == 200
    sid = new_session(api)
    info = ok(api.get(f"/v1/sessions/{sid}"))
    assert info["session_id"] == sid and info["version"] == 0
    assert api.delete(f"/v1/sessions/{sid}").status_code == 204
    error(api.get(f"/v1/sessions/{sid}"), 404, sid)
    error(api.delete(f"/v1/sessions/{sid}"), 404)


def test_memory_recall_under_one_edit_over_http(api):
    rng = np.random.default_rng(2024)
    strings = random_strings(rng, 1000)
    sid = new_session(api)
    stored = ok(api.post("/v1/memory", json={"session_id": sid, "input": {
        "op": "store", "items": [{"text": s, "id": f"s{n}"} for n, s in enumerate(strings)]}}))
    assert stored["result"]["size"] == 1000 and stored["session_version"] == 1
    picks = rng.choice(1000, 300, replace=False)
    queries = [(int(n), one_edit(strings[n], rng)) for n in picks]

    def ask(q):
        n, text = q
        body = {"session_id": sid, "type": "memory",
                "input": {"op": "retrieve", "query": {"text": text}, "k": 1}}
        return ok(api.post("/v1/process", json=body))["result"]["matches"][0]["id"] == f"s{n}"

    with cf.ThreadPoolExecutor(8) as pool:
        recall = np.mean(list(pool.map(ask, queries)))
    print(f"memory recall@1 over HTTP: {recall:.3f}")
    assert recall >= 0.9


def test_result_cache_hits_on_repeat_and_is_invalidated_by_a_session_change(api):
    sid = new_session(api)
    store = {"session_id": sid, "input": {"op": "store", "items": [{"text": "deep tree echo"}]}}
    ok(api.post("/v1/memory", json=store))
    query = {"session_id": sid, "input": {"op": "retrieve", "query": {"text": "deep tree"}, "k": 3}}
    first, second = ok(api.post("/v1/memory", json=query)), ok(api.post("/v1/memory", json=query))
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["result"] == first["result"]
    ok(api.post("/v1/memory", json={"session_id": sid, "input": {
        "op": "store", "items": [{"text": "deep tree"}]}}))
    third = ok(api.post("/v1/memory", json=query))
    assert not third["cached"] and third["session_version"] == 2
    assert third["result"]["matches"][0]["text"] == "deep tree" and third["result"]["size"] == 2
    bypass = ok(api.post("/v1/memory", json={**query, "options": {"cache": False}}))
    assert not bypass["cached"]
    assert ok(api.get("/v1/stats"))["result_cache"]["hits"] >= 1


def test_memory_retrieve_as_a_get_shares_the_post_answer_and_its_cache_entry(api):
    """GET /v1/memory?text=...&k=... is POST /v1/memory's retrieve without a body: the same
    answer, the same result-cache entry (either method fills it for the other), the same
    limits and errors, and unknown query parameters are refused like unknown fields."""
    sid = new_session(api)
    ok(api.post("/v1/memory", json={"session_id": sid, "input": {"op": "store", "items": [
        {"text": "deep tree echo"}, {"text": "state network"}]}}))
    params = {"session_id": sid, "text": "deep tree", "k": 2}
    first = ok(api.get("/v1/memory", params=params))
    post = ok(api.post("/v1/memory", json={"session_id": sid, "input": {
        "op": "retrieve", "query": {"text": "deep tree"}, "k": 2}}))
    assert (first["cached"], post["cached"]) == (False, True)
    assert post["result"] == first["result"]
    assert first["result"]["matches"][0]["text"] == "deep tree echo"
    assert ok(api.get("/v1/memory", params=params))["cached"]
    assert not ok(api.get("/v1/memory", params={**params, "cache": "false"}))["cached"]

    vectors = new_session(api)
    ok(api.post("/v1/memory", json={"session_id": vectors, "input": {"op": "store", "items": [
        {"vector": [1.0, 0.0, 0.0], "id": "x"}, {"vector": [0.0, 1.0, 0.0], "id": "y"}]}}))
    by_vector = ok(api.get("/v1/memory", params={"session_id": vectors, "k": 1,
                                                 "vector": [0.1, 0.9, 0.0]}))
    assert [m["id"] for m in by_vector["result"]["matches"]] == ["y"]

    before = ok(api.get(f"/v1/sessions/{sid}"))["version"]
    error(api.get("/v1/memory", params={"session_id": sid}), 422, "exactly one")
    error(api.get("/v1/memory", params={**params, "vector": [1.0]}), 422, "exactly one")
    error(api.get("/v1/memory", params={**params, "k": 0}), 422, "k")
    error(api.get("/v1/memory", params={**params, "k": "many"}), 422, "k")
    error(api.get("/v1/memory", params={**params, "text": "x" * 300}), 422, "text")
    error(api.get("/v1/memory", params={**params, "colour": "red"}), 422, "colour")
    error(api.get("/v1/memory", params={**params, "session_id": "../etc"}), 422, "session_id")
    error(api.get("/v1/memory", params={**params, "session_id": "f" * 32}), 404, "f" * 32)
    error(api.get("/v1/memory", params={"session_id": vectors, "vector": [1.0, 0.0]}), 422)
    assert ok(api.get(f"/v1/sessions/{sid}"))["version"] == before


def test_a_deleted_or_expired_session_is_never_answered_from_the_cache(api):
    """Cached results are keyed by the session's version, read from the store before every
    lookup (the fast path too): a session that is gone answers 404, its cached results never."""
    from echo_ray.sessions import EmbeddedSessionStore
    from echo_ray.settings import Settings

    for end in ("delete", "expire"):
        sid = new_session(api)
        ok(api.post("/v1/memory", json={"session_id": sid, "input": {
            "op": "store", "items": [{"text": "deep tree echo"}]}}))
        query = {"session_id": sid, "input": {"op": "retrieve", "query": {"text": "deep"}, "k": 1}}
        ok(api.post("/v1/memory", json=query))
        assert ok(api.post("/v1/memory", json=query))["cached"]
        assert ok(api.post("/v1/process", json={**query, "type": "memory"}))["cached"]
        if end == "delete":
            assert api.delete(f"/v1/sessions/{sid}").status_code == 204
        else:  # a touch with a zero TTL expires it now (its cached results stay in the cache)
            store = EmbeddedSessionStore(Settings.from_env(
                {}, paths={"data_dir": api.data_dir}).paths.sessions, ttl_s=0)
            store.meta(sid)
        error(api.post("/v1/memory", json=query), 404, sid)
        error(api.post("/v1/process", json={**query, "type": "memory"}), 404, sid)


def test_reasoning_continues_mackey_glass(api):
    mg = scale_to_unit(mackey_glass(3100))
    r = ok(api.post("/v1/reasoning", json={"input": {"series": mg[:3000].tolist(), "horizon": 5}}))
    res = r["result"]
    assert res["validation_nrmse"] < 0.01
    assert len(res["predictions"]) == 5 == len(res["uncertainty"])
    assert abs(res["predictions"][0] - mg[3000]) < 0.02


def test_grammar_learns_embedded_reber(api):
    rng = np.random.default_rng(7)
    sid = new_session(api)
    train = [embedded_reber(rng) for _ in range(1000)]
    ok(api.post("/v1/grammar", json={"session_id": sid, "input": {"op": "train", "strings": train}}))
    good = [embedded_reber(rng) for _ in range(200)]
    bad = [corrupt(s, rng) for s in good]
    scores = ok(api.post("/v1/grammar", json={"session_id": sid, "input": {
        "op": "score", "strings": good + bad}}))["result"]["scores"]
    g = np.array([s["min_log_prob"] for s in scores[:200]])[:, None]
    b = np.array([s["min_log_prob"] for s in scores[200:]])[None, :]
    auc = float((g > b).mean() + 0.5 * (g == b).mean())
    print(f"embedded Reber AUC over HTTP: {auc:.3f}")
    assert auc >= 0.95


def test_agent_evaluation_recovers_a_planted_ranking(api):
    rng = np.random.default_rng(11)
    sid = new_session(api)
    examples = []
    for _ in range(150):
        skill = rng.uniform(0, 1)
        examples.append({"trajectory": walker(rng, skill, rng.uniform(0, 1)),
                         "scores": {"progress": skill}})
    ok(api.post("/v1/agent_evaluation", json={"session_id": sid, "input": {"examples": examples}}))
    planted = np.linspace(0, 1, 10)
    agents = [{"id": f"a{k}", "trajectory": walker(rng, planted[k], rng.uniform(0, 1))}
              for k in range(10)]
    res = ok(api.post("/v1/agent_evaluation", json={"session_id": sid,
                                                     "input": {"agents": agents}}))["result"]
    scores = {r["id"]: r["score"] for r in res["rankings"]["progress"]}
    rho = spearmanr([scores[f"a{k}"] for k in range(10)], planted)[0]
    assert rho >= 0.9


def test_multi_modal_fusion_beats_each_modality(api):
    rng = np.random.default_rng(3)
    n_train, n_test = 300, 100
    a, b = rng.uniform(-1, 1, n_train + n_test), rng.uniform(-1, 1, n_train + n_test)
    y = a * b
    nrmse = {}
    for mods in (("a",), ("b",), ("a", "b")):
        srng = np.random.default_rng(4)
        samples = [modal_sample(srng, a[k], b[k], mods) for k in range(n_train + n_test)]
        sid = new_session(api)
        ok(api.post("/v1/multi_modal", json={"session_id": sid, "input": {
            "op": "train", "samples": samples[:n_train], "targets": y[:n_train].tolist()}}))
        out = ok(api.post("/v1/multi_modal", json={"session_id": sid, "input": {
            "samples": samples[n_train:], "include_embeddings": False}}))["result"]["outputs"]
        pred = np.array([o["prediction"][0] for o in out])
        nrmse["+".join(mods)] = float(np.sqrt(np.mean((pred - y[n_train:]) ** 2)) / np.std(y[n_train:]))
    print("multi-modal held-out NRMSE:", nrmse)
    assert nrmse["a+b"] < min(nrmse["a"], nrmse["b"]) - 0.25


def test_membrane_evolution_persists_in_the_session(api):
    sid = new_session(api)
    first = ok(api.post("/v1/membrane_evolution", json={"session_id": sid, "input": {"steps": 1}}))
    assert first["result"]["steps_run"] == 1 and first["session_version"] == 1
    second = ok(api.post("/v1/membrane_evolution", json={"session_id": sid, "input": {"steps": 50}}))
    assert second["result"]["halted"] and second["result"]["total_steps"] == 3
    assert second["result"]["membranes"][0]["id"] == "skin"


@pytest.mark.parametrize("case", [
    "malformed_json", "wrong_type", "unknown_type", "missing_session", "bad_session_id",
    "wrong_dimension", "nan", "too_large", "unknown_field",
])
def test_bad_input_gets_a_clear_4xx_and_stores_nothing(api, case):
    sid = new_session(api)
    ok(api.post("/v1/memory", json={"session_id": sid, "input": {
        "op": "store", "items": [{"vector": [1.0, 0.0, 0.0]}]}}))
    before = ok(api.get(f"/v1/sessions/{sid}"))["version"]
    post = lambda body: api.post("/v1/process", json=body)  # noqa: E731
    if case == "malformed_json":
        error(api.post("/v1/process", content=b'{"type": "memory", "input": {',
                       headers={"content-type": "application/json"}), 400, "not valid JSON")
    elif case == "wrong_type":
        error(post({"type": "memory", "input": {"op": "retrieve", "query": {"text": "a"},
                                                "k": "many"}}), 422, "k")
    elif case == "unknown_type":
        error(post({"type": "telepathy", "input": {}}), 422, "type")
    elif case == "missing_session":
        error(post({"session_id": "f" * 32, "type": "memory", "input": {
            "op": "retrieve", "query": {"text": "a"}}}), 404, "f" * 32)
    elif case == "bad_session_id":
        error(post({"session_id": "../etc", "type": "memory", "input": {
            "op": "retrieve", "query": {"text": "a"}}}), 422, "session_id")
    elif case == "wrong_dimension":
        error(post({"session_id": sid, "type": "memory", "input": {
            "op": "store", "items": [{"vector": [1.0, 2.0]}]}}), 422, "3", "2")
    elif case == "nan":
        error(api.post("/v1/process", content=json.dumps(
            {"session_id": sid, "type": "memory", "input": {"op": "store", "items": [
                {"vector": [float("nan"), 0.0, 0.0]}]}}).encode(),
            headers={"content-type": "application/json"}), 422)
    elif case == "too_large":
        error(api.post("/v1/process", content=b"x" * (2 << 20),
                       headers={"content-type": "application/json"}), 413, "MAX_REQUEST_BYTES")
    elif case == "unknown_field":
        error(post({"type": "memory", "input": {"op": "retrieve", "query": {"text": "a"}},
                    "colour": "red"}), 422, "colour")
    assert ok(api.get(f"/v1/sessions/{sid}"))["version"] == before


def test_requests_refused_before_the_handler_are_counted_by_type_and_status(api):
    """Malformed JSON (400) and bodies the typed models reject (422) never reach a handler,
    yet count in /v1/stats and echo_ray_requests_total like every other answer."""
    def counts() -> dict:
        return ok(api.get("/v1/stats"))["requests"]["by_type"]

    def added(kind: str, status: int) -> int:
        return after.get(kind, {}).get(str(status), 0) - before.get(kind, {}).get(str(status), 0)

    series = [0.1, 0.4, 0.9, 0.4] * 8
    before = counts()
    error(api.post("/v1/reasoning", json={"input": {"series": series, "horizon": 0}}),
          422, "horizon")
    error(api.post("/v1/reasoning", json={"input": {"series": series}, "colour": "red"}),
          422, "colour")
    error(api.post("/v1/reasoning", content=b'{"input": {', headers={
        "content-type": "application/json"}), 400, "not valid JSON")
    error(api.post("/v1/process", json={"type": "grammar", "input": {}, "colour": "red"}),
          422, "colour")
    error(api.post("/v1/process", json={"type": "telepathy", "input": {}}), 422, "type")
    error(api.post("/v1/process", content=b"[1,", headers={
        "content-type": "application/json"}), 400, "not valid JSON")
    after = counts()
    assert (added("reasoning", 422), added("reasoning", 400)) == (2, 1), (before, after)
    assert (added("grammar", 422), added("unknown", 422), added("unknown", 400)) == (1, 1, 1)
    assert added("reasoning", 200) == 0  # nothing was processed


def test_sessions_survive_killing_a_worker_replica(api, ray_session):
    sid = new_session(api)
    ok(api.post("/v1/memory", json={"session_id": sid, "input": {
        "op": "store", "items": [{"text": "never forget", "id": "keep"}]}}))
    from ray import serve

    app = serve.status().applications["echo-embedded"]
    assert app.deployments["CognitiveWorker"].status in ("HEALTHY", "UPSCALING", "DOWNSCALING")
    workers = [a for a in ray_session.util.list_named_actors(all_namespaces=True)
               if "CognitiveWorker" in a["name"]]
    assert workers
    for w in workers:
        ray_session.kill(ray_session.get_actor(w["name"], namespace=w["namespace"]), no_restart=True)
    query = {"session_id": sid, "input": {"op": "retrieve", "query": {"text": "never forget"},
                                          "k": 1}, "options": {"cache": False}}

    def answered():  # 503 with Retry-After while Serve replaces the replica, then the answer
        try:
            r = api.post("/v1/memory", json=query, timeout=60)
        except httpx.ReadTimeout:  # queued for a replica still starting: ask again, as users do
            return None
        assert r.status_code in (200, 503), r.text
        assert r.status_code == 200 or "Retry-After" in r.headers, r.text
        return r if r.status_code == 200 else None

    # a replica starts in ~25 s on 2 idle cores; CI's machine, running the suite, is slower
    r = wait_until(answered, 300, "the killed worker replaced", interval_s=0.5)
    assert r.json()["result"]["matches"][0]["id"] == "keep"


@pytest.mark.redis
def test_redis_session_backend(serve_session, redis_server, tmp_path):
    from ray import serve

    url = deploy_app(serve_session, "echo-redis", tmp_path, max_instances=2,
                     sessions={"redis_url": redis_server.url})
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            assert ok(client.get("/readyz"))["session_store"] == "RedisSessionStore"
            sid = new_session(client)
            ok(client.post("/v1/memory", json={"session_id": sid, "input": {
                "op": "store", "items": [{"text": "kept in redis", "id": "r1"}]}}))
            res = ok(client.post("/v1/memory", json={"session_id": sid, "input": {
                "op": "retrieve", "query": {"text": "kept in redis"}, "k": 1}}))
            assert res["result"]["matches"][0]["id"] == "r1"
            import redis

            r = redis.Redis.from_url(redis_server.url)
            assert r.exists(f"echo_ray:session:{sid}:state")
            assert ok(client.get(f"/v1/sessions/{sid}"))["version"] == 1
    finally:
        serve.delete("echo-redis")


def test_status_lists_replicas_with_routing_stats_and_strategy(api):
    from echo_ray.status import collect

    ok(api.post("/v1/reasoning", json={"input": {"series": list(np.sin(np.arange(60) / 3)),
                                                 "horizon": 2}}))
    # a generous per-replica answer time: a busy CI machine is not a replica that is stuck
    rows = [r for r in collect(timeout_s=60) if r["app"] == "echo-embedded"]
    worker = [r for r in rows if r["deployment"] == "CognitiveWorker"]
    assert worker and all(r["strategy"] == "power_of_two" for r in worker)
    running = [r for r in worker if r["state"] == "RUNNING"]
    assert running and {"in_flight", "cpu_percent", "memory_rss_bytes", "latency_ewma_s",
                        "error_rate"} <= set(running[0]["stats"])
    assert any(r["deployment"] == "IngressImpl" for r in rows)


def test_shared_cache_is_reachable_over_http(api):
    assert ok(api.put("/v1/cache/greeting", json={"value": {"text": "hello", "n": [1, 2]},
                                                   "tags": ["demo"]}))
    assert ok(api.get("/v1/cache/greeting"))["value"] == {"text": "hello", "n": [1, 2]}
    assert ok(api.post("/v1/cache/invalidate", json={"tags": ["demo"]}))["deleted"] == 1
    assert api.get("/v1/cache/greeting").status_code == 404
    assert "tiers" in ok(api.get("/v1/cache/stats"))
    # the cache bodies are typed: /openapi.json documents them, so fuzzers send them
    spec = ok(api.get("/openapi.json"))
    put = spec["paths"]["/v1/cache/{key}"]["put"]["requestBody"]["content"]["application/json"]
    assert put["schema"]["$ref"].endswith("/PutBody")
    invalidate = spec["paths"]["/v1/cache/invalidate"]["post"]["requestBody"]
    assert invalidate["content"]["application/json"]["schema"]["$ref"].endswith("/InvalidateBody")
    assert spec["components"]["schemas"]["PutBody"]["required"] == ["value"]
    r = api.post("/v1/cache/invalidate", json={"tags": []})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


def walked_routes(client) -> list[tuple[str, str, bool]]:
    """(method, path with sample parameters, takes a body) of every route the served app
    documents: /openapi.json is generated from the app's route table (included routers too),
    so a new route is walked without touching this test."""
    import re

    samples = {"session_id": "0" * 32, "key": "walk/k"}
    out = []
    for path, ops in ok(client.get("/openapi.json"))["paths"].items():
        concrete = re.sub(r"\{(\w+)\}", lambda m: samples[m.group(1)], path)
        out.extend((method.upper(), concrete, "requestBody" in op) for method, op in ops.items())
    return sorted(out)


def test_the_same_bad_request_gets_the_same_answer_on_every_route(api):
    """One error vocabulary: on every route, a body over MAX_REQUEST_BYTES is 413
    body_too_large and, where a route takes a body, malformed JSON is 400 malformed_json, a
    body that is not JSON 415 unsupported_media_type, and a field the schema does not have
    422 invalid_request; each with a message, never a 5xx."""
    routes = walked_routes(api)
    assert {p for _, p, _ in routes} >= {"/v1/process", "/v1/memory", "/v1/cache/invalidate",
                                         "/v1/sessions", "/readyz"}
    json_type = {"content-type": "application/json"}
    cases = {"oversize": (b" " * ((1 << 20) + 1), json_type, 413, "body_too_large")}
    body_cases = {
        "malformed JSON": (b'{"input": {', json_type, 400, "malformed_json"),
        "not JSON": (b"input=1", {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        "bad field": (b'{"no_such_field": 1}', json_type, 422, "invalid_request"),
    }
    seen = []
    for method, path, takes_body in routes:
        for case, (content, headers, status, code) in (cases | (body_cases if takes_body
                                                                 else {})).items():
            r = api.request(method, path, content=content, headers=headers)
            where = f"{method} {path} ({case}): {r.status_code} {r.text[:300]}"
            assert r.status_code == status, where
            body = r.json()
            assert set(body) == {"error"} and body["error"]["code"] == code, where
            assert body["error"]["message"] and "Traceback" not in r.text, where
            seen.append((path, case))
    assert sum(case == "bad field" for _, case in seen) >= 9  # process, 6 types, 2 cache
