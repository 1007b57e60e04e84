"""Membrane evolution: run the session's P system (echo_ray.dtesn.psystem) for N steps.

The system comes from the request's `structure` (replacing any stored one), else the session's
snapshot, else a default built from the DTESN tree shape (`TreeSpec.from_depth`): a skin around
the membrane tree, with kinds root/trunk/branch/leaf as in `MembraneTree.kind`, where every leaf
starts with `s^4` and sends each `s` up as a charge `c` ("s -> c @out"), inner membranes merge
charge pairs and pass them up ("c^2 -> c @out") and the root stores what reaches it ("c -> r").

Runs are deterministic for the seed (the RNG position is in the snapshot). A run that would grow
past MAX_MEMBRANES_RUNNING membranes or MAX_OBJECTS_RUNNING objects, or past MAX_EVOLUTION_WORK
object-steps (a step's cost grows with the objects it chooses among), fails with a ValueError
and stores nothing. Session state: the `PSystem.snapshot()` dict.
"""

from __future__ import annotations

from echo_ray.dtesn.membrane_tree import MembraneTree, TreeSpec
from echo_ray.dtesn.psystem import Membrane, MembraneType, PSystem, Rule, parse_multiset

from .models import (
    MAX_EVOLUTION_WORK,
    MAX_MEMBRANES_RUNNING,
    MAX_OBJECTS_RUNNING,
    MembraneEvolutionRequest,
    MembraneEvolutionResult,
    MembraneSpec,
    MembraneView,
)

KEY = "membrane_evolution"


def default_system(depth: int = 3, seed: int = 0) -> PSystem:
    """The charge-aggregation system on the DTESN tree shape of `depth` levels."""
    tree = MembraneTree(TreeSpec.from_depth(depth), members=[])  # shape only

    def build(i: int) -> Membrane:
        kind = tree.kind[i]
        if not tree.children[i]:
            objects, rules = {"s": 4}, ["s -> c @out"]
        elif i == 0:
            objects, rules = {}, ["c -> r"]
        else:
            objects, rules = {}, ["c^2 -> c @out"]
        return Membrane(f"m{i}", MembraneType(kind), parse_multiset(objects),
                        [Rule.parse(r) for r in rules], [build(c) for c in tree.children[i]])

    return PSystem(Membrane("skin", MembraneType.SKIN, children=[build(0)]), seed=seed)


def _membrane(spec: MembraneSpec, where: str) -> Membrane:
    rules = []
    for k, r in enumerate(spec.rules):
        text, priority = (r, 0) if isinstance(r, str) else (r.rule, r.priority)
        try:
            rules.append(Rule.parse(text, priority))
        except ValueError as exc:
            raise ValueError(f"{where}.rules[{k}]: {exc}") from None
    try:
        objects = parse_multiset(spec.objects, f"{where}.objects")
        children = [_membrane(c, f"{where}.children[{k}]") for k, c in enumerate(spec.children)]
        return Membrane(spec.id, MembraneType(spec.type), objects, rules, children)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _system(req: MembraneEvolutionRequest, state: dict | None) -> tuple[PSystem, bool]:
    """The system to run and whether it is new (not the stored one)."""
    if req.structure is not None:
        try:
            return PSystem(_membrane(req.structure, "structure"), seed=req.seed), True
        except ValueError as exc:
            msg = str(exc)
            raise ValueError(msg if msg.startswith("structure") else f"structure: {msg}") from None
    if state and not req.reset:
        return PSystem.from_snapshot(state), False
    return default_system(req.default_depth, req.seed), True


def handle(req: MembraneEvolutionRequest, state: dict | None,
           engines) -> tuple[MembraneEvolutionResult, dict | None]:
    system, new = _system(req, state)  # a fresh object: the stored snapshot is never touched
    for membrane_id, objects in req.add_objects.items():
        target = system.find(membrane_id)
        if target is None:
            ids = sorted(m.id for m in system.membranes())
            raise ValueError(f"add_objects: no membrane {membrane_id!r}; membranes: {ids}")
        target.objects.update(parse_multiset(objects, f"add_objects[{membrane_id!r}]"))
    work = _check_limits(system, 0)
    run, total_work = 0, 0
    halted = system.halted
    while run < req.steps and not halted:
        total_work += work
        if total_work > MAX_EVOLUTION_WORK:
            raise ValueError(f"steps: step {run + 1} would take the run past "
                             f"{MAX_EVOLUTION_WORK} object-steps (objects held, summed over "
                             f"steps); run fewer steps or start with fewer objects. Nothing "
                             f"was stored")
        halted = not system.step()
        if not halted:
            run += 1
            work = _check_limits(system, run)
    halted = halted or system.halted
    changed = new or run > 0 or bool(req.add_objects)
    return _result(system, run, halted), (system.snapshot() if changed else None)


def _check_limits(system: PSystem, step: int) -> int:
    """Raise past the size limits; return the objects the membranes hold (a step's work)."""
    membranes = list(system.membranes())
    held = sum(sum(m.objects.values()) for m in membranes)
    objects = held + sum(system.environment.values())
    if len(membranes) > MAX_MEMBRANES_RUNNING or objects > MAX_OBJECTS_RUNNING:
        raise ValueError(f"steps: after step {step} the system holds {len(membranes)} membranes "
                         f"and {objects} objects, past the limits of {MAX_MEMBRANES_RUNNING} "
                         f"membranes and {MAX_OBJECTS_RUNNING} objects; nothing was stored")
    return held


def _result(system: PSystem, run: int, halted: bool) -> MembraneEvolutionResult:
    views = []

    def walk(m: Membrane, parent: str | None, depth: int) -> None:
        views.append(MembraneView(id=m.id, type=m.type.value, parent=parent, depth=depth,
                                  objects=dict(sorted(m.objects.items())),
                                  rules=[f"{r} (priority {r.priority})" if r.priority else str(r)
                                         for r in m.rules]))
        for c in m.children:
            walk(c, m.id, depth + 1)

    walk(system.skin, None, 0)
    return MembraneEvolutionResult(steps_run=run, halted=halted, total_steps=system.steps,
                                   environment=dict(sorted(system.environment.items())),
                                   membranes=views, structure=system.skin.to_dict())
