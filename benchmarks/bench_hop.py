"""Actor hop or in-process: the worker's DTESN encodes both ways, in one run, and what the trees'
weights weigh against the processes that hold them.

    python benchmarks/bench_hop.py --json benchmarks/out/hop.json [--quick]

1. single: one encode at a time, on the membrane actors (the served `DTESNSystem`) and on the
   same tree in this process, by served tree and series length; the hop is the difference.
2. concurrent: 4 threads, each on another served tree (the replica runs requests in threads),
   requests per second both ways by series length; where actors/in-process crosses 1 is the
   work threshold of `echo_ray.service.placement` (`WORKER_INPROCESS_MAX_WORK`).
   mixed: 3 threads of small encodes beside 1 of large ones, the small ones' latency with
   every encode on the actors, by the rule, and all in-process.
3. requests: each processing type's example request, scaled up, through `CognitiveProcessor`
   with every encode on the actors against every encode in-process.
4. weights: reservoir weights per served tree (bytes and build time), against the memory (USS)
   of the Ray worker process each membrane actor is: the most that sharing the weights through
   the object store could save against per-process copies.
5. replica: a worker replica's start (its constructor and warm-up) and its memory (USS of the
   replica plus its membrane actors), with every encode on the actors against the default
   threshold (each tree then also built in the replica).
Every figure is the median of 3 rounds, with the rounds' min and max; the machine's load
average is recorded beside each section.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

SINGLE_THREAD_BLAS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
# Before numpy loads OpenBLAS: the in-process side must run as a worker replica does (one BLAS
# thread, WORKER_OPTIONS); with OpenBLAS's own threads it measured up to 1.6x slower here.
for _k, _v in SINGLE_THREAD_BLAS.items():
    os.environ.setdefault(_k, _v)

import numpy as np  # noqa: E402

ROUNDS = 3


def served_specs() -> dict:
    """The trees the served app builds (`echo_ray.cognitive`), by name."""
    from echo_ray.cognitive import agents, grammar, memory, multimodal, reasoning

    return {"memory": memory.engine_spec(), "reasoning": reasoning.engine_spec(),
            "grammar": grammar.engine_spec(), "agents": agents.engine_spec(),
            "multi_modal_2": multimodal.engine_spec(2), "multi_modal_4": multimodal.engine_spec(4)}


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def set_max_work(cache, max_work: int) -> None:
    """Every placed engine of `cache` (and those it makes later) to one threshold."""
    cache.inprocess_max_work = max_work
    for placed in cache._placed.values():
        placed.max_work = max_work


ALL_LOCAL, ALL_ACTORS = 10**18, 0


def timed(fn, calls: int) -> float:
    """Median ms of `calls` calls."""
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def single(cache, specs: dict, lengths: list[int], calls: int) -> list[dict]:
    from echo_ray.service.placement import work

    rng = np.random.default_rng(0)
    rows = []
    for name, spec in specs.items():
        engine = cache(spec)
        for T in lengths:
            U = rng.standard_normal((T, spec.input_dim))
            per = {"actors": [], "in_process": []}
            for _ in range(ROUNDS):  # interleaved, so drifting load hits both sides alike
                for side, max_work in (("actors", ALL_ACTORS), ("in_process", ALL_LOCAL)):
                    set_max_work(cache, max_work)
                    engine.encode(U)
                    per[side].append(timed(lambda e=engine, U=U: e.encode(U), calls))
            a, b = summary(per["actors"]), summary(per["in_process"])
            rows.append({"tree": name, "steps": T, "work": work(spec, T), "actors_ms": a,
                         "in_process_ms": b, "hop_ms": a["median"] - b["median"],
                         "ratio": a["median"] / b["median"], "load": load()})
            print(f"single {name:14s} T={T:5d} work={rows[-1]['work']:8d} actors "
                  f"{a['median']:7.2f} ms in-process {b['median']:7.2f} ms "
                  f"ratio {rows[-1]['ratio']:5.2f} load {rows[-1]['load']}", flush=True)
    return rows


def run_threads(loop, n: int) -> float:
    """Run `loop(k)` for k in range(n), one thread each, all at once; the wall seconds."""
    threads = [threading.Thread(target=loop, args=(k,)) for k in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def closed_loop(engines: list, inputs: list, seconds: float) -> float:
    """Requests per second of len(engines) threads, one engine each, back to back."""
    counts = [0] * len(engines)
    stop = time.perf_counter() + seconds

    def loop(k: int) -> None:
        while time.perf_counter() < stop:
            engines[k].encode(inputs[k])
            counts[k] += 1

    wall = run_threads(loop, len(engines))
    return sum(counts) / wall


def concurrent(cache, specs: dict, lengths: list[int], seconds: float) -> list[dict]:
    from echo_ray.service.placement import work

    names = ["reasoning", "grammar", "agents", "multi_modal_2"]
    engines = [cache(specs[n]) for n in names]
    rng = np.random.default_rng(1)
    rows = []
    for T in lengths:
        inputs = [rng.standard_normal((T, specs[n].input_dim)) for n in names]
        per: dict[str, list[float]] = {"actors": [], "in_process": []}
        for _ in range(ROUNDS):
            for side, max_work in (("actors", ALL_ACTORS), ("in_process", ALL_LOCAL)):
                set_max_work(cache, max_work)
                for e, U in zip(engines, inputs, strict=True):
                    e.encode(U)
                per[side].append(closed_loop(engines, inputs, seconds))
        ratios = [a / b for a, b in zip(per["actors"], per["in_process"], strict=True)]
        mean_work = statistics.mean(work(specs[n], T) for n in names)
        rows.append({"steps": T, "mean_work": mean_work, "actors_rps": summary(per["actors"]),
                     "in_process_rps": summary(per["in_process"]),
                     "ratio_actors_vs_in_process": summary(ratios), "load": load()})
        print(f"concurrent T={T:5d} work~{mean_work:8.0f} actors {summary(per['actors'])['median']:7.1f}"
              f" rps in-process {summary(per['in_process'])['median']:7.1f} rps actors/in-process"
              f" {summary(ratios)['median']:5.2f} [{min(ratios):.2f}, {max(ratios):.2f}]"
              f" load {load()}", flush=True)
    return rows


def mixed(cache, specs: dict, seconds: float, small_T: int = 16, large_T: int = 2048) -> dict:
    """3 threads of small encodes (one tree each) beside 1 thread of large ones (grammar): the
    small ones' latency and the large ones' rate with every encode on the actors, by the rule
    (the measured threshold: the small in-process, the large on the actors) and all in-process."""
    from echo_ray.service.placement import MEASURED_MAX_WORK, work

    default = MEASURED_MAX_WORK
    small_names = ["reasoning", "agents", "multi_modal_2"]
    engines = [cache(specs[n]) for n in small_names] + [cache(specs["grammar"])]
    rng = np.random.default_rng(2)
    inputs = [rng.standard_normal((small_T, specs[n].input_dim)) for n in small_names]
    inputs.append(rng.standard_normal((large_T, specs["grammar"].input_dim)))
    sides = (("actors", ALL_ACTORS), ("rule", default), ("in_process", ALL_LOCAL))
    per: dict = {side: {"small_p50_ms": [], "small_p95_ms": [], "large_rps": []}
                 for side, _ in sides}
    for _ in range(ROUNDS):
        for side, max_work in sides:
            set_max_work(cache, max_work)
            for e, U in zip(engines, inputs, strict=True):
                e.encode(U)
            lat: list[list[float]] = [[] for _ in engines]
            stop = time.perf_counter() + seconds

            def loop(k: int, lat=lat, stop=stop) -> None:
                while time.perf_counter() < stop:
                    t0 = time.perf_counter()
                    engines[k].encode(inputs[k])
                    lat[k].append(time.perf_counter() - t0)

            wall = run_threads(loop, len(engines))
            small = 1000 * np.array([x for k in range(len(small_names)) for x in lat[k]])
            per[side]["small_p50_ms"].append(float(np.percentile(small, 50)))
            per[side]["small_p95_ms"].append(float(np.percentile(small, 95)))
            per[side]["large_rps"].append(len(lat[-1]) / wall)
    res: dict = {side: {k: summary(v) for k, v in d.items()} for side, d in per.items()}
    res.update({"small_work": work(specs["reasoning"], small_T),
                "large_work": work(specs["grammar"], large_T), "threshold": default,
                "load": load()})
    for side, _ in sides:
        r = res[side]
        print(f"mixed {side:10s}: small p50 {r['small_p50_ms']['median']:6.2f} ms p95 "
              f"{r['small_p95_ms']['median']:7.2f} ms, large {r['large_rps']['median']:5.2f} "
              f"rps; load {load()}", flush=True)
    return res


def crossover(rows: list[dict]) -> float | None:
    """The work where actors/in-process throughput first reaches 1 (log-linear between the
    two measured points around it); None if it never does."""
    points = [(r["mean_work"], r["ratio_actors_vs_in_process"]["median"]) for r in rows]
    for (w0, r0), (w1, r1) in zip(points, points[1:], strict=False):
        if r0 < 1 <= r1:
            f = (1 - r0) / (r1 - r0)
            return float(np.exp(np.log(w0) + f * (np.log(w1) - np.log(w0))))
    return points[0][0] if points and points[0][1] >= 1 else None


def scaled_requests(scale: int) -> dict:
    """The example request of each type with `scale` times as much input."""
    from echo_ray.cognitive.examples import EXAMPLE_REQUESTS as ex

    traj = [[0.1 * (k % 7), 0.05 * (k % 5)] for k in range(3 * scale)]
    return {
        "reasoning": {**ex["reasoning"], "series": ex["reasoning"]["series"] * scale},
        "memory": {"op": "store", "items": ex["memory"]["items"] * scale},
        "grammar": {"op": "train", "strings": ex["grammar"]["strings"] * scale},
        "agent_evaluation": {
            "examples": [{"trajectory": traj, "scores": {"speed": float(k)}} for k in range(4)],
            "agents": [{"id": "a", "trajectory": traj}, {"id": "b", "trajectory": traj[::-1]}]},
        "multi_modal": {"op": "embed", "samples": ex["multi_modal"]["samples"] * scale},
    }


class WorkMeter:
    """An engine factory that adds up the work of every encode it passes on."""

    def __init__(self, engines):
        from echo_ray.service.placement import work

        self.engines, self.work, self.total = engines, work, 0

    def __call__(self, spec):
        engine, meter = self.engines(spec), self

        class Metered:
            def encode(self, U):
                meter.total += meter.work(spec, len(U))
                return engine.encode(U)

            def encode_batch(self, Us):
                meter.total += meter.work(spec, sum(len(U) for U in Us))
                return engine.encode_batch(Us)
        return Metered()


def requests(cache, scales: list[int], calls: int) -> list[dict]:
    from echo_ray.cognitive import process

    rows = []
    for scale in scales:
        for kind, payload in scaled_requests(scale).items():
            meter = WorkMeter(cache)
            process(kind, payload, {}, meter)  # builds the engines; measures the work
            per: dict[str, list[float]] = {"actors": [], "in_process": []}
            for _ in range(ROUNDS):
                for side, max_work in (("actors", ALL_ACTORS), ("in_process", ALL_LOCAL)):
                    set_max_work(cache, max_work)
                    per[side].append(timed(
                        lambda k=kind, p=payload: process(k, p, {}, cache), calls))
            a, b = summary(per["actors"]), summary(per["in_process"])
            rows.append({"type": kind, "scale": scale, "work": meter.total, "actors_ms": a,
                         "in_process_ms": b, "ratio": a["median"] / b["median"], "load": load()})
            print(f"request {kind:17s} x{scale:<3d} work={meter.total:8d} actors "
                  f"{a['median']:7.2f} ms in-process {b['median']:7.2f} ms ratio "
                  f"{rows[-1]['ratio']:5.2f} load {rows[-1]['load']}", flush=True)
    return rows


def weight_bytes(tree) -> int:
    """Bytes of every reservoir array a membrane tree holds (W as CSR and dense, W_in, bias)."""
    total = 0
    for r in tree.reservoirs.values():
        total += r.W.data.nbytes + r.W.indices.nbytes + r.W.indptr.nbytes
        total += r.W_in.nbytes + r.bias.nbytes
        if r._W_dense is not None:
            total += r._W_dense.nbytes
    return total


def uss(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_full_info().uss)


def weights(specs: dict) -> dict:
    """Bytes and build time of each served tree's weights (3 builds each), and the USS of a
    fresh Ray worker process (a membrane actor is one) before and after it builds them all."""
    import ray

    from echo_ray.dtesn.membrane_tree import MembraneTree

    trees = {}
    for name, spec in specs.items():
        builds = []
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            tree = MembraneTree(spec)
            builds.append(1000 * (time.perf_counter() - t0))
        trees[name] = {"bytes": weight_bytes(tree), "build_ms": summary(builds)}
    probe = ray.remote(num_cpus=0)(ActorMemory)
    actor_uss = []
    for _ in range(ROUNDS):
        a = probe.remote()
        actor_uss.append(ray.get(a.uss_with.remote([s.to_dict() for s in specs.values()])))
        ray.kill(a)
    total = sum(t["bytes"] for t in trees.values())
    out = {"trees": trees, "total_bytes": total,
           "largest_bytes": max(t["bytes"] for t in trees.values()),
           "build_ms_total": sum(t["build_ms"]["median"] for t in trees.values()),
           "worker_process_uss_bytes": summary([u["empty"] for u in actor_uss]),
           "worker_process_uss_with_all_trees_bytes": summary([u["with"] for u in actor_uss]),
           "load": load()}
    print(f"weights: {total / 2**10:.0f} KiB over {len(trees)} trees (largest "
          f"{out['largest_bytes'] / 2**10:.0f} KiB), built in {out['build_ms_total']:.0f} ms; "
          f"a Ray worker process (what each membrane actor is) USS "
          f"{out['worker_process_uss_bytes']['median'] / 2**20:.1f} MiB, with every tree "
          f"{out['worker_process_uss_with_all_trees_bytes']['median'] / 2**20:.1f} MiB; "
          f"load {load()}", flush=True)
    return out


class ActorMemory:
    """USS of a Ray worker process before and after it builds trees (a membrane actor's
    process is such a worker, plus its one tree)."""

    def uss_with(self, specs: list[dict]) -> dict:
        from echo_ray.dtesn.membrane_tree import MembraneTree, TreeSpec

        empty = uss(os.getpid())
        self.trees = [MembraneTree(TreeSpec.from_dict(s)) for s in specs]
        return {"empty": empty, "with": uss(os.getpid())}


class ReplicaProbe:
    """A worker replica's constructor (warm-up included) in a fresh Ray worker process, as
    Serve runs it: how long it takes, and the pids of the replica and its membrane actors."""

    def start(self, data_dir: str, max_work: int) -> dict:
        from echo_ray.service.worker import CognitiveWorker
        from echo_ray.settings import Settings

        settings = Settings.from_env({}, paths={"data_dir": data_dir},
                                     service={"worker_inprocess_max_work": max_work},
                                     scaling={"membrane_interval_s": 0.0})
        t0 = time.perf_counter()
        self.worker = CognitiveWorker.func_or_class(settings)
        seconds = time.perf_counter() - t0
        import ray

        pids = ray.get([a.__ray_call__.remote(lambda actor: os.getpid())
                        for a in self.worker.engines.actors()])
        return {"seconds": seconds, "pid": os.getpid(), "actor_pids": pids}

    def stop(self) -> None:
        self.worker.engines.shutdown()


def replica(rounds: int) -> dict:
    """Start time and memory (USS of the replica process plus its membrane actors) of a worker
    replica, every encode on the actors (threshold 0) against the measured threshold (each
    tree also in the replica). Interleaved rounds."""
    import tempfile

    import ray

    from echo_ray.service.placement import MEASURED_MAX_WORK

    default = MEASURED_MAX_WORK
    probe_cls = ray.remote(num_cpus=0)(ReplicaProbe)
    per: dict = {side: {"start_s": [], "replica_uss": [], "actors_uss": [], "actors": []}
                 for side in ("actors_only", "placed")}
    for _ in range(rounds):
        for side, max_work in (("actors_only", 0), ("placed", default)):
            probe = probe_cls.remote()
            out = ray.get(probe.start.remote(tempfile.mkdtemp(prefix="echo-hop-"), max_work))
            per[side]["start_s"].append(out["seconds"])
            per[side]["replica_uss"].append(uss(out["pid"]))
            per[side]["actors_uss"].append(sum(uss(p) for p in out["actor_pids"]))
            per[side]["actors"].append(len(out["actor_pids"]))
            ray.get(probe.stop.remote())
            ray.kill(probe)
    res = {side: {k: summary(v) for k, v in d.items()} for side, d in per.items()}
    res["default_max_work"], res["load"] = default, load()
    for side in ("actors_only", "placed"):
        r = res[side]
        print(f"replica {side:11s}: start {r['start_s']['median']:.2f} s "
              f"[{r['start_s']['min']:.2f}, {r['start_s']['max']:.2f}], replica USS "
              f"{r['replica_uss']['median'] / 2**20:.1f} MiB + {r['actors']['median']:.0f} "
              f"membrane actors {r['actors_uss']['median'] / 2**20:.1f} MiB; load {load()}",
              flush=True)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--quick", action="store_true", help="fewer sizes and shorter runs (tests)")
    args = ap.parse_args(argv)

    import ray

    from echo_ray.connection import connect
    from echo_ray.service.engines import EngineCache

    started = not ray.is_initialized()
    connect(include_dashboard=False, runtime_env={"env_vars": SINGLE_THREAD_BLAS})
    specs = served_specs()
    if args.quick:
        specs = {k: specs[k] for k in ("reasoning", "grammar", "agents", "multi_modal_2")}
        lengths, conc_lengths, scales, calls, seconds = [16, 512], [16, 512], [1], 3, 0.5
    else:
        lengths, conc_lengths = [4, 16, 64, 256, 1024, 4096], [16, 64, 128, 256, 512, 1024, 2048]
        scales, calls, seconds = [1, 8, 64], 7, 3.0
    cache = EngineCache(use_actors=True, name_prefix="bench-hop", inprocess_max_work=1)
    t0 = time.perf_counter()
    try:
        results: dict = {"machine": {"cpus": os.cpu_count()}, "quick": args.quick,
                         "load_average_start": list(os.getloadavg())}
        results["single"] = single(cache, specs, lengths, calls)
        results["concurrent"] = concurrent(cache, specs, conc_lengths, seconds)
        results["crossover_work"] = crossover(results["concurrent"])
        results["mixed"] = mixed(cache, served_specs(), seconds)
        results["requests"] = requests(cache, scales, calls)
        results["weights"] = weights(specs)
        results["replica"] = replica(1 if args.quick else ROUNDS)
    finally:
        cache.shutdown()
    results["load_average_end"] = list(os.getloadavg())
    results["seconds"] = time.perf_counter() - t0
    hops = [r["hop_ms"] for r in results["single"]]
    results["hop_ms_median"] = statistics.median(hops)
    print(f"hop median {results['hop_ms_median']:.2f} ms; in-process faster alone in "
          f"{sum(r['ratio'] > 1 for r in results['single'])}/{len(hops)} single cases; "
          f"actors overtake in-process under 4 concurrent trees at work ~"
          f"{results['crossover_work']}; load {os.getloadavg()}", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    if started:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
