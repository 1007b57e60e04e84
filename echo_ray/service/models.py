"""The request and response models of the cognitive API (what /openapi.json documents)."""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from echo_ray.cognitive import PROCESSORS
from echo_ray.cognitive.models import MemoryRequest

TYPES = tuple(PROCESSORS)
ProcessingType = Literal["memory", "reasoning", "grammar", "agent_evaluation", "multi_modal",
                         "membrane_evolution"]
SESSION_ID = Field(None, pattern=r"^[0-9a-f]{32}$", description="from POST /v1/sessions")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cache: bool = Field(True, description="use the result cache for this request")


class ProcessRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str | None = SESSION_ID
    type: ProcessingType
    input: dict[str, Any]
    options: Options | None = None


class MemoryLookup(BaseModel):
    """Query string of GET /v1/memory: a memory retrieve without a body (`vector` is given
    once per component). The retrieve's own limits apply, as on POST."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = None
    vector: list[float] | None = None
    k: int = MemoryRequest.model_fields["k"].default
    session_id: str | None = SESSION_ID
    cache: bool = Options.model_fields["cache"]


class ProcessResponse(BaseModel):
    type: str
    session_id: str | None
    session_version: int | None
    cached: bool
    result: dict[str, Any]


class SessionInfo(BaseModel):
    session_id: str
    version: int
    created: float
    updated: float
    expires: float


@functools.cache
def typed_request(kind: str) -> type[BaseModel]:
    """Body of POST /v1/{kind}: {session_id?, input: <the type's own request model>,
    options?}. Built on first use (one class per type and process)."""
    return create_model(f"{kind.title().replace('_', '')}Call",
                        __config__=ConfigDict(extra="forbid"),
                        session_id=(str | None, SESSION_ID),
                        input=(PROCESSORS[kind].request_model, ...),
                        options=(Options | None, None))
