"""One error shape for every 4xx/5xx: {"error": {"code", "message"}}, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("echo_ray.service")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


def error_response(status: int, code: str, message: str, retry_after: int | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    headers = dict(headers or {})
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=headers or None)


def describe_validation(errors) -> str:
    """'input.k: Input should be greater than 0; type: ...' — where, and what was expected."""
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def validation_failure(errors) -> tuple[int, str, str]:
    """(status, code, message) for a request FastAPI refused before its handler ran: 400 if
    the body is not JSON at all, else 422 with where and why."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "malformed_json", ("request body is not valid JSON: "
                                       + describe_validation(errors))
    return 422, "invalid_request", describe_validation(errors)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.retry_after)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        return error_response(*validation_failure(exc.errors()))

    @app.exception_handler(ValidationError)
    async def _pydantic(_: Request, exc: ValidationError):
        return error_response(422, "invalid_request", describe_validation(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):  # never leak a traceback
        log.error("unhandled %s", type(exc).__name__, exc_info=exc)
        return error_response(500, "internal_error",
                              f"internal error ({type(exc).__name__}); it has been logged")


class BodyLimitMiddleware:
    """Rejects request bodies over `limit` bytes with 413, by Content-Length or while
    streaming, before the app reads them. `limit` may be a callable, read per request (the
    replica's settings arrive after the app object is built)."""

    def __init__(self, app, limit: int | Callable[[], int]):
        self.app, self._limit = app, limit

    @property
    def limit(self) -> int:
        return self._limit() if callable(self._limit) else self._limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    return await self._reject(scope, receive, send, limit)
        seen = 0
        started = exceeded = False

        async def limited_receive():
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message):
            # FastAPI turns any error while reading the body (ours included) into its own
            # 400; once the limit was crossed, the app's answer is replaced by the 413.
            nonlocal started
            if exceeded:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._reject(scope, receive, send, limit)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not started:
                await self._reject(scope, receive, send, limit)

    async def _reject(self, scope, receive, send, limit=None):
        limit = self.limit if limit is None else limit
        response = error_response(413, "body_too_large",
                                  f"request body exceeds MAX_REQUEST_BYTES={limit} bytes")
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass
