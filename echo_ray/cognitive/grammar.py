"""Grammar learning: next-symbol prediction over one-hot symbols, then string scoring.

`train` reads every example string one symbol per step (one-hot over the sorted training
alphabet, at most 32 symbols) through the DTESN; a ridge readout maps the states of every
membrane after symbol t (the zero state before the first) to the next symbol, or to an end
marker after the last. Its outputs, floored at P_MIN and normalised, are the next-symbol
probabilities. A string's `min_log_prob` (its least likely step) decides grammaticality: the
threshold is the (1 - acceptance) quantile of that value over the training strings.

The embedded Reber grammar needs the second symbol remembered to the second to last one, so
the tree is slow: leak rate 0.2 and spectral radius 0.95 (a time constant of ~20 steps).

Session state: {"alphabet", "W" (symbols + 1, features), "b", "threshold", "trained_strings"}.
"""

from __future__ import annotations

import numpy as np

from echo_ray.dtesn.membrane_tree import TreeSpec
from echo_ray.dtesn.readout import RidgeReadout

from .encoding import encode_many, states_matrix
from .models import MAX_ALPHABET, GrammarRequest, GrammarResult, GrammarScore

KEY = "grammar"
RIDGE = 1e-3
P_MIN = 1e-3


def engine_spec() -> TreeSpec:
    """Root over one leaf, 150 units each, reading 32 one-hot symbol columns."""
    return TreeSpec.from_depth(2, units=150, input_dim=MAX_ALPHABET, seed=303,
                               reservoir={"spectral_radius": 0.95, "leak_rate": 0.2})


def handle(req: GrammarRequest, state: dict | None, engines) -> tuple[GrammarResult, dict | None]:
    engine = engines(engine_spec())
    if req.op == "train":
        return _train(req, engine)
    if not state:
        raise ValueError("grammar: no model trained in this session; send op 'train' with "
                         "example strings first")
    scores = _score(state, engine, req.strings)
    return GrammarResult(op="score", alphabet=state["alphabet"], threshold=state["threshold"],
                         trained_strings=state["trained_strings"], scores=scores), None


def _features(engine, alphabet: str, strings: list[str]) -> list[np.ndarray]:
    """Per string (len + 1, features): the state before each predicted symbol."""
    index = {c: k for k, c in enumerate(alphabet)}
    seqs = []
    for s in strings:
        U = np.zeros((len(s), MAX_ALPHABET))
        cols = [index.get(c, -1) for c in s]
        rows = [t for t, k in enumerate(cols) if k >= 0]  # unknown symbols enter as zeros
        U[rows, [cols[t] for t in rows]] = 1.0
        seqs.append(U)
    out = []
    for states in encode_many(engine, seqs):
        S = states_matrix(states)
        out.append(np.vstack([np.zeros((1, S.shape[1])), S]))
    return out


def _train(req: GrammarRequest, engine) -> tuple[GrammarResult, dict]:
    alphabet = "".join(sorted(set("".join(req.strings))))
    if len(alphabet) > MAX_ALPHABET:
        raise ValueError(f"strings use {len(alphabet)} distinct symbols, more than the "
                         f"{MAX_ALPHABET} supported")
    A = len(alphabet) + 1  # + end marker
    X = _features(engine, alphabet, req.strings)
    Y = []
    for s in req.strings:
        target = np.zeros((len(s) + 1, A))
        target[np.arange(len(s) + 1), [alphabet.index(c) for c in s] + [A - 1]] = 1.0
        Y.append(target)
    readout = RidgeReadout(ridge=RIDGE).fit(X, Y)
    model = {"alphabet": alphabet, "W": np.ascontiguousarray(readout.W), "b": readout.b,
             "threshold": 0.0,
             "trained_strings": len(req.strings)}
    lows = np.array([_step_log_probs(model, x, s).min() for x, s in zip(X, req.strings)])
    threshold = float(np.quantile(lows, 1.0 - req.acceptance))
    model["threshold"] = threshold
    return GrammarResult(op="train", alphabet=alphabet, threshold=threshold,
                         trained_strings=len(req.strings),
                         train_accept_rate=float(np.mean(lows >= threshold))), model


def _step_log_probs(model: dict, X: np.ndarray, s: str) -> np.ndarray:
    """log p of each next symbol of `s` and of the end marker: (len(s) + 1,)."""
    alphabet = model["alphabet"]
    P = np.maximum(X @ np.asarray(model["W"]).T + np.asarray(model["b"]), P_MIN)
    P /= P.sum(axis=1, keepdims=True)
    index = {c: k for k, c in enumerate(alphabet)}
    cols = [index.get(c, -1) for c in s] + [len(alphabet)]
    rows = np.arange(len(cols))
    known = np.array(cols) >= 0
    p = np.where(known, P[rows, np.maximum(cols, 0)], P_MIN)  # unknown symbol: the floor
    return np.log(p)


def _score(model: dict, engine, strings: list[str]) -> list[GrammarScore]:
    out = []
    for s, X in zip(strings, _features(engine, model["alphabet"], strings)):
        lp = _step_log_probs(model, X, s)
        worst = int(np.argmin(lp))
        out.append(GrammarScore(string=s, log_likelihood=float(lp.sum()),
                                mean_log_likelihood=float(lp.mean()),
                                min_log_prob=float(lp[worst]), worst_position=worst,
                                grammatical=bool(lp[worst] >= model["threshold"])))
    return out
