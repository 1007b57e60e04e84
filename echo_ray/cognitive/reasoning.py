"""Sequence continuation: a ridge readout on DTESN states, rolled forward autoregressively.

The series is min-max scaled to [-1, 1] and encoded once by the engine. A readout maps the
states of every membrane at step t (plus the input u[t]) to u[t+1]. Readouts for a grid of
penalties are fitted on the series without its tail (`validation_fraction`) and rolled forward
closed loop from up to 16 origins in the tail; the penalty with the lowest error over the steps
ahead asked for (up to what the tail covers; step 1 over every tail point) wins, because the
best 1-step readout can be unstable when its own predictions are fed back. That readout is
refitted on the whole series and rolled forward `horizon` steps, each prediction fed back as
the next input (clipped to [-3, 3], three times the observed range). The roll-out runs on an
in-process twin of the engine's tree (same spec, hence the same weights) started from the
states the engine returned, since the engine only encodes from the zero state.

Uncertainty (one standard deviation per step): the RMSE of the winning penalty's closed-loop
rollouts from the held-out origins, for the steps ahead the tail covers, extrapolated as
sigma_last * sqrt(h / h_last) beyond, and made non-decreasing.

Stateless: nothing is stored in the session.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
from scipy import linalg

from echo_ray.dtesn.membrane_tree import MembraneTree, TreeSpec
from echo_ray.dtesn.readout import ridge_solve

from .encoding import spec_key, states_matrix
from .models import ReasoningRequest, ReasoningResult

RIDGES = tuple(10.0 ** k for k in range(-9, 1))
MAX_ORIGINS = 16
MAX_WARMUP = 100
CLIP = 3.0


def engine_spec() -> TreeSpec:
    """Four membranes of 50 units (root, trunk, two leaves) on a 1-d input, tuned for smooth
    chaotic series (Mackey-Glass): spectral radius 1.25, leak rate 0.3."""
    return TreeSpec.from_depth(3, units=50, input_dim=1, seed=202,
                               reservoir={"spectral_radius": 1.25, "leak_rate": 0.3,
                                          "input_scaling": 1.0})


@lru_cache(maxsize=8)
def _twin(key: str) -> MembraneTree:
    return MembraneTree(TreeSpec.from_dict(json.loads(key)))


def handle(req: ReasoningRequest, state, engines) -> tuple[ReasoningResult, None]:
    spec = engine_spec()
    y = np.asarray(req.series, float)
    lo, hi = float(y.min()), float(y.max())
    H = req.horizon
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return ReasoningResult(predictions=[hi] * H, uncertainty=[0.0] * H,
                               uncertainty_method="constant series: exact continuation",
                               train_nrmse=0.0, validation_nrmse=0.0, ridge=0.0, horizon=H), None
    half = (hi - lo) / 2
    if not np.isfinite(half):
        raise ValueError(f"series: values must span a finite range; got min {lo:g}, max {hi:g}")
    u = (y - lo) / half - 1.0
    states = engines(spec).encode(u[:, None])
    X = np.hstack([states_matrix(states), u[:, None]])  # row t predicts u[t + 1]
    n = len(u)
    warm = min(MAX_WARMUP, n // 10)
    pairs = np.arange(warm, n - 1)
    n_val = max(3, int(round(req.validation_fraction * len(pairs))))
    train, val = pairs[:-n_val], pairs[-n_val:]

    tree = _twin(spec_key(spec))
    ridge, fit_train, sigma, method = _select(tree, states, X, u, train, val, H)
    fit_all = _fit(X[pairs], u[pairs + 1], ridge)
    last = {i: s[-1:] for i, s in states.items()}
    predictions = _rollout(tree, last, u[-1:], fit_all, H)[0]
    return ReasoningResult(
        predictions=((predictions + 1.0) * half + lo).tolist(),
        uncertainty=(sigma * half).tolist(), uncertainty_method=method,
        train_nrmse=_nrmse(u[train + 1], _predict(fit_train, X[train])),
        validation_nrmse=_nrmse(u[val + 1], _predict(fit_train, X[val])),
        ridge=ridge, horizon=H), None


def _fit(X: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, float]:
    w, b = ridge_solve(X, y, ridge)
    return w, float(b)


def _fits(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Readouts (len(RIDGES), features) and biases for every penalty: one eigendecomposition."""
    xm, ym = X.mean(axis=0), y.mean()
    Xc = X - xm
    evals, Q = linalg.eigh(Xc.T @ Xc)
    qxy = Q.T @ (Xc.T @ (y - ym))
    W = np.stack([Q @ (qxy / (np.maximum(evals, 0.0) + r)) for r in RIDGES])
    return W, ym - W @ xm


def _select(tree, states, X, u, train, val, H):
    """Fit on the training part for every penalty, run all of them closed loop from the
    held-out origins, keep the penalty with the lowest mean squared error over the steps
    ahead asked for (1-step error over the whole held-out part for step 1). Returns the
    penalty, its (w, b), per-step sigma and a description of the sigma."""
    n, R = len(u), len(RIDGES)
    W, b = _fits(X[train], u[train + 1])
    mse = np.empty((R, H))
    mse[:, 0] = np.mean((X[val] @ W.T + b - u[val + 1][:, None]) ** 2, axis=0)
    origins = np.unique(np.linspace(val[0], val[-1], min(MAX_ORIGINS, len(val))).astype(int))
    reach = min(H, n - 1 - int(origins[0]))
    known = 1
    if reach > 1 and len(origins) >= 3:
        k = len(origins)
        start = {i: np.tile(s[origins], (R, 1)) for i, s in states.items()}
        preds = _rollout(tree, start, np.tile(u[origins], R), (np.repeat(W, k, axis=0),
                                                              np.repeat(b, k)), reach)
        truth = origins[:, None] + np.arange(1, reach + 1)[None, :]
        valid = np.tile(truth <= n - 1, (R, 1))
        err = np.where(valid, preds - u[np.minimum(np.tile(truth, (R, 1)), n - 1)], 0.0)
        counts = valid[:k].sum(axis=0)
        known = 1 + int(np.sum(counts[1:] >= 3))  # a prefix: counts fall with the step
        sq = (err ** 2).reshape(R, k, reach).sum(axis=1) / np.maximum(counts, 1)
        mse[:, 1:known] = sq[:, 1:known]
    best = int(np.argmin(mse[:, :known].mean(axis=1)))
    sigma = np.sqrt(mse[best, :known])
    sigma = np.concatenate([sigma, sigma[-1] * np.sqrt(np.arange(known + 1, H + 1) / known)])
    sigma = np.maximum.accumulate(sigma)
    method = (f"RMSE of closed-loop rollouts from {len(origins)} held-out origins for steps "
              f"1..{known} (step 1: all held-out points)"
              + (f", sigma_{known}*sqrt(h/{known}) beyond" if known < H else "")
              + "; non-decreasing")
    return float(RIDGES[best]), (W[best], float(b[best])), sigma, method


def _predict(fit, X):
    return X @ fit[0] + fit[1]


def _nrmse(y, p) -> float:
    sd = float(np.std(y))
    rmse = float(np.sqrt(np.mean((y - p) ** 2)))
    return rmse / sd if sd > 0 else rmse


def _rollout(tree: MembraneTree, states: dict[int, np.ndarray], u0: np.ndarray, fit,
             steps: int) -> np.ndarray:
    """Closed-loop predictions (B, steps) from B origins: membrane states {i: (B, units)} and
    inputs u0 (B,) at the origins; each prediction (clipped to [-CLIP, CLIP], the observed
    range being [-1, 1]) is fed back as the next input. `fit` is (w, b) shared by all origins,
    or (W (B, features), b (B,)), one readout per origin."""
    w, b = fit
    x, u = states, u0
    order = sorted(x)
    out = np.empty((len(u0), steps))
    for h in range(steps):
        if h:  # advance every membrane one step on the last prediction, children first
            new: dict[int, np.ndarray] = {}
            for i in tree.post_order():
                inp = u[:, None] if not tree.children[i] else np.hstack(
                    [new[c] for c in tree.children[i]])
                new[i] = tree.reservoirs[i].run_batch(inp[:, None, :], states=x[i])[:, 0]
            x = new
        feats = np.hstack([x[i] for i in order] + [u[:, None]])
        u = (feats @ w if w.ndim == 1 else np.einsum("bd,bd->b", feats, w)) + b
        u = np.clip(u, -CLIP, CLIP)
        out[:, h] = u
    return out
