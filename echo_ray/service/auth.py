"""Optional bearer-token authentication (ECHO_RAY_API_TOKEN) for every endpoint but /healthz.

The token is compared with `hmac.compare_digest` (constant time, so response timing does not
reveal how much of a guess was right), never logged and never echoed: a refused request gets
401 with the usual error body and `WWW-Authenticate: Bearer`, whatever it sent.
"""

from __future__ import annotations

import hmac

from .errors import error_response

OPEN_PATHS = frozenset({"/healthz"})  # liveness probes carry no credentials


def route_path(scope) -> str:
    """The request path below the app's route prefix (Serve mounts the app at `root_path`)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        path = path[len(root):]
    return path or "/"


def bearer_token(scope) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"bearer" and credentials.strip():
                return credentials.strip()
            return None
    return None


def token_matches(sent: bytes | None, expected: str) -> bool:
    """Constant-time comparison (also when `sent` is missing, so timing says nothing)."""
    return hmac.compare_digest(sent or b"", expected.encode())


class BearerAuthMiddleware:
    """ASGI middleware: requests need `token` (None: authentication off)."""

    def __init__(self, app, token: str | None):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        expected = self.token
        if (scope["type"] != "http" or not expected or route_path(scope) in OPEN_PATHS
                or token_matches(bearer_token(scope), expected)):
            return await self.app(scope, receive, send)
        sent = bearer_token(scope) is not None
        response = error_response(
            401, "unauthorized",
            "the bearer token is not valid" if sent else
            "this endpoint needs an `Authorization: Bearer <token>` header (ECHO_RAY_API_TOKEN)",
            headers={"WWW-Authenticate": 'Bearer realm="echo-ray"'
                     + (', error="invalid_token"' if sent else "")})
        await response(scope, receive, send)
