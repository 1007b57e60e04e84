"""The error vocabulary of the whole HTTP API (processing, sessions, cache, health).

Every 4xx/5xx is `{"error": {"code", "message"}}`, never a traceback, and the same fault gets
the same status and code on every route:

    400 malformed_json          the body is not JSON
    401 unauthorized            missing or wrong bearer token (auth.py)
    404 not_found               no such route (domain 404s name what is missing)
    405 method_not_allowed
    413 body_too_large          body over the limit (by Content-Length or while streaming)
    415 unsupported_media_type  a body that is not application/json (nor, where a route
                                accepts it, application/x-msgpack)
    422 invalid_request         body, path or query breaks the schema: where and why
    500 internal_error          logged, never detailed

Routes get this behaviour from `ApiRoute` (so a router answers the same way wherever it is
mounted) and an app from `install_error_handlers` (unknown routes, uncaught exceptions).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("echo_ray.service")
JSON = "application/json"
MSGPACK = "application/x-msgpack"
DEFAULT_MAX_BODY_BYTES = 1 << 20


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.message, self.retry_after)


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


def documented(*statuses: int) -> dict[int | str, dict]:
    """`responses=` of a route: these statuses answer with an ErrorResponse (for OpenAPI)."""
    return {status: {"model": ErrorResponse} for status in statuses}


def error_response(status: int, code: str, message: str, retry_after: int | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    headers = dict(headers or {})
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=headers or None)


def describe_validation(errors) -> str:
    """'input.k: Input should be greater than 0; type: ...' - where, and what was expected."""
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def validation_failure(errors) -> ApiError:
    """The answer to a request FastAPI refused before its handler ran: 400 if the body is not
    JSON at all, else 422 with where and why."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return ApiError(400, "malformed_json",
                        "request body is not valid JSON: " + describe_validation(errors))
    return ApiError(422, "invalid_request", describe_validation(errors))


def invalid(exc: ValidationError | ValueError) -> ApiError:
    """422 invalid_request for a check the handler ran itself (pydantic or a plain rule)."""
    if isinstance(exc, ValidationError):
        return ApiError(422, "invalid_request", describe_validation(exc.errors()))
    return ApiError(422, "invalid_request", str(exc))


def body_too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"request body exceeds MAX_REQUEST_BYTES={limit} bytes")


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise body_too_large(limit)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, at most `limit` bytes (413 past it, by Content-Length or while streaming)."""
    check_declared_length(request, limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class _ReadRequest(Request):
    """A request whose body `ApiRoute` has read already (under the size bound)."""

    def __init__(self, scope, receive, body: bytes):
        super().__init__(scope, receive)
        self._body = body  # Starlette's own cache: body(), json() and stream() serve it


CODEC_BODY = "echo_ray.codec_body"  # scope key: a codec body's bytes (never from a client)
_CODEC_PLACEHOLDER = b'{"value": null}'


class ApiRoute(APIRoute):
    """Route class of every route of the API. Before the handler runs it

    - refuses a body over `body_limit` bytes (413), for routes without a body field by
      Content-Length;
    - for routes with a body field: reads the body, refuses any Content-Type but JSON (or
      none, read as JSON) with 415. On an endpoint marked `accepts_codec`,
      `application/x-msgpack` bytes go in the request scope under CODEC_BODY and FastAPI
      validates the placeholder `{"value": null}`;

    and it answers validation failures (400/422) and `ApiError`s itself, so a router keeps
    this vocabulary in any app that mounts it. `refused(exc, status, latency_ms)` is called
    for each request FastAPI's validation refused (a hook for counting them)."""

    body_limit: int = DEFAULT_MAX_BODY_BYTES

    def refused(self, exc: RequestValidationError, status: int, latency_ms: float) -> None:
        pass

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        accepts_codec = getattr(self.endpoint, "accepts_codec", False)
        takes_body = self.body_field is not None
        limit = self.body_limit
        accepted = " or ".join([JSON] + ([MSGPACK] if accepts_codec else []))

        async def route_handler(request: Request) -> Response:
            t0 = time.perf_counter()
            try:
                if takes_body:
                    raw = await read_body(request, limit)
                    kind = content_type(request)
                    scope = {**request.scope}
                    scope.pop(CODEC_BODY, None)
                    if kind == MSGPACK and accepts_codec:
                        scope[CODEC_BODY], raw = raw, _CODEC_PLACEHOLDER
                    elif kind not in (JSON, ""):
                        raise ApiError(415, "unsupported_media_type",
                                       f"send {accepted}, got {kind!r}")
                    # FastAPI parses the body as JSON only when the Content-Type says so
                    scope["headers"] = [*(h for h in scope["headers"] if h[0] != b"content-type"),
                                        (b"content-type", JSON.encode())]
                    request = _ReadRequest(scope, request.receive, raw)
                else:
                    check_declared_length(request, limit)
                return await handler(request)
            except RequestValidationError as exc:
                failure = validation_failure(exc.errors())
                self.refused(exc, failure.status, (time.perf_counter() - t0) * 1000)
                return failure.response()
            except ApiError as exc:
                return exc.response()

        return route_handler


def api_route(body_limit: int, base: type[ApiRoute] = ApiRoute, **attrs) -> type[ApiRoute]:
    """`base` with this body limit (and any other class attributes)."""
    return type(base.__name__, (base,), {"body_limit": body_limit, **attrs})


def install_error_handlers(app: FastAPI) -> None:
    """What happens outside a route: unknown paths, wrong methods, uncaught exceptions."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        return validation_failure(exc.errors()).response()

    @app.exception_handler(ValidationError)
    async def _pydantic(_: Request, exc: ValidationError):
        return invalid(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):  # never leak a traceback
        log.error("unhandled %s", type(exc).__name__, exc_info=exc)
        return error_response(500, "internal_error",
                              f"internal error ({type(exc).__name__}); it has been logged")
