"""What the ingress does, behind the routes: owns sessions' lifecycle and the result cache,
and sends processing to the cognitive worker deployment. Plain class; the routes
(routes.py) call it and the Serve deployment (deployment.py) is built on it."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import threading
import time
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from ray import serve
from ray.exceptions import ActorDiedError, RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from echo_ray.cache import MultiLevelCache
from echo_ray.cache.service import cache_service
from echo_ray.cognitive import PROCESSORS
from echo_ray.sessions import (
    SessionCorrupt,
    SessionNotFound,
    StoreUnavailable,
    TooManySessions,
    session_store,
    valid_session_id,
)
from echo_ray.settings import Settings, get_settings

from .errors import ApiError, invalid
from .models import Options
from .stats import RequestStats

log = logging.getLogger("echo_ray.service")


def cache_key(canonical_input: str, session_id: str | None, version: int | None) -> str:
    """Results are keyed by (type and canonical input, session, session version)."""
    digest = hashlib.sha256(f"{session_id}|{version}|{canonical_input}".encode()).hexdigest()
    return f"result:{digest}"


class IngressImpl:
    def __init__(self, worker, settings: Settings | None = None):
        self.settings = settings or get_settings()
        self.retry_after_s = self.settings.service.retry_after_s
        self.worker = worker
        self.store = session_store(self.settings)
        self.stats = RequestStats()
        try:
            app_name = serve.get_replica_context().app_name
        except Exception:
            app_name = "local"
        # The shared cache behind /v1/cache/*, one per application (config from the env).
        self.cache_service = cache_service(name=f"echo_ray_cache:{app_name}")
        self.cache = None
        # The result cache writes SQLite (its disk tier, 2-3 ms a put) and Redis (L4): never on
        # the event loop. Its calls run in threads, one at a time (its tiers are not thread-safe).
        self._cache_lock = threading.Lock()
        if self.settings.service.enable_caching:
            self.cache = MultiLevelCache(self.settings.cache_config(
                namespace="results", object_store="off",
                default_ttl_seconds=float(self.settings.service.cache_ttl_s)))

    # -- health ----------------------------------------------------------------------------
    async def readyz(self) -> dict:
        """Workers answer and the session store is reachable."""
        try:
            await asyncio.wait_for(self.worker.ping.remote(), timeout=10)
        except Exception as exc:
            raise ApiError(503, "workers_unavailable", f"cognitive workers not ready: "
                           f"{type(exc).__name__}", retry_after=self.retry_after_s) from None
        try:
            await asyncio.to_thread(self.store.ping)
        except Exception as exc:
            raise ApiError(503, "session_store_unavailable", f"session store unreachable: "
                           f"{type(exc).__name__}", retry_after=self.retry_after_s) from None
        out = {"status": "ready", "session_store": _backend(self.store)}
        if hasattr(self.store, "health"):  # Redis behind the journal: say if it is degraded
            out.update(await asyncio.to_thread(self.store.health))
        return out

    async def stats_summary(self) -> dict:
        """Requests, latency percentiles, cache and sessions, as seen by this ingress replica."""
        out = self.stats.summary()
        try:
            n = await asyncio.to_thread(self.store.count)
            self.stats.set_sessions(n)
            out["sessions"] = {"active": n, "limit": self.settings.sessions.max_sessions,
                               "store": _backend(self.store)}
        except Exception as exc:
            out["sessions"] = {"error": type(exc).__name__}
        if self.cache is not None:
            out["cache"] = await self._in_cache(self.cache.stats)
        return out

    # -- sessions --------------------------------------------------------------------------
    async def create_session(self) -> dict:
        return _session_json(await self._store(self.store.create))

    async def get_session(self, session_id: str) -> dict:
        return _session_json(await self._store(self.store.meta, self._sid(session_id)))

    async def delete_session(self, session_id: str) -> None:
        sid = self._sid(session_id)
        if not await self._store(self.store.delete, sid):
            raise ApiError(404, "session_not_found", f"session {sid} does not exist or has expired")
        if self.cache is not None:
            await self._in_cache(self.cache.delete_by_tags, [f"session:{sid}"])

    # -- processing ------------------------------------------------------------------------
    async def process(self, kind: str, payload: Any, session_id: str | None,
                      options: Options | None):
        """Run `payload` (the type's request model, or a dict to validate) as type `kind`;
        counted in the request stats whatever the outcome."""
        t0 = time.perf_counter()
        status = 200
        try:
            return await self._process_inner(kind, payload, session_id, options)
        except ApiError as exc:
            status = exc.status
            raise
        finally:
            self.stats.record(kind, status, (time.perf_counter() - t0) * 1000)

    async def _process_inner(self, kind, payload, session_id, options):
        # Validated here (typed endpoints arrive validated by FastAPI), so bad input never
        # reaches a worker; the canonical form (defaults filled, keys sorted) keys the cache.
        try:
            if not isinstance(payload, BaseModel):
                payload = PROCESSORS[kind].request_model.model_validate(payload)
        except ValueError as exc:  # pydantic's ValidationError too
            raise invalid(exc) from None
        dumped = payload.model_dump(mode="json")
        canonical_input = json.dumps({"type": kind, "input": dumped}, sort_keys=True,
                                     separators=(",", ":"))
        use_cache = self.cache is not None and (options is None or options.cache)
        version, key, hit = None, cache_key(canonical_input, None, None), None
        if session_id or use_cache:  # one thread hop for both reads
            version, key, hit = await self._store(self._lookup, canonical_input, session_id,
                                                  use_cache)
        if use_cache:
            self.stats.record_cache(hit is not None)
            if hit is not None:  # validated against ProcessResponse when it was computed
                return JSONResponse({**hit, "cached": True})
        out = await self._call_worker(kind, dumped, session_id, version)
        if not out["ok"]:
            raise ApiError(out["status"], out["code"], out["message"], out.get("retry_after"))
        response = {"type": kind, "session_id": session_id,
                    "session_version": out["session_version"], "cached": False,
                    "result": out["result"]}
        if self.cache is not None:
            if out["changed"]:
                await self._in_cache(self.cache.delete_by_tags, [f"session:{session_id}"])
            else:
                try:
                    await self._in_cache(self.cache.put, key, response,
                                         tags=[f"session:{session_id}", f"type:{kind}"])
                except TypeError as exc:  # not cacheable: answer anyway, uncached
                    log.warning("result of %s not cached: %s", kind, exc)
        return response

    async def _call_worker(self, kind: str, dumped: dict, session_id: str | None,
                           version: int | None) -> dict:
        """The worker's answer. If the replica died before answering, the request is sent
        once more (Serve's router has dropped the dead replica by then) when that is safe:
        nothing was stored - no session, or the session is still at the version read before
        the first try (a worker's save bumps it, atomically with the state). Otherwise, and on
        a second failure, 503 with Retry-After: the write was not acknowledged."""
        for attempt in (1, 2):
            try:
                return await self.worker.process.remote(kind, dumped, session_id)
            except BackPressureError:
                raise ApiError(503, "overloaded", "all cognitive workers are busy; retry shortly",
                               retry_after=self.retry_after_s) from None
            except (RayActorError, RayTaskError, DeploymentUnavailableError) as exc:
                died = isinstance(exc, ActorDiedError) or isinstance(
                    getattr(exc, "cause", None), ActorDiedError)
                if not isinstance(exc, (RayActorError, DeploymentUnavailableError)) and not died:
                    raise
                if attempt == 1 and died and await self._nothing_stored(session_id, version):
                    self.stats.record_retry()
                    continue
                raise ApiError(503, "worker_unavailable", f"a cognitive worker went away "
                               f"({type(exc).__name__}); retry",
                               retry_after=self.retry_after_s) from None
        raise AssertionError("unreachable")

    async def _nothing_stored(self, session_id: str | None, version: int | None) -> bool:
        if session_id is None:
            return True
        try:
            return (await asyncio.to_thread(self.store.meta, session_id)).version == version
        except Exception:  # cannot tell: do not retry
            return False

    # -- helpers ---------------------------------------------------------------------------
    def _sid(self, session_id: str) -> str:
        if not valid_session_id(session_id):
            raise ApiError(404, "session_not_found",
                           f"session {session_id[:64]!r} does not exist (ids are 32 hex characters)")
        return session_id

    def _lookup(self, canonical_input: str, session_id: str | None, use_cache: bool):
        """(session version, cache key, cached response or None); blocking reads."""
        version = self.store.meta(session_id).version if session_id else None
        key = cache_key(canonical_input, session_id, version)
        if not use_cache:
            return version, key, None
        with self._cache_lock:
            return version, key, self.cache.get(key)

    async def _in_cache(self, fn, *args, **kwargs):
        """`fn(*args, **kwargs)` in a thread, holding the result cache's lock."""
        def locked():
            with self._cache_lock:
                return fn(*args, **kwargs)

        return await asyncio.to_thread(locked)

    async def _store(self, fn, *args):
        try:
            return await asyncio.to_thread(fn, *args)
        except SessionNotFound as exc:
            raise ApiError(404, "session_not_found",
                           f"session {exc.args[0]} does not exist or has expired") from None
        except TooManySessions as exc:
            raise ApiError(429, "too_many_sessions", str(exc),
                           retry_after=self.retry_after_s) from None
        except StoreUnavailable as exc:
            raise ApiError(503, "session_store_unavailable", str(exc),
                           retry_after=self.retry_after_s) from None
        except SessionCorrupt as exc:
            raise ApiError(500, "session_corrupt", str(exc)) from None


def _backend(store) -> str:
    """The session backend's name; Redis behind the outage journal is still Redis (readyz
    then also reports `redis` up/down and `journal_pending`)."""
    return type(getattr(store, "redis", store)).__name__


def _session_json(meta) -> dict:
    return dataclasses.asdict(meta) | {"session_id": meta.id}
