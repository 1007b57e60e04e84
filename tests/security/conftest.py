"""Fixtures of the security tests: the app deployed with an API token."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# helpers (import-mode=importlib puts no test folder on sys.path)
sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))  # private_redis
sys.path.insert(0, str(Path(__file__).parent))  # secure_app
from secure_app import API_TOKEN, BODY_LIMIT, deploy_app  # noqa: E402


@pytest.fixture(scope="session")
def secure_app(serve_session, tmp_path_factory):
    """The app with ECHO_RAY_API_TOKEN set and a 256 KiB body limit; yields its base URL."""
    from ray import serve

    url = deploy_app(serve_session, "echo-secure", tmp_path_factory.mktemp("secure"),
                     token=API_TOKEN, max_request_bytes=BODY_LIMIT)
    yield url
    serve.delete("echo-secure")
