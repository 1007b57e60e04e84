"""Small stateless encodes run in the worker replica, large ones on its membrane actors
(`echo_ray.service.placement`): the rule, the engine that applies it, and the served app giving
the same answers on both paths."""

from __future__ import annotations

import concurrent.futures as cf

import httpx
import numpy as np
import pytest

from echo_ray.cognitive import LocalEngines, memory, multimodal, process, reasoning
from echo_ray.dtesn.engine import LocalEngine
from echo_ray.dtesn.membrane_tree import TreeSpec
from echo_ray.service.engines import EngineCache
from echo_ray.service.placement import MEASURED_MAX_WORK, PlacedEngine, in_process, tree_units, work
from echo_ray.settings import Settings, SettingsError


# ---- the rule (pure) -------------------------------------------------------------------------
def test_work_is_steps_times_every_membranes_units():
    assert tree_units(TreeSpec(parents=[-1, 0, 0], units=50)) == 150
    assert tree_units(multimodal.engine_spec(2)) == 100 + 2 * 50
    assert work(reasoning.engine_spec(), 30) == 30 * 4 * 50


@pytest.mark.parametrize("work_units, max_work, here", [
    (1, 0, False),            # 0: always the actors (the behaviour before the rule)
    (10**9, 0, False),
    (99_999, 100_000, True),
    (100_000, 100_000, True),  # at the threshold: in-process
    (100_001, 100_000, False),
])
def test_in_process_below_the_threshold_actors_above(work_units, max_work, here):
    assert in_process(work_units, max_work) is here


def test_the_threshold_is_a_setting():
    assert Settings.from_env({}).service.worker_inprocess_max_work == MEASURED_MAX_WORK
    assert Settings.from_env({"WORKER_INPROCESS_MAX_WORK": "0"}).service \
        .worker_inprocess_max_work == 0
    with pytest.raises(SettingsError, match="WORKER_INPROCESS_MAX_WORK"):
        Settings.from_env({"WORKER_INPROCESS_MAX_WORK": "-1"})


class Recording:
    """A plain in-process engine standing for the actor side, recording what it was given."""

    def __init__(self, spec):
        self.engine, self.calls = LocalEngine(spec), []

    def encode(self, U):
        self.calls.append(("encode", len(U)))
        return self.engine.encode(U)

    def encode_batch(self, Us):
        self.calls.append(("encode_batch", [len(U) for U in Us]))
        return [self.engine.encode(U) for U in Us]


def test_placed_engine_sends_each_call_by_its_work():
    spec = reasoning.engine_spec()  # 200 units: 10 steps = 2000 work
    far = Recording(spec)
    placed = PlacedEngine(LocalEngine(spec), far, max_work=2000)
    rng = np.random.default_rng(0)
    placed.encode(rng.standard_normal((10, 1)))
    placed.encode_batch([rng.standard_normal((4, 1)), rng.standard_normal((6, 1))])
    assert far.calls == [] and placed.counts == {"in_process": 2}
    placed.encode(rng.standard_normal((11, 1)))
    placed.encode_batch([rng.standard_normal((6, 1)), rng.standard_normal((5, 1))])  # 11 steps
    assert far.calls == [("encode", 11), ("encode_batch", [6, 5])]
    assert placed.counts == {"in_process": 2, "actors": 2}


def test_in_process_encodes_from_threads_equal_serial_ones():
    """A replica runs requests in threads; the local tree's encode borrows its state."""
    spec = memory.engine_spec()
    placed = PlacedEngine(LocalEngine(spec), Recording(spec), max_work=10**9)
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((int(rng.integers(5, 60)), spec.input_dim)) for _ in range(24)]
    serial = [LocalEngine(spec).encode(U) for U in inputs]
    with cf.ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(placed.encode, inputs))
    for a, b in zip(serial, threaded, strict=True):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_without_actors_the_cache_hands_out_local_engines():
    cache = EngineCache(use_actors=False, inprocess_max_work=10**9)
    assert isinstance(cache(memory.engine_spec()), LocalEngine)
    assert cache.placement() == {"in_process": 0, "actors": 0}


# ---- on real actors ----------------------------------------------------------------------------
@pytest.mark.ray
def test_both_paths_give_the_same_states_and_the_scaling_loop_sees_the_actors(ray_session):
    from echo_ray.dtesn.actors import DTESNSystem

    spec = memory.engine_spec()  # 128 units
    new: list = []
    cache = EngineCache(use_actors=True, name_prefix="test-placement",
                        on_new=lambda key, e: new.append(e), inprocess_max_work=128 * 20)
    try:
        engine = cache(spec)
        assert isinstance(engine, PlacedEngine)
        # what the worker puts under the scaling loop and health-checks: the actor system
        assert [type(e) for e in new] == [DTESNSystem] and cache.engines() == new
        assert len(cache.actors()) == 1
        rng = np.random.default_rng(2)
        small, large = (rng.standard_normal((n, spec.input_dim)) for n in (20, 200))
        reference = LocalEngine(spec)
        for U in (small, large):
            got, want = engine.encode(U), reference.encode(U)
            assert all(np.array_equal(got[k], want[k]) for k in want)
        batch_small = [small[:8], small[8:]]
        batch_large = [large[:120], large[120:]]
        for batch in (batch_small, batch_large):
            for got, U in zip(engine.encode_batch(batch), batch, strict=True):
                want = reference.encode(U)
                assert all(np.array_equal(got[k], want[k]) for k in want)
        assert cache.placement() == {"in_process": 2, "actors": 2}
        assert new[0].load.stats()["request_rate"] > 0  # the actors' own load: their calls only
    finally:
        cache.shutdown()


# ---- the served app ----------------------------------------------------------------------------
MAX_WORK = 20_000  # reasoning's tree has 200 units: a series of 30 is 6000, of 300 is 60000


def served_result(client: httpx.Client, kind: str, payload: dict, session: str | None = None
                  ) -> dict:
    r = client.post(f"/v1/{kind}", json={"input": payload, "session_id": session})
    assert r.status_code == 200, r.text
    return r.json()["result"]


def matches(result: dict) -> list:
    """A retrieve's matches without their ids (fresh per store)."""
    return [(m["text"], m["score"]) for m in result["matches"]]


@pytest.mark.ray
def test_the_served_app_answers_the_same_in_process_and_on_actors(serve_session, tmp_path):
    from ray import serve

    from echo_ray.cognitive.examples import SERIES
    from tests.support.serve_app import deploy_app

    url = deploy_app(serve_session, "echo-placement", tmp_path, max_instances=1,
                     service={"worker_inprocess_max_work": MAX_WORK, "enable_caching": False})
    try:
        worker = serve.get_deployment_handle("CognitiveWorker", app_name="echo-placement")
        before = worker.placement.remote().result(timeout_s=60)
        reference = LocalEngines()
        # memory (128 units): 180 texts stored in one batch go to the actors, a short query
        # stays in the replica; the reference computes both in this process
        texts = [{"text": f"deep tree echo {k} " * (1 + k % 3)} for k in range(180)]
        store = {"op": "store", "items": texts}
        retrieve = {"op": "retrieve", "query": {"text": "deep tree echo 17"}, "k": 5}
        mm = {"op": "embed", "samples": [{"x": {"series": [[0.1 * k], [0.4], [0.9]]},
                                          "y": {"text": "echo"}} for k in range(3)]}
        mm_large = {"op": "embed", "samples": [{"x": {"series": [[0.01 * j] for j in range(40)]},
                                                "y": {"text": "echo " * 10}}
                                               for _ in range(4)]}
        with httpx.Client(base_url=url, timeout=120) as client:
            for kind, payload in [("reasoning", {"series": SERIES, "horizon": 4}),
                                  ("reasoning", {"series": SERIES * 10, "horizon": 4}),
                                  ("multi_modal", mm), ("multi_modal", mm_large)]:
                assert served_result(client, kind, payload) == \
                    process(kind, payload, {}, reference).result, kind
            session = client.post("/v1/sessions").json()["session_id"]
            served_result(client, "memory", store, session)
            state: dict = {}
            process("memory", store, state, reference)
            assert matches(served_result(client, "memory", retrieve, session)) == \
                matches(process("memory", retrieve, state, reference).result)
        after = worker.placement.remote().result(timeout_s=60)
        used = {k: after[k] - before[k] for k in after}
        assert used["in_process"] >= 3 and used["actors"] >= 3, used
    finally:
        serve.delete("echo-placement")
