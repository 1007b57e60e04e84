"""The six cognitive processing types, as pure functions over plain-data session state.

No Ray, no HTTP: the served app wraps these. One call does everything:

    outcome = process(type, payload, state, engines)

- `payload` is the request body for the type (validated with its pydantic model; a
  `pydantic.ValidationError` propagates for the caller to answer 422);
- `state` is the session's plain-data dict (str keys, lists, numbers, numpy arrays: what
  `echo_ray.cache.codec` encodes); each type keeps its part under its own key (`state_key`)
  and the dict is updated only after the request succeeded;
- `engines(spec) -> Engine` returns the DTESN engine for a `TreeSpec` (cache one per
  `encoding.spec_key(spec)`; `LocalEngines` does so in-process, the app with `DTESNSystem`);
- semantic errors (wrong dimension, untrained readout, unknown membrane, ...) raise ValueError;
- `outcome.result` is the JSON-able result and `outcome.changed` says whether `state` changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from echo_ray.dtesn.engine import Engine
from echo_ray.dtesn.membrane_tree import TreeSpec

from . import agents, evolution, grammar, memory, multimodal, reasoning
from . import models as m
from .encoding import LocalEngines, spec_key

EngineFactory = Callable[[TreeSpec], Engine]


@dataclass(frozen=True)
class Processor:
    name: str
    request_model: type[m.Request]
    result_model: type[m.Result]
    state_key: str | None  # where the type keeps its session state (None: stateless)
    specs: Callable[[Any], list[TreeSpec]]  # engine specs a validated request will use
    handle: Callable[[Any, dict | None, EngineFactory], tuple[m.Result, dict | None]]


PROCESSORS: dict[str, Processor] = {
    "memory": Processor("memory", m.MemoryRequest, m.MemoryResult, memory.KEY,
                        lambda req: [memory.engine_spec()], memory.handle),
    "reasoning": Processor("reasoning", m.ReasoningRequest, m.ReasoningResult, None,
                           lambda req: [reasoning.engine_spec()], reasoning.handle),
    "grammar": Processor("grammar", m.GrammarRequest, m.GrammarResult, grammar.KEY,
                         lambda req: [grammar.engine_spec()], grammar.handle),
    "agent_evaluation": Processor("agent_evaluation", m.AgentEvaluationRequest,
                                  m.AgentEvaluationResult, agents.KEY,
                                  lambda req: [agents.engine_spec()], agents.handle),
    "multi_modal": Processor("multi_modal", m.MultiModalRequest, m.MultiModalResult,
                             multimodal.KEY,
                             lambda req: [multimodal.engine_spec(len(req.samples[0]))],
                             multimodal.handle),
    "membrane_evolution": Processor("membrane_evolution", m.MembraneEvolutionRequest,
                                    m.MembraneEvolutionResult, evolution.KEY,
                                    lambda req: [], evolution.handle),
}


class Outcome(NamedTuple):
    result: dict
    changed: bool


def processor(type: str) -> Processor:
    if type not in PROCESSORS:
        raise ValueError(f"type: unknown processing type {type!r}; expected one of "
                         f"{', '.join(PROCESSORS)}")
    return PROCESSORS[type]


def validate(type: str, payload: Any) -> m.Request:
    """The validated request model (raises ValueError for an unknown type, pydantic's
    ValidationError for a bad payload)."""
    return processor(type).request_model.model_validate(payload)


def canonical(type: str, payload: Any) -> str:
    """Canonical JSON of a validated payload (defaults filled in, keys sorted): equal for
    requests that mean the same thing, so it can key a result cache."""
    req = validate(type, payload)
    return json.dumps({"type": type, "input": req.model_dump(mode="json")}, sort_keys=True,
                      separators=(",", ":"))


def process(type: str, payload: Any, state: dict, engines: EngineFactory) -> Outcome:
    """Run one request; see the module docstring."""
    proc = processor(type)
    req = proc.request_model.model_validate(payload)
    current = state.get(proc.state_key) if proc.state_key else None
    result, new = proc.handle(req, current, engines)
    if new is not None and proc.state_key:
        state[proc.state_key] = new
    return Outcome(result.model_dump(mode="json"), new is not None)


def default_specs() -> list[TreeSpec]:
    """Every engine spec the processors can ask for (to create engines up front)."""
    return [memory.engine_spec(), reasoning.engine_spec(), grammar.engine_spec(),
            agents.engine_spec()] + [multimodal.engine_spec(k)
                                     for k in range(1, m.MAX_MODALITIES + 1)]


__all__ = ["PROCESSORS", "Processor", "Outcome", "EngineFactory", "LocalEngines", "process",
           "processor", "validate", "canonical", "default_specs", "spec_key"]
