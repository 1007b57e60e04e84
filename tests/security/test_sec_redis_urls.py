"""Redis URLs with a password and with TLS (`rediss://`) reach a real private redis-server;
bad credentials give a clear StoreUnavailable that never shows the password; settings never
print the password or the API token."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import pytest

from echo_ray.cache import CacheConfig, MultiLevelCache
from echo_ray.sessions import JournaledSessionStore, RedisSessionStore, StoreUnavailable
from echo_ray.settings import Settings, redact_url
from echo_ray.waiting import wait_until
from tests.support.redis_server import RedisServer, redis_has_tls

pytestmark = pytest.mark.redis
PASSWORD = "s3cret/with:odd@chars"


@pytest.fixture(scope="module")
def locked_redis():
    server = RedisServer(password=PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_redis():
    if not redis_has_tls():
        pytest.skip("this redis-server was built without TLS")
    server = RedisServer(password=PASSWORD, tls=True)
    server.start()
    yield server
    server.stop()


def round_trip(url: str) -> None:
    store = RedisSessionStore(url, namespace=f"s{uuid.uuid4().hex[:8]}")
    sid = store.create().id
    store.save(sid, {"secret": "kept"}, 0)
    assert store.load(sid)[1] == {"secret": "kept"}
    assert store.ping()


def test_password_in_the_url(locked_redis):
    assert "%2F" in locked_redis.url  # special characters are percent-encoded in the URL
    round_trip(locked_redis.url)


@pytest.mark.parametrize("auth", ["", ":wrong-password@"])
def test_missing_or_wrong_password_is_a_clear_unavailable(locked_redis, auth):
    store = RedisSessionStore(f"redis://{auth}127.0.0.1:{locked_redis.port}/0")
    with pytest.raises(StoreUnavailable, match="password|credentials") as err:
        store.create()
    assert PASSWORD not in str(err.value) and "wrong-password" not in str(err.value)


def test_wrong_password_behind_the_journal_is_reported_and_nothing_is_lost(locked_redis,
                                                                         tmp_path):
    """Readiness says why Redis is down (never the password); writes wait in the journal and
    reach Redis once the URL is fixed."""
    bad = RedisSessionStore(f"redis://:wrong-password@127.0.0.1:{locked_redis.port}/0")
    store = JournaledSessionStore(bad, tmp_path)
    try:
        health = store.health()
        assert health["redis"] == "down" and "credentials" in health["redis_error"]
        assert "wrong-password" not in str(health)
        sid = store.create().id  # acknowledged: kept in the journal
        store.save(sid, {"kept": 1}, 0)
        with pytest.raises(StoreUnavailable, match="credentials"):
            store.meta("0" * 32)  # a session only Redis could know: 503, with the reason
    finally:
        store.close()
    fixed = JournaledSessionStore(RedisSessionStore(locked_redis.url), tmp_path,
                                  replay_interval_s=0.1)
    try:
        wait_until(lambda: fixed.journal.pending() == 0, 15, "the journal to be replayed")
        assert fixed.redis.load(sid)[1] == {"kept": 1}
    finally:
        fixed.close()


def test_tls_with_password(tls_redis):
    assert tls_redis.url.startswith("rediss://")
    round_trip(tls_redis.url)


def test_plain_connection_to_a_tls_port_fails_cleanly(tls_redis):
    plain = tls_redis.url.replace("rediss://", "redis://").split("?")[0]
    with pytest.raises(StoreUnavailable):
        RedisSessionStore(plain).create()


def test_result_cache_l4_over_tls(tls_redis, tmp_path):
    cache = MultiLevelCache(CacheConfig(redis_url=tls_redis.url, object_store="off",
                                        namespace=f"s{uuid.uuid4().hex[:8]}"))
    try:
        cache.put("k", {"v": 1})
        cache.l1.delete("k")
        if cache.l2 is not None:
            cache.l2.delete("k")
        assert cache.get("k") == {"v": 1}
        assert cache.stats()["tiers"]["l4"]["hits"] == 1
    finally:
        cache.close()


def test_settings_never_show_secrets():
    env = {"REDIS_URL": f"rediss://user:{quote(PASSWORD, safe='')}@h:6380/0",
           "ECHO_RAY_API_TOKEN": "t" * 32}
    settings = Settings.from_env(env)
    assert settings.service.api_token.get_secret_value() == "t" * 32
    assert settings.sessions.redis_url_value() == env["REDIS_URL"]
    shown = json.dumps(settings.effective())
    for text in (repr(settings), str(settings), f"{settings}", shown):
        assert "t" * 32 not in text and "s3cret" not in text
    assert "user:***@h:6380" in shown and '"api_token": "***"' in shown
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact_url("redis://:p@ss@h/0") == "redis://:***@h/0"  # even unencoded


def test_short_api_tokens_are_refused():
    with pytest.raises(ValueError, match="ECHO_RAY_API_TOKEN"):
        Settings.from_env({"ECHO_RAY_API_TOKEN": "short"})
