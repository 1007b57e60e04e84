"""Request and result models of the six cognitive processing types, with their size limits.

Requests reject unknown fields, NaN and infinities, and anything above the limits below, so a
request that validates is bounded in work and memory; pydantic's ValidationError is the
"malformed input" error (HTTP 422). Semantic problems found later (a vector whose dimension does
not match what the session stores, an untrained readout) raise ValueError in the processors.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# -- limits ----------------------------------------------------------------------------------
MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 256
MAX_VECTOR_DIM = 1024
MAX_METADATA_KEYS = 32
MAX_METADATA_CHARS = 1024
MAX_ITEMS_PER_REQUEST = 1000
MAX_MEMORY_ITEMS = 10_000  # per session
MAX_K = 100
MIN_SERIES = 30
MAX_SERIES = 10_000
MAX_HORIZON = 500
MAX_GRAMMAR_STRINGS = 2000
MAX_GRAMMAR_CHARS = 200
MAX_ALPHABET = 32
MAX_OBS_DIM = 16
MAX_TRAJECTORY_STEPS = 500
MAX_AGENTS = 64
MAX_EXAMPLES_PER_REQUEST = 1000
MAX_AGENT_EXAMPLES = 2000  # labelled trajectories per session
MAX_CRITERIA = 16
MAX_MODALITIES = 4
MAX_MODALITY_WIDTH = 16  # series channels, vector dimension
MAX_MODALITY_STEPS = 500
MAX_SAMPLES = 500
MAX_TARGETS = 8
MAX_EVOLUTION_STEPS = 1000
MAX_MEMBRANES = 64  # in a request-supplied structure
MAX_MEMBRANES_RUNNING = 256  # while evolving (division grows the system)
MAX_OBJECTS_RUNNING = 100_000
MAX_EVOLUTION_WORK = 1_000_000  # sum over steps of the objects held: bounds the run time
MAX_RULES = 32
MAX_STRUCTURE_DEPTH = 8

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
Vector = Annotated[list[float], Field(min_length=1, max_length=MAX_VECTOR_DIM)]
MetaValue = Annotated[str, Field(max_length=MAX_METADATA_CHARS)] | bool | int | float | None
Metadata = Annotated[dict[Name, MetaValue], Field(max_length=MAX_METADATA_KEYS)]


class Request(BaseModel):
    """Base of every request: unknown fields, NaN and infinities are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _exactly_one(model: BaseModel, fields: tuple[str, ...], what: str) -> None:
    given = [f for f in fields if getattr(model, f) is not None]
    if len(given) != 1:
        raise ValueError(f"{what} must have exactly one of {', '.join(fields)}; "
                         f"got {', '.join(given) if given else 'none'}")


# -- memory ----------------------------------------------------------------------------------
class MemoryItem(Request):
    id: Id | None = Field(None, description="Defaults to 'm<n>'; storing an existing id replaces it.")
    text: Text | None = None
    vector: Vector | None = None
    metadata: Metadata = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_payload(self):
        _exactly_one(self, ("text", "vector"), "a memory item")
        return self


class MemoryQuery(Request):
    text: Text | None = None
    vector: Vector | None = None

    @model_validator(mode="after")
    def _one_payload(self):
        _exactly_one(self, ("text", "vector"), "query")
        return self


class MemoryRequest(Request):
    """`store` items (text is encoded by the DTESN; vectors are kept as given) or `retrieve`
    the k items most similar (cosine) to a text or vector query."""

    op: Literal["store", "retrieve"]
    items: list[MemoryItem] | None = Field(None, min_length=1, max_length=MAX_ITEMS_PER_REQUEST)
    query: MemoryQuery | None = None
    k: int = Field(5, ge=1, le=MAX_K)

    @model_validator(mode="after")
    def _op_fields(self):
        if self.op == "store" and (self.items is None or self.query is not None):
            raise ValueError("op 'store' needs 'items' and takes no 'query'")
        if self.op == "retrieve" and (self.query is None or self.items is not None):
            raise ValueError("op 'retrieve' needs 'query' and takes no 'items'")
        if self.items:
            ids = [i.id for i in self.items if i.id is not None]
            if len(ids) != len(set(ids)):
                raise ValueError("items: ids must be unique within a request")
        return self


class MemoryMatch(Result):
    id: str
    score: float = Field(description="Cosine similarity of the keys, in [-1, 1].")
    kind: Literal["text", "vector"]
    text: str | None = None
    vector: list[float] | None = None
    metadata: dict = Field(default_factory=dict)


class MemoryResult(Result):
    op: Literal["store", "retrieve"]
    stored: list[str] = Field(default_factory=list, description="Ids stored by this request.")
    size: int = Field(description="Items in the session's memory after the request.")
    matches: list[MemoryMatch] = Field(default_factory=list)


# -- reasoning -------------------------------------------------------------------------------
class ReasoningRequest(Request):
    """Continue a numeric series `horizon` steps with a DTESN readout rolled forward."""

    series: list[float] = Field(min_length=MIN_SERIES, max_length=MAX_SERIES)
    horizon: int = Field(10, ge=1, le=MAX_HORIZON)
    validation_fraction: float = Field(0.2, ge=0.05, le=0.5)


class ReasoningResult(Result):
    predictions: list[float]
    uncertainty: list[float] = Field(description="One standard deviation per predicted step.")
    uncertainty_method: str
    train_nrmse: float = Field(description="1-step NRMSE on the training part (in sample).")
    validation_nrmse: float = Field(description="1-step NRMSE on the held-out tail.")
    ridge: float
    horizon: int


# -- grammar ---------------------------------------------------------------------------------
Symbols = Annotated[str, Field(min_length=1, max_length=MAX_GRAMMAR_CHARS)]


class GrammarRequest(Request):
    """`train` a next-symbol model on example strings (replaces the session's model), or
    `score` strings with it."""

    op: Literal["train", "score"]
    strings: list[Symbols] = Field(min_length=1, max_length=MAX_GRAMMAR_STRINGS)
    acceptance: float = Field(0.99, gt=0.5, le=1.0, description=(
        "train: fraction of the training strings the calibrated threshold accepts."))


class GrammarScore(Result):
    string: str
    log_likelihood: float = Field(description="Sum of log p(next symbol), end marker included.")
    mean_log_likelihood: float = Field(description="log_likelihood per predicted symbol.")
    min_log_prob: float = Field(description="Log probability of the least likely step.")
    worst_position: int = Field(description="Index of that step (len(string) = end marker).")
    grammatical: bool


class GrammarResult(Result):
    op: Literal["train", "score"]
    alphabet: str
    threshold: float = Field(description="min_log_prob at or above which a string is grammatical.")
    trained_strings: int
    train_accept_rate: float | None = None
    scores: list[GrammarScore] = Field(default_factory=list)


# -- agent evaluation ------------------------------------------------------------------------
Observation = Annotated[list[float], Field(min_length=1, max_length=MAX_OBS_DIM)]
Trajectory = Annotated[list[Observation], Field(min_length=1, max_length=MAX_TRAJECTORY_STEPS)]


class LabelledTrajectory(Request):
    trajectory: Trajectory
    scores: dict[Name, float] = Field(min_length=1, max_length=MAX_CRITERIA)


class Agent(Request):
    id: Id
    trajectory: Trajectory


class AgentEvaluationRequest(Request):
    """Train criteria from labelled `examples` (added to those stored in the session) and/or
    rank `agents` by every trained criterion and by their weighted combination."""

    examples: list[LabelledTrajectory] = Field(default_factory=list,
                                               max_length=MAX_EXAMPLES_PER_REQUEST)
    agents: list[Agent] = Field(default_factory=list, max_length=MAX_AGENTS)
    weights: dict[Name, Annotated[float, Field(ge=0)]] | None = Field(None, description=(
        "Weight per criterion for the overall ranking; default 1 for every trained criterion."))

    @model_validator(mode="after")
    def _something_to_do(self):
        if not self.examples and not self.agents:
            raise ValueError("give 'examples' to train criteria, 'agents' to rank, or both")
        ids = [a.id for a in self.agents]
        if len(ids) != len(set(ids)):
            raise ValueError("agents: ids must be unique")
        return self


class RankedAgent(Result):
    id: str
    score: float
    rank: int


class CriterionInfo(Result):
    name: str
    examples: int
    ridge: float
    loo_rmse: float = Field(description="Leave-one-out RMSE of the criterion readout.")
    label_mean: float
    label_std: float


class AgentEvaluationResult(Result):
    trained: list[str] = Field(description="Criteria refitted by this request.")
    criteria: list[CriterionInfo]
    rankings: dict[str, list[RankedAgent]] = Field(default_factory=dict)
    overall: list[RankedAgent] = Field(default_factory=list, description=(
        "Weighted mean of the criteria's standardised scores (label mean/std of each)."))


# -- multi-modal -----------------------------------------------------------------------------
class ModalityInput(Request):
    series: Annotated[list[Annotated[list[float], Field(min_length=1, max_length=MAX_MODALITY_WIDTH)]],
                      Field(min_length=1, max_length=MAX_MODALITY_STEPS)] | None = Field(
        None, description="Numeric channels over time, shape (steps, channels).")
    text: Text | None = None
    vector: Annotated[list[float], Field(min_length=1, max_length=MAX_MODALITY_WIDTH)] | None = None

    @model_validator(mode="after")
    def _one_payload(self):
        _exactly_one(self, ("series", "text", "vector"), "a modality")
        return self

    @property
    def kind(self) -> str:
        return "series" if self.series is not None else "text" if self.text is not None else "vector"


Sample = Annotated[dict[Name, ModalityInput], Field(min_length=1, max_length=MAX_MODALITIES)]


class MultiModalRequest(Request):
    """`embed` samples (fused root embedding, plus the readout's prediction once trained) or
    `train` the readout on samples with `targets`."""

    op: Literal["embed", "train"] = "embed"
    samples: list[Sample] = Field(min_length=1, max_length=MAX_SAMPLES)
    targets: list[Annotated[list[float], Field(min_length=1, max_length=MAX_TARGETS)]] | list[float] | None = None
    include_embeddings: bool = True

    @model_validator(mode="after")
    def _targets(self):
        if self.op == "train":
            if self.targets is None or len(self.targets) != len(self.samples):
                got = "none" if self.targets is None else len(self.targets)
                raise ValueError(f"op 'train' needs one target per sample ({len(self.samples)}), "
                                 f"got {got}")
            if len(self.samples) < 2:
                raise ValueError("op 'train' needs at least 2 samples")
        elif self.targets is not None:
            raise ValueError("only op 'train' takes 'targets'")
        return self


class ModalityInfo(Result):
    name: str
    kind: Literal["series", "text", "vector"]
    width: int = Field(description="Channels (series), dimension (vector) or 0 (text).")


class MultiModalOutput(Result):
    embedding: list[float] | None = None
    prediction: list[float] | None = None


class MultiModalResult(Result):
    op: Literal["embed", "train"]
    modalities: list[ModalityInfo]
    outputs: list[MultiModalOutput] = Field(default_factory=list)
    trained: bool = Field(description="Whether the session holds a trained readout.")
    examples: int | None = None
    ridge: float | None = None
    loo_rmse: float | None = None


# -- membrane evolution ----------------------------------------------------------------------
class PrioritisedRule(Request):
    rule: Annotated[str, Field(min_length=3, max_length=200)]
    priority: int = Field(0, ge=-1000, le=1000)


RuleText = Annotated[str, Field(min_length=3, max_length=200)]
Multiset = Annotated[dict[Annotated[str, Field(min_length=1, max_length=32)],
                          Annotated[int, Field(ge=0, le=MAX_OBJECTS_RUNNING)]], Field(max_length=64)]


class MembraneSpec(Request):
    id: Annotated[str, Field(min_length=1, max_length=64)]
    type: Literal["skin", "root", "trunk", "branch", "leaf", "terminal"] = "leaf"
    objects: Multiset | Annotated[str, Field(max_length=1000)] = Field(default_factory=dict)
    rules: list[RuleText | PrioritisedRule] = Field(default_factory=list, max_length=MAX_RULES)
    children: list[MembraneSpec] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _bounded(self):
        count, depth = _size(self)
        if count > MAX_MEMBRANES or depth > MAX_STRUCTURE_DEPTH:
            raise ValueError(f"structure may hold at most {MAX_MEMBRANES} membranes nested at "
                             f"most {MAX_STRUCTURE_DEPTH} deep; got {count} membranes, depth {depth}")
        return self


def _size(spec: MembraneSpec) -> tuple[int, int]:
    sizes = [_size(c) for c in spec.children]
    return 1 + sum(n for n, _ in sizes), 1 + max((d for _, d in sizes), default=0)


class MembraneEvolutionRequest(Request):
    """Run the session's P system `steps` maximally parallel steps. The system comes from
    `structure` (replacing any stored one), else the session, else a default built from the
    DTESN tree shape of depth `default_depth`."""

    steps: int = Field(1, ge=0, le=MAX_EVOLUTION_STEPS)
    structure: MembraneSpec | None = None
    seed: int = Field(0, ge=0, le=2 ** 32 - 1)
    default_depth: int = Field(3, ge=1, le=5)
    add_objects: dict[Annotated[str, Field(min_length=1, max_length=64)],
                      Multiset | Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=dict, max_length=MAX_MEMBRANES,
        description="Objects added to membranes (by id) before running.")
    reset: bool = Field(False, description="Discard the stored system first.")


class MembraneView(Result):
    id: str
    type: str
    parent: str | None
    depth: int
    objects: dict[str, int]
    rules: list[str]


class MembraneEvolutionResult(Result):
    steps_run: int
    halted: bool
    total_steps: int = Field(description="Steps the session's system has run since it was created.")
    environment: dict[str, int]
    membranes: list[MembraneView]
    structure: dict = Field(description="Nested membrane structure (PSystem snapshot 'skin').")
