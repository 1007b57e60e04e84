"""Cache benchmark: our policies and tiers against their competitors, in the same run.

    python benchmarks/bench_cache.py --json OUT                   # everything
    python benchmarks/bench_cache.py --suite [--seed N] [--json OUT]   # synthetic families only
    python benchmarks/bench_cache.py --wide [--json OUT]          # the 50 cases beside the targets
    python benchmarks/bench_cache.py --trace PATH --size N [--json OUT]   # your own trace

Sections (the JSON keys):
  hit_ratio             percent hits on the LIRS traces (data/traces/cache), two sizes each:
                        our lru, lfu, fifo, arc, tinylfu (adaptive W-TinyLFU) and
                        tinylfu_climb (the same with Caffeine's hill climber) vs cachetools
                        LRU/LFU, theine (W-TinyLFU) and Belady's optimal. Our lru and arc
                        must equal the published LRU and ARC figures.
  suite                 the same table on the synthetic families of
                        echo_ray.cache.workloads (seed 1), two sizes each.
  wide                  (--wide only) the same table on 50 cases that are not target rows:
                        the families from other seeds, at other sizes and with other
                        parameters, and the traces at other sizes. They show whether a
                        result carries over to workloads no choice was made on.
  targets               per row: tinylfu >= max(lru, theine - 1), and on recency-heavy
                        families tinylfu >= arc - 1 (hit ratios compared unrounded); L1
                        tinylfu <= 2x cachetools LRU.
  l1_ns_per_op          get/put-on-miss over Zipf(1.0) keys (100k distinct, capacity 10k):
                        our lru, tinylfu and arc vs cachetools.LRUCache vs a plain dict.
  l3_us, l4_us          get/set latency of our disk and Redis tiers vs raw diskcache and
                        raw redis-py (a private redis-server on a free port).
  object_store_vs_redis read of an 8 MB float64 array by another Ray worker through the
                        object-store tier vs through the Redis tier (ms).

A trace is one key per line, plain, gzip or zstd compressed.
"""

from __future__ import annotations

import argparse
import functools
import gc
import gzip
import heapq
import io
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from echo_ray.autoscaling.trace import traces_dir  # noqa: E402
from echo_ray.cache import workloads  # noqa: E402
from echo_ray.cache.eviction import make_policy  # noqa: E402

# (trace file, cache size): the sizes the traces README publishes figures for, and a second
# size per trace. The published LRU, ARC and optimal hit ratios from that README.
STANDARD_CASES = [("gli", 500), ("gli", 1000), ("multi2", 1000), ("multi2", 2000),
                  ("sprite", 100), ("sprite", 200), ("loop", 512), ("loop", 768)]
PUBLISHED = {
    "lru": {"gli-500": 0.95, "gli-1000": 11.21, "multi2-2000": 49.00, "sprite-100": 21.58,
            "loop-768": 0.00},
    "arc": {"gli-500": 1.38, "gli-1000": 21.31, "multi2-2000": 64.26, "sprite-100": 25.66,
            "loop-768": 0.00},
    "optimal": {"gli-500": 34.26, "gli-1000": 53.13, "multi2-2000": 74.65,
                "sprite-100": 50.80, "loop-768": 75.81},
}
# Column -> (policy, options). tinylfu_climb shows what Caffeine's hill climber gets.
OURS = {"lru": ("lru", {}), "lfu": ("lfu", {}), "fifo": ("fifo", {}), "arc": ("arc", {}),
        "tinylfu": ("tinylfu", {}), "tinylfu_climb": ("tinylfu", {"adapt": "climb"})}
OUR_POLICIES = list(OURS)
SUITE_SEED = 1
# The wider check (`--wide`): each family from two other seeds at its two sizes, and from a
# third seed at two other sizes; each family's larger size with other parameters; the
# traces at other sizes. Chosen to cover the families' knobs, not tuned on.
WIDE_SEEDS = (7, 8)
WIDE_SIZE_SEED, WIDE_SIZES = 3, (1_000, 4_000)
WIDE_VARIANTS = [("zipf", {"alpha": 0.6}), ("zipf", {"alpha": 1.1}),
                 ("shifting", {"shift": 0.25}), ("shifting", {"shift": 1.0}),
                 ("shifting", {"phase": 10_000}),
                 ("recency_scans", {"mean_age": 200.0}), ("recency_scans", {"mean_age": 1_000.0})]
WIDE_TRACE_SIZES = {"gli": (250, 750, 1_500, 2_000), "multi2": (500, 1_500, 3_000),
                    "sprite": (50, 300, 400), "loop": (256, 640, 1_024)}
L1_TARGET = 2.0  # L1 tinylfu ns/op at most this times cachetools.LRUCache's


# -- traces ---------------------------------------------------------------------------------
def cache_traces_dir() -> Path:
    path = traces_dir() / "cache"
    if not path.is_dir():
        sys.exit(f"bench_cache: cache traces not found in {path}; "
                 "set ECHO_RAY_TRACES to a folder with a cache/ subfolder")
    return path


def load_trace(path: Path) -> list[int]:
    """Keys of a trace (plain, gzip or zstd), mapped to dense ints in first-seen order.

    Dense ids make every policy's hashing identical from run to run (str hashes are
    salted per process), without changing any hit or miss.
    """
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    elif raw[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    ids: dict[str, int] = {}
    keys = []
    for line in raw.decode().splitlines():
        line = line.strip()
        if line:
            keys.append(ids.setdefault(line, len(ids)))
    if not keys:
        sys.exit(f"bench_cache: trace {path} has no keys")
    return keys


# -- hit ratios -----------------------------------------------------------------------------
def hits_ours(name: str, keys: list[int], size: int) -> int:
    policy, options = OURS.get(name, (name, {}))
    cache = make_policy(policy, maxsize=size, **options)
    get, put = cache.get, cache.put
    hits = 0
    for k in keys:
        if get(k) is None:
            put(k, k)
        else:
            hits += 1
    return hits


def hits_cachetools(kind: str, keys: list[int], size: int) -> int:
    import cachetools

    cache = cachetools.LRUCache(size) if kind == "lru" else cachetools.LFUCache(size)
    get = cache.get
    hits = 0
    for k in keys:
        if get(k) is None:
            cache[k] = k
        else:
            hits += 1
    return hits


def hits_theine(keys: list[int], size: int) -> int:
    from theine import Cache

    random.seed(0)  # theine's read buffer picks stripes with `random`
    cache = Cache(size)
    get, put = cache.get, cache.set
    hits = 0
    for k in keys:
        if get(k)[1]:
            hits += 1
        else:
            put(k, k)
    # Each theine cache runs a maintenance task every second on theine's own thread until it
    # is closed (the task holds the cache, so it is never collected): close it, or dozens of
    # them keep waking up beside the L1 timing further on.
    cache.close()
    return hits


def hits_optimal(keys: list[int], size: int) -> int:
    """Belady's MIN: on a miss with a full cache, evict the resident entry whose next
    use is furthest in the future (the newcomer is always admitted)."""
    never = len(keys)
    next_use = [never] * len(keys)
    last: dict[int, int] = {}
    for i in range(len(keys) - 1, -1, -1):
        next_use[i] = last.get(keys[i], never)
        last[keys[i]] = i
    cached: dict[int, int] = {}  # key -> its next use
    heap: list[tuple[int, int]] = []  # (-next use, key); stale rows are skipped
    hits = 0
    for i, k in enumerate(keys):
        if k in cached:
            hits += 1
        elif len(cached) >= size:
            while -heap[0][0] != cached.get(heap[0][1]):
                heapq.heappop(heap)
            del cached[heapq.heappop(heap)[1]]
        cached[k] = next_use[i]
        heapq.heappush(heap, (-next_use[i], k))
        if len(heap) > 4 * size:
            heap = [(-n, key) for key, n in cached.items()]
            heapq.heapify(heap)
    return hits


def hit_ratio_row(keys: list[int], size: int) -> dict[str, float]:
    """Percent hits per column, unrounded (the verdict compares these; a tie in the printed
    two decimals can be a few hits either way)."""
    pct = 100.0 / len(keys)
    row = {name: hits_ours(name, keys, size) * pct for name in OUR_POLICIES}
    row["cachetools_lru"] = hits_cachetools("lru", keys, size) * pct
    row["cachetools_lfu"] = hits_cachetools("lfu", keys, size) * pct
    row["theine"] = hits_theine(keys, size) * pct
    row["optimal"] = hits_optimal(keys, size) * pct
    return row


def target_check(row: dict[str, float], recency_heavy: bool) -> dict[str, object]:
    """The issue's hit-ratio target for one row: adaptive W-TinyLFU at least as good as LRU
    and within 1 point of theine; on recency-heavy workloads also within 1 point of ARC."""
    need = max(row["lru"], row["theine"] - 1.0)
    met = row["tinylfu"] >= need
    check: dict[str, object] = {"need": round(need, 2), "met": met}
    if recency_heavy:
        check["arc_met"] = row["tinylfu"] >= row["arc"] - 1.0
        check["met"] = met and check["arc_met"]
    return check


def bench_hit_ratio(cases: list[tuple[str, object, int, bool]]) -> tuple[dict, dict]:
    """Rows for (label, trace path or key list, size, recency-heavy?) cases, printed as a
    table with the target verdict; returns (rows, target checks)."""
    out, checks = {}, {}
    width = max([20, *(len(label) + 1 for label, *_ in cases)])
    print(f"{'case':<{width}}" + "".join(f"{c:>15}" for c in
                                         [*OUR_POLICIES, "cachetools_lru", "cachetools_lfu",
                                          "theine", "optimal", "tinylfu-theine"]) + "   target")
    for label, source, size, recency_heavy in cases:
        if callable(source):  # a generator, run when its row comes
            keys = source()
        else:
            keys = source if isinstance(source, list) else load_trace(source)
        exact = hit_ratio_row(keys, size)
        checks[label] = check = target_check(exact, recency_heavy)
        out[label] = row = {k: round(v, 2) for k, v in exact.items()}
        verdict = "met" if check["met"] else "NOT met"
        note = f" (max(lru, theine - 1) = {check['need']:.2f}"
        if recency_heavy:
            note += f"; arc - 1 = {row['arc'] - 1:.2f} {'met' if check['arc_met'] else 'NOT met'}"
        note += ")"
        print(f"{label:<{width}}" + "".join(f"{v:>15.2f}" for v in row.values())
              + f"{row['tinylfu'] - row['theine']:>+15.2f}   {verdict}{note}", flush=True)
    return out, checks


def trace_cases(runs: list[tuple[str, int]]) -> list[tuple[str, Path, int, bool]]:
    """(trace name, cache size) pairs as cases on the LIRS traces."""
    cache_dir = cache_traces_dir()
    return [(f"{name}-{size}", cache_dir / f"{name}.trace.gz", size, False)
            for name, size in runs]


def suite_cases(seed: int = SUITE_SEED) -> list[tuple[str, list[int], int, bool]]:
    cases = []
    for name, (generate, n, sizes, recency_heavy) in workloads.FAMILIES.items():
        keys = generate(n, seed)
        cases += [(f"{name}-{size}", keys, size, recency_heavy) for size in sizes]
    return cases


def wide_cases() -> list[tuple[str, object, int, bool]]:
    """The `--wide` cases (see WIDE_SEEDS): a family's keys come from a generator called
    when its row runs, so the 30 key lists are not all held at once."""
    cases = []
    for name, (generate, n, sizes, recency_heavy) in workloads.FAMILIES.items():
        runs = [(seed, size) for seed in WIDE_SEEDS for size in sizes]
        runs += [(WIDE_SIZE_SEED, size) for size in WIDE_SIZES]
        cases += [(f"{name}-{size}-seed{seed}", functools.partial(generate, n, seed), size,
                   recency_heavy) for seed, size in runs]
    for name, params in WIDE_VARIANTS:
        generate, n, sizes, recency_heavy = workloads.FAMILIES[name]
        label = ",".join(f"{k}={v:g}" for k, v in params.items())
        cases.append((f"{name}-{sizes[-1]}-{label}",
                      functools.partial(generate, n, SUITE_SEED, **params), sizes[-1],
                      recency_heavy))
    return cases + trace_cases([(name, size) for name, sizes in WIDE_TRACE_SIZES.items()
                                for size in sizes])


# -- L1 speed -------------------------------------------------------------------------------
def zipf_keys(n_keys: int, n_requests: int, seed: int = 42) -> list[int]:
    ranks = np.arange(1, n_keys + 1, dtype=np.float64)
    p = 1.0 / ranks
    p /= p.sum()
    return np.random.default_rng(seed).choice(n_keys, size=n_requests, p=p).tolist()


def _loop_policy(cache, keys):
    get, put = cache.get, cache.put
    for k in keys:
        if get(k) is None:
            put(k, k)


def _loop_mapping(cache, keys):
    get = cache.get
    for k in keys:
        if get(k) is None:
            cache[k] = k


def bench_l1(n_keys: int = 100_000, capacity: int = 10_000, n_requests: int = 400_000,
             repeats: int = 5) -> dict[str, float]:
    import cachetools

    keys = [k + 1 for k in zipf_keys(n_keys, n_requests)]  # never a falsy key
    makers = {
        "lru": (lambda: make_policy("lru", maxsize=capacity), _loop_policy),
        "tinylfu": (lambda: make_policy("tinylfu", maxsize=capacity), _loop_policy),
        "arc": (lambda: make_policy("arc", maxsize=capacity), _loop_policy),
        "cachetools_lru": (lambda: cachetools.LRUCache(capacity), _loop_mapping),
        "dict": (dict, _loop_mapping),
    }
    best = {name: float("inf") for name in makers}
    for _ in range(repeats):  # interleaved, best of `repeats`: least disturbed by neighbours
        for name, (make, loop) in makers.items():
            cache = make()
            loop(cache, keys[: n_requests // 4])  # warm up: fill the cache
            gc.collect()
            gc.disable()
            t0 = time.perf_counter_ns()
            loop(cache, keys)
            elapsed = time.perf_counter_ns() - t0
            gc.enable()
            best[name] = min(best[name], elapsed / len(keys))
    out = {name: round(v, 1) for name, v in best.items()}
    ratio = out["tinylfu"] / out["cachetools_lru"]
    print(f"L1 ns/op (Zipf 1.0, {n_keys} keys, capacity {capacity}): {out}; "
          f"lru/cachetools = {out['lru'] / out['cachetools_lru']:.2f}, "
          f"arc/cachetools = {out['arc'] / out['cachetools_lru']:.2f}, "
          f"tinylfu/cachetools = {ratio:.2f} (target <= {L1_TARGET}: "
          f"{'met' if ratio <= L1_TARGET else 'NOT met'})")
    return out


# -- L3 / L4 latency ------------------------------------------------------------------------
def _mean_us(fn, items, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for item in items:
            fn(item)
        best = min(best, (time.perf_counter_ns() - t0) / len(items) / 1000)
    return round(best, 2)


def _payload() -> bytes:
    from echo_ray.cache.entry import pack_entry

    rng = np.random.default_rng(1)
    return pack_entry({"state": rng.random(112), "step": 7})  # ~1 KiB entry


def bench_l3(n: int = 1000) -> dict[str, float]:
    import diskcache

    from echo_ray.cache.tiers.disk import DiskTier

    blob = _payload()
    keys = [f"key{i}" for i in range(n)]
    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        ours = DiskTier(d1, "bench")
        raw = diskcache.Cache(d2)
        out = {
            "ours_set": _mean_us(lambda k: ours.put(k, blob, 300.0), keys),
            "diskcache_set": _mean_us(lambda k: raw.set(k, blob, expire=300.0), keys),
            "ours_get": _mean_us(ours.get, keys),
            "diskcache_get": _mean_us(raw.get, keys),
        }
        ours.close()
        raw.close()
    print(f"L3 us/op ({len(blob)} B entries): {out}; ours/diskcache get "
          f"{out['ours_get'] / out['diskcache_get']:.2f}, set "
          f"{out['ours_set'] / out['diskcache_set']:.2f}")
    return out


def _redis_server():
    from tests.support.redis_server import RedisServer  # a private redis-server, never 6379

    server = RedisServer()
    server.start()
    return server


def bench_l4(redis_url: str, n: int = 1000) -> dict[str, float]:
    import redis

    from echo_ray.cache.tiers.redis_tier import RedisTier

    blob = _payload()
    keys = [f"key{i}" for i in range(n)]
    ours = RedisTier(redis_url, "bench")
    raw = redis.Redis.from_url(redis_url)
    out = {
        "ours_set": _mean_us(lambda k: ours.put(k, blob, 300.0), keys),
        "redis_py_set": _mean_us(lambda k: raw.set("raw:" + k, blob, ex=300), keys),
        "ours_get": _mean_us(ours.get, keys),
        "redis_py_get": _mean_us(lambda k: raw.get("raw:" + k), keys),
    }
    ours.clear()
    raw.delete(*["raw:" + k for k in keys])
    ours.close()
    raw.close()
    print(f"L4 us/op ({len(blob)} B entries): {out}; ours/redis-py get "
          f"{out['ours_get'] / out['redis_py_get']:.2f}, set "
          f"{out['ours_set'] / out['redis_py_set']:.2f}")
    return out


# -- object store vs Redis ------------------------------------------------------------------
def bench_object_store_vs_redis(redis_url: str, repeats: int = 15) -> dict[str, float]:
    import ray

    from echo_ray.cache.entry import pack_entry
    from echo_ray.cache.tiers.object_store import ObjectStoreTier, holder_name
    from echo_ray.cache.tiers.redis_tier import RedisTier
    from echo_ray.connection import connect

    connect(num_cpus=2, include_dashboard=False, namespace="echo_ray_bench")
    try:
        array = np.random.default_rng(5).random(2**20)  # 8 MiB float64
        holder = ObjectStoreTier("bench")  # keep the handle: the holder lives while it does
        holder.put("state", array, None)
        writer = RedisTier(redis_url, "bench")
        writer.put("state", pack_entry(array), 600.0)

        @ray.remote(num_cpus=0)
        class Reader:
            """Another worker process reading through both tiers."""

            def run(self, url: str, repeats: int) -> dict[str, list[float]]:
                from echo_ray.cache.entry import unpack_entry
                from echo_ray.cache.tiers.object_store import ObjectStoreTier
                from echo_ray.cache.tiers.redis_tier import RedisTier

                objects, redis_tier = ObjectStoreTier("bench"), RedisTier(url, "bench")
                times: dict[str, list[float]] = {"object_store": [], "redis": []}
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    a = objects.get("state").value
                    total_a = float(a[-1])
                    t1 = time.perf_counter()
                    b, _ = unpack_entry(redis_tier.get("state").value)
                    total_b = float(b[-1])
                    t2 = time.perf_counter()
                    assert total_a == total_b
                    times["object_store"].append((t1 - t0) * 1000)
                    times["redis"].append((t2 - t1) * 1000)
                return times

        reader = Reader.remote()
        times = ray.get(reader.run.remote(redis_url, repeats), timeout=300)
        writer.clear()
        writer.close()
        ray.kill(ray.get_actor(holder_name("bench")))
    finally:
        ray.shutdown()
    out = {
        "array_mb": 8.0,
        "object_store_ms": round(statistics.median(times["object_store"]), 3),
        "redis_ms": round(statistics.median(times["redis"]), 3),
    }
    print(f"8 MiB array read by another worker (median of {repeats}): {out}; "
          f"redis/object_store = {out['redis_ms'] / out['object_store_ms']:.1f}x")
    return out


# -- main -----------------------------------------------------------------------------------
def summarize(checks: dict[str, dict]) -> None:
    missed = [label for label, check in checks.items() if not check["met"]]
    print(f"target (tinylfu >= max(lru, theine - 1); recency-heavy: also >= arc - 1): met on "
          f"{len(checks) - len(missed)}/{len(checks)}"
          + (f"; NOT met on {', '.join(missed)}" if missed else ""), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--trace", type=Path, help="hit ratios on this trace only")
    parser.add_argument("--size", type=int, help="cache size for --trace")
    parser.add_argument("--recency-heavy", action="store_true",
                        help="with --trace: also check tinylfu against ARC - 1")
    parser.add_argument("--suite", action="store_true",
                        help="only the synthetic families (the full run includes them)")
    parser.add_argument("--seed", type=int, help=f"with --suite: the families' seed "
                        f"(default {SUITE_SEED}, the target rows')")
    parser.add_argument("--wide", action="store_true",
                        help="the 50 cases beside the target rows: other seeds, sizes and "
                             "parameters of the families, the traces at other sizes")
    args = parser.parse_args(argv)
    if (args.trace is None) != (args.size is None):
        parser.error("--trace and --size go together")
    if args.size is not None and args.size < 1:
        parser.error(f"--size must be a positive int, got {args.size}")
    if args.suite + args.wide + (args.trace is not None) > 1:
        parser.error("--suite, --wide and --trace are separate runs")
    if args.seed is not None and not args.suite:
        parser.error("--seed goes with --suite")

    results: dict[str, object] = {}
    ok = True
    if args.trace is not None:
        if not args.trace.is_file():
            parser.error(f"--trace {args.trace} is not a file")
        label = f"{args.trace.name.split('.')[0]}-{args.size}"
        results["hit_ratio"], checks = bench_hit_ratio(
            [(label, args.trace, args.size, args.recency_heavy)])
        results["targets"] = checks
        summarize(checks)
    elif args.suite:
        seed = SUITE_SEED if args.seed is None else args.seed
        print(f"synthetic families (echo_ray.cache.workloads, seed {seed})")
        results["suite"], checks = bench_hit_ratio(suite_cases(seed))
        results["targets"] = checks
        summarize(checks)
    elif args.wide:
        print("the wider check: not target rows (other seeds, sizes and parameters)")
        results["wide"], checks = bench_hit_ratio(wide_cases())
        results["targets"] = checks
        summarize(checks)
    else:
        cases = trace_cases(STANDARD_CASES)
        print("LIRS traces (data/traces/cache)")
        results["hit_ratio"], checks = bench_hit_ratio(cases)
        ratios = results["hit_ratio"]
        for column, published in PUBLISHED.items():
            for label, expected in published.items():
                if ratios[label][column] != expected:
                    print(f"HARNESS CHECK FAILED: {column} on {label} = "
                          f"{ratios[label][column]}, published = {expected}")
                    ok = False
        if ok:
            print("harness check: our lru and arc and the computed optimal equal the "
                  "published figures on every trace")
        print(f"synthetic families (echo_ray.cache.workloads, seed {SUITE_SEED})")
        results["suite"], suite_checks = bench_hit_ratio(suite_cases())
        checks.update(suite_checks)
        summarize(checks)
        results["l1_ns_per_op"] = l1 = bench_l1()
        checks["l1"] = {"ratio": round(l1["tinylfu"] / l1["cachetools_lru"], 2),
                        "met": l1["tinylfu"] / l1["cachetools_lru"] <= L1_TARGET}
        results["targets"] = checks
        results["l3_us"] = bench_l3()
        server = _redis_server()
        try:
            results["l4_us"] = bench_l4(server.url)
            results["object_store_vs_redis"] = bench_object_store_vs_redis(server.url)
        finally:
            server.stop()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
