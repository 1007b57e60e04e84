"""HTTP face of the CacheService: a FastAPI router the Serve app mounts.

    GET    /v1/cache/stats            per-tier statistics
    GET    /v1/cache/{key}            JSON {"key", "value"}; msgpack bytes with
                                      `Accept: application/x-msgpack`
    PUT    /v1/cache/{key}            JSON {"value", "ttl_seconds"?, "tags"?}, or a
                                      codec (msgpack) body with ttl_seconds/tags
                                      as query parameters
    DELETE /v1/cache/{key}            {"key", "deleted"}
    POST   /v1/cache/invalidate       {"tags": [...]} -> {"deleted": n}

Errors are the API's (echo_ray.service.errors): `{"error": {"code", "message"}}` with
the same status and code as on every other route (503 when the actor is gone). Bodies,
keys and tag lists are bounded. The JSON bodies are typed pydantic models (`PutBody`,
`InvalidateBody`), so /openapi.json documents them; the routes are `ApiRoute`s, which
read bodies under the size bound and answer errors themselves, so any app can mount it.
"""


import math
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from echo_ray.cache.codec import CodecError
from echo_ray.cache.multilevel import MAX_KEY_LENGTH, MAX_TAGS, check_key, check_tags
from echo_ray.service.errors import CODEC_BODY, MSGPACK, ApiError, api_route, documented, invalid

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
        raise ApiError(406, "not_acceptable",
                        f"value holds {value!r}, which JSON cannot carry; "
                        f"request {MSGPACK} instead")
    if isinstance(value, (bytes, bytearray, complex)):
        raise ApiError(406, "not_acceptable",
                        f"value holds {type(value).__name__}, which JSON cannot carry; "
                        f"request {MSGPACK} instead")
    return value


def _key(key: str) -> str:
    try:
        return check_key(key)
    except ValueError as exc:
        raise invalid(exc) from None


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
    router = APIRouter(route_class=api_route(max_body_bytes))

    async def call(method: str, *args: Any) -> Any:
        try:
            return await getattr(get_handle(), method).remote(*args)
        except (ValueError, TypeError) as exc:  # RayTaskError subclasses the cause
            if isinstance(exc, CodecError):
                raise ApiError(400, "malformed_body", str(exc).splitlines()[-1]) from None
            raise ApiError(422, "invalid_request", str(exc).splitlines()[-1]) from None
        except ray.exceptions.RayActorError as exc:
            raise ApiError(503, "unavailable", f"cache service is unavailable: {exc}") from None

    def tags_of(listed: list[str]) -> list[str]:
        try:
            return list(check_tags(listed))
        except ValueError as exc:  # the schema states the same rules; this is the backstop
            raise invalid(exc) from None

    @router.get("/v1/cache/stats", responses=documented(413, 503))
    async def cache_stats() -> Any:
        return await call("stats")

    @router.post("/v1/cache/invalidate", responses=documented(400, 413, 415, 422, 503))
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
        except ValueError as exc:  # pydantic's ValidationError too
            raise invalid(exc) from None
        await call("put_encoded", key, raw, body.ttl_seconds, list(tags))
        return {"key": key, "stored": True}

    async def put_value(key: str, body: Annotated[PutBody, Body()], request: Request) -> Any:
        """Store a value. JSON body `{"value", "ttl_seconds"?, "tags"?}`; or send the value
        as codec bytes with `Content-Type: application/x-msgpack` and pass ttl_seconds and
        tags as query parameters."""
        key = _key(key)
        if CODEC_BODY in request.scope:
            return await put_encoded(key, request, request.scope[CODEC_BODY])
        await call("put", key, body.value, body.ttl_seconds, tags_of(body.tags))
        return {"key": key, "stored": True}

    put_value.accepts_codec = True  # read by ApiRoute: codec bodies allowed here

    @router.get("/v1/cache/{key:path}", responses=documented(404, 406, 413, 422, 503))
    async def get_value(key: str, request: Request) -> Any:
        key = _key(key)
        if MSGPACK in request.headers.get("accept", ""):
            data = await call("get_encoded", key)
            if data is None:
                raise ApiError(404, "not_found", f"no cached value for key {key!r}")
            return Response(content=data, media_type=MSGPACK)
        found, value = await call("lookup", key)
        if not found:
            raise ApiError(404, "not_found", f"no cached value for key {key!r}")
        return {"key": key, "value": _jsonable(value)}

    router.add_api_route("/v1/cache/{key:path}", put_value, methods=["PUT"],
                         responses=documented(400, 413, 415, 422, 503))

    @router.delete("/v1/cache/{key:path}", responses=documented(413, 422, 503))
    async def delete_value(key: str) -> Any:
        key = _key(key)
        return {"key": key, "deleted": bool(await call("delete", key))}

    return router
