"""The ingress re-sends a request whose worker replica died only when that is safe: nothing was
stored (no session, or the session is still at the version read before the first try).
Pure unit test: the worker handle is a stand-in that fails as a dead replica does; the session
store is the real embedded one."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from ray.exceptions import ActorDiedError, ActorUnavailableError

from echo_ray.service.errors import ApiError
from echo_ray.service.ingress import IngressImpl
from echo_ray.service.stats import RequestStats
from echo_ray.sessions import EmbeddedSessionStore


class DyingWorker:
    """`process.remote()` raises `errors` in turn, then answers; `before_death` runs first
    (e.g. the worker saved the session and then died)."""

    def __init__(self, *errors, before_death=None):
        self.errors, self.before_death, self.calls = list(errors), before_death, 0
        self.process = SimpleNamespace(remote=self._remote)

    async def _remote(self, kind, payload, session_id):
        self.calls += 1
        if self.errors:
            if self.before_death:
                self.before_death()
            raise self.errors.pop(0)
        return {"ok": True, "result": {}, "changed": False, "session_version": None}


def ingress(worker, store):
    return SimpleNamespace(worker=worker, store=store, stats=RequestStats(export=False),
                           retry_after_s=1, _nothing_stored=None)


def call(fake, session_id=None, version=None):
    fake._nothing_stored = lambda sid, v: IngressImpl._nothing_stored(fake, sid, v)
    return asyncio.run(IngressImpl._call_worker(fake, "memory", {}, session_id, version))


@pytest.fixture
def store(tmp_path):
    return EmbeddedSessionStore(tmp_path)


def test_stateless_request_is_resent_once(store):
    fake = ingress(DyingWorker(ActorDiedError()), store)
    assert call(fake)["ok"] and fake.worker.calls == 2 and fake.stats.worker_retries == 1


def test_session_request_is_resent_when_nothing_was_stored(store):
    sid = store.create().id
    fake = ingress(DyingWorker(ActorDiedError()), store)
    assert call(fake, sid, 0)["ok"] and fake.worker.calls == 2


def test_not_resent_when_the_session_moved_on(store):
    """The dead worker had saved (version 0 -> 1) before dying: re-sending would apply the
    request twice, so the client gets 503 + Retry-After (not acknowledged) instead."""
    sid = store.create().id
    fake = ingress(DyingWorker(ActorDiedError(),
                               before_death=lambda: store.save(sid, {"x": 1}, 0)), store)
    with pytest.raises(ApiError) as err:
        call(fake, sid, 0)
    assert err.value.status == 503 and err.value.retry_after == 1
    assert fake.worker.calls == 1 and store.meta(sid).version == 1


def test_resent_at_most_once(store):
    fake = ingress(DyingWorker(ActorDiedError(), ActorDiedError()), store)
    with pytest.raises(ApiError) as err:
        call(fake)
    assert err.value.status == 503 and fake.worker.calls == 2


def test_unavailable_replica_is_not_resent(store):
    """ActorUnavailableError: the replica may still be running the request (and commit it)."""
    fake = ingress(DyingWorker(ActorUnavailableError("unreachable", None)), store)
    with pytest.raises(ApiError) as err:
        call(fake)
    assert err.value.status == 503 and fake.worker.calls == 1
