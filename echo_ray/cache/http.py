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
actor is gone). Bodies, keys and tag lists are bounded. The router validates
its own input (no app-level exception handlers needed), so any app can mount it.
"""


import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from echo_ray.cache.codec import CodecError
from echo_ray.cache.multilevel import MAX_TAGS, check_key, check_tags

MSGPACK = "application/x-msgpack"
MAX_TTL_SECONDS = 30 * 24 * 3600.0
DEFAULT_MAX_BODY_BYTES = 16 * 2**20

class PutBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Any
    ttl_seconds: float | None = Field(default=None, gt=0, le=MAX_TTL_SECONDS)
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)


class InvalidateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: list[str] = Field(min_length=1, max_length=MAX_TAGS)


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


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
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
    router = APIRouter()

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

    @router.get("/v1/cache/stats")
    @guarded
    async def cache_stats() -> Any:
        return await call("stats")

    @router.post("/v1/cache/invalidate")
    @guarded
    async def invalidate(request: Request) -> Any:
        raw = await _read_body(request, max_body_bytes)
        try:
            body = InvalidateBody.model_validate_json(raw)
            tags = check_tags(body.tags)
        except ValidationError as exc:
            raise HTTPError(422, "invalid_body", _validation_message(exc)) from None
        except ValueError as exc:
            raise HTTPError(422, "invalid_body", str(exc)) from None
        return {"deleted": await call("delete_by_tags", list(tags))}

    @router.get("/v1/cache/{key:path}")
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

    @router.put("/v1/cache/{key:path}")
    @guarded
    async def put_value(key: str, request: Request) -> Any:
        key = _key(key)
        raw = await _read_body(request, max_body_bytes)
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type == MSGPACK:
            params = request.query_params
            try:
                body = PutBody(value=None,
                               ttl_seconds=params.get("ttl_seconds"),
                               tags=params.getlist("tags"))
                tags = check_tags(body.tags)
            except ValidationError as exc:
                raise HTTPError(422, "invalid_query", _validation_message(exc)) from None
            except ValueError as exc:
                raise HTTPError(422, "invalid_query", str(exc)) from None
            await call("put_encoded", key, raw, body.ttl_seconds, list(tags))
        elif content_type in ("application/json", ""):
            try:
                body = PutBody.model_validate_json(raw)
                tags = check_tags(body.tags)
            except ValidationError as exc:
                raise HTTPError(422, "invalid_body", _validation_message(exc)) from None
            except ValueError as exc:
                raise HTTPError(422, "invalid_body", str(exc)) from None
            await call("put", key, body.value, body.ttl_seconds, list(tags))
        else:
            raise HTTPError(415, "unsupported_media_type",
                            f"send application/json or {MSGPACK}, got {content_type!r}")
        return {"key": key, "stored": True}

    @router.delete("/v1/cache/{key:path}")
    @guarded
    async def delete_value(key: str) -> Any:
        key = _key(key)
        return {"key": key, "deleted": bool(await call("delete", key))}

    return router
