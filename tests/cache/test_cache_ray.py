"""Ray pieces on the shared cluster: object-store tier, metrics, CacheService, HTTP router."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

pytestmark = pytest.mark.ray


@pytest.fixture
def holder_cleanup(ray_session):
    """Kill the holder actors a test created (named per namespace)."""
    from echo_ray.cache.tiers.object_store import holder_name

    created: list[str] = []
    yield created.append
    for ns in created:
        try:
            ray_session.kill(ray_session.get_actor(holder_name(ns)))
        except ValueError:
            pass


def test_object_store_zero_copy_read_from_another_worker(ray_session, namespace,
                                                         holder_cleanup):
    from echo_ray.cache.tiers.object_store import ObjectStoreTier

    holder_cleanup(namespace)
    tier = ObjectStoreTier(namespace, min_bytes=1024)
    array = np.arange(2**18, dtype=np.float64)  # 2 MiB
    assert tier.accepts(array) and not tier.accepts(np.arange(3)) and not tier.accepts("x")
    assert tier.put("big", array, ttl=None, tags=["model"])

    @ray_session.remote(num_cpus=0)
    def read(ns: str) -> tuple[bool, bool, float, tuple[str, ...]]:
        from echo_ray.cache.tiers.object_store import ObjectStoreTier

        hit = ObjectStoreTier(ns).get("big")
        view = hit.value
        return view.flags.writeable, view.flags.owndata, float(view.sum()), hit.tags

    writeable, owndata, total, tags = ray_session.get(read.remote(namespace), timeout=120)
    assert not writeable and not owndata  # a read-only view of shared memory
    assert total == float(array.sum()) and tags == ("model",)
    assert tier.keys_for_tags(["model"]) == {"big"}
    assert tier.delete("big") and tier.get("big") is None
    snap = tier.snapshot()
    assert snap["items"] == 0 and snap["hits"] == 0 and snap["misses"] == 1


def test_object_store_holder_bounds_bytes(ray_session, namespace, holder_cleanup):
    from echo_ray.cache.tiers.object_store import ObjectStoreTier

    holder_cleanup(namespace)
    tier = ObjectStoreTier(namespace, max_bytes=3 * 2**20, min_bytes=0)
    for i in range(5):
        tier.put(f"a{i}", np.full(2**17, i, dtype=np.float64), ttl=None)  # 1 MiB each
    snap = tier.snapshot()
    assert snap["items"] == 3 and snap["evictions"] == 2
    assert tier.get("a0") is None and tier.get("a4").value[0] == 4


@pytest.mark.redis
def test_multilevel_inside_ray_uses_object_store_and_exports_metrics(
        ray_session, tmp_path, redis_server, namespace, holder_cleanup):
    from echo_ray.cache import CacheConfig, MultiLevelCache, metrics

    holder_cleanup(namespace)
    config = CacheConfig(cache_dir=str(tmp_path), redis_url=redis_server.url,
                         namespace=namespace, object_store_min_bytes=2**16)
    with MultiLevelCache(config) as cache:
        assert cache.objects is not None  # auto: Ray is running
        big = np.random.default_rng(3).random(2**14)  # 128 KiB
        cache.put("big", big, tags=["arrays"])
        cache.put("small", [1, 2], tags=["arrays"])
        cache.l1.clear()
        got = cache.get("big")  # served zero-copy by the object store
        np.testing.assert_array_equal(got, big)
        assert not got.flags.writeable
        assert cache.stats()["tiers"]["objects"]["hits"] == 1
        cache.objects.delete("big")
        cache.l1.clear()
        np.testing.assert_array_equal(cache.get("big"), big)  # from L3 ...
        assert cache.objects.get("big") is not None  # ... and promoted to the object store
        assert cache.delete_by_tags(["arrays"]) == 2
        assert all(t.get("big") is None for t in cache.tiers)
        stats = cache.stats()
        assert set(stats["tiers"]) == {"l1", "l2", "objects", "l3", "l4"}
        assert "echo_ray_cache_hits" in metrics._METRICS
        assert "echo_ray_cache_bytes" in metrics._METRICS
        cache.clear()


@pytest.fixture
def service(ray_session, tmp_path, redis_server, namespace, holder_cleanup):
    from echo_ray.cache import CacheConfig
    from echo_ray.cache.service import cache_service

    holder_cleanup(namespace)
    config = CacheConfig(cache_dir=str(tmp_path), redis_url=redis_server.url,
                         namespace=namespace)
    handle = cache_service(name=f"cache-{namespace}", config=config)
    assert ray_session.get(handle.ping.remote(), timeout=120) == "ok"
    yield handle
    ray_session.get(handle.clear.remote())
    ray_session.kill(handle)


@pytest.mark.redis
def test_cache_service_actor_is_shared_through_its_handle(ray_session, service, namespace):
    from echo_ray.cache.service import cache_service

    ray_session.get(service.put.remote("k", {"a": np.arange(3)}, 60, ["t"]))
    same = cache_service(name=f"cache-{namespace}")  # get_if_exists: the same actor

    @ray_session.remote(num_cpus=0)
    def reader(handle):
        return ray_session.get(handle.get.remote("k"))

    value = ray_session.get(reader.remote(same), timeout=60)
    assert list(value["a"]) == [0, 1, 2]
    assert ray_session.get(service.lookup.remote("missing")) == (False, None)
    assert ray_session.get(service.delete_by_tags.remote(["t"])) == 1
    with pytest.raises(ValueError, match="key"):
        ray_session.get(service.put.remote("", 1))


@pytest.mark.redis
# FastAPI's TestClient warns that it still runs on httpx; nothing of ours to change.
@pytest.mark.filterwarnings("ignore::starlette.exceptions.StarletteDeprecationWarning")
def test_http_router(ray_session, service):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from echo_ray.cache.http import MSGPACK, make_cache_router

    app = FastAPI()
    app.include_router(make_cache_router(service, max_body_bytes=4096))
    with TestClient(app) as client:
        r = client.put("/v1/cache/user/42", json={"value": {"x": [1, 2]}, "ttl_seconds": 60,
                                                   "tags": ["users"]})
        assert r.status_code == 200 and r.json() == {"key": "user/42", "stored": True}
        assert client.get("/v1/cache/user/42").json() == {"key": "user/42",
                                                          "value": {"x": [1, 2]}}
        # numpy arrays: put through msgpack (our codec), read back as JSON or msgpack
        from echo_ray.cache.codec import decode, encode

        body = encode(np.arange(4, dtype=np.int32))
        r = client.put("/v1/cache/arr?ttl_seconds=30&tags=users", content=body,
                       headers={"content-type": MSGPACK})
        assert r.status_code == 200
        assert client.get("/v1/cache/arr").json()["value"] == [0, 1, 2, 3]
        r = client.get("/v1/cache/arr", headers={"accept": MSGPACK})
        assert r.headers["content-type"] == MSGPACK
        assert decode(r.content).dtype == np.int32

        stats = client.get("/v1/cache/stats").json()
        assert stats["tiers"]["l1"]["items"] >= 2

        r = client.post("/v1/cache/invalidate", json={"tags": ["users"]})
        assert r.json() == {"deleted": 2}
        r = client.get("/v1/cache/user/42")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        client.put("/v1/cache/d", json={"value": 1})
        assert client.delete("/v1/cache/d").json() == {"key": "d", "deleted": True}
        assert client.delete("/v1/cache/d").json() == {"key": "d", "deleted": False}

        def error(r, status, code):
            assert r.status_code == status, r.text
            assert set(r.json()) == {"error"} and r.json()["error"]["code"] == code
            assert r.json()["error"]["message"]

        error(client.put("/v1/cache/k", content=b"{not json",
                         headers={"content-type": "application/json"}), 400, "malformed_json")
        error(client.put("/v1/cache/k", json={"value": 1, "ttl_seconds": -5}), 422,
              "invalid_request")
        error(client.put("/v1/cache/k", json={"value": 1, "extra": 1}), 422, "invalid_request")
        error(client.put("/v1/cache/k", json={"value": 1, "tags": [""]}), 422, "invalid_request")
        error(client.put("/v1/cache/k", json={"value": "x" * 5000}), 413, "body_too_large")
        error(client.put("/v1/cache/k", content=b"x", headers={"content-type": "text/plain"}),
              415, "unsupported_media_type")
        error(client.put("/v1/cache/k", content=b"\x80\x04pickle",
                         headers={"content-type": MSGPACK}), 400, "malformed_body")
        error(client.put("/v1/cache/" + "k" * 600, json={"value": 1}), 422, "invalid_request")
        error(client.post("/v1/cache/invalidate", json={"tags": []}), 422, "invalid_request")
        # typed bodies keep the router's rules: the size bound also for a streamed body,
        # codec bytes only where a value is stored, a body without Content-Type read as JSON
        error(client.put("/v1/cache/k", content=(b"x" * 1000 for _ in range(5))), 413,
              "body_too_large")
        error(client.post("/v1/cache/invalidate", content=encode({"tags": ["users"]}),
                          headers={"content-type": MSGPACK}), 415, "unsupported_media_type")
        error(client.put("/v1/cache/k", content=b'{"value": 1', headers={
            "content-type": "application/json"}), 400, "malformed_json")
        r = client.put("/v1/cache/plain", content=b'{"value": [1, 2]}')
        assert r.status_code == 200 and client.get("/v1/cache/plain").json()["value"] == [1, 2]
        error(client.put("/v1/cache/huge", json={"value": 2**70}), 422, "invalid_request")
        client.put("/v1/cache/b", content=encode(b"raw"), headers={"content-type": MSGPACK})
        error(client.get("/v1/cache/b"), 406, "not_acceptable")
        assert msgpack.unpackb(client.get("/v1/cache/b",
                                          headers={"accept": MSGPACK}).content) == b"raw"


def test_router_rejects_bad_arguments():
    from echo_ray.cache.http import make_cache_router

    with pytest.raises(ValueError, match="service"):
        make_cache_router(42)
    with pytest.raises(ValueError, match="max_body_bytes"):
        make_cache_router(lambda: None, max_body_bytes=0)
