"""The FastAPI ingress deployment: validates every request, owns sessions' lifecycle and the
result cache, and sends processing to the cognitive worker deployment."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import time
from typing import Any, Literal

from fastapi import FastAPI, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from ray import serve
from ray.exceptions import ActorDiedError, RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from echo_ray.cache import CacheConfig, MultiLevelCache
from echo_ray.cache.http import make_cache_router
from echo_ray.cache.service import cache_service
from echo_ray.cognitive import PROCESSORS

from .auth import BearerAuthMiddleware
from .errors import (
    ApiError,
    BodyLimitMiddleware,
    describe_validation,
    install_error_handlers,
    validation_failure,
)
from .sessions import (
    SessionCorrupt,
    SessionNotFound,
    StoreUnavailable,
    TooManySessions,
    make_session_store,
    valid_session_id,
)
from .settings import ServiceSettings
from .stats import RequestStats

log = logging.getLogger("echo_ray.service")
TYPES = tuple(PROCESSORS)
ProcessingType = Literal["memory", "reasoning", "grammar", "agent_evaluation", "multi_modal",
                         "membrane_evolution"]
SESSION_ID = Field(None, pattern=r"^[0-9a-f]{32}$", description="from POST /v1/sessions")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cache: bool = Field(True, description="use the result cache for this request")


class ProcessRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str | None = SESSION_ID
    type: ProcessingType
    input: dict[str, Any]
    options: Options | None = None


class ProcessResponse(BaseModel):
    type: str
    session_id: str | None
    session_version: int | None
    cached: bool
    result: dict[str, Any]


class SessionInfo(BaseModel):
    session_id: str
    version: int
    created: float
    updated: float
    expires: float


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


ERRORS = {s: {"model": ErrorResponse} for s in (400, 401, 404, 409, 413, 422, 429, 503)}
# This replica's settings, read by the middlewares per request: the FastAPI app is built at
# import, the replica's settings arrive later (IngressImpl.__init__). The readers are
# module-level functions so that Serve pickles them by reference and, in the replica, they
# read this module's dict (a lambda would be pickled by value, with a stale copy of it).
_replica = {"settings": ServiceSettings.from_env()}


def _max_request_bytes() -> int:
    return _replica["settings"].max_request_bytes


def _api_token() -> str | None:
    return _replica["settings"].api_token


def _record_rejected(kind: str, status: int, latency_ms: float) -> None:
    """Count a processing request FastAPI refused before the handler ran (module-level, like
    the readers above, so it finds this replica's RequestStats)."""
    stats = _replica.get("stats")
    if stats is not None:
        stats.record(kind, status, latency_ms)


class CountedRoute(APIRoute):
    """Route class of the app. On the processing routes (POST /v1/process, POST /v1/{type})
    a request FastAPI refuses before the handler runs - malformed JSON (400) or a body the
    typed model rejects (422) - is counted in the request stats and metrics
    (`echo_ray_requests_total{type,status}`), like every answer of the handler. The type is
    the route's, or for /v1/process the body's `type` if it names one ("unknown" if not)."""

    def get_route_handler(self):
        handler = super().get_route_handler()
        kind = self.path.rsplit("/", 1)[-1]
        if kind not in TYPES and self.path != "/v1/process":
            return handler

        async def counted(request):
            t0 = time.perf_counter()
            try:
                return await handler(request)
            except RequestValidationError as exc:
                label = kind
                if label not in TYPES:
                    named = exc.body.get("type") if isinstance(exc.body, dict) else None
                    label = named if isinstance(named, str) and named in TYPES else "unknown"
                _record_rejected(label, validation_failure(exc.errors())[0],
                                 (time.perf_counter() - t0) * 1000)
                raise

        return counted


api = FastAPI(title="echo-ray cognitive API", version="1",
              description="Deep Tree Echo State Network processing on Ray Serve.")
api.router.route_class = CountedRoute
api.add_middleware(BodyLimitMiddleware, limit=_max_request_bytes)
api.add_middleware(BearerAuthMiddleware, token=_api_token)
install_error_handlers(api)
_cache_service: dict = {}  # the CacheService actor handle of this ingress replica


def _cache_handle():
    """Module-level (pickled by reference), so replicas read the handle their __init__ set."""
    return _cache_service["handle"]


api.include_router(make_cache_router(_cache_handle), tags=["cache"],
                   responses=ERRORS)


def _typed_request(kind: str) -> type[BaseModel]:
    """{session_id?, input: <the type's own request model>, options?} for the typed endpoint."""
    input_model = PROCESSORS[kind].request_model
    model = create_model(f"{kind.title().replace('_', '')}Call",
                        __config__=ConfigDict(extra="forbid"),
                        session_id=(str | None, SESSION_ID), input=(input_model, ...),
                        options=(Options | None, None), __module__=__name__)
    globals()[model.__name__] = model  # importable by name, so replicas unpickle it whole
    return model


def cache_key(canonical_input: str, session_id: str | None, version: int | None) -> str:
    """Results are keyed by (type and canonical input, session, session version)."""
    digest = hashlib.sha256(f"{session_id}|{version}|{canonical_input}".encode()).hexdigest()
    return f"result:{digest}"


class IngressImpl:
    def __init__(self, worker, settings: dict | None = None):
        self.settings = ServiceSettings(**settings) if settings else ServiceSettings.from_env()
        _replica["settings"] = self.settings
        self.worker = worker
        self.store = make_session_store(self.settings)
        self.stats = RequestStats()
        _replica["stats"] = self.stats  # for requests refused before a handler (CountedRoute)
        try:
            app_name = serve.get_replica_context().app_name
        except Exception:
            app_name = "local"
        # The shared cache behind /v1/cache/*, one per application (config from the env).
        _cache_service["handle"] = cache_service(name=f"echo_ray_cache:{app_name}")
        self.cache = None
        if self.settings.enable_caching:
            self.cache = MultiLevelCache(CacheConfig.from_env(
                namespace="results", default_ttl_seconds=float(self.settings.cache_ttl_s),
                redis_url=self.settings.redis_url, object_store="off",
                cache_dir=str(self.settings.session_dir.parent / "result-cache")))

    # -- health ----------------------------------------------------------------------------
    @api.get("/healthz", tags=["health"])
    async def healthz(self) -> dict:
        """The ingress process is alive."""
        return {"status": "ok"}

    @api.get("/readyz", tags=["health"], responses={503: {"model": ErrorResponse}})
    async def readyz(self):
        """Workers answer and the session store is reachable."""
        try:
            await asyncio.wait_for(self.worker.ping.remote(), timeout=10)
        except Exception as exc:
            raise ApiError(503, "workers_unavailable", f"cognitive workers not ready: "
                           f"{type(exc).__name__}", retry_after=self.settings.retry_after_s) from None
        try:
            await asyncio.to_thread(self.store.ping)
        except Exception as exc:
            raise ApiError(503, "session_store_unavailable", f"session store unreachable: "
                           f"{type(exc).__name__}", retry_after=self.settings.retry_after_s) from None
        out = {"status": "ready", "session_store": _backend(self.store)}
        if hasattr(self.store, "health"):  # Redis behind the journal: say if it is degraded
            out.update(await asyncio.to_thread(self.store.health))
        return out

    @api.get("/v1/stats", tags=["health"])
    async def stats_summary(self) -> dict:
        """Requests, latency percentiles, cache and sessions, as seen by this ingress replica."""
        out = self.stats.summary()
        try:
            n = await asyncio.to_thread(self.store.count)
            self.stats.set_sessions(n)
            out["sessions"] = {"active": n, "limit": self.settings.max_sessions,
                               "store": _backend(self.store)}
        except Exception as exc:
            out["sessions"] = {"error": type(exc).__name__}
        if self.cache is not None:
            out["cache"] = self.cache.stats()
        return out

    # -- sessions --------------------------------------------------------------------------
    @api.post("/v1/sessions", status_code=201, response_model=SessionInfo, tags=["sessions"],
              responses=ERRORS)
    async def create_session(self):
        """A new session (memory, trained readouts, membrane state), TTL refreshed on use."""
        meta = await self._store(self.store.create)
        return JSONResponse(_session_json(meta), status_code=201)

    @api.get("/v1/sessions/{session_id}", response_model=SessionInfo, tags=["sessions"],
             responses=ERRORS)
    async def get_session(self, session_id: str):
        return _session_json(await self._store(self.store.meta, self._sid(session_id)))

    @api.delete("/v1/sessions/{session_id}", status_code=204, tags=["sessions"], responses=ERRORS)
    async def delete_session(self, session_id: str):
        sid = self._sid(session_id)
        if not await self._store(self.store.delete, sid):
            raise ApiError(404, "session_not_found", f"session {sid} does not exist or has expired")
        if self.cache is not None:
            self.cache.delete_by_tags([f"session:{sid}"])
        return Response(status_code=204)

    # -- processing ------------------------------------------------------------------------
    @api.post("/v1/process", response_model=ProcessResponse, tags=["processing"],
              responses=ERRORS)
    async def process(self, body: ProcessRequest):
        """Any processing type; `input` is that type's request (see the typed endpoints)."""
        return await self._process(body.type, body.input, body.session_id, body.options)

    async def _process(self, kind: str, payload: Any, session_id: str | None,
                       options: Options | None):
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
        except ValidationError as exc:
            raise ApiError(422, "invalid_input", describe_validation(exc.errors())) from None
        except ValueError as exc:
            raise ApiError(422, "invalid_input", str(exc)) from None
        dumped = payload.model_dump(mode="json")
        canonical_input = json.dumps({"type": kind, "input": dumped}, sort_keys=True,
                                     separators=(",", ":"))
        use_cache = self.cache is not None and (options is None or options.cache)
        version = None
        if session_id:
            version = (await self._store(self.store.meta, session_id)).version
        key = cache_key(canonical_input, session_id, version)
        if use_cache:
            hit = self.cache.get(key)
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
                self.cache.delete_by_tags([f"session:{session_id}"])
            else:
                try:
                    self.cache.put(key, response, tags=[f"session:{session_id}",
                                                        f"type:{kind}"])
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
                               retry_after=self.settings.retry_after_s) from None
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
                               retry_after=self.settings.retry_after_s) from None
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

    async def _store(self, fn, *args):
        try:
            return await asyncio.to_thread(fn, *args)
        except SessionNotFound as exc:
            raise ApiError(404, "session_not_found",
                           f"session {exc.args[0]} does not exist or has expired") from None
        except TooManySessions as exc:
            raise ApiError(429, "too_many_sessions", str(exc),
                           retry_after=self.settings.retry_after_s) from None
        except StoreUnavailable as exc:
            raise ApiError(503, "session_store_unavailable", str(exc),
                           retry_after=self.settings.retry_after_s) from None
        except SessionCorrupt as exc:
            raise ApiError(500, "session_corrupt", str(exc)) from None


def _backend(store) -> str:
    """The session backend's name; Redis behind the outage journal is still Redis (readyz
    then also reports `redis` up/down and `journal_pending`)."""
    return type(getattr(store, "redis", store)).__name__


def _session_json(meta) -> dict:
    return dataclasses.asdict(meta) | {"session_id": meta.id}


def _typed_endpoint(kind: str):
    """The handler of POST /v1/{kind}. `kind` is closed over, not a parameter with a default:
    FastAPI would publish such a parameter as a query string (`?_kind=`) that a client could
    set to any processing type (found by the schemathesis fuzz test)."""

    async def endpoint(self, body):
        return await self._process(kind, body.input, body.session_id, body.options)

    return endpoint


def _add_typed_endpoints() -> None:
    """POST /v1/{type} for each processing type, with that type's own request schema."""
    for kind in TYPES:
        model = _typed_request(kind)
        endpoint = _typed_endpoint(kind)
        endpoint.__annotations__["body"] = model  # a real class, not the string 'model'
        endpoint.__name__ = f"process_{kind}"
        endpoint.__qualname__ = f"IngressImpl.{endpoint.__name__}"  # Serve binds it as a method
        endpoint.__doc__ = f"The `{kind}` processing type."
        setattr(IngressImpl, endpoint.__name__, api.post(
            f"/v1/{kind}", response_model=ProcessResponse, tags=["processing"],
            responses=ERRORS)(endpoint))


_add_typed_endpoints()
Ingress = serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})(
    serve.ingress(api)(IngressImpl))
