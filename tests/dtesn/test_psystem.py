"""Semantics of the P-system engine: rule kinds, priorities, maximal parallelism, checkpoints."""

from __future__ import annotations

import json
import re
from collections import Counter

import msgpack
import pytest

from echo_ray.dtesn.psystem import Membrane, MembraneType, PSystem, Rule, RuleKind


def single(objects, rules, seed=0) -> PSystem:
    """A system whose skin holds the objects and rules under test."""
    return PSystem(Membrane("skin", "skin", objects, rules), seed=seed)


def square_system() -> Membrane:
    """Păun's n^2 generator, with the f-timer in its own membrane so that the integer
    (total-order) strong priorities need not block the e-producing rule d -> d e.

    Membrane 3 grows a^1 -> b^n (n chosen by the RNG) while doubling f to f^(2^n), then
    dissolves into t. t sends the b's to membrane 2 and halves f each step; when one f is left it
    signals g, which dissolves 2. Meanwhile 2 turns each b into d and every d emits one e per
    step for exactly n steps, so e = n^2 = d^2; the skin sends the e's to the environment.
    """
    m3 = Membrane("3", "leaf", "a f", ["a -> a b", "a -> b @dissolve", "f -> f f"])
    timer = Membrane("t", "branch", None, [Rule.parse("f f -> f", priority=1),
                                           Rule.parse("f -> g @out"),
                                           Rule.parse("b -> b @out", priority=1)], [m3])
    m2 = Membrane("2", "trunk", None, ["b -> d", "d -> d e", "g -> @dissolve"], [timer])
    return Membrane("skin", "skin", None, ["e -> e @out"], [m2])


# -- rule kinds -------------------------------------------------------------------------------

def test_evolution_rewrites_in_place_as_often_as_objects_allow():
    system = single("a^3 b", ["a b -> c^2"])
    assert system.step() is True
    assert system.skin.objects == Counter(a=2, c=2)
    assert system.steps == 1


def test_products_are_only_available_in_the_next_step():
    system = single("a^3", ["a -> b", "b -> c"])
    system.step()
    assert system.skin.objects == Counter(b=3)
    system.step()
    assert system.skin.objects == Counter(c=3)


def test_communication_out_reaches_parent_and_skin_out_reaches_environment():
    child = Membrane("c", "leaf", "a^2", ["a -> b @out"])
    system = PSystem(Membrane("skin", "skin", "x", ["x -> y @out"], [child]))
    system.step()
    assert system.skin.objects == Counter(b=2)
    assert system.find("c").objects == Counter()
    assert system.environment == Counter(y=1)


def test_communication_in_to_named_child_and_to_any_child():
    kids = [Membrane("k1", "leaf"), Membrane("k2", "leaf")]
    system = PSystem(Membrane("skin", "skin", "a^4 z^60", ["a -> b @in:k2", "z -> w @in"], kids))
    system.step()
    k1, k2 = system.find("k1").objects, system.find("k2").objects
    assert k1["b"] == 0 and k2["b"] == 4
    assert k1["w"] + k2["w"] == 60 and k1["w"] > 0 and k2["w"] > 0
    assert system.skin.objects == Counter()


def test_dissolution_moves_objects_and_children_to_parent_and_drops_rules():
    inner = Membrane("g", "terminal", "q")
    middle = Membrane("m", "branch", "x p^2", ["x -> y @dissolve", "p -> r"], [inner])
    system = PSystem(Membrane("skin", "skin", "s", [], [middle]))
    system.step()
    assert system.find("m") is None
    assert [c.id for c in system.skin.children] == ["g"]
    assert system.skin.objects == Counter(s=1, y=1, r=2)
    assert system.run(5) == (0, True)  # m's rules left with it


def test_division_yields_two_copies_with_their_own_products():
    cell = Membrane("m", "leaf", "a x^3", ["a -> [b][c]", "x -> y"])
    system = PSystem(Membrane("skin", "skin", None, [], [cell]))
    system.step()
    first, second = system.skin.children
    assert (first.id, second.id) == ("m.0", "m.1")
    assert first.objects == Counter(b=1, y=3) and second.objects == Counter(c=1, y=3)
    assert first.type is second.type is MembraneType.LEAF
    assert len(first.rules) == len(second.rules) == 2


def test_division_at_most_once_per_membrane_per_step_and_repeats_exponentially():
    cell = Membrane("m", "leaf", "a^2", ["a -> [][]"])
    system = PSystem(Membrane("skin", "skin", None, [], [cell]))
    system.step()
    assert [c.objects for c in system.skin.children] == [Counter(a=1), Counter(a=1)]
    assert system.run(10) == (1, True)
    assert sorted(c.id for c in system.skin.children) == ["m.0.0", "m.0.1", "m.1.0", "m.1.1"]


def test_non_elementary_membrane_does_not_divide():
    cell = Membrane("m", "branch", "a", ["a -> [b][c]"], [Membrane("k", "leaf")])
    system = PSystem(Membrane("skin", "skin", None, [], [cell]))
    assert system.halted and system.step() is False


# -- priorities and maximal parallelism -------------------------------------------------------

def test_strong_priority_blocks_lower_rules_even_on_other_objects():
    system = single("a^3 b^2", [Rule.parse("b b -> y", priority=1), "a -> z"])
    system.step()
    assert system.skin.objects == Counter(a=3, y=1)  # a -> z blocked while b b -> y applies
    system.step()
    assert system.skin.objects == Counter(y=1, z=3)


@pytest.mark.parametrize("n, expected_env", [(6, Counter()), (7, Counter(odd=1))])
def test_parity_with_priorities(n, expected_env):
    system = single(f"a^{n}", [Rule.parse("a a -> ", priority=1), "a -> odd @out"])
    system.run(10)
    assert system.environment == expected_env and system.halted


def test_maximal_parallelism_single_rule():
    system = single("a^5", ["a -> b"])
    assert system.run(1) == (1, True)
    assert system.skin.objects == Counter(b=5)


def test_competing_rules_split_but_use_every_object():
    system = single("a^100", ["a -> b", "a -> c"])
    system.step()
    objects = system.skin.objects
    assert objects["a"] == 0 and objects["b"] + objects["c"] == 100
    assert objects["b"] > 0 and objects["c"] > 0


@pytest.mark.parametrize("n", [0, 1, 2, 7, 10, 31])
def test_halving_computes_floor_n_over_2(n):
    system = single(f"a^{n}", ["a a -> b"])
    system.run(10)
    assert system.skin.objects == Counter(b=n // 2, a=n % 2)


def test_classic_n_squared_generator():
    seen = set()
    for seed in range(16):
        system = PSystem(square_system(), seed=seed)
        steps, halted = system.run(500)
        n = system.skin.objects["d"]
        assert halted and n >= 1
        assert system.environment == Counter(e=n * n)
        assert steps == 2 * n + 3
        assert [m.id for m in system.membranes()] == ["skin", "t"]
        seen.add(n)
    assert len(seen) >= 2


# -- determinism, halting, checkpoints --------------------------------------------------------

def split_after_one_step(seed: int) -> int:
    system = single("a^40", ["a -> b", "a -> c", "a -> @out"], seed=seed)
    system.step()
    return system.skin.objects["b"]


def test_same_seed_same_run_and_different_seeds_differ():
    assert split_after_one_step(7) == split_after_one_step(7)
    assert len({split_after_one_step(seed) for seed in range(6)}) > 1
    runs = [PSystem(square_system(), seed=3) for _ in range(2)]
    for system in runs:
        system.run(500)
    assert runs[0].snapshot() == runs[1].snapshot()


def test_halting_and_max_steps():
    system = single("a", ["a -> b", "b -> c", "c -> d"])
    assert system.run(2) == (2, False)
    assert system.run(10) == (1, True)
    assert system.halted and system.step() is False and system.steps == 3


def test_membranes_find_and_snapshot_shape():
    system = PSystem(square_system(), seed=0)
    assert [m.id for m in system.membranes()] == ["skin", "2", "t", "3"]
    assert system.find("t").type is MembraneType.BRANCH and system.find("nope") is None
    skin = system.snapshot()["skin"]
    assert skin["id"] == "skin" and skin["type"] == "skin" and skin["rule_count"] == 1
    assert skin["children"][0]["children"][0]["children"][0]["objects"] == {"a": 1, "f": 1}


def test_snapshot_round_trip_through_json_and_msgpack_continues_identically():
    kids = [Membrane("k1", "leaf", "a", ["a -> [a][b]"]), Membrane("k2", "leaf")]
    rules = ["x -> x y @in:k1", "x -> x z @in", "y -> @out"]
    original = PSystem(Membrane("skin", "skin", "x", rules, kids), seed=11)
    original.run(3)  # k1 divided: the 'in:k1' target no longer exists
    assert msgpack.unpackb(msgpack.packb(original.snapshot())) == original.snapshot()
    data = json.loads(json.dumps(original.snapshot()))
    restored = PSystem.from_snapshot(data)
    assert restored.snapshot() == original.snapshot()
    for _ in range(4):
        assert original.step() == restored.step()
        assert restored.snapshot() == original.snapshot()


def test_rule_text_and_dict_round_trip():
    for text in ["a b^2 -> c", "a -> b @out", "a -> @in", "a -> b c @in:m2", "a -> b @dissolve",
                 "a -> [b][c^2]", "a^2 ->"]:
        rule = Rule.parse(text, priority=3)
        assert str(rule) == text
        assert Rule.parse(str(rule), priority=3) == rule == Rule.from_dict(rule.to_dict())
    assert Rule.evolution({"a": 1}, Counter(b=2)) == Rule.parse("a -> b^2")
    assert Rule.parse("a -> [b][c]").kind is RuleKind.DIVISION


# -- bad input --------------------------------------------------------------------------------

def bad_rule_count():
    data = Membrane("skin", "skin", None, ["a -> b"]).to_dict()
    data["rule_count"] = 2
    return Membrane.from_dict(data)


def skin_division_added_later():
    system = single("a", [])
    system.skin.rules.append(Rule.parse("a -> [b][c]"))
    system.validate()


@pytest.mark.parametrize("make, message", [
    (lambda: Rule.evolution("", "b"), "lhs: expected at least one object"),
    (lambda: Rule.evolution({"a": -1}, "b"), "non-negative integer multiplicity"),
    (lambda: Rule.parse("a^-2 -> b"), "non-negative integer multiplicity"),
    (lambda: Rule.parse("a^x -> b"), "integer count"),
    (lambda: Rule(kind="teleport", lhs="a"), "kind: expected one of evolution"),
    (lambda: Rule.from_dict({"kind": "teleport", "lhs": {"a": 1}}), "kind: expected"),
    (lambda: Rule.from_dict({"kind": "evolution", "lhs": {"a": 1}, "to": 1}), "only keys"),
    (lambda: Rule.parse("a b"), "containing '->'"),
    (lambda: Rule.parse("a -> b @sideways"), "'@out', '@in'"),
    (lambda: Rule.parse("a -> b @in:"), "target: expected a child membrane id"),
    (lambda: Rule.communication("a", "b", "up"), "direction: expected 'in' or 'out'"),
    (lambda: Rule.communication("a", "b", "out", target="m"), "target: expected"),
    (lambda: Rule.evolution("a", "b", priority=1.5), "priority: expected an integer"),
    (lambda: single("a", ["a -> b @in:nope"]), "target: rule 'a -> b @in:nope' in membrane"),
    (lambda: Membrane("s", "skin", rules=["a -> @dissolve"]), "skin 's' can neither dissolve"),
    (skin_division_added_later, "skin 'skin' can neither dissolve nor divide"),
    (lambda: PSystem(Membrane("x", "leaf")), "skin: expected the outermost membrane"),
    (lambda: PSystem(Membrane("s", "skin", children=[Membrane("s", "skin")])), "unique"),
    (lambda: PSystem(Membrane("s", "skin", children=[Membrane("t", "skin")])), "only the outer"),
    (lambda: Membrane("", "leaf"), "id: expected a non-empty string"),
    (lambda: Membrane("m", "cell"), "type: expected one of skin, root"),
    (lambda: Membrane("m", "leaf", {"a b": 1}), "objects: expected non-empty symbols"),
    (lambda: Membrane("m", "leaf", rules="a -> b"), "rules/children: expected lists"),
    (lambda: single("a", [], seed=-1), "seed: expected a non-negative integer"),
    (lambda: single("a", []).run(-1), "max_steps: expected a non-negative integer"),
    (lambda: PSystem.from_snapshot({"seed": 0}), "snapshot: expected a mapping with keys"),
    (bad_rule_count, "rule_count: expected 1"),
    (lambda: PSystem.from_snapshot({**single("a", []).snapshot(), "rng_state": {}}),
     "rng_state: expected a PCG64 state"),
])
def test_bad_input_raises_value_error_naming_the_argument(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()
