"""P-system (membrane computing) engine: nested membranes rewriting multisets of symbols.

Why: the DTESN reservoir tree (skin > root > trunk > branch > leaf > terminal) is organised as a
membrane structure; this module gives that tree executable P-system semantics that are
deterministic for a seed and checkpointable as plain JSON-able dicts. Pure Python, no Ray.

One `PSystem.step()`:

1. Each membrane chooses rule applications from the objects it holds at the start of the step.
   Priorities are *strong*: only the applicable rules with the highest priority among the
   applicable ones may be used; lower ones are blocked for the whole step, even if objects are
   left over. Equal priorities compete.
2. Choice is maximally parallel: applications are added one at a time, each picking uniformly
   (seeded numpy Generator) among the allowed rules whose left-hand side still fits the objects
   not yet consumed, until none fits. At most one dissolution or division per membrane per step.
3. Products are delivered after every membrane has chosen, so they are usable next step:
   evolution in place, communication `out` to the parent (the `environment` for the skin) or
   `in` to a named child (or to a child picked by the RNG per application).
4. Structural actions run innermost first: a dissolving membrane's objects and children move to
   its parent; a dividing membrane (elementary ones only) becomes two copies with fresh ids
   `<id>.0`, `<id>.1`, each holding the contents plus its own products.

Rule text (`Rule.parse`): multisets are space-separated symbols, `a^3` meaning three copies.
  "a b^2 -> c"    evolution          "a -> b @out"      communication to the parent
  "a -> b @in"    to any child       "a -> b @in:m2"    to child m2
  "a -> b @dissolve"  dissolution    "a -> [b][c]"      division (products per copy)
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

import numpy as np

_RESERVED_CHARS = set("@[]^")
_DIVISION_RHS = re.compile(r"^\[([^\[\]]*)\]\s*\[([^\[\]]*)\]$")


class MembraneType(Enum):
    SKIN = "skin"
    ROOT = "root"
    TRUNK = "trunk"
    BRANCH = "branch"
    LEAF = "leaf"
    TERMINAL = "terminal"


class RuleKind(Enum):
    EVOLUTION = "evolution"
    COMMUNICATION = "communication"
    DISSOLUTION = "dissolution"
    DIVISION = "division"


_STRUCTURAL = (RuleKind.DISSOLUTION, RuleKind.DIVISION)


def _as_enum(enum_cls: type[Enum], value: Any, name: str) -> Any:
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        try:
            return enum_cls(value.lower())
        except ValueError:
            pass
    options = ", ".join(member.value for member in enum_cls)
    raise ValueError(f"{name}: expected one of {options}; got {value!r}")


def parse_multiset(spec: str | Mapping[str, int] | None, name: str = "multiset") -> Counter[str]:
    """Multiset from text like ``"a b^2 c"`` or a mapping symbol -> non-negative count."""
    if spec is None:
        return Counter()
    if isinstance(spec, str):
        items = []
        for token in spec.split():
            symbol, caret, count_text = token.partition("^")
            try:
                items.append((symbol, int(count_text) if caret else 1))
            except ValueError:
                raise ValueError(
                    f"{name}: expected 'symbol^count' with an integer count; got {token!r}"
                ) from None
    elif isinstance(spec, Mapping):
        items = list(spec.items())
    else:
        raise ValueError(f"{name}: expected multiset text like 'a b^2' or a mapping "
                         f"symbol -> count; got {type(spec).__name__}")
    result: Counter[str] = Counter()
    for symbol, count in items:
        if (not isinstance(symbol, str) or not symbol or "->" in symbol
                or any(c.isspace() or c in _RESERVED_CHARS for c in symbol)):
            raise ValueError(f"{name}: expected non-empty symbols without whitespace, '->' or "
                             f"any of '@[]^'; got {symbol!r}")
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"{name}: expected a non-negative integer multiplicity for "
                             f"{symbol!r}; got {count!r}")
        if count:
            result[symbol] += int(count)
    return result


def format_multiset(multiset: Mapping[str, int]) -> str:
    """Inverse of `parse_multiset` for text (sorted, so output is stable)."""
    return " ".join(s if n == 1 else f"{s}^{n}" for s, n in sorted(multiset.items()) if n > 0)


def _scaled(multiset: Counter[str], times: int) -> Counter[str]:
    return Counter({symbol: count * times for symbol, count in multiset.items()})


def _times_fitting(lhs: Counter[str], objects: Counter[str]) -> int:
    return min(objects[symbol] // count for symbol, count in lhs.items())


@dataclass(frozen=True)
class Rule:
    """One membrane rule; build it with the named constructors or `Rule.parse`.

    lhs is consumed (non-empty); rhs is produced (division: into the first copy, `second_rhs`
    into the second). Communication has `direction` "out" (parent, or environment from the skin)
    or "in" (child `target`, or a child picked by the seeded RNG when target is None).
    Higher `priority` wins (strong priority, see module doc). Treat instances as immutable.
    """

    kind: RuleKind
    lhs: Counter[str]
    rhs: Counter[str] = field(default_factory=Counter)
    priority: int = 0
    direction: str | None = None
    target: str | None = None
    second_rhs: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        kind = _as_enum(RuleKind, self.kind, "kind")
        object.__setattr__(self, "kind", kind)
        for name in ("lhs", "rhs", "second_rhs"):
            object.__setattr__(self, name, parse_multiset(getattr(self, name), name))
        if not self.lhs:
            raise ValueError("lhs: expected at least one object to consume; got an empty multiset")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ValueError(f"priority: expected an integer; got {self.priority!r}")
        if kind is RuleKind.COMMUNICATION:
            if self.direction not in ("in", "out"):
                raise ValueError(f"direction: expected 'in' or 'out' for a communication rule; "
                                 f"got {self.direction!r}")
            if self.target is not None and (self.direction == "out" or not isinstance(
                    self.target, str) or not self.target):
                raise ValueError(f"target: expected a child membrane id (non-empty string) with "
                                 f"direction 'in', or None; got {self.target!r}")
        elif self.direction is not None or self.target is not None:
            raise ValueError(f"direction/target: only communication rules take them; got "
                             f"{self.direction!r}/{self.target!r} for a {kind.value} rule")
        if self.second_rhs and kind is not RuleKind.DIVISION:
            raise ValueError(f"second_rhs: only division rules take it; got a {kind.value} rule")

    @classmethod
    def evolution(cls, lhs, rhs=None, priority: int = 0) -> Rule:
        return cls(RuleKind.EVOLUTION, lhs, rhs, priority)

    @classmethod
    def communication(cls, lhs, rhs, direction: str, target: str | None = None,
                      priority: int = 0) -> Rule:
        return cls(RuleKind.COMMUNICATION, lhs, rhs, priority, direction, target)

    @classmethod
    def dissolution(cls, lhs, rhs=None, priority: int = 0) -> Rule:
        return cls(RuleKind.DISSOLUTION, lhs, rhs, priority)

    @classmethod
    def division(cls, lhs, first=None, second=None, priority: int = 0) -> Rule:
        return cls(RuleKind.DIVISION, lhs, first, priority, second_rhs=second)

    @classmethod
    def parse(cls, text: str, priority: int = 0) -> Rule:
        """Build a rule from the text syntax in the module docstring."""
        if not isinstance(text, str) or "->" not in text:
            raise ValueError(f"rule: expected text like 'a b -> c' containing '->'; got {text!r}")
        lhs, rhs = (part.strip() for part in text.split("->", 1))
        division = _DIVISION_RHS.match(rhs)
        if division:
            return cls.division(lhs, division.group(1), division.group(2), priority)
        if "@" not in rhs:
            return cls.evolution(lhs, rhs, priority)
        products, _, tag = (part.strip() for part in rhs.partition("@"))
        if tag == "dissolve":
            return cls.dissolution(lhs, products, priority)
        if tag == "out":
            return cls.communication(lhs, products, "out", priority=priority)
        if tag == "in" or tag.startswith("in:"):
            return cls.communication(lhs, products, "in", tag[3:] if tag != "in" else None,
                                     priority)
        raise ValueError(f"rule: expected '@out', '@in', '@in:<id>' or '@dissolve'; "
                         f"got '@{tag}' in {text!r}")

    def __str__(self) -> str:
        right = [format_multiset(self.rhs)]
        if self.kind is RuleKind.DIVISION:
            right = [f"[{right[0]}][{format_multiset(self.second_rhs)}]"]
        elif self.kind is RuleKind.DISSOLUTION:
            right.append("@dissolve")
        elif self.kind is RuleKind.COMMUNICATION:
            right.append("@out" if self.direction == "out" else f"@in:{self.target}"
                         if self.target else "@in")
        return " ".join([format_multiset(self.lhs), "->", *filter(None, right)])

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind.value, "lhs": dict(sorted(self.lhs.items())),
                                "rhs": dict(sorted(self.rhs.items())), "priority": self.priority}
        if self.kind is RuleKind.COMMUNICATION:
            data.update(direction=self.direction, target=self.target)
        if self.kind is RuleKind.DIVISION:
            data["second_rhs"] = dict(sorted(self.second_rhs.items()))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        allowed = {"kind", "lhs", "rhs", "priority", "direction", "target", "second_rhs"}
        if not isinstance(data, Mapping) or not {"kind", "lhs"} <= set(data) <= allowed:
            raise ValueError(f"rule: expected a mapping with 'kind' and 'lhs' and only keys "
                             f"{sorted(allowed)}; got {data!r}")
        return cls(**data)


@dataclass(eq=False)
class Membrane:
    """A region: an id, a type, a multiset of objects, its rules and nested child membranes.

    `rules` may mix `Rule` objects and rule text (parsed with priority 0).
    """

    id: str
    type: MembraneType = MembraneType.LEAF
    objects: Counter[str] = field(default_factory=Counter)
    rules: list[Rule] = field(default_factory=list)
    children: list[Membrane] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"id: expected a non-empty string; got {self.id!r}")
        self.type = _as_enum(MembraneType, self.type, "type")
        self.objects = parse_multiset(self.objects, "objects")
        if isinstance(self.rules, (str, Rule)) or isinstance(self.children, Membrane):
            raise ValueError("rules/children: expected lists, not a single rule or membrane")
        self.rules = [Rule.parse(r) if isinstance(r, str) else r for r in self.rules]
        self.children = list(self.children)
        _check_membrane(self)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type.value,
                "objects": dict(sorted(self.objects.items())), "rule_count": len(self.rules),
                "rules": [rule.to_dict() for rule in self.rules],
                "children": [child.to_dict() for child in self.children]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Membrane:
        required = {"id", "type", "objects", "rules", "children"}
        if not isinstance(data, Mapping) or not required <= set(data):
            raise ValueError(f"membrane: expected a mapping with keys {sorted(required)}; "
                             f"got {data!r}")
        rules = [Rule.from_dict(rule) for rule in data["rules"]]
        if data.get("rule_count", len(rules)) != len(rules):
            raise ValueError(f"rule_count: expected {len(rules)} (the number of rules) for "
                             f"membrane {data['id']!r}; got {data['rule_count']!r}")
        children = [cls.from_dict(child) for child in data["children"]]
        return cls(data["id"], data["type"], data["objects"], rules, children)


def _check_membrane(membrane: Membrane) -> None:
    for rule in membrane.rules:
        if not isinstance(rule, Rule):
            raise ValueError(f"rules: expected Rule objects or rule text; got {rule!r}")
        if membrane.type is MembraneType.SKIN and rule.kind in _STRUCTURAL:
            raise ValueError(f"rules: the skin {membrane.id!r} can neither dissolve nor divide; "
                             f"got {rule.kind.value} rule '{rule}'")
    for child in membrane.children:
        if not isinstance(child, Membrane):
            raise ValueError(f"children: expected Membrane objects; got {child!r}")


class RunResult(NamedTuple):
    steps: int
    halted: bool


class PSystem:
    """A membrane structure rooted at the skin, evolved step by step with a seeded RNG."""

    def __init__(self, skin: Membrane, seed: int = 0,
                 environment: str | Mapping[str, int] | None = None) -> None:
        self._setup(skin, seed, environment)
        self.validate(check_targets=True)

    def _setup(self, skin: Membrane, seed: int, environment) -> None:
        if not isinstance(skin, Membrane):
            raise ValueError(f"skin: expected a Membrane; got {type(skin).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed: expected a non-negative integer; got {seed!r}")
        self.skin, self.seed, self.steps = skin, seed, 0
        self.environment = parse_multiset(environment, "environment")
        self._rng = np.random.default_rng(seed)

    def validate(self, check_targets: bool = True) -> None:
        """Check the structure; `check_targets` also requires `@in:<id>` to name a child."""
        if self.skin.type is not MembraneType.SKIN:
            raise ValueError(f"skin: expected the outermost membrane to have type skin; "
                             f"got {self.skin.type.value}")
        seen: set[str] = set()
        for parent, membrane in self._walk():
            if membrane.id in seen:
                raise ValueError(f"id: expected unique membrane ids; {membrane.id!r} repeats")
            seen.add(membrane.id)
            if parent is not None and membrane.type is MembraneType.SKIN:
                raise ValueError(f"type: only the outermost membrane may be skin; "
                                 f"{membrane.id!r} is nested")
            _check_membrane(membrane)
            child_ids = sorted(child.id for child in membrane.children)
            for rule in membrane.rules:
                if check_targets and rule.target is not None and rule.target not in child_ids:
                    raise ValueError(f"target: rule '{rule}' in membrane {membrane.id!r} "
                                     f"expected one of its child ids {child_ids}; "
                                     f"got {rule.target!r}")

    def _walk(self) -> Iterator[tuple[Membrane | None, Membrane]]:
        """(parent, membrane) pairs in pre-order; the skin's parent is None."""
        stack: list[tuple[Membrane | None, Membrane]] = [(None, self.skin)]
        while stack:
            parent, membrane = stack.pop()
            yield parent, membrane
            stack.extend((membrane, child) for child in reversed(membrane.children))

    def membranes(self) -> Iterator[Membrane]:
        """All membranes, skin first (pre-order)."""
        return (membrane for _, membrane in self._walk())

    def find(self, membrane_id: str) -> Membrane | None:
        return next((m for m in self.membranes() if m.id == membrane_id), None)

    @property
    def halted(self) -> bool:
        """True when no rule is applicable in any membrane."""
        return not any(_applicable(rule, m) for m in self.membranes() for rule in m.rules)

    def step(self) -> bool:
        """Run one maximally parallel step; returns whether any rule was applied."""
        order = list(self._walk())
        deliveries: list[tuple[Membrane | None, Counter[str]]] = []
        structural: dict[int, Rule] = {}
        applied = False
        for parent, membrane in order:
            for rule, times in self._choose(membrane):
                applied = True
                products = _scaled(rule.rhs, times)
                if rule.kind in (RuleKind.EVOLUTION, RuleKind.DISSOLUTION):
                    deliveries.append((membrane, products))
                elif rule.kind is RuleKind.COMMUNICATION and rule.direction == "out":
                    deliveries.append((parent, products))
                elif rule.kind is RuleKind.COMMUNICATION:
                    deliveries.extend(self._inbound(membrane, rule, times))
                if rule.kind in _STRUCTURAL:
                    structural[id(membrane)] = rule
        for destination, products in deliveries:
            (self.environment if destination is None else destination.objects).update(products)
        taken = {membrane.id for _, membrane in order}
        for parent, membrane in reversed(order):  # descendants before their ancestors
            change = structural.get(id(membrane))
            if change is None or parent is None:
                continue
            index = next(i for i, c in enumerate(parent.children) if c is membrane)
            if change.kind is RuleKind.DISSOLUTION:
                parent.objects.update(membrane.objects)
                parent.children[index:index + 1] = membrane.children
            else:
                parent.children[index:index + 1] = [
                    Membrane(_fresh_id(membrane.id, taken), membrane.type,
                             membrane.objects + extra, list(membrane.rules))
                    for extra in (change.rhs, change.second_rhs)]
        self.steps += applied
        return applied

    def _choose(self, membrane: Membrane) -> list[tuple[Rule, int]]:
        """Pick a maximal multiset of rule applications and consume their left-hand sides."""
        applicable = [rule for rule in membrane.rules if _applicable(rule, membrane)]
        if not applicable:
            return []
        top = max(rule.priority for rule in applicable)
        allowed = [rule for rule in applicable if rule.priority == top]
        counts = [0] * len(allowed)
        objects, structural_used = membrane.objects, False
        while True:
            live = [i for i, rule in enumerate(allowed)
                    if not (structural_used and rule.kind in _STRUCTURAL)
                    and _times_fitting(rule.lhs, objects) > 0]
            if not live:
                break
            pick = live[0] if len(live) == 1 else live[int(self._rng.integers(len(live)))]
            rule = allowed[pick]
            times = 1 if len(live) > 1 or rule.kind in _STRUCTURAL else \
                _times_fitting(rule.lhs, objects)  # a lone rule takes everything at once
            objects -= _scaled(rule.lhs, times)
            counts[pick] += times
            structural_used = structural_used or rule.kind in _STRUCTURAL
        return [(rule, n) for rule, n in zip(allowed, counts, strict=True) if n]

    def _inbound(self, membrane: Membrane, rule: Rule,
                 times: int) -> list[tuple[Membrane, Counter[str]]]:
        if rule.target is not None:
            child = next(c for c in membrane.children if c.id == rule.target)
            return [(child, _scaled(rule.rhs, times))]
        picks = np.bincount(self._rng.integers(len(membrane.children), size=times),
                            minlength=len(membrane.children))
        return [(child, _scaled(rule.rhs, int(n)))
                for child, n in zip(membrane.children, picks, strict=True) if n]

    def run(self, max_steps: int) -> RunResult:
        """Step until halted or `max_steps` steps were applied."""
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0:
            raise ValueError(f"max_steps: expected a non-negative integer; got {max_steps!r}")
        for done in range(max_steps):
            if not self.step():
                return RunResult(done, True)
        return RunResult(max_steps, self.halted)

    def snapshot(self) -> dict[str, Any]:
        """Plain JSON-able state, including the RNG position so a restore continues identically."""
        return {"seed": self.seed, "steps": self.steps,
                "environment": dict(sorted(self.environment.items())),
                "rng_state": _encode_rng(self._rng), "skin": self.skin.to_dict()}

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> PSystem:
        required = {"seed", "steps", "environment", "rng_state", "skin"}
        if not isinstance(data, Mapping) or not required <= set(data):
            got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"snapshot: expected a mapping with keys {sorted(required)}; "
                             f"got {got}")
        system = cls.__new__(cls)
        system._setup(Membrane.from_dict(data["skin"]), data["seed"], data["environment"])
        system.validate(check_targets=False)  # a division may have legitimately renamed a target
        steps = data["steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps: expected a non-negative integer; got {steps!r}")
        system.steps = steps
        try:
            system._rng.bit_generator.state = _decode_rng(data["rng_state"])
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"rng_state: expected a PCG64 state as written by snapshot(); got "
                             f"{data['rng_state']!r} ({exc})") from None
        return system


def _applicable(rule: Rule, membrane: Membrane) -> bool:
    if _times_fitting(rule.lhs, membrane.objects) == 0:
        return False
    if rule.kind is RuleKind.COMMUNICATION and rule.direction == "in":
        return any(rule.target in (None, child.id) for child in membrane.children)
    if rule.kind in _STRUCTURAL:
        return membrane.type is not MembraneType.SKIN and (
            rule.kind is RuleKind.DISSOLUTION or not membrane.children)
    return True


def _fresh_id(base: str, taken: set[str]) -> str:
    new_id = next(f"{base}.{k}" for k in itertools.count() if f"{base}.{k}" not in taken)
    taken.add(new_id)
    return new_id


def _encode_rng(rng: np.random.Generator) -> dict[str, Any]:
    """PCG64 state with its 128-bit integers as hex text, so msgpack and JSON both carry it."""
    state = rng.bit_generator.state
    return {"bit_generator": state["bit_generator"], "state": f"{state['state']['state']:x}",
            "inc": f"{state['state']['inc']:x}", "has_uint32": state["has_uint32"],
            "uinteger": state["uinteger"]}


def _decode_rng(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"bit_generator": data["bit_generator"], "has_uint32": data["has_uint32"],
            "uinteger": data["uinteger"],
            "state": {"state": int(data["state"], 16), "inc": int(data["inc"], 16)}}
