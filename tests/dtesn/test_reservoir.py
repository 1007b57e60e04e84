import numpy as np
import pytest

from echo_ray.dtesn import EULER, HEUN, RK4, Reservoir, RidgeReadout, RLSReadout, spectral_radius
from echo_ray.dtesn.datasets import mackey_glass, narma10, nrmse, scale_to_unit


@pytest.mark.parametrize("units", [50, 300, 600])
def test_spectral_radius_is_achieved(units):
    r = Reservoir(units, 2, spectral_radius=0.77, seed=3)
    dense = np.max(np.abs(np.linalg.eigvals(r.W.toarray())))
    assert abs(dense - 0.77) < 1e-6
    assert abs(spectral_radius(r.W) - 0.77) < 1e-6


def test_same_seed_same_reservoir_and_states():
    U = np.random.default_rng(0).uniform(-1, 1, (200, 1))
    a, b = Reservoir(80, seed=5), Reservoir(80, seed=5)
    np.testing.assert_array_equal(a.run(U), b.run(U))
    assert not np.array_equal(Reservoir(80, seed=6).run(U), a.run(U))


def test_echo_state_property_forgets_initial_state():
    r = Reservoir(100, spectral_radius=0.8, seed=1)
    U = np.random.default_rng(1).uniform(-1, 1, (300, 1))
    x1 = r.run(U, state=np.random.default_rng(2).uniform(-1, 1, 100))
    x2 = r.run(U, state=np.random.default_rng(3).uniform(-1, 1, 100))
    assert np.linalg.norm(x1[0] - x2[0]) > 0.1
    assert np.linalg.norm(x1[-1] - x2[-1]) < 1e-8


def test_run_is_stateful_and_batch_equals_sequences():
    r = Reservoir(60, 2, leak_rate=0.4, seed=2)
    U = np.random.default_rng(4).uniform(-1, 1, (5, 40, 2))
    whole = r.run(U[0])
    r.reset()
    halves = np.vstack([r.run(U[0][:15]), r.run(U[0][15:])])
    np.testing.assert_allclose(whole, halves, atol=1e-12)
    batch = r.run_batch(U)
    for i in range(5):
        r.reset()
        np.testing.assert_allclose(batch[i], r.run(U[i]), atol=1e-12)


def test_continuous_euler_with_unit_step_equals_discrete():
    U = np.random.default_rng(5).uniform(-1, 1, (50, 1))
    d = Reservoir(40, leak_rate=0.3, seed=7).run(U)
    c = Reservoir(40, leak_rate=0.3, seed=7, mode="continuous", method=EULER, dt=1.0).run(U)
    np.testing.assert_allclose(c, d, atol=1e-12)


def test_continuous_methods_converge_at_their_order():
    # Error against a fine RK4 reference shrinks ~2^p when dt halves.
    U = np.full((1, 1), 0.5)
    def final(method, dt):
        r = Reservoir(30, leak_rate=1.0, seed=8, mode="continuous", method=method, dt=dt)
        x = np.full(30, 0.3)
        for _ in range(int(round(1 / dt))):
            x = r.run(U, state=x)[-1]
        return x
    ref = final(RK4, 1 / 256)
    for method, p in ((EULER, 1), (HEUN, 2), (RK4, 4)):
        e1 = np.linalg.norm(final(method, 1 / 8) - ref)
        e2 = np.linalg.norm(final(method, 1 / 16) - ref)
        assert np.log2(e1 / e2) == pytest.approx(p, abs=0.35)


def test_ridge_recovers_a_known_linear_map():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 6))
    W = rng.standard_normal((2, 6))
    Y = X @ W.T + np.array([0.5, -1.0])
    ro = RidgeReadout(ridge=1e-10).fit(X, Y)
    np.testing.assert_allclose(ro.W, W, atol=1e-8)
    np.testing.assert_allclose(ro.b, [0.5, -1.0], atol=1e-8)
    back = RidgeReadout.from_dict(ro.to_dict())
    np.testing.assert_allclose(back.predict(X), Y, atol=1e-7)


def test_rls_converges_to_the_same_map():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((400, 4))
    W = rng.standard_normal((1, 4))
    Y = X @ W.T + 0.2
    rls = RLSReadout(4, 1, delta=1e-6).partial_fit(X, Y)
    np.testing.assert_allclose(rls.predict(X), Y, atol=1e-6)


def test_mackey_glass_and_narma_are_learnable():
    x = scale_to_unit(mackey_glass(2200))
    assert x.min() == -1 and x.max() == 1
    r = Reservoir(200, spectral_radius=1.25, leak_rate=0.3, input_density=1.0, seed=0)
    S = r.run(x[:-1])
    ro = RidgeReadout(1e-6, warmup=100).fit(S[:1800], x[1:1801])
    assert nrmse(x[1801:], ro.predict(S[1800:])) < 0.01
    u, y = narma10(3000)
    assert np.all(np.isfinite(y)) and 0 < y.std() < 1
