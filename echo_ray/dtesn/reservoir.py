"""Leaky-integrator echo state network reservoir with sparse recurrent weights.

Discrete mode (as in ReservoirPy):  x[t+1] = (1-a) x[t] + a tanh(W_in u[t+1] + W x[t] + b) + noise
Continuous mode integrates           dx/dt = a (-x + tanh(W_in u + W x + b))
with an explicit Runge-Kutta method given by its Butcher tableau (order certified by
`order_of`), holding u constant over each step. Euler with dt=1 equals the discrete update.

The input projection W_in U is computed for the whole sequence in one matrix product, so the
per-step loop does only the recurrent product and the nonlinearity; batches of sequences are
updated together as one dense (batch, units) state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import ArpackNoConvergence, eigs

from echo_ray.checks import as_float_array, in_range, positive

from .butcher import RK4, ButcherTableau, order_of

try:  # scipy's compiled CSR kernel; the public `W @ x` adds ~15 us of dispatch per call
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
except ImportError:  # pragma: no cover
    _csr_matvec = None

# Below this size a dense recurrent product is faster than scipy.sparse's per-call overhead.
DENSE_BELOW_UNITS = 400


def spectral_radius(W) -> float:
    """Largest eigenvalue magnitude, from ARPACK (sparse) with a dense fallback."""
    n = W.shape[0]
    if n <= 64:
        return float(np.max(np.abs(np.linalg.eigvals(W.toarray() if sp.issparse(W) else W))))
    try:
        vals = eigs(W, k=1, which="LM", tol=1e-12, maxiter=n * 200, v0=np.ones(n),
                    return_eigenvectors=False)  # fixed v0: same seed, same matrix
        return float(np.abs(vals[0]))
    except ArpackNoConvergence:
        return float(np.max(np.abs(np.linalg.eigvals(W.toarray() if sp.issparse(W) else W))))


@dataclass
class ReservoirConfig:
    units: int = 100
    input_dim: int = 1
    spectral_radius: float = 0.9
    density: float = 0.1
    input_scaling: float = 1.0
    input_density: float = 0.1
    bias_scaling: float = 0.0
    leak_rate: float = 1.0
    noise: float = 0.0
    mode: str = "discrete"  # or "continuous"
    dt: float = 1.0
    method: str | ButcherTableau = "rk4"
    seed: int | None = 0


class Reservoir:
    """An ESN reservoir. `run` is stateful (it continues from `state`), like ReservoirPy's nodes."""

    def __init__(self, units: int = 100, input_dim: int = 1, *, spectral_radius: float = 0.9,
                 density: float = 0.1, input_scaling: float = 1.0, input_density: float = 0.1,
                 bias_scaling: float = 0.0, leak_rate: float = 1.0, noise: float = 0.0,
                 mode: str = "discrete", dt: float = 1.0, method: str | ButcherTableau = "rk4",
                 seed: int | np.random.Generator | None = 0):
        if not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"units must be a positive integer, got {units!r}")
        if not isinstance(input_dim, (int, np.integer)) or input_dim < 1:
            raise ValueError(f"input_dim must be a positive integer, got {input_dim!r}")
        positive("spectral_radius", spectral_radius)
        in_range("density", density, 0.0, 1.0, lo_open=True)
        in_range("input_density", input_density, 0.0, 1.0, lo_open=True)
        positive("input_scaling", input_scaling, strict=False)
        positive("bias_scaling", bias_scaling, strict=False)
        in_range("leak_rate", leak_rate, 0.0, 1.0, lo_open=True)
        positive("noise", noise, strict=False)
        positive("dt", dt)
        if mode not in ("discrete", "continuous"):
            raise ValueError(f"mode must be 'discrete' or 'continuous', got {mode!r}")
        self.units, self.input_dim = int(units), int(input_dim)
        self.leak_rate, self.noise, self.mode, self.dt = leak_rate, noise, mode, dt
        self.tableau = _tableau(method)
        self.order = order_of(self.tableau)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        w_rng, in_rng, b_rng, self._noise_rng = self.rng.spawn(4)

        W = sp.random(units, units, density=density, format="csr", random_state=w_rng,
                      data_rvs=lambda k: w_rng.standard_normal(k))
        if W.nnz == 0:
            raise ValueError(f"density={density} gives no recurrent connection for units={units}")
        W = W * (spectral_radius / spectral_radius_of_or_raise(W))
        self.W = W.tocsr()
        mask = in_rng.random((units, input_dim)) < input_density
        unread = ~mask.any(axis=0)  # every input feature reaches at least one unit
        mask[in_rng.integers(units, size=int(unread.sum())), np.flatnonzero(unread)] = True
        self.W_in = np.where(mask, in_rng.choice([-1.0, 1.0], size=(units, input_dim)), 0.0)
        self.W_in *= input_scaling
        self.bias = b_rng.uniform(-1, 1, units) * bias_scaling
        self._W_dense = self.W.toarray() if units < DENSE_BELOW_UNITS else None
        self.state = np.zeros(units)

    # -- running -------------------------------------------------------------------------
    def reset(self, state=None) -> None:
        self.state = np.zeros(self.units) if state is None else as_float_array(
            "state", state, 1, self.units).copy()

    def run(self, U, state=None) -> np.ndarray:
        """States for every step of U (T, input_dim); continues from `state` or the current one."""
        U = as_float_array("U", U, (1, 2))
        if U.ndim == 1:
            U = U[:, None]
        if U.shape[1] != self.input_dim:
            raise ValueError(f"U must have {self.input_dim} features on its last axis, got shape {U.shape}")
        x = self.state if state is None else as_float_array("state", state, 1, self.units)
        states = self._run(U[None], x[None])[0]
        self.state = states[-1].copy()
        return states

    def run_batch(self, U, states=None) -> np.ndarray:
        """States for a batch of equal-length sequences U (B, T, input_dim) updated together
        as one dense (B, units) state; starts from zeros or `states` (B, units). Stateless."""
        U = as_float_array("U", U, 3, self.input_dim)
        x0 = np.zeros((U.shape[0], self.units)) if states is None else as_float_array(
            "states", states, 2, self.units)
        if x0.shape[0] != U.shape[0]:
            raise ValueError(f"states must have one row per sequence ({U.shape[0]}), got {x0.shape}")
        return self._run(U, x0)

    def _recurrent(self, batched: bool):
        """f(x, d) = W x + d for one state (units,) or a batch (B, units), as a new array."""
        if self._W_dense is not None:
            WT = np.ascontiguousarray(self._W_dense.T)
            Wd = self._W_dense

            def dense(s, d):
                out = s @ WT if batched else Wd @ s
                out += d
                return out
            return dense
        W = self.W
        if batched:
            return lambda s, d: (W @ s.T).T + d
        if _csr_matvec is None:
            return lambda s, d: W @ s + d
        n, ptr, idx, val = W.shape[0], W.indptr, W.indices, W.data

        def matvec(s, d):  # scipy's own kernel, accumulating W x straight into a copy of d
            y = d.copy()
            _csr_matvec(n, n, ptr, idx, val, s, y)
            return y
        return matvec

    def _run(self, U: np.ndarray, x: np.ndarray) -> np.ndarray:
        B, T, _ = U.shape
        # (T, B, units): one product for the whole input; squeeze B=1 to plain vectors.
        flat = np.ascontiguousarray(U.transpose(1, 0, 2)).reshape(T * B, -1)
        drive = (flat @ self.W_in.T + self.bias).reshape(T, B, self.units)
        if B == 1:
            drive, x = drive[:, 0], x[0]
        out = np.empty(drive.shape)
        recur = self._recurrent(batched=B > 1)
        noise = (self._noise_rng.standard_normal(drive.shape) * self.noise
                 if self.noise > 0 else None)
        a = self.leak_rate
        if self.mode == "discrete":
            for t in range(T):
                pre = recur(x, drive[t])
                xt = out[t]  # write the new state straight into the output
                np.tanh(pre, out=xt)
                if a != 1.0:
                    xt *= a
                    xt += (1 - a) * x
                if noise is not None:
                    xt += noise[t]
                x = xt
        else:
            A, bw, _ = self.tableau.arrays()
            h, s = self.dt, len(bw)
            for t in range(T):
                d, k = drive[t], list[np.ndarray]()
                for i in range(s):
                    xi = x
                    for j in range(i):
                        if A[i, j]:
                            xi = xi + (h * A[i, j]) * k[j]
                    k.append(a * (np.tanh(recur(xi, d)) - xi))
                x = x + h * sum(bw[i] * k[i] for i in range(s) if bw[i])
                if noise is not None:
                    x += noise[t]
                out[t] = x
        return out[None] if B == 1 else out.transpose(1, 0, 2)


def spectral_radius_of_or_raise(W) -> float:
    rho = spectral_radius(W)
    if rho <= 0:
        raise ValueError("recurrent matrix has spectral radius 0 (nilpotent); raise density or units")
    return rho


def _tableau(method) -> ButcherTableau:
    from .butcher import TABLEAUX

    if isinstance(method, ButcherTableau):
        return method
    if method not in TABLEAUX:
        raise ValueError(f"method must be a ButcherTableau or one of {sorted(TABLEAUX)}, got {method!r}")
    return TABLEAUX[method]


__all__ = ["Reservoir", "ReservoirConfig", "spectral_radius", "RK4"]
