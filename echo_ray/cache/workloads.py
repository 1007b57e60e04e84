"""Seeded synthetic cache access patterns, for the policy tests and `bench_cache.py --suite`.

Each generator returns a list of int keys; the same arguments and seed give the
same list. The families pull eviction policies in different directions:

- `recency_scans`: temporal locality (a re-reference is to a recently created key,
  its age geometric) broken by scans of one-time keys, like a database buffer
  pool. Rewards recency; punishes a policy that admits scans.
- `zipf`: independent draws from a Zipf popularity law. Rewards frequency.
- `loop`: a cyclic scan longer than the cache. LRU gets nothing; keeping a fixed
  subset gets size/length.
- `shifting`: a Zipf-popular working set that is partly replaced every phase.
  Rewards forgetting old popularity.
- `mix`: blocks of the four above, on disjoint key ranges.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["FAMILIES", "loop", "mix", "recency_scans", "shifting", "zipf"]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")


def recency_scans(n: int, seed: int = 0, *, new_fraction: float = 0.3,
                  hot_fraction: float = 0.2, hot_keys: int = 1_000, mean_age: float = 400.0,
                  scan_every: int = 20_000, scan_length: int = 2_000,
                  base: int = 0) -> list[int]:
    """A database buffer pool in miniature. Keys are created in order; a request is a
    new key with probability `new_fraction`, a read of a hot set of `hot_keys` keys
    (Zipf 0.8, the index pages) with probability `hot_fraction`, and otherwise a
    re-reference to the key created `age` keys ago, age ~ Geometric(mean `mean_age`).
    Every `scan_every` requests, `scan_length` one-time keys are read in a row."""
    _check_positive(n=n, mean_age=mean_age, scan_every=scan_every, scan_length=scan_length,
                    hot_keys=hot_keys)
    if not (0.0 < new_fraction and 0.0 <= hot_fraction and new_fraction + hot_fraction <= 1):
        raise ValueError("new_fraction must be > 0, hot_fraction >= 0, their sum <= 1; got "
                         f"{new_fraction!r}, {hot_fraction!r}")
    rng = _rng(seed)
    u = rng.random(n)
    is_new, is_hot = u < new_fraction, u >= 1.0 - hot_fraction
    is_new[0], is_hot[0] = True, False
    newest = np.cumsum(is_new) - 1  # id of the newest created key at each request
    age = rng.geometric(1.0 / mean_age, size=n)
    keys = np.where(is_new, newest, np.maximum(newest - age, 0)) + hot_keys
    hot = rng.choice(hot_keys, size=n, p=zipf_probabilities(hot_keys, 0.8))
    keys = np.where(is_hot, hot, keys) + base
    out: list[int] = []
    scan_id = base + hot_keys + n  # above every created key
    for start in range(0, n, scan_every):
        out.extend(keys[start:start + scan_every].tolist())
        if start + scan_every < n:
            out.extend(range(scan_id, scan_id + scan_length))
            scan_id += scan_length
    return out


def zipf_probabilities(n_keys: int, alpha: float) -> np.ndarray:
    ranks = np.arange(1, n_keys + 1, dtype=np.float64)
    p = ranks ** -alpha
    return p / p.sum()


def zipf(n: int, seed: int = 0, *, n_keys: int = 50_000, alpha: float = 0.9,
         base: int = 0) -> list[int]:
    """`n` independent draws; the key of popularity rank r (0-based) is drawn with
    probability proportional to (r+1)^-alpha. Keys are ranks shuffled by the seed, so
    popularity is not visible in the id."""
    _check_positive(n=n, n_keys=n_keys, alpha=alpha)
    rng = _rng(seed)
    ranks = rng.choice(n_keys, size=n, p=zipf_probabilities(n_keys, alpha))
    ids = rng.permutation(n_keys) + base
    return ids[ranks].tolist()


def loop(n: int, seed: int = 0, *, length: int = 1_500, base: int = 0) -> list[int]:
    """A cyclic scan over `length` keys (in an order fixed by the seed)."""
    _check_positive(n=n, length=length)
    order = _rng(seed).permutation(length) + base
    return np.resize(order, n).tolist()


def shifting(n: int, seed: int = 0, *, set_size: int = 2_000, phase: int = 25_000,
             shift: float = 0.5, alpha: float = 0.8, base: int = 0) -> list[int]:
    """Phases of `phase` requests, each Zipf(`alpha`) over a working set of `set_size`
    keys; between phases a `shift` fraction of the set is replaced by new keys and
    the popularity order is reshuffled."""
    _check_positive(n=n, set_size=set_size, phase=phase, alpha=alpha)
    if not 0.0 <= shift <= 1.0:
        raise ValueError(f"shift must be in [0, 1], got {shift!r}")
    rng = _rng(seed)
    p = zipf_probabilities(set_size, alpha)
    working = np.arange(set_size) + base
    next_id = base + set_size
    n_replace = int(round(shift * set_size))
    out: list[int] = []
    while len(out) < n:
        size = min(phase, n - len(out))
        out.extend(working[rng.choice(set_size, size=size, p=p)].tolist())
        if n_replace:
            leaving = rng.choice(set_size, size=n_replace, replace=False)
            working[leaving] = np.arange(next_id, next_id + n_replace)
            next_id += n_replace
        working = rng.permutation(working)
    return out


def mix(n: int, seed: int = 0, *, block: int = 10_000) -> list[int]:
    """Blocks of `block` requests, round-robin from the four families above, each on its
    own key range (family i uses ids from i * 10**9)."""
    _check_positive(n=n, block=block)
    families: tuple[Callable[..., list[int]], ...] = (recency_scans, zipf, loop, shifting)
    per_family = -(-n // len(families))
    streams = [fam(per_family, seed + i, base=i * 10**9) for i, fam in enumerate(families)]
    out: list[int] = []
    start = 0
    while len(out) < n:
        for stream in streams:
            out.extend(stream[start:start + block])
        start += block
    return out[:n]


# name -> (generator, requests, two cache sizes, recency-heavy?) as the benchmark runs them.
FAMILIES: dict[str, tuple] = {
    "recency_scans": (recency_scans, 300_000, (500, 2_000), True),
    "zipf": (zipf, 200_000, (500, 2_000), False),
    "loop": (loop, 150_000, (750, 1_200), False),
    "shifting": (shifting, 200_000, (500, 1_500), False),
    "mix": (mix, 300_000, (500, 2_000), False),
}
