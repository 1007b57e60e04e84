"""Grammar learning on the embedded Reber grammar, plus the generator and the errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from pydantic import ValidationError

from echo_ray.cache import codec
from echo_ray.cognitive import LocalEngines, process
from echo_ray.cognitive.models import MAX_GRAMMAR_CHARS
from echo_ray.cognitive.reber import (
    corrupt,
    embedded_reber,
    is_embedded_reber,
    is_reber,
    reber,
)


def auc(positive, negative) -> float:
    """P(a random positive scores above a random negative), ties counting half."""
    pos, neg = np.asarray(positive, float)[:, None], np.asarray(negative, float)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def test_reber_generator_and_recogniser_agree():
    rng = np.random.default_rng(0)
    for _ in range(200):
        s, e = reber(rng), embedded_reber(rng)
        assert is_reber(s) and not is_embedded_reber(s)
        assert is_embedded_reber(e) and e[1] == e[-2] and e[1] in "TP"
        assert not is_embedded_reber(corrupt(e, rng))
    assert not is_embedded_reber("BTBTXSETE".replace("XS", "XX"))
    assert not is_embedded_reber("BTBTSSXSEPE")  # the wrap symbols must match


@pytest.fixture(scope="module")
def trained(engines):
    rng = np.random.default_rng(7)
    train = [embedded_reber(rng) for _ in range(1000)]
    state: dict = {}
    out = process("grammar", {"op": "train", "strings": train}, state, engines)
    return state, out.result, rng


def score(state, engines, strings):
    return process("grammar", {"op": "score", "strings": strings}, state, engines).result["scores"]


def test_embedded_reber_auc_against_one_symbol_corruptions(trained, engines):
    state, info, rng = trained
    assert info["alphabet"] == "BEPSTVX" and info["trained_strings"] == 1000
    assert info["train_accept_rate"] >= 0.99
    good = [embedded_reber(rng) for _ in range(300)]
    bad = [corrupt(s, rng) for s in good]
    g, b = score(state, engines, good), score(state, engines, bad)
    a_min = auc([s["min_log_prob"] for s in g], [s["min_log_prob"] for s in b])
    a_mean = auc([s["mean_log_likelihood"] for s in g], [s["mean_log_likelihood"] for s in b])
    accept = np.mean([s["grammatical"] for s in g])
    reject = 1 - np.mean([s["grammatical"] for s in b])
    print(f"embedded Reber AUC (min log p) {a_min:.4f}, (mean log p) {a_mean:.4f}; "
          f"accepts {accept:.2f} of grammatical, rejects {reject:.2f} of corrupted")
    assert a_min >= 0.95 and a_mean >= 0.95
    assert accept >= 0.9 and reject >= 0.9


def test_long_memory_second_symbol_is_remembered_to_the_end(trained, engines):
    """Swapping only the second-to-last symbol (T <-> P) leaves every local transition valid:
    only a memory of the second symbol tells the strings apart."""
    state, _, rng = trained
    good = [embedded_reber(rng) for _ in range(300)]
    swapped = [s[:-2] + ("T" if s[-2] == "P" else "P") + s[-1] for s in good]
    g, b = score(state, engines, good), score(state, engines, swapped)
    a = auc([s["min_log_prob"] for s in g], [s["min_log_prob"] for s in b])
    worst_at_end = np.mean([s["worst_position"] == len(s["string"]) - 2 for s in b])
    print(f"end-swap AUC {a:.4f}; worst step at the swapped symbol in {worst_at_end:.2f}")
    assert a >= 0.95 and worst_at_end >= 0.8


def test_scores_are_consistent_and_unknown_symbols_are_ungrammatical(trained, engines):
    state, info, _ = trained
    s = score(state, engines, ["BTBTXSETE", "BTBTXSETEZ", "B"])
    first, unknown, short = s
    assert first["grammatical"] and first["log_likelihood"] <= 0
    assert first["mean_log_likelihood"] == pytest.approx(first["log_likelihood"] / 10)
    assert not unknown["grammatical"] and unknown["worst_position"] == 9
    assert not short["grammatical"]
    assert info["threshold"] == pytest.approx(state["grammar"]["threshold"])


def test_train_replaces_model_deterministically():
    strings = ["ab", "aab", "abb", "aabb"] * 5
    a, b = {}, {}
    ra = process("grammar", {"op": "train", "strings": strings}, a, LocalEngines()).result
    rb = process("grammar", {"op": "train", "strings": strings}, b, LocalEngines()).result
    assert ra == rb and np.array_equal(a["grammar"]["W"], b["grammar"]["W"])
    process("grammar", {"op": "train", "strings": ["xyz"] * 3}, a, LocalEngines())
    assert a["grammar"]["alphabet"] == "xyz"


def test_state_round_trips_through_the_codec(trained, engines):
    state, _, _ = trained
    restored = codec.decode(codec.encode(state))
    assert score(restored, engines, ["BPBPVVEPE"]) == score(state, engines, ["BPBPVVEPE"])


def test_errors_store_nothing(engines):
    with pytest.raises(ValueError, match="no model trained"):
        process("grammar", {"op": "score", "strings": ["ab"]}, {}, engines)
    state: dict = {}
    process("grammar", {"op": "train", "strings": ["ab", "ba", "aab"]}, state, engines)
    before = copy.deepcopy(state)
    many = "".join(chr(0x3B1 + k) for k in range(33))  # 33 distinct symbols
    with pytest.raises(ValueError, match="33 distinct symbols, more than the 32"):
        process("grammar", {"op": "train", "strings": [many]}, state, engines)
    assert codec.encode(state) == codec.encode(before)


@pytest.mark.parametrize("payload, message", [
    ({"op": "train", "strings": []}, "at least 1 item"),
    ({"op": "train", "strings": [""]}, "at least 1 character"),
    ({"op": "score", "strings": ["a" * (MAX_GRAMMAR_CHARS + 1)]}, "at most"),
    ({"op": "train", "strings": [3]}, "valid string"),
    ({"op": "learn", "strings": ["a"]}, "'train' or 'score'"),
    ({"op": "train", "strings": ["a"], "acceptance": 0.2}, "greater than 0.5"),
    ({"op": "train", "strings": ["a"], "acceptance": float("nan")}, "finite number"),
])
def test_bad_input(engines, payload, message):
    with pytest.raises(ValidationError, match=message):
        process("grammar", payload, {}, engines)
