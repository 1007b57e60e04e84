"""Membrane evolution: default and custom P systems, persistence, limits and errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from echo_ray.cache import codec
from echo_ray.cognitive import process
from echo_ray.cognitive.evolution import default_system
from echo_ray.cognitive.models import MAX_EVOLUTION_STEPS, MAX_MEMBRANES, MAX_STRUCTURE_DEPTH

# Competing rules (resolved by the seeded RNG), priorities, communication both ways.
COMPETING = {"id": "skin", "type": "skin", "rules": ["d -> a^2 @in:cell", "d^5 -> e @out"],
             "children": [{"id": "cell", "type": "leaf", "objects": {"a": 40}, "rules": [
                 "a -> b", "a -> c", {"rule": "b c -> d @out", "priority": 1}]}]}


def run(payload, state, engines):
    return process("membrane_evolution", payload, state, engines)


def objects(result, membrane_id):
    return next(m["objects"] for m in result["membranes"] if m["id"] == membrane_id)


def test_default_system_follows_the_dtesn_tree_and_halts(engines):
    state: dict = {}
    out = run({"steps": 50}, state, engines)
    r = out.result
    assert out.changed and r["halted"] and r["steps_run"] == 3 == r["total_steps"]
    assert [(m["id"], m["type"], m["parent"]) for m in r["membranes"]] == [
        ("skin", "skin", None), ("m0", "root", "skin"), ("m1", "trunk", "m0"),
        ("m2", "leaf", "m1"), ("m3", "leaf", "m1")]
    assert objects(r, "m0") == {"r": 4}  # 2 leaves x 4 charges, merged in pairs
    assert r["structure"]["id"] == "skin" and r["structure"]["children"][0]["id"] == "m0"
    deeper = run({"steps": 10, "default_depth": 4}, {}, engines).result
    assert {m["type"] for m in deeper["membranes"]} == {"skin", "root", "trunk", "branch", "leaf"}
    assert len(deeper["membranes"]) == 1 + 8


def test_state_persists_and_continues_like_one_run(engines):
    once: dict = {}
    whole = run({"structure": COMPETING, "steps": 12, "seed": 1}, once, engines).result
    split: dict = {}
    run({"structure": COMPETING, "steps": 5, "seed": 1}, split, engines)
    split = codec.decode(codec.encode(split))  # through the session store's codec
    second = run({"steps": 7}, split, engines).result
    assert second["total_steps"] == 12 and not second["halted"]
    assert second["membranes"] == whole["membranes"] and second["environment"] == whole["environment"]
    assert whole["environment"].get("e", 0) > 0


def test_seed_determines_the_run(engines):
    a = run({"structure": COMPETING, "steps": 1, "seed": 1}, {}, engines).result
    b = run({"structure": COMPETING, "steps": 1, "seed": 1}, {}, engines).result
    others = [run({"structure": COMPETING, "steps": 1, "seed": s}, {}, engines).result
              for s in range(2, 6)]
    assert a == b
    assert any(objects(o, "cell") != objects(a, "cell") for o in others)
    cell = objects(a, "cell")
    assert cell.get("b", 0) + cell.get("c", 0) == 40  # maximal parallelism: every a rewritten


def test_add_objects_and_reset(engines):
    state: dict = {}
    run({"steps": 10}, state, engines)
    out = run({"steps": 0, "add_objects": {"m2": "s^2", "m0": {"r": 1}}}, state, engines)
    assert out.changed and objects(out.result, "m2") == {"s": 2}
    assert objects(out.result, "m0") == {"r": 5}
    later = run({"steps": 5}, state, engines).result
    assert objects(later, "m0") == {"r": 6}
    nothing = run({"steps": 3}, state, engines)  # halted: no step, nothing changed
    assert not nothing.changed and nothing.result["steps_run"] == 0 and nothing.result["halted"]
    fresh = run({"steps": 0, "reset": True}, state, engines).result
    assert fresh["total_steps"] == 0 and objects(fresh, "m2") == {"s": 4}


def test_division_and_dissolution_are_reported_in_the_structure(engines):
    structure = {"id": "skin", "type": "skin", "children": [
        {"id": "cell", "objects": "x", "rules": ["x -> [y][z]"]},
        {"id": "bag", "type": "branch", "objects": "k^2", "rules": ["k -> q @dissolve"],
         "children": [{"id": "inner", "objects": {"w": 1}}]}]}
    r = run({"structure": structure, "steps": 1}, {}, engines).result
    ids = {m["id"]: m for m in r["membranes"]}
    assert objects(r, "cell.0") == {"y": 1} and objects(r, "cell.1") == {"z": 1}
    assert "bag" not in ids and ids["inner"]["parent"] == "skin"
    assert objects(r, "skin") == {"k": 1, "q": 1}  # one dissolution; the rest moves out


def test_semantic_errors_name_the_problem_and_store_nothing(engines):
    state: dict = {}
    run({"steps": 1}, state, engines)
    before = codec.encode(state)
    cases = [
        ({"add_objects": {"nope": "a"}}, r"add_objects: no membrane 'nope'; membranes: \["),
        ({"add_objects": {"m0": "a^x"}}, r"add_objects\['m0'\].*symbol\^count"),
        ({"structure": {"id": "s", "type": "skin", "children": [
            {"id": "c", "rules": ["a -> b", "a b"]}]}},
         r"structure\.children\[0\]\.rules\[1\]: rule: expected text like 'a b -> c'"),
        ({"structure": {"id": "s", "type": "leaf"}},
         "structure: skin: expected the outermost membrane to have type skin"),
        ({"structure": {"id": "s", "type": "skin", "children": [{"id": "s"}]}},
         "structure: id: expected unique membrane ids"),
        ({"structure": {"id": "s", "type": "skin", "children": [{"id": "c", "objects": "a^2",
                                                                 "rules": ["a -> a^10"]}]},
          "steps": 20}, "past the limits of 256 membranes and 100000 objects"),
        ({"structure": {"id": "s", "type": "skin", "children": [{"id": "c", "objects": "a",
                                                                 "rules": ["a -> [a][a]"]}]},
          "steps": 20}, "after step 8 the system holds 257 membranes"),
        ({"structure": {"id": "s", "type": "skin", "rules": ["a -> a"],
                        "objects": {"a": 100000}}, "steps": 11},
         "step 11 would take the run past 1000000 object-steps"),
    ]
    for payload, message in cases:
        with pytest.raises(ValueError, match=message):
            run(payload, state, engines)
        assert codec.encode(state) == before


def nested(depth):
    spec = {"id": f"d{depth}"}
    for k in range(depth - 1, 0, -1):
        spec = {"id": f"d{k}", "children": [spec]}
    spec["type"] = "skin"
    return spec


@pytest.mark.parametrize("payload, message", [
    ({"steps": MAX_EVOLUTION_STEPS + 1}, "less than or equal"),
    ({"steps": -1}, "greater than or equal to 0"),
    ({"seed": -1}, "greater than or equal to 0"),
    ({"default_depth": 6}, "less than or equal to 5"),
    ({"structure": {"id": "s", "type": "cytoplasm"}}, "Input should be 'skin'"),
    ({"structure": {"id": "s", "type": "skin", "objects": {"a": -1}}}, "greater than or equal"),
    ({"structure": {"id": "s", "type": "skin", "children": [{"id": f"c{k}"} for k in range(17)]}},
     "at most 16"),
    ({"structure": {"id": "s", "type": "skin", "children": [
        {"id": f"c{k}", "children": [{"id": f"c{k}.{j}"} for j in range(8)]} for k in range(8)]}},
     f"at most {MAX_MEMBRANES} membranes"),
    ({"structure": nested(MAX_STRUCTURE_DEPTH + 1)}, f"nested at most {MAX_STRUCTURE_DEPTH} deep"),
    ({"structure": {"id": "s", "type": "skin", "rules": [{"rule": "a -> b", "priority": 1.5}]}},
     "valid integer"),
    ({"steps": 1, "speed": "fast"}, "Extra inputs are not permitted"),
])
def test_bad_input(engines, payload, message):
    with pytest.raises(ValidationError, match=message):
        run(payload, {}, engines)


def test_default_system_helper():
    system = default_system(2, seed=3)
    assert [m.id for m in system.membranes()] == ["skin", "m0", "m1"]
    assert system.seed == 3
