"""The registry and `process`: every type, its engines, plain-data session state."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from echo_ray.cache import codec
from echo_ray.cognitive import (
    PROCESSORS,
    LocalEngines,
    canonical,
    default_specs,
    process,
    spec_key,
    validate,
)

SMALL = {
    "memory": {"op": "store", "items": [{"text": "abc"}, {"vector": [1.0, 2.0]}]},
    "reasoning": {"series": np.sin(np.arange(40) / 4).tolist(), "horizon": 3},
    "grammar": {"op": "train", "strings": ["ab", "aab", "abb"]},
    "agent_evaluation": {"examples": [{"trajectory": [[0.1 * k, 0.2]] * 3, "scores": {"q": k}}
                                      for k in range(4)],
                         "agents": [{"id": "a", "trajectory": [[0.3, 0.2]]}]},
    "multi_modal": {"op": "train", "samples": [{"t": {"text": "hi"}, "v": {"vector": [k]}}
                                               for k in range(3)], "targets": [0.0, 1.0, 2.0]},
    "membrane_evolution": {"steps": 2},
}


def test_registry_lists_the_six_types():
    assert list(PROCESSORS) == ["memory", "reasoning", "grammar", "agent_evaluation",
                                "multi_modal", "membrane_evolution"]
    assert set(SMALL) == set(PROCESSORS)
    for name, proc in PROCESSORS.items():
        assert proc.name == name
        assert proc.request_model.model_json_schema()["type"] == "object"  # OpenAPI-ready
    assert PROCESSORS["reasoning"].state_key is None


class Recording(LocalEngines):
    def __init__(self):
        super().__init__()
        self.asked: set[str] = set()

    def __call__(self, spec):
        self.asked.add(spec_key(spec))
        return super().__call__(spec)


@pytest.mark.parametrize("type_", list(SMALL))
def test_each_type_uses_only_the_engines_it_declares(type_):
    engines = Recording()
    state: dict = {}
    out = process(type_, SMALL[type_], state, engines)
    PROCESSORS[type_].result_model.model_validate(out.result)  # result matches its model
    declared = {spec_key(s) for s in PROCESSORS[type_].specs(validate(type_, SMALL[type_]))}
    assert engines.asked <= declared
    assert declared <= {spec_key(s) for s in default_specs()}
    assert out.changed == (PROCESSORS[type_].state_key is not None)
    assert list(state) == ([PROCESSORS[type_].state_key] if out.changed else [])


def plain(value) -> bool:
    """Only what the project codec carries without custom classes."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "fiub"
    return value is None or isinstance(value, (str, int, float, bool))


def test_whole_session_state_is_plain_data_and_round_trips(engines):
    state: dict = {}
    for type_, payload in SMALL.items():
        process(type_, payload, state, engines)
    assert plain(state)
    restored = codec.decode(codec.encode(state))
    assert plain(restored) and set(restored) == set(state)
    for type_, payload in [("memory", {"op": "retrieve", "query": {"text": "abd"}}),
                           ("grammar", {"op": "score", "strings": ["aab"]}),
                           ("agent_evaluation", {"agents": [{"id": "x", "trajectory": [[0.0, 0.0]]}]}),
                           ("multi_modal", {"samples": [{"t": {"text": "ho"}, "v": {"vector": [1.5]}}]}),
                           ("membrane_evolution", {"steps": 1})]:
        assert (process(type_, payload, restored, engines).result
                == process(type_, payload, state, engines).result)


def test_unknown_type_and_non_object_payloads(engines):
    with pytest.raises(ValueError, match="unknown processing type 'dreaming'; expected one of "
                                         "memory, reasoning, grammar"):
        process("dreaming", {}, {}, engines)
    for payload in (None, [], "text", 3):
        with pytest.raises(ValidationError, match="valid dictionary or instance"):
            process("memory", payload, {}, engines)


def test_canonical_payload_ignores_defaults_and_key_order():
    a = canonical("memory", {"op": "retrieve", "query": {"text": "x"}})
    b = canonical("memory", {"k": 5, "query": {"text": "x", "vector": None}, "op": "retrieve"})
    c = canonical("memory", {"op": "retrieve", "query": {"text": "y"}})
    assert a == b != c
    assert canonical("reasoning", SMALL["reasoning"]) != canonical("grammar", SMALL["grammar"])


def test_default_specs_are_distinct_and_buildable(engines):
    specs = default_specs()
    assert len({spec_key(s) for s in specs}) == len(specs) == 8
    for spec in specs:
        states = engines(spec).encode(np.zeros((2, spec.input_dim)))
        assert sorted(states) == list(range(len(spec.parents)))


def test_package_imports_without_ray():
    import subprocess
    import sys

    code = "import sys, echo_ray.cognitive; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
