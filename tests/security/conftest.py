"""Fixtures of the security tests: the app deployed with an API token."""

from __future__ import annotations

import pytest

from tests.support.serve_app import API_TOKEN, BODY_LIMIT, deploy_app


@pytest.fixture(scope="session")
def secure_app(serve_session, tmp_path_factory):
    """The app with ECHO_RAY_API_TOKEN set and a 256 KiB body limit; yields its base URL."""
    from ray import serve

    url = deploy_app(serve_session, "echo-secure", tmp_path_factory.mktemp("secure"),
                     max_instances=1, token=API_TOKEN,
                     service={"max_request_bytes": BODY_LIMIT})
    yield url
    serve.delete("echo-secure")
