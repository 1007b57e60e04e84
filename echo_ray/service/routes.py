"""The HTTP routes of the ingress: one FastAPI app per replica, built by `build_api` from
that replica's `IngressImpl` (its settings, stats, session store and caches)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from echo_ray.cache.http import make_cache_router

from .auth import BearerAuthMiddleware
from .errors import ApiRoute, api_route, documented, install_error_handlers
from .ingress import IngressImpl
from .models import (
    TYPES,
    MemoryLookup,
    Options,
    ProcessRequest,
    ProcessResponse,
    SessionInfo,
    typed_request,
)
from .stats import RequestStats

ERRORS = documented(400, 401, 404, 409, 413, 415, 422, 429, 503)


class CountedRoute(ApiRoute):
    """On the processing routes (POST /v1/process, POST /v1/{type}, GET /v1/memory) a request
    FastAPI refuses before the handler runs - malformed JSON (400), or a body or query string
    the typed model rejects (422) - is counted in the request stats and metrics
    (`echo_ray_requests_total{type,status}`), like every answer of the handler. The type is
    the route's, or for /v1/process the body's `type` if it names one ("unknown" if not)."""

    stats: RequestStats | None = None

    def refused(self, exc: RequestValidationError, status: int, latency_ms: float) -> None:
        kind = self.path.rsplit("/", 1)[-1]
        if self.stats is None or (kind not in TYPES and self.path != "/v1/process"):
            return
        if kind not in TYPES:
            named = exc.body.get("type") if isinstance(exc.body, dict) else None
            kind = named if isinstance(named, str) and named in TYPES else "unknown"
        self.stats.record(kind, status, latency_ms)


def build_api(ingress: IngressImpl) -> FastAPI:
    service = ingress.settings.service
    limit = service.max_request_bytes
    api = FastAPI(title="echo-ray cognitive API", version="1",
                  description="Deep Tree Echo State Network processing on Ray Serve.")
    api.router.route_class = api_route(limit, CountedRoute, stats=ingress.stats)
    token = service.api_token
    api.add_middleware(BearerAuthMiddleware,
                       token=None if token is None else token.get_secret_value())
    install_error_handlers(api)
    api.include_router(make_cache_router(ingress.cache_service, max_body_bytes=limit),
                       tags=["cache"], responses=ERRORS)

    @api.get("/healthz", tags=["health"], responses=documented(413))
    async def healthz() -> dict:
        """The ingress process is alive."""
        return {"status": "ok"}

    @api.get("/readyz", tags=["health"], responses=documented(401, 413, 503))
    async def readyz() -> dict:
        """Workers answer and the session store is reachable."""
        return await ingress.readyz()

    @api.get("/v1/stats", tags=["health"], responses=documented(401, 413))
    async def stats_summary() -> dict:
        """Requests, latency percentiles, cache and sessions, as seen by this ingress replica."""
        return await ingress.stats_summary()

    @api.post("/v1/sessions", status_code=201, response_model=SessionInfo, tags=["sessions"],
              responses=ERRORS)
    async def create_session():
        """A new session (memory, trained readouts, membrane state), TTL refreshed on use."""
        return JSONResponse(await ingress.create_session(), status_code=201)

    @api.get("/v1/sessions/{session_id}", response_model=SessionInfo, tags=["sessions"],
             responses=ERRORS)
    async def get_session(session_id: str):
        return await ingress.get_session(session_id)

    @api.delete("/v1/sessions/{session_id}", status_code=204, tags=["sessions"],
                responses=ERRORS)
    async def delete_session(session_id: str):
        await ingress.delete_session(session_id)
        return Response(status_code=204)

    @api.post("/v1/process", response_model=ProcessResponse, tags=["processing"],
              responses=ERRORS)
    async def process(body: ProcessRequest):
        """Any processing type; `input` is that type's request (see the typed endpoints)."""
        return await ingress.process(body.type, body.input, body.session_id, body.options)

    @api.get("/v1/memory", response_model=ProcessResponse, tags=["processing"],
             responses=ERRORS)
    async def retrieve_memory(q: Annotated[MemoryLookup, Query()]):
        """Memory retrieve as a read: the same request, answer and cache entry as `POST
        /v1/memory` with `{"op": "retrieve", "query": {text | vector}, "k": k}`. A GET has no
        body, and Ray Serve fetches a request's body from the proxy by an extra actor call, so
        a cached retrieve costs less this way."""
        query = {"text": q.text, "vector": q.vector}  # none or both: the model's own 422
        return await ingress.process("memory", {"op": "retrieve", "query": query, "k": q.k},
                                     q.session_id, None if q.cache else Options(cache=False))

    for kind in TYPES:
        api.add_api_route(f"/v1/{kind}", _typed_endpoint(ingress, kind), methods=["POST"],
                          response_model=ProcessResponse, tags=["processing"], responses=ERRORS)
    return api


def _typed_endpoint(ingress: IngressImpl, kind: str):
    """The handler of POST /v1/{kind}, with that type's own request schema. `kind` is closed
    over, not a parameter with a default: FastAPI would publish such a parameter as a query
    string (`?_kind=`) that a client could set to any processing type (found by the
    schemathesis fuzz test)."""

    async def endpoint(body: Any):
        return await ingress.process(kind, body.input, body.session_id, body.options)

    endpoint.__annotations__["body"] = typed_request(kind)  # the class, not a string
    endpoint.__name__ = f"process_{kind}"
    endpoint.__doc__ = f"The `{kind}` processing type."
    return endpoint
