"""Where a worker replica runs a stateless encode: in its own process, or on its membrane actors.

The actor hop costs a few ms plus the states' trip back (T x units floats), so one request
alone is faster in-process at every size measured. But in-process work holds the replica's
one Python interpreter, while the actors (one process per tree) compute side by side: with
4 trees encoding at once, their throughput came within ~10-20% of in-process from ~50,000
work on, against 1.2-4x behind below it (`benchmarks/bench_hop.py`; RESULTS.md, "Actor hop
or in-process"). The predictor of a call's cost is its work, steps x reservoir units of the
whole tree (summed over a batch); below the threshold (settings
`service.worker_inprocess_max_work`, 0 = always the actors) the replica keeps the call.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence

import numpy as np

from echo_ray.dtesn.membrane_tree import TreeSpec

# The threshold bench_hop.py measured: the setting's default.
MEASURED_MAX_WORK = 100_000


def tree_units(spec: TreeSpec) -> int:
    """Reservoir units of every membrane of the tree together."""
    if isinstance(spec.units, list):
        return sum(int(u) for u in spec.units)
    return int(spec.units) * len(spec.parents)


def work(spec: TreeSpec, steps: int) -> int:
    """The predictor of an encode's cost: time steps x units of the tree."""
    return int(steps) * tree_units(spec)


def in_process(work_units: int, max_work: int) -> bool:
    """The rule: in the replica when the work is at most `max_work` (0: never)."""
    return max_work > 0 and work_units <= max_work


class PlacedEngine:
    """One tree's two engines, `local` (in this process) and `actors` (a DTESNSystem); every
    `encode`/`encode_batch` goes to one of them by `in_process`. The local tree encodes under
    a lock: `MembraneTree.encode` borrows the tree's state, and a replica runs requests in
    threads. `counts` says how many calls went where."""

    def __init__(self, local, actors, max_work: int):
        self.local, self.actors, self.max_work = local, actors, int(max_work)
        self.spec: TreeSpec = local.spec
        self.counts: Counter = Counter()
        self._lock = threading.Lock()

    def _here(self, steps: int) -> bool:
        here = in_process(work(self.spec, steps), self.max_work)
        self.counts["in_process" if here else "actors"] += 1
        return here

    def encode(self, U) -> dict[int, np.ndarray]:
        if self._here(len(U)):
            with self._lock:
                return self.local.encode(U)
        return self.actors.encode(U)

    def encode_batch(self, Us: Sequence) -> list[dict[int, np.ndarray]]:
        if self._here(sum(len(U) for U in Us)):
            with self._lock:
                return [self.local.encode(U) for U in Us]
        return self.actors.encode_batch(list(Us))
