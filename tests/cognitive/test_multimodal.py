"""Multi-modal fusion: the fused readout needs both modalities; layouts; errors; state."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from echo_ray.cache import codec
from echo_ray.cognitive import LocalEngines, process
from echo_ray.cognitive.models import MAX_MODALITIES, MAX_MODALITY_WIDTH
from echo_ray.cognitive.multimodal import ROOT_UNITS, engine_spec
from tests.support.workloads import modal_sample


def test_fused_prediction_beats_each_single_modality(engines):
    """y = a * b: each modality alone carries no information about y (the other factor is
    symmetric around zero), together they determine it."""
    rng = np.random.default_rng(3)
    n_train, n_test = 300, 150
    a, b = rng.uniform(-1, 1, n_train + n_test), rng.uniform(-1, 1, n_train + n_test)
    y = a * b
    nrmse = {}
    for modalities in (("a",), ("b",), ("a", "b")):
        srng = np.random.default_rng(4)
        samples = [modal_sample(srng, a[k], b[k], modalities) for k in range(n_train + n_test)]
        state: dict = {}
        train = process("multi_modal", {"op": "train", "samples": samples[:n_train],
                                        "targets": y[:n_train].tolist()}, state, engines)
        assert train.changed and train.result["trained"] and train.result["examples"] == n_train
        out = process("multi_modal", {"samples": samples[n_train:], "include_embeddings": False},
                      state, engines)
        assert not out.changed
        pred = np.array([o["prediction"][0] for o in out.result["outputs"]])
        nrmse["+".join(modalities)] = float(np.sqrt(np.mean((pred - y[n_train:]) ** 2))
                                            / np.std(y[n_train:]))
    print("held-out NRMSE by modalities:", {k: round(v, 3) for k, v in nrmse.items()})
    assert nrmse["a+b"] < 0.7
    assert nrmse["a+b"] < nrmse["a"] - 0.25 and nrmse["a+b"] < nrmse["b"] - 0.25


def test_embed_returns_the_root_embedding_for_every_kind(engines):
    rng = np.random.default_rng(0)
    samples = [{"txt": {"text": "fuse me"}, "num": {"series": rng.uniform(-1, 1, (6, 3)).tolist()},
                "vec": {"vector": [0.5, -0.5]}} for _ in range(2)]
    out = process("multi_modal", {"samples": samples}, {}, engines)
    r = out.result
    assert not out.changed and r["op"] == "embed" and not r["trained"]
    assert r["modalities"] == [{"name": "num", "kind": "series", "width": 3},
                               {"name": "txt", "kind": "text", "width": 0},
                               {"name": "vec", "kind": "vector", "width": 2}]
    assert [len(o["embedding"]) for o in r["outputs"]] == [3 * ROOT_UNITS] * 2
    assert all(o["prediction"] is None for o in r["outputs"])
    assert r["outputs"][0]["embedding"] != r["outputs"][1]["embedding"]
    # vectors alone: held for MIN_STEPS steps
    only = process("multi_modal", {"samples": [{"v": {"vector": [1.0]}}]}, {}, engines).result
    assert len(only["outputs"][0]["embedding"]) == 3 * ROOT_UNITS


def test_modality_order_in_the_request_does_not_matter(engines):
    one = {"x": {"vector": [0.3, 0.1]}, "t": {"text": "abc"}}
    two = {"t": {"text": "abc"}, "x": {"vector": [0.3, 0.1]}}
    a = process("multi_modal", {"samples": [one]}, {}, engines).result
    b = process("multi_modal", {"samples": [two]}, {}, engines).result
    assert a == b


def test_engine_spec_has_one_leaf_per_modality():
    for m in range(1, MAX_MODALITIES + 1):
        spec = engine_spec(m)
        assert spec.parents == [-1] + [0] * m and spec.input_dim == m * MAX_MODALITY_WIDTH
        assert spec.leaf_channels[-1][-1] == m * MAX_MODALITY_WIDTH - 1
    with pytest.raises(ValueError, match="n_modalities must be in"):
        engine_spec(MAX_MODALITIES + 1)


def test_multi_output_targets_deterministic_and_codec_round_trip():
    rng = np.random.default_rng(1)
    samples = [{"a": {"vector": rng.uniform(-1, 1, 2).tolist()}} for _ in range(20)]
    targets = [[s["a"]["vector"][0], -s["a"]["vector"][1]] for s in samples]
    results, states = [], []
    for _ in range(2):
        state: dict = {}
        engines = LocalEngines()
        results.append(process("multi_modal", {"op": "train", "samples": samples,
                                               "targets": targets}, state, engines).result)
        states.append(state)
    assert results[0] == results[1]
    restored = codec.decode(codec.encode(states[0]))
    engines = LocalEngines()
    query = {"samples": samples[:3]}
    a = process("multi_modal", query, restored, engines).result
    assert a == process("multi_modal", query, states[1], engines).result
    assert len(a["outputs"][0]["prediction"]) == 2


def test_semantic_errors_store_nothing(engines):
    rng = np.random.default_rng(2)
    state: dict = {}
    samples = [modal_sample(rng, 0.5, 0.5, ("a", "b")) for _ in range(5)]
    process("multi_modal", {"op": "train", "samples": samples, "targets": [1.0] * 5}, state, engines)
    before = codec.encode(state)
    cases = [
        ({"samples": [{"a": {"vector": [1.0]}}]},
         r"samples have modalities a \(vector 1\), but this session's readout was trained on "
         r"a \(series 1\), b \(vector 3\)"),
        ({"samples": [{"a": {"series": [[1.0], [1.0, 2.0]]}, "b": {"vector": [1.0] * 3}}]},
         "every step must have the same number of channels"),
        ({"samples": samples[:1] + [{"a": {"vector": [1.0]}, "b": {"vector": [1.0] * 3}}]},
         r"samples\[1\] has modalities .*every sample must have the same ones"),
        ({"op": "train", "samples": samples[:2], "targets": [[1.0], [1.0, 2.0]]},
         "targets must all have the same number of outputs"),
    ]
    for payload, message in cases:
        with pytest.raises(ValueError, match=message):
            process("multi_modal", payload, state, engines)
        assert codec.encode(state) == before


@pytest.mark.parametrize("payload, message", [
    ({"samples": []}, "at least 1 item"),
    ({"samples": [{}]}, "at least 1 item"),
    ({"samples": [{"a": {}}]}, "exactly one of series, text, vector"),
    ({"samples": [{"a": {"text": "x", "vector": [1.0]}}]}, "exactly one of series, text, vector"),
    ({"samples": [{"a": {"vector": [1.0] * (MAX_MODALITY_WIDTH + 1)}}]}, "at most"),
    ({"samples": [{f"m{k}": {"vector": [1.0]} for k in range(MAX_MODALITIES + 1)}]}, "at most"),
    ({"samples": [{"a": {"series": [[float("nan")]]}}]}, "finite number"),
    ({"op": "train", "samples": [{"a": {"vector": [1.0]}}] * 2}, "needs one target per sample"),
    ({"op": "train", "samples": [{"a": {"vector": [1.0]}}] * 2, "targets": [1.0]},
     "needs one target per sample"),
    ({"op": "train", "samples": [{"a": {"vector": [1.0]}}], "targets": [1.0]}, "at least 2"),
    ({"samples": [{"a": {"vector": [1.0]}}], "targets": [1.0]}, "only op 'train' takes"),
    ({"op": "train", "samples": [{"a": {"vector": [1.0]}}] * 2, "targets": [1.0, float("inf")]},
     "finite number"),
])
def test_bad_input(engines, payload, message):
    with pytest.raises(ValidationError, match=message):
        process("multi_modal", payload, {}, engines)
