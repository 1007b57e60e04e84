"""Agent evaluation: rank agents' trajectories by criteria learned from labelled examples.

A trajectory (steps, d) of observation vectors (d <= 16, zero-padded to 16 columns) is read
through the DTESN; its embedding is, for every membrane, the mean over time, the final state,
the mean square and the mean squared change per step of its states (the last two see
amplitudes and jitter, which the odd mean and final state cannot).
Each named criterion is a ridge readout from that embedding to the criterion's score, its
penalty picked by exact leave-one-out error (`dtesn.readout.fit_ridge_loo`). Labelled examples
accumulate in the session (each request's examples are added, and the criteria they label are
refitted on all of them); agents are ranked by every trained criterion and by the weighted mean
of the criteria's standardised predictions (z-scored with each criterion's label mean and std).

Session state: {"dim": d, "X": (n, features) float32 example embeddings, "names": [criteria],
"Y": (n, criteria) labels (NaN where an example does not score a criterion),
"readouts": {name: readout dict with label "mean"/"std"}}.
"""

from __future__ import annotations

import numpy as np

from echo_ray.dtesn.membrane_tree import TreeSpec
from echo_ray.dtesn.readout import fit_ridge_loo, predict

from .encoding import encode_many, pooled
from .models import (
    MAX_AGENT_EXAMPLES,
    MAX_CRITERIA,
    MAX_OBS_DIM,
    AgentEvaluationRequest,
    AgentEvaluationResult,
    CriterionInfo,
    RankedAgent,
)

KEY = "agent_evaluation"
MIN_EXAMPLES = 3


def engine_spec() -> TreeSpec:
    """Four membranes of 40 units (root, trunk, two leaves) reading 16 observation columns."""
    return TreeSpec.from_depth(3, units=40, input_dim=MAX_OBS_DIM, seed=404,
                               reservoir={"spectral_radius": 0.9, "leak_rate": 0.5,
                                          "input_scaling": 0.5})


def embed(engine, trajectories: list[np.ndarray]) -> np.ndarray:
    """(n, features) embeddings of (steps, d) trajectories."""
    padded = [np.pad(t, ((0, 0), (0, MAX_OBS_DIM - t.shape[1]))) for t in trajectories]
    return np.stack([pooled(s, final=True, squares=True, activity=True) for s in encode_many(engine, padded)])


def _trajectories(items, where: str, dim: int | None) -> tuple[list[np.ndarray], int | None]:
    out = []
    for n, item in enumerate(items):
        lengths = {len(o) for o in item.trajectory}
        if len(lengths) != 1:
            raise ValueError(f"{where}[{n}].trajectory: every observation must have the same "
                             f"dimension, got {sorted(lengths)}")
        d = lengths.pop()
        if dim is None:
            dim = d
        if d != dim:
            raise ValueError(f"{where}[{n}].trajectory has observations of dimension {d}, but "
                             f"this session's trajectories have dimension {dim}")
        out.append(np.asarray(item.trajectory, float))
    return out, dim


def handle(req: AgentEvaluationRequest, state: dict | None,
           engines) -> tuple[AgentEvaluationResult, dict | None]:
    engine = engines(engine_spec())
    dim = state["dim"] if state else None
    # Validate the whole request before any encoding or state change.
    ex_traj, dim = _trajectories(req.examples, "examples", dim)
    ag_traj, dim = _trajectories(req.agents, "agents", dim)
    names = list(state["names"]) if state else []
    new_names = sorted({c for e in req.examples for c in e.scores} - set(names))
    if len(names) + len(new_names) > MAX_CRITERIA:
        raise ValueError(f"examples: the session would hold {len(names) + len(new_names)} "
                         f"criteria, more than the limit of {MAX_CRITERIA}")
    names += new_names
    n_old = len(state["X"]) if state else 0
    if n_old + len(req.examples) > MAX_AGENT_EXAMPLES:
        raise ValueError(f"examples: the session would hold {n_old + len(req.examples)} labelled "
                         f"examples, more than the limit of {MAX_AGENT_EXAMPLES}")
    trained = sorted({c for e in req.examples for c in e.scores})
    Y_old = state["Y"] if state else np.zeros((0, 0))
    Y = np.full((n_old + len(req.examples), len(names)), np.nan)
    Y[:n_old, :Y_old.shape[1]] = Y_old
    for n, e in enumerate(req.examples):
        for c, v in e.scores.items():
            Y[n_old + n, names.index(c)] = v
    for c in trained:
        have = int(np.isfinite(Y[:, names.index(c)]).sum())
        if have < MIN_EXAMPLES:
            raise ValueError(f"examples: criterion {c!r} has {have} labelled examples; at least "
                             f"{MIN_EXAMPLES} are needed to train it")
    readouts = dict(state["readouts"]) if state else {}
    ranked = list(readouts) + [c for c in trained if c not in readouts]
    if req.agents and not ranked:
        raise ValueError("agents: no criterion is trained in this session; send labelled "
                         "'examples' first")
    weights = req.weights if req.weights is not None else {c: 1.0 for c in ranked}
    unknown = sorted(set(weights) - set(ranked))
    if unknown:
        raise ValueError(f"weights name criteria that are not trained: {unknown}; trained: "
                         f"{sorted(ranked)}")
    if req.agents and sum(weights.values()) <= 0:
        raise ValueError("weights must not all be zero")

    # Train, then rank.
    X = state["X"] if state else None
    if req.examples:
        X_new = embed(engine, ex_traj).astype(np.float32)
        X = X_new if X is None else np.concatenate([X, X_new])
        for c in trained:
            rows = np.isfinite(Y[:, names.index(c)])
            y = Y[rows, names.index(c)]
            fit = fit_ridge_loo(X[rows].astype(float), y)
            fit.update(mean=float(y.mean()), std=float(y.std()), examples=int(rows.sum()))
            readouts[c] = fit
    result = AgentEvaluationResult(trained=trained, criteria=[
        CriterionInfo(name=c, examples=r["examples"], ridge=r["ridge"], loo_rmse=r["loo_rmse"],
                      label_mean=r["mean"], label_std=r["std"]) for c, r in sorted(readouts.items())])
    if req.agents:
        E = embed(engine, ag_traj)
        ids = [a.id for a in req.agents]
        overall = np.zeros(len(ids))
        for c in sorted(readouts):
            r = readouts[c]
            pred = predict(r, E)[:, 0]
            result.rankings[c] = _ranked(ids, pred)
            overall += weights.get(c, 0.0) * (pred - r["mean"]) / (r["std"] or 1.0)
        result.overall = _ranked(ids, overall / sum(weights.values()))
    if not req.examples:
        return result, None
    return result, {"dim": dim, "X": X, "names": names, "Y": Y, "readouts": readouts}


def _ranked(ids: list[str], scores: np.ndarray) -> list[RankedAgent]:
    order = np.argsort(-scores, kind="stable")
    return [RankedAgent(id=ids[k], score=float(scores[k]), rank=r + 1) for r, k in enumerate(order)]
