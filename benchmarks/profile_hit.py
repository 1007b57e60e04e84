"""In-process CPU per request of the ingress's FastAPI app on a result-cache hit, against a
bare FastAPI GET route (no Serve, no HTTP: the apps are called as ASGI apps).

    python benchmarks/profile_hit.py 3000 [profile]

The worker is a stand-in that answers one memory retrieve (it only fills the cache once);
`profile` adds a cProfile of the hits. Figures in RESULTS.md ("Hit path: live profile ...").
"""
import asyncio
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time

sys.path.insert(0, os.getcwd())
from fastapi import FastAPI

from echo_ray.connection import connect
from echo_ray.service.ingress import IngressImpl
from echo_ray.service.routes import build_api
from echo_ray.settings import Settings


class Worker:  # a stand-in: answers like CognitiveWorker.process for a retrieve (fills the cache once)
    class process:
        @staticmethod
        async def remote(kind, dumped, sid):
            return {"ok": True, "session_version": 0, "changed": False,
                    "result": {"matches": [{"text": f"w{i}", "score": 0.9 - i / 10} for i in range(5)], "size": 200}}
    class ping:
        @staticmethod
        async def remote(): return True

def asgi_call(app, method, path, body=b""):
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"x"), (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    sent = []
    done = False
    async def receive():
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
    async def send(m): sent.append(m)
    async def run():
        await app(scope, receive, send)
        return sent
    return run

async def bench(app, method, path, body, n):
    for _ in range(50):
        sent = await asgi_call(app, method, path, body)()
    assert sent[0]["status"] == 200, sent
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        await asgi_call(app, method, path, body)()
    return 1e6 * (time.process_time() - c0) / n, 1e6 * (time.perf_counter() - t0) / n, sent[1]["body"]

async def main(n, prof):
    connect(include_dashboard=False, num_cpus=1)
    data = tempfile.mkdtemp()
    ing = IngressImpl(Worker(), Settings.from_env(paths={"data_dir": data}))
    api = build_api(ing)
    await api.router.startup() if hasattr(api.router, "startup") else None
    sid = (await ing.create_session())["session_id"]
    body = json.dumps({"session_id": sid, "input": {"op": "retrieve", "query": {"text": "abcdefghij"}, "k": 5}}).encode()
    bare = FastAPI()
    @bare.get("/noop")
    async def noop(): return {"ok": True}
    await asgi_call(api, "POST", "/v1/memory", body)()  # miss: fills the cache
    for label, app, m, p, b in (("bare FastAPI GET", bare, "GET", "/noop", b""),
                                ("hit POST /v1/memory", api, "POST", "/v1/memory", body)):
        cpu, wall, out = await bench(app, m, p, b, n)
        print(f"{label:22s} cpu {cpu:7.1f} us  wall {wall:7.1f} us  {out[:60]!r}")
    if prof:
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(n):
            await asgi_call(api, "POST", "/v1/memory", body)()
        pr.disable()
        pstats.Stats(pr).sort_stats("cumulative").print_stats(45)


asyncio.run(main(int(sys.argv[1]), len(sys.argv) > 2))
