"""A worker replica warms up before it takes traffic: `CognitiveProcessor.warm_up` runs every
type's example request on a scratch state (in-process engines here; the served app's are
membrane actors), builds the engines the first requests would have built, stores nothing."""

from __future__ import annotations

import pytest

from echo_ray.cognitive import PROCESSORS
from echo_ray.cognitive.examples import EXAMPLE_REQUESTS
from echo_ray.service.engines import EngineCache, spec_key
from echo_ray.service.worker import CognitiveProcessor
from echo_ray.settings import Settings
from echo_ray.sim.calibrate import DEFAULT_REQUESTS


def test_warm_up_builds_every_example_engine_and_stores_nothing(tmp_path):
    settings = Settings.from_env({}, paths={"data_dir": tmp_path})
    assert settings.service.worker_warm_up  # on by default
    proc = CognitiveProcessor(settings, EngineCache(use_actors=False))
    assert proc.warm_up() > 0
    keys = {spec_key(spec) for kind, body in EXAMPLE_REQUESTS.items()
            for spec in PROCESSORS[kind].specs(PROCESSORS[kind].request_model
                                               .model_validate(body))}
    assert set(proc.engines._engines) == keys and keys
    assert proc.store.count() == 0 and proc.handled == 0
    # warm: the first real request of a type builds no engine
    built = len(proc.engines._engines)
    out = proc.process("reasoning", EXAMPLE_REQUESTS["reasoning"], None)
    assert out["ok"] and len(proc.engines._engines) == built


def test_warm_up_can_be_turned_off():
    assert not Settings.from_env({"WORKER_WARM_UP": "false"}).service.worker_warm_up


def test_calibrate_times_the_same_example_requests():
    assert DEFAULT_REQUESTS is EXAMPLE_REQUESTS and set(EXAMPLE_REQUESTS) == set(PROCESSORS)


@pytest.mark.ray
def test_a_replica_warms_up_before_its_membrane_groups_join_the_scaling_loop(ray_session,
                                                                             tmp_path):
    """Under the loop, the warm-up's calls made every new group look busy and grow to 2 actors
    during the warm-up, which doubled a replica's start (RESULTS.md)."""
    from echo_ray.service.worker import CognitiveWorker

    settings = Settings.from_env({}, paths={"data_dir": tmp_path},
                                 scaling={"membrane_interval_s": 3600.0})
    worker = CognitiveWorker.func_or_class(settings)  # the replica's class, outside Serve
    try:
        engines = dict(worker.engines.items())
        assert engines and all(e.n_actors == 1 for e in engines.values())
        assert worker.scaling_loop.names() == sorted(worker._resource_prefix + key
                                                     for key in engines)
        assert all(e.load.stats()["request_rate"] == 0.0 for e in engines.values())
    finally:
        worker.scaling_loop.stop()
        worker.engines.shutdown()
