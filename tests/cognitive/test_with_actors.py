"""The processors give the same answers on membranes in Ray actors (`DTESNSystem`, as served)
as on the in-process tree."""

from __future__ import annotations

import numpy as np
import pytest

from echo_ray.cognitive import LocalEngines, process, spec_key

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def actor_engines(ray_session, tmp_path_factory):
    from echo_ray.dtesn.actors import DTESNSystem

    systems: dict = {}
    base = tmp_path_factory.mktemp("cognitive-actors")

    def factory(spec):
        key = spec_key(spec)
        if key not in systems:
            systems[key] = DTESNSystem(spec, checkpoint_dir=base)
        return systems[key]

    yield factory
    for system in systems.values():
        system.shutdown()


REQUESTS = [
    ("memory", {"op": "store", "items": [{"text": t} for t in ("ray", "serve", "actor", "membrane")]}),
    ("memory", {"op": "retrieve", "query": {"text": "membranes"}, "k": 2}),
    ("grammar", {"op": "train", "strings": ["abc", "abcc", "aabc", "abbc"] * 3}),
    ("grammar", {"op": "score", "strings": ["abc", "cba"]}),
    ("reasoning", {"series": np.sin(np.arange(80) / 5).tolist(), "horizon": 5}),
    ("agent_evaluation", {"examples": [{"trajectory": [[0.1 * k, -0.1 * k]] * 4, "scores": {"q": k}}
                                       for k in range(5)],
                          "agents": [{"id": "a", "trajectory": [[0.2, -0.2]] * 4}]}),
    ("multi_modal", {"samples": [{"s": {"series": [[0.1], [0.2]]}, "t": {"text": "ok"}}]}),
]


def test_same_results_on_actors_and_in_process(actor_engines):
    local, local_state, actor_state = LocalEngines(), {}, {}
    for type_, payload in REQUESTS:
        expected = process(type_, payload, local_state, local)
        got = process(type_, payload, actor_state, actor_engines)
        assert got.changed == expected.changed
        assert _close(got.result, expected.result), type_


def _close(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(b))
    return a == b
