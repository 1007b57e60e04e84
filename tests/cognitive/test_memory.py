"""Associative memory: recall under one-character edits, vectors, ids, errors, state."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from pydantic import ValidationError

from echo_ray.cache import codec
from echo_ray.cognitive import LocalEngines, process
from echo_ray.cognitive.models import MAX_ITEMS_PER_REQUEST, MAX_TEXT_CHARS


def random_strings(rng, n):
    return ["".join(chr(97 + c) for c in rng.integers(0, 26, rng.integers(8, 17)))
            for _ in range(n)]


def one_edit(s, rng):
    i, c = int(rng.integers(len(s))), chr(97 + int(rng.integers(26)))
    op = int(rng.integers(3))
    if op == 0:  # substitution (possibly by a different letter only)
        c = c if c != s[i] else chr(97 + (ord(c) - 96) % 26)
        return s[:i] + c + s[i + 1:]
    if op == 1:
        return s[:i] + c + s[i:]
    return s[:i] + s[i + 1:]


def test_recall_at_1_under_one_character_edit(engines):
    rng = np.random.default_rng(2024)
    strings = random_strings(rng, 1000)
    state: dict = {}
    out = process("memory", {"op": "store", "items": [{"text": s, "id": f"s{n}"}
                                                      for n, s in enumerate(strings)]},
                  state, engines)
    assert out.changed and out.result["size"] == 1000
    hits = 0
    for n, s in enumerate(strings):
        res = process("memory", {"op": "retrieve", "query": {"text": one_edit(s, rng)}, "k": 1},
                      state, engines)
        assert not res.changed
        hits += res.result["matches"][0]["id"] == f"s{n}"
    recall = hits / len(strings)
    print(f"memory recall@1 under one edit: {recall:.3f}")
    assert recall >= 0.9


def test_exact_query_scores_one_and_ranks_by_similarity(engines):
    state: dict = {}
    process("memory", {"op": "store", "items": [
        {"text": "deep tree echo", "metadata": {"lang": "en", "n": 1, "ok": True, "x": None}},
        {"text": "echo state network"}, {"text": "membrane computing"}]}, state, engines)
    res = process("memory", {"op": "retrieve", "query": {"text": "deep tree echo"}, "k": 3},
                  state, engines).result
    scores = [m["score"] for m in res["matches"]]
    assert res["matches"][0]["text"] == "deep tree echo"
    assert res["matches"][0]["metadata"] == {"lang": "en", "n": 1, "ok": True, "x": None}
    assert scores[0] == pytest.approx(1.0)
    assert scores == sorted(scores, reverse=True)
    assert [m["kind"] for m in res["matches"]] == ["text"] * 3


def test_vectors_are_stored_as_given_and_searched_by_cosine(engines):
    state: dict = {}
    process("memory", {"op": "store", "items": [
        {"id": "x", "vector": [1, 0, 0]}, {"id": "y", "vector": [0, 1, 0]},
        {"id": "xy", "vector": [1, 1, 0]}]}, state, engines)
    res = process("memory", {"op": "retrieve", "query": {"vector": [2, 0.1, 0]}, "k": 2},
                  state, engines).result
    assert [m["id"] for m in res["matches"]] == ["x", "xy"]
    assert res["matches"][0]["vector"] == [1.0, 0.0, 0.0]
    assert res["matches"][1]["score"] == pytest.approx(2.1 / np.sqrt(4.01) / np.sqrt(2))


def test_text_and_vector_queries_search_their_own_items(engines):
    state: dict = {}
    process("memory", {"op": "store", "items": [{"text": "alpha"}, {"vector": [1.0, 2.0]}]},
            state, engines)
    t = process("memory", {"op": "retrieve", "query": {"text": "alpha"}, "k": 5}, state, engines)
    v = process("memory", {"op": "retrieve", "query": {"vector": [1, 2]}, "k": 5}, state, engines)
    assert [m["kind"] for m in t.result["matches"]] == ["text"]
    assert [m["kind"] for m in v.result["matches"]] == ["vector"]


def test_ids_default_upsert_and_stay_unique(engines):
    state: dict = {}
    first = process("memory", {"op": "store", "items": [{"text": "one"}, {"text": "two", "id": "m0"}]},
                    state, engines).result
    assert first["stored"] == ["m1", "m0"]  # the explicit 'm0' is not reused for the first
    again = process("memory", {"op": "store", "items": [{"id": "m0", "text": "zwei"}]},
                    state, engines).result
    assert again["size"] == 2  # replaced, not added
    res = process("memory", {"op": "retrieve", "query": {"text": "zwei"}, "k": 5}, state,
                  engines).result
    assert {m["id"]: m["text"] for m in res["matches"]} == {"m0": "zwei", "m1": "one"}
    # an id can move from text to vector
    process("memory", {"op": "store", "items": [{"id": "m1", "vector": [3.0]}]}, state, engines)
    assert state["memory"]["text"]["ids"] == ["m0"] and state["memory"]["vector"]["ids"] == ["m1"]


def test_deterministic_across_fresh_engines():
    payload = {"op": "store", "items": [{"text": "reservoir"}, {"text": "computing"}]}
    query = {"op": "retrieve", "query": {"text": "reservoir computing"}, "k": 2}
    results = []
    for _ in range(2):
        engines, state = LocalEngines(), {}
        process("memory", payload, state, engines)
        results.append(process("memory", query, state, engines).result)
        keys = state["memory"]["text"]["keys"]
    assert results[0] == results[1]
    assert keys.dtype == np.float32 and keys.shape[0] == 2


def test_wrong_vector_dimension_names_both_and_stores_nothing(engines):
    state: dict = {}
    process("memory", {"op": "store", "items": [{"vector": [1.0, 2.0, 3.0]}]}, state, engines)
    before = copy.deepcopy(state)
    with pytest.raises(ValueError, match=r"items\[1\]\.vector has dimension 2.*dimension 3"):
        process("memory", {"op": "store", "items": [{"text": "fine"}, {"vector": [1.0, 2.0]}]},
                state, engines)
    with pytest.raises(ValueError, match=r"query\.vector has dimension 4.*dimension 3"):
        process("memory", {"op": "retrieve", "query": {"vector": [1, 2, 3, 4]}}, state, engines)
    assert codec.encode(state) == codec.encode(before)


@pytest.mark.parametrize("payload, message", [
    ({"op": "store", "items": [{"vector": [0.0, 0.0]}]}, "must not be all zeros"),
    ({"op": "retrieve", "query": {"text": "x"}}, "holds no text items"),
    ({"op": "retrieve", "query": {"vector": [1.0]}}, "holds no vectors"),
    ({"op": "store", "items": [{"vector": [1e300, 1e300]}]}, r"items\[0\]\.vector is too large"),
])
def test_semantic_errors(engines, payload, message):
    with pytest.raises(ValueError, match=message):
        process("memory", payload, {}, engines)


@pytest.mark.parametrize("payload, where", [
    ({"op": "store"}, "needs 'items'"),
    ({"op": "retrieve", "items": [{"text": "a"}], "query": {"text": "a"}}, "needs 'query'"),
    ({"op": "store", "items": [{"text": "a", "vector": [1.0]}]}, "exactly one of text, vector"),
    ({"op": "store", "items": [{}]}, "exactly one of text, vector"),
    ({"op": "store", "items": [{"vector": [1.0, float("nan")]}]}, "finite number"),
    ({"op": "store", "items": [{"vector": [float("inf")]}]}, "finite number"),
    ({"op": "store", "items": [{"text": "a" * (MAX_TEXT_CHARS + 1)}]}, "at most"),
    ({"op": "store", "items": [{"text": "a"}] * (MAX_ITEMS_PER_REQUEST + 1)}, "at most"),
    ({"op": "store", "items": [{"text": ""}]}, "at least 1 character"),
    ({"op": "store", "items": [{"text": "a", "id": "x"}, {"text": "b", "id": "x"}]}, "unique"),
    ({"op": "store", "items": [{"text": "a", "metadata": {"k": float("nan")}}]}, "metadata"),
    ({"op": "delete"}, "op"),
    ({"op": "retrieve", "query": {"text": "a"}, "k": 0}, "greater than or equal to 1"),
    ({"op": "retrieve", "query": {"text": "a"}, "colour": "red"}, "Extra inputs"),
])
def test_malformed_requests_raise_validation_errors(engines, payload, where):
    state: dict = {}
    with pytest.raises(ValidationError, match=where):
        process("memory", payload, state, engines)
    assert state == {}


def test_state_round_trips_through_the_codec(engines):
    state: dict = {}
    process("memory", {"op": "store", "items": [
        {"text": "persist me", "metadata": {"src": "test"}}, {"vector": [0.5, -1.0]}]},
        state, engines)
    restored = codec.decode(codec.encode(state))
    a = process("memory", {"op": "retrieve", "query": {"text": "persist me!"}}, state, engines)
    b = process("memory", {"op": "retrieve", "query": {"text": "persist me!"}}, restored, engines)
    assert a.result == b.result
    process("memory", {"op": "store", "items": [{"vector": [1.0, 1.0]}]}, restored, engines)
    assert restored["memory"]["vector"]["vectors"].shape == (2, 2)
