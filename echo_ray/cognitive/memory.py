"""Associative memory: store text or vectors, retrieve the top k by cosine similarity.

Text is fed through the DTESN one character per step (`encoding.text_inputs`); its key is the
mean over time of every membrane's states, L2-normalised. Each state mixes the last few
characters, so the mean is an order-aware bag of character n-grams: one substituted, inserted
or deleted character changes only the few terms around it, and the nearest key is still the
original string's. Vectors are stored as given (not encoded): their key is the vector itself,
compared by cosine, and a session's vector dimension is fixed by the first vector it stores.

Session state (plain data): {"text": {"ids", "texts", "metadata", "keys" (n, D) float32},
"vector": {"ids", "metadata", "vectors" (n, d) float64}}. Ids share one namespace; storing an
existing id replaces that item.
"""

from __future__ import annotations

import numpy as np

from echo_ray.dtesn.engine import Engine
from echo_ray.dtesn.membrane_tree import TreeSpec

from .encoding import encode_many, pooled, text_inputs
from .models import MAX_MEMORY_ITEMS, MemoryMatch, MemoryRequest, MemoryResult

CHAR_WIDTH = 32
KEY = "memory"


def engine_spec() -> TreeSpec:
    """Two membranes (root over one leaf) of 64 units reading 32-d character vectors."""
    return TreeSpec.from_depth(2, units=64, input_dim=CHAR_WIDTH, seed=101,
                               reservoir={"spectral_radius": 0.9, "leak_rate": 1.0})


def text_keys(engine: Engine, texts: list[str]) -> np.ndarray:
    """(len(texts), D) unit-norm keys."""
    states = encode_many(engine, [text_inputs(t, CHAR_WIDTH) for t in texts])
    keys = np.stack([pooled(s) for s in states])
    return keys / np.maximum(np.linalg.norm(keys, axis=1, keepdims=True), 1e-12)


def empty_state() -> dict:
    return {"text": {"ids": [], "texts": [], "metadata": [], "keys": None},
            "vector": {"ids": [], "metadata": [], "vectors": None}}


def size(state: dict | None) -> int:
    if not state:
        return 0
    return len(state["text"]["ids"]) + len(state["vector"]["ids"])


def handle(req: MemoryRequest, state: dict | None, engines) -> tuple[MemoryResult, dict | None]:
    """Returns (result, new memory state or None when unchanged); never mutates `state`."""
    engine = engines(engine_spec())
    state = state or empty_state()
    if req.op == "store":
        new, ids = _store(req, state, engine)
        return MemoryResult(op="store", stored=ids, size=size(new)), new
    return MemoryResult(op="retrieve", size=size(state), matches=_retrieve(req, state, engine)), None


def _store(req: MemoryRequest, state: dict, engine: Engine) -> tuple[dict, list[str]]:
    assert req.items is not None  # MemoryRequest requires items for op="store"
    # Validate everything before building the new state.
    vec_dim = None if state["vector"]["vectors"] is None else state["vector"]["vectors"].shape[1]
    for n, item in enumerate(req.items):
        if item.vector is None:
            continue
        if vec_dim is None:
            vec_dim = len(item.vector)
        if len(item.vector) != vec_dim:
            raise ValueError(f"items[{n}].vector has dimension {len(item.vector)}, but this "
                             f"memory holds vectors of dimension {vec_dim}")
        _check_norm(item.vector, f"items[{n}].vector")
    existing = set(state["text"]["ids"]) | set(state["vector"]["ids"])
    taken = existing | {it.id for it in req.items if it.id is not None}
    count, ids = size(state), []
    for item in req.items:
        item_id = item.id
        while item_id is None:  # the first free 'm<n>'
            candidate, count = f"m{count}", count + 1
            if candidate not in taken:
                item_id = candidate
                taken.add(candidate)
        ids.append(item_id)
    replaced = set(ids) & existing
    total = size(state) - len(replaced) + len(ids)
    if total > MAX_MEMORY_ITEMS:
        raise ValueError(f"items: memory would hold {total} items, more than the limit of "
                         f"{MAX_MEMORY_ITEMS} per session")
    texts = [(i, it) for i, it in zip(ids, req.items) if it.text is not None]
    vectors = [(i, it) for i, it in zip(ids, req.items) if it.vector is not None]
    keys = text_keys(engine, [it.text for _, it in texts if it.text is not None]) if texts else None

    # Build the new state from copies (the old one stays intact if anything above raised).
    text, vec = _without(state["text"], replaced, "keys"), _without(state["vector"], replaced, "vectors")
    if texts:
        text["ids"] += [i for i, _ in texts]
        text["texts"] += [it.text for _, it in texts]
        text["metadata"] += [dict(it.metadata) for _, it in texts]
        assert keys is not None
        text["keys"] = _append(text["keys"], keys.astype(np.float32))
    if vectors:
        vec["ids"] += [i for i, _ in vectors]
        vec["metadata"] += [dict(it.metadata) for _, it in vectors]
        vec["vectors"] = _append(vec["vectors"], np.array([it.vector for _, it in vectors], float))
    return {"text": text, "vector": vec}, ids


def _check_norm(vector, name: str) -> float:
    with np.errstate(over="ignore"):
        norm = float(np.linalg.norm(np.asarray(vector, float)))
    if norm == 0.0:
        raise ValueError(f"{name} must not be all zeros (cosine undefined)")
    if not np.isfinite(norm):
        raise ValueError(f"{name} is too large: its norm overflows a float")
    return norm


def _without(table: dict, drop: set, array_key: str) -> dict:
    keep = [n for n, i in enumerate(table["ids"]) if i not in drop]
    arr = table[array_key]
    out: dict = {k: [v[n] for n in keep] for k, v in table.items() if k != array_key}
    out[array_key] = None if arr is None or not keep else arr[keep]
    return out


def _append(arr: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
    return rows if arr is None else np.concatenate([arr, rows])


def _retrieve(req: MemoryRequest, state: dict, engine: Engine) -> list[MemoryMatch]:
    q = req.query
    assert q is not None  # MemoryRequest requires a query for op="retrieve"
    if q.text is not None:
        table = state["text"]
        if not table["ids"]:
            raise ValueError("query.text: this memory holds no text items; store some first")
        query = text_keys(engine, [q.text])[0]
        keys = table["keys"].astype(float)
    else:
        table = state["vector"]
        if not table["ids"]:
            raise ValueError("query.vector: this memory holds no vectors; store some first")
        vectors = table["vectors"]
        assert q.vector is not None  # MemoryQuery holds exactly one of text and vector
        if len(q.vector) != vectors.shape[1]:
            raise ValueError(f"query.vector has dimension {len(q.vector)}, but this memory holds "
                             f"vectors of dimension {vectors.shape[1]}")
        query = np.asarray(q.vector, float)
        query = query / _check_norm(query, "query.vector")
        keys = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = keys @ query
    k = min(req.k, len(scores))
    top = np.argsort(-scores, kind="stable")[:k]
    out = []
    for n in top:
        n = int(n)
        extra = ({"text": table["texts"][n]} if q.text is not None
                 else {"vector": table["vectors"][n].tolist()})
        out.append(MemoryMatch(id=table["ids"][n], score=float(np.clip(scores[n], -1.0, 1.0)),
                               kind="text" if q.text is not None else "vector",
                               metadata=table["metadata"][n], **extra))
    return out
