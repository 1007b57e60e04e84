"""HTTP face of the CacheService: a FastAPI router the Serve app mounts.

    GET    /v1/cache/stats            per-tier statistics
    GET    /v1/cache/{key}            JSON {"key", "value"}; msgpack bytes with
                                      `Accept: application/x-msgpack`
    PUT    /v1/cache/{key}            JSON {"value", "ttl_seconds"?, "tags"?}, or a
                                      codec (msgpack) body with ttl_seconds/tags
                                      as query parameters
    DELETE /v1/cache/{key}            {"key", "deleted"}
    POST   /v1/cache/invalidate       {"tags": [...]} -> {"deleted": n}

Errors are JSON `{"error": {"code", "message"}}` with a 4xx status (503 when the
actor is gone). Bodies, keys and tag lists are bounded. The JSON bodies are typed
pydantic models (`PutBody`, `InvalidateBody`), so /openapi.json documents them; the
router's route class reads bodies under the size bound and answers validation
errors itself (no app-level exception handlers needed), so any app can mount it.
"""


import functools
import math
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from echo_ray.cache.codec import CodecError
from echo_ray.cache.multilevel import MAX_KEY_LENGTH, MAX_TAGS, check_key, check_tags

MSGPACK = "application/x-msgpack"
MAX_TTL_SECONDS = 30 * 24 * 3600.0
DEFAULT_MAX_BODY_BYTES = 16 * 2**20

# What check_tags accepts, stated in the schema too (so /openapi.json and its fuzzers know).
Tag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_LENGTH,
                                       pattern=r"^[^\x00-\x1f\x7f]+$")]


class PutBody(BaseModel):
    """JSON body of `PUT /v1/cache/{key}`. (A codec body, `Content-Type:
    application/x-msgpack`, carries the value alone; ttl_seconds and tags then go in the
    query string.)"""

    model_config = ConfigDict(extra="forbid")
    value: Any = Field(description="any JSON value")
    ttl_seconds: float | None = Field(default=None, gt=0, le=MAX_TTL_SECONDS,
                                      description="time to live; default: the cache's")
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS,
                            description="for POST /v1/cache/invalidate")


class InvalidateBody(BaseModel):
    """Body of `POST /v1/cache/invalidate`: every entry carrying any of `tags` goes."""

    model_config = ConfigDict(extra="forbid")
    tags: list[Tag] = Field(min_length=1, max_length=MAX_TAGS)


class CacheErrorBody(BaseModel):
    code: str
    message: str


class CacheError(BaseModel):
    error: CacheErrorBody


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": CacheError} for status in statuses}


class HTTPError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"code": self.code, "message": self.message}},
                            status_code=self.status)


def _jsonable(value: Any) -> Any:
    """Cached values as JSON: arrays become nested lists; bytes cannot be sent."""
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise HTTPError(406, "not_acceptable",
                        f"value holds {value!r}, which JSON cannot carry; "
                        f"request {MSGPACK} instead")
    if isinstance(value, (bytes, bytearray, complex)):
        raise HTTPError(406, "not_acceptable",
                        f"value holds {type(value).__name__}, which JSON cannot carry; "
                        f"request {MSGPACK} instead")
    return value


def _validation_message(exc: ValidationError | RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = tuple(err.get("loc", ()))
        if isinstance(exc, RequestValidationError) and err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "JSON decode error")
            parts.append(f"body is not valid JSON: {reason} at position {loc[-1]}")
            continue
        if loc[:1] == ("body",):  # FastAPI's locations start at the body
            loc = loc[1:]
        where = ".".join(str(p) for p in loc) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, "payload_too_large", f"body must be at most {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, "payload_too_large", f"body must be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class _ReadRequest(Request):
    """A request whose body was already read (under the size bound) by `_CacheRoute`."""

    def __init__(self, scope, receive, body: bytes):
        super().__init__(scope, receive)
        self._body = body  # Starlette's own cache: body(), json() and stream() serve it


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


CODEC_BODY = "echo_ray.cache.codec_body"  # scope key: a PUT's codec bytes (never from a client)
_CODEC_PLACEHOLDER = b'{"value": null}'


class _CacheRoute(APIRoute):
    """Routes of the cache router. For those with a body it reads the body first, at most
    `body_limit` bytes (413 past it, by Content-Length or while streaming), then:

    - a JSON body (or one without a Content-Type, read as JSON) goes to FastAPI, which
      validates it against the endpoint's pydantic model (so /openapi.json documents it);
    - on an endpoint marked `accepts_codec` (PUT), `Content-Type: application/x-msgpack`
      bytes go in the request scope under CODEC_BODY, and FastAPI gets the placeholder JSON
      body `{"value": null}`: the request still runs through FastAPI, with the mounting
      app's dependencies, and the endpoint stores the codec bytes;
    - any other Content-Type is refused with 415.

    Validation errors come back as the router's own 422 `invalid_body`: errors are
    `{"error": {"code", "message"}}` without app-level exception handlers."""

    body_limit: int = DEFAULT_MAX_BODY_BYTES

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()
        accepts_codec = getattr(self.endpoint, "accepts_codec", False)
        takes_body = self.body_field is not None
        limit = self.body_limit

        async def route_handler(request: Request) -> Response:
            try:
                if takes_body:
                    raw = await _read_body(request, limit)
                    content_type = _content_type(request)
                    scope = {**request.scope}
                    scope.pop(CODEC_BODY, None)
                    if content_type == MSGPACK and accepts_codec:
                        scope[CODEC_BODY], raw = raw, _CODEC_PLACEHOLDER
                    elif content_type not in ("application/json", ""):
                        accepted = " or ".join(["application/json"]
                                               + ([MSGPACK] if accepts_codec else []))
                        raise HTTPError(415, "unsupported_media_type",
                                        f"send {accepted}, got {content_type!r}")
                    # FastAPI parses the body as JSON only when the Content-Type says so
                    scope["headers"] = [*(h for h in scope["headers"] if h[0] != b"content-type"),
                                        (b"content-type", b"application/json")]
                    request = _ReadRequest(scope, request.receive, raw)
                return await handler(request)
            except HTTPError as exc:
                return exc.response()
            except RequestValidationError as exc:
                return HTTPError(422, "invalid_body", _validation_message(exc)).response()

        return route_handler


def _key(key: str) -> str:
    try:
        return check_key(key)
    except ValueError as exc:
        raise HTTPError(400, "invalid_key", str(exc)) from None


def make_cache_router(service: Any | Callable[[], Any], *,
                      max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> APIRouter:
    """Router calling the CacheService `service`: an actor (or Serve deployment) handle,
    or a zero-argument function returning one (looked up on every request)."""
    import ray

    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) \
            or max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be a positive int, got {max_body_bytes!r}")
    if hasattr(service, "stats"):  # a handle exposes the actor's methods
        def get_handle() -> Any:
            return service
    elif callable(service):
        get_handle = service
    else:
        raise ValueError("service must be a CacheService handle or a function returning one, "
                         f"got {service!r}")
    route_class = type("CacheRoute", (_CacheRoute,), {"body_limit": max_body_bytes})
    router = APIRouter(route_class=route_class)

    async def call(method: str, *args: Any) -> Any:
        try:
            return await getattr(get_handle(), method).remote(*args)
        except (ValueError, TypeError) as exc:  # RayTaskError subclasses the cause
            if isinstance(exc, CodecError):
                raise HTTPError(400, "invalid_body", str(exc).splitlines()[-1]) from None
            raise HTTPError(400, "invalid_request", str(exc).splitlines()[-1]) from None
        except ray.exceptions.RayActorError as exc:
            raise HTTPError(503, "unavailable", f"cache service is unavailable: {exc}") from None

    def guarded(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)  # FastAPI reads the handler's signature through this
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await handler(*args, **kwargs)
            except HTTPError as exc:
                return exc.response()

        return wrapper

    def tags_of(listed: list[str]) -> list[str]:
        try:
            return list(check_tags(listed))
        except ValueError as exc:  # the schema states the same rules; this is the backstop
            raise HTTPError(422, "invalid_body", str(exc)) from None

    @router.get("/v1/cache/stats", responses=_errors(503))
    @guarded
    async def cache_stats() -> Any:
        return await call("stats")

    @router.post("/v1/cache/invalidate", responses=_errors(400, 413, 415, 422, 503))
    @guarded
    async def invalidate(body: InvalidateBody) -> Any:
        """Delete every entry carrying any of `tags`, in every tier."""
        return {"deleted": await call("delete_by_tags", tags_of(body.tags))}

    async def put_encoded(key: str, request: Request, raw: bytes) -> Any:
        """PUT with a codec body: the value as `echo_ray.cache.codec` bytes; ttl_seconds and
        tags from the query string."""
        params = request.query_params
        try:
            body = PutBody(value=None, ttl_seconds=params.get("ttl_seconds"),
                           tags=params.getlist("tags"))
            tags = check_tags(body.tags)
        except ValidationError as exc:
            raise HTTPError(422, "invalid_query", _validation_message(exc)) from None
        except ValueError as exc:
            raise HTTPError(422, "invalid_query", str(exc)) from None
        await call("put_encoded", key, raw, body.ttl_seconds, list(tags))
        return {"key": key, "stored": True}

    @guarded
    async def put_value(key: str, body: Annotated[PutBody, Body()], request: Request) -> Any:
        """Store a value. JSON body `{"value", "ttl_seconds"?, "tags"?}`; or send the value
        as codec bytes with `Content-Type: application/x-msgpack` and pass ttl_seconds and
        tags as query parameters."""
        key = _key(key)
        if CODEC_BODY in request.scope:
            return await put_encoded(key, request, request.scope[CODEC_BODY])
        await call("put", key, body.value, body.ttl_seconds, tags_of(body.tags))
        return {"key": key, "stored": True}

    put_value.accepts_codec = True  # read by _CacheRoute: codec bodies allowed here

    @router.get("/v1/cache/{key:path}", responses=_errors(400, 404, 406, 503))
    @guarded
    async def get_value(key: str, request: Request) -> Any:
        key = _key(key)
        if MSGPACK in request.headers.get("accept", ""):
            data = await call("get_encoded", key)
            if data is None:
                raise HTTPError(404, "not_found", f"no cached value for key {key!r}")
            return Response(content=data, media_type=MSGPACK)
        found, value = await call("lookup", key)
        if not found:
            raise HTTPError(404, "not_found", f"no cached value for key {key!r}")
        return {"key": key, "value": _jsonable(value)}

    router.add_api_route("/v1/cache/{key:path}", put_value, methods=["PUT"],
                         responses=_errors(400, 413, 415, 422, 503))

    @router.delete("/v1/cache/{key:path}", responses=_errors(400, 503))
    @guarded
    async def delete_value(key: str) -> Any:
        key = _key(key)
        return {"key": key, "deleted": bool(await call("delete", key))}

    return router
