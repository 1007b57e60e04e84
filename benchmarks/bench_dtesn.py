"""DTESN engine vs ReservoirPy 0.4.2, side by side in one process, same settings and seeds.

    python benchmarks/bench_dtesn.py --json benchmarks/out/dtesn.json

Accuracy: Mackey-Glass (tau=17, scaled to [-1, 1]) and NARMA10 1-step-ahead NRMSE with a ridge
readout, averaged over seeds (each library draws its own reservoir from the same seed and
hyper-parameters). Speed: reservoir steps per second on one sequence (100 and 1000 units) and
on a batch of 64 sequences, best of repeats, the two libraries interleaved. Ray: a DTESNSystem on
actors against the same membrane tree in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
from reservoirpy.nodes import Reservoir as RpyReservoir
from reservoirpy.nodes import Ridge as RpyRidge

from echo_ray.dtesn import MembraneTree, Reservoir, RidgeReadout, TreeSpec
from echo_ray.dtesn.datasets import mackey_glass, narma10, nrmse, scale_to_unit


def readout_nrmse(S, Y, train, ridge, rpy_readout: bool):
    if rpy_readout:
        ro = RpyRidge(ridge=ridge).fit(S[:train], Y[:train], warmup=100)
        return nrmse(Y[train:], ro.run(S[train:]))
    ro = RidgeReadout(ridge=ridge, warmup=100).fit(S[:train], Y[:train])
    return nrmse(Y[train:], ro.predict(S[train:]))


def rpy_reservoir(units, seed, spectral_radius, leak_rate, input_scaling, density=0.1,
                  input_density=0.1, **_):
    return RpyReservoir(units, sr=spectral_radius, lr=leak_rate, input_scaling=input_scaling,
                        rc_connectivity=density, input_connectivity=input_density, seed=seed)


def accuracy(name, U, Y, train, units, ridge, hp, seeds):
    """Two comparisons. Same matrices: ReservoirPy runs our seeded W, W_in and bias, so the
    figures compare the engines' numerics at identical settings. Independent draws: each library
    draws its own reservoir from each seed, averaged over `seeds` (the seed-to-seed spread)."""
    same_ours, same_rpy, own_ours, own_rpy = [], [], [], []
    for seed in range(seeds):
        ours = Reservoir(units, U.shape[1], seed=seed, **hp)
        twin = RpyReservoir(W=ours.W, Win=ours.W_in, bias=ours.bias, lr=hp.get("leak_rate", 1.0))
        S_ours = ours.run(U)
        same_ours.append(readout_nrmse(S_ours, Y, train, ridge, rpy_readout=False))
        same_rpy.append(readout_nrmse(twin.run(U), Y, train, ridge, rpy_readout=True))
        own_ours.append(same_ours[-1])
        own_rpy.append(readout_nrmse(rpy_reservoir(units, seed, **hp).run(U), Y, train, ridge,
                                     rpy_readout=True))
    out = {"N": units, "ours": statistics.mean(same_ours), "reservoirpy": statistics.mean(same_rpy),
           "independent_draws": {"ours_mean": statistics.mean(own_ours),
                                 "reservoirpy_mean": statistics.mean(own_rpy),
                                 "ours_median": statistics.median(own_ours),
                                 "reservoirpy_median": statistics.median(own_rpy)},
           "seeds": seeds, "settings": {**hp, "ridge": ridge, "train": train,
                                        "test": len(U) - train, "warmup": 100}}
    ind = out["independent_draws"]
    print(f"{name} (same matrices, {seeds} seeds): ours {out['ours']:.6g}  reservoirpy "
          f"{out['reservoirpy']:.6g}  ratio ours/rpy {out['ours'] / out['reservoirpy']:.6f}")
    print(f"{name} (independent draws): mean ours {ind['ours_mean']:.4g}  reservoirpy "
          f"{ind['reservoirpy_mean']:.4g}; median ours {ind['ours_median']:.4g}  reservoirpy "
          f"{ind['reservoirpy_median']:.4g}")
    return out


def best_time(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def speed(units, T, repeats):
    U = np.random.default_rng(0).uniform(-1, 1, (T, 1))
    ours = Reservoir(units, 1, spectral_radius=0.9, seed=0)
    rpy = rpy_reservoir(units, 0, 0.9, 1.0, 1.0)
    rpy.run(U[:2])
    t_ours = t_rpy = float("inf")
    for _ in range(repeats):  # interleaved so both see the same machine state
        t_ours = min(t_ours, best_time(lambda: ours.run(U), 1))
        t_rpy = min(t_rpy, best_time(lambda: rpy.run(U), 1))
    out = {"ours": T / t_ours, "reservoirpy": T / t_rpy}
    print(f"steps/s, {units} units: ours {out['ours']:.0f}  reservoirpy {out['reservoirpy']:.0f}"
          f"  ratio {out['ours'] / out['reservoirpy']:.2f}")
    return out


def batch_speed(units, batch, T, repeats):
    U = np.random.default_rng(1).uniform(-1, 1, (batch, T, 1))
    ours = Reservoir(units, 1, spectral_radius=0.9, seed=0)
    rpy = rpy_reservoir(units, 0, 0.9, 1.0, 1.0)
    rpy.run(U[0, :2])
    t_ours = t_rpy = float("inf")
    for _ in range(repeats):
        t_ours = min(t_ours, best_time(lambda: ours.run_batch(U), 1))
        t_rpy = min(t_rpy, best_time(lambda: rpy.run(U), 1))  # ReservoirPy's multi-series run
    out = {"N": units, "batch": batch, "T": T, "ours": batch * T / t_ours,
           "reservoirpy": batch * T / t_rpy}
    print(f"batched steps/s, {units} units x {batch}: ours {out['ours']:.0f}  reservoirpy "
          f"{out['reservoirpy']:.0f}  ratio {out['ours'] / out['reservoirpy']:.2f}")
    return out


def actor_vs_inprocess(steps, repeats):
    import ray

    from echo_ray.connection import connect
    from echo_ray.dtesn.actors import DTESNSystem

    connect(include_dashboard=False)
    spec = TreeSpec.from_depth(4, units=100)
    U = np.random.default_rng(2).uniform(-1, 1, (steps, 1))
    system = DTESNSystem(spec, n_actors=4, chunk_size=1000, checkpoint_dir=tempfile.mkdtemp())
    system.run(U[:10])  # actors up
    tree = MembraneTree(spec)
    t_all = t_root = t_local = float("inf")
    for _ in range(repeats):  # interleaved
        t_all = min(t_all, best_time(lambda: system.run(U), 1))
        t_root = min(t_root, best_time(lambda: system.run(U, members="root"), 1))
        t_local = min(t_local, best_time(lambda: tree.run(U), 1))
    n_actors = system.n_actors
    system.shutdown()
    ray.shutdown()
    out = {"steps": steps, "membranes": len(spec.parents), "actors": n_actors,
           "chunk_size": system.chunk_size, "inprocess_s": t_local,
           "actor_all_states_s": t_all, "actor_root_states_s": t_root,
           "ratio": t_local / t_root, "ratio_all_states": t_local / t_all}
    print(f"DTESNSystem ({out['membranes']} membranes, {n_actors} actors) vs in-process, {steps} "
          f"steps: in-process {t_local:.3f}s; actors returning the root states {t_root:.3f}s "
          f"(throughput ratio {out['ratio']:.2f}), returning all states {t_all:.3f}s "
          f"(ratio {out['ratio_all_states']:.2f})")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True, help="where to write the results")
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats (best is kept)")
    ap.add_argument("--seeds", type=int, default=20, help="reservoir seeds for the NRMSE means")
    args = ap.parse_args(argv)

    mg = scale_to_unit(mackey_glass(5001))
    u, y = narma10(5000, seed=0)
    results = {
        "mackey_glass_nrmse": accuracy(
            "Mackey-Glass NRMSE", mg[:-1, None], mg[1:, None], 4000, 500, 1e-7,
            {"spectral_radius": 1.25, "leak_rate": 0.3, "input_scaling": 1.0,
             "input_density": 1.0}, args.seeds),
        "narma10_nrmse": accuracy(
            "NARMA10 NRMSE", u[:, None], y[:, None], 4000, 100, 1e-8,
            {"spectral_radius": 0.95, "leak_rate": 1.0, "input_scaling": 0.5}, args.seeds),
        "steps_per_s": {str(n): speed(n, 5000 if n == 100 else 2000, args.repeats)
                        for n in (100, 1000)},
        "batch_steps_per_s": batch_speed(100, 64, 500, args.repeats),
        "actor_vs_inprocess": actor_vs_inprocess(10000, args.repeats),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
