"""Zero-downtime redeploy: `deploy` of a changed config (a new version of the cognitive
worker) while a closed-loop client keeps calling the API: every request succeeds, a worker
replica is RUNNING at every moment we look, from the old replicas to the new ones (with
`max_surge_percent` > 0 in serve_config.yaml Serve starts each new replica before it stops
an old one; with 0 there is a window with none - this test then fails - and requests wait
for the new one to start), and the new replicas serve afterwards."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import yaml

from echo_ray.waiting import wait_until

pytestmark = pytest.mark.cluster
MAX_REQUESTS = 2000
MAX_SECONDS = 240.0


def worker_replicas(live_app) -> tuple[set[str], dict]:
    details = httpx.get(f"{live_app.cluster.dashboard_url}/api/serve/applications/",
                        headers=live_app.cluster.auth_headers(), timeout=30).json()
    dep = details["applications"]["echo-ray"]["deployments"]["CognitiveWorker"]
    running = {r["replica_id"] for r in dep["replicas"] if r["state"] == "RUNNING"}
    return running, dep["deployment_config"]


def diagnose(live_app) -> str:
    """The worker deployment as Serve sees it (for failure messages)."""
    try:
        details = httpx.get(f"{live_app.cluster.dashboard_url}/api/serve/applications/",
                            headers=live_app.cluster.auth_headers(), timeout=30).json()
        dep = details["applications"]["echo-ray"]["deployments"]["CognitiveWorker"]
        return (f"\nworker: status={dep['status']} message={dep.get('message')!r} "
                f"target={dep.get('target_num_replicas')} replicas="
                f"{[(r['replica_id'], r['state']) for r in dep['replicas']]}")
    except Exception as exc:  # diagnostics must not hide the real failure
        return f"\n(no diagnostics: {exc!r})"


class ClosedLoopClient(threading.Thread):
    """One request at a time until stopped (bounded in count and time); keeps every
    (status, start time) - an exception counts as status 0."""

    def __init__(self, base_url: str) -> None:
        super().__init__(daemon=True)
        self.base_url, self.stop = base_url, threading.Event()
        self.results: list[tuple[int, float, float]] = []

    def run(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        with httpx.Client(base_url=self.base_url, timeout=60) as client:
            for i in range(MAX_REQUESTS):
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                series = [0.1 + (i % 7) / 100, 0.4, 0.9, 0.4] * 8
                t0 = time.monotonic()
                try:
                    status = client.post("/v1/process", json={
                        "type": "reasoning", "input": {"series": series, "horizon": 2},
                        "options": {"cache": False}}).status_code
                except httpx.HTTPError:
                    status = 0
                self.results.append((status, t0, time.monotonic()))


class ReplicaWatcher(threading.Thread):
    """Snapshots of the worker's RUNNING replica ids, every 0.2 s until stopped."""

    def __init__(self, live_app) -> None:
        super().__init__(daemon=True)
        self.live_app, self.stop = live_app, threading.Event()
        self.snapshots: list[set[str]] = []

    def run(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                self.snapshots.append(worker_replicas(self.live_app)[0])
            except (httpx.HTTPError, KeyError):
                pass  # the dashboard may be slow under load; the next look counts
            self.stop.wait(0.2)


@pytest.mark.timeout(300)
def test_redeploying_a_new_worker_version_drops_no_request(live_app, tmp_path):
    before, _ = worker_replicas(live_app)
    assert before
    changed = yaml.safe_load(live_app.config_path.read_text())
    worker = next(d for d in changed["applications"][0]["deployments"]
                  if d["name"] == "CognitiveWorker")
    assert worker["max_surge_percent"] > 0
    worker["ray_actor_options"]["runtime_env"] = {"env_vars": {"ECHO_RAY_WORKER_VERSION": "2"}}
    path = tmp_path / "serve_config.v2.yaml"
    path.write_text(yaml.safe_dump(changed, sort_keys=False))

    client = ClosedLoopClient(live_app.base_url)
    client.start()
    try:
        wait_until(lambda: len(client.results) >= 3, 60, "traffic before the redeploy",
                   interval_s=0.1)
        watcher = ReplicaWatcher(live_app)
        watcher.start()
        started = time.monotonic()
        done = live_app.cli("deploy", str(path), "--timeout", "200", timeout_s=240)
        finished = time.monotonic()
        watcher.stop.set()
        watcher.join(30)
        assert done.returncode == 0, done.stdout + done.stderr + diagnose(live_app)
        n_after = len(client.results)
        wait_until(lambda: len(client.results) >= n_after + 3, 60,
                   "traffic after the redeploy", interval_s=0.1)
    finally:
        client.stop.set()
        client.join(90)
    statuses = [s for s, _, _ in client.results]
    during = [s for s, t, _ in client.results if started <= t <= finished]
    ends = [e for _, _, e in client.results]
    longest_wait = max(b - a for a, b in zip(ends, ends[1:]))
    failed = [s for s in statuses if s != 200]
    assert not failed, f"{len(failed)} of {len(statuses)} requests failed: {sorted(set(failed))}"
    assert len(during) >= 3, f"only {len(during)} requests ran during the redeploy"

    # `deploy` returns when the app is RUNNING; an old replica may still be listed RUNNING
    # for a moment after that (its graceful stop, the dashboard's view): a fresh-clone run
    # saw {new, old} here. Replaced means gone within a bounded wait.
    replaced: list = []

    def old_gone() -> bool:
        replaced[:] = worker_replicas(live_app)
        return bool(replaced[0]) and not (replaced[0] & before)

    wait_until(old_gone, 60, "the old worker replicas replaced", interval_s=0.5)
    after, config = replaced
    looks = watcher.snapshots
    assert len(looks) >= 5
    assert any(snap & before for snap in looks) and any(snap - before for snap in looks), \
        "the looks did not span the switch from the old replicas to the new ones"
    assert all(looks), "at some moment no worker replica was RUNNING"
    env = config["ray_actor_options"]["runtime_env"]["env_vars"]
    assert env["ECHO_RAY_WORKER_VERSION"] == "2"
    print(f"\n[ops] redeploy took {finished - started:.1f}s; {len(statuses)} requests, "
          f"{len(during)} during it, none failed; longest wait for an answer "
          f"{longest_wait:.2f}s; {len(looks)} looks at the replicas")
