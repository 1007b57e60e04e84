"""Shared helpers: character inputs, pooled features, batched encoding, the LOO ridge."""

from __future__ import annotations

import numpy as np
import pytest

from echo_ray.cognitive.encoding import (
    LocalEngines,
    encode_many,
    pooled,
    spec_key,
    states_matrix,
    text_inputs,
)
from echo_ray.dtesn import TreeSpec
from echo_ray.dtesn.engine import LocalEngine
from echo_ray.dtesn.readout import RIDGE_GRID, fit_ridge_loo, predict


def test_text_inputs_are_fixed_unit_vectors_per_character():
    a = text_inputs("abca", 16)
    assert a.shape == (4, 16)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0)
    np.testing.assert_array_equal(a[0], a[3])
    assert abs(a[0] @ a[1]) < 0.9
    np.testing.assert_array_equal(text_inputs("é€🙂", 8), text_inputs("é€🙂", 8))


def test_pooled_features_and_states_matrix():
    states = {1: np.array([[1.0, -1.0], [3.0, 1.0]]), 0: np.array([[2.0], [4.0]])}
    np.testing.assert_array_equal(pooled(states), [3.0, 2.0, 0.0])  # root (0) first
    full = pooled(states, final=True, squares=True, activity=True)
    np.testing.assert_array_equal(full, [3, 2, 0, 4, 3, 1, 10, 5, 1, 4, 4, 4])
    assert states_matrix(states).shape == (2, 3)
    single = {0: np.array([[2.0]])}
    np.testing.assert_array_equal(pooled(single, activity=True), [2.0, 0.0])


class BatchEngine(LocalEngine):
    """An engine with `encode_batch` (as DTESNSystem has): counts the calls it gets."""

    calls = 0

    def encode_batch(self, Us):
        BatchEngine.calls += 1
        return [self.encode(U) for U in Us]


def test_encode_many_prefers_encode_batch_and_matches_one_by_one():
    spec = TreeSpec.from_depth(2, units=8, input_dim=2, seed=1)
    seqs = [np.ones((3, 2)), np.zeros((1, 2)), np.arange(10.0).reshape(5, 2) / 10]
    one_by_one = encode_many(LocalEngine(spec), seqs)
    batched = encode_many(BatchEngine(spec), seqs)
    assert BatchEngine.calls == 1
    for a, b in zip(one_by_one, batched):
        for m in a:
            np.testing.assert_array_equal(a[m], b[m])
    assert not np.any(one_by_one[1][0])  # zero input from the zero state stays zero


def test_local_engines_cache_one_engine_per_spec():
    engines = LocalEngines()
    a = TreeSpec.from_depth(2, units=4, seed=1)
    assert engines(a) is engines(TreeSpec.from_depth(2, units=4, seed=1))
    assert engines(TreeSpec.from_depth(2, units=4, seed=2)) is not engines(a)
    assert len(engines) == 2 and spec_key(a) == spec_key(TreeSpec.from_dict(a.to_dict()))


def test_loo_ridge_matches_brute_force_leave_one_out():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 5)) * [1, 10, 0.1, 1, 3]
    y = X @ [1.0, 0.2, 5.0, 0.0, -1.0] + 0.3 * rng.standard_normal(30)
    fit = fit_ridge_loo(X, y)
    assert fit["ridge"] in RIDGE_GRID
    # brute force: refit without each example with the same penalty (standardised, centred)
    errs = []
    for i in range(30):
        keep = np.arange(30) != i
        Xk, yk = X[keep], y[keep]
        mu, sd = X.mean(0), X.std(0)  # the fit standardises with all examples' statistics
        Z = (Xk - mu) / sd
        zm, ym = Z.mean(0), yk.mean()
        w = np.linalg.solve((Z - zm).T @ (Z - zm) + fit["ridge"] * np.eye(5), (Z - zm).T @ (yk - ym))
        errs.append(((X[i] - mu) / sd - zm) @ w + ym - y[i])
    assert fit["loo_rmse"] == pytest.approx(np.sqrt(np.mean(np.square(errs))), rel=1e-9)
    assert np.sqrt(np.mean((predict(fit, X)[:, 0] - y) ** 2)) < 0.4
    with pytest.raises(ValueError, match="features must have 5 columns, got 4"):
        predict(fit, X[:, :4])
    with pytest.raises(ValueError, match="at least 2 labelled examples"):
        fit_ridge_loo(X[:1], y[:1])


def test_loo_ridge_handles_constant_features_and_picks_strong_penalty_for_noise():
    rng = np.random.default_rng(1)
    X = np.hstack([rng.standard_normal((40, 3)), np.ones((40, 1))])
    fit = fit_ridge_loo(X, rng.standard_normal(40))
    assert np.all(np.isfinite(fit["W"])) and fit["ridge"] >= 10.0
