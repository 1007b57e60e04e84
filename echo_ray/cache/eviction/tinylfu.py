"""Adaptive W-TinyLFU (Einziger, Friedman & Manes 2017), the policy of Caffeine and theine.

New entries land in a window LRU. An entry leaving the window is a candidate for
the main region, a segmented LRU (probation / protected). It is admitted only if
the frequency counter (exact counts, capped and periodically halved; `sketch.py`)
says it is used more often than the main region's victim
(the probation LRU entry); otherwise the candidate itself is dropped (but for a rare
random admission of a frequent loser, as in Caffeine). A tie goes to the larger
region: the incumbent while the window is at most half the cache (Caffeine's rule, which
keeps a loop's resident part), the newer candidate once the adaptive split has given the
window most of the cache (the workload favours recency, and LRU would keep it). So a burst
of one-hit wonders cannot flush the frequently used entries, while the window
still serves recency.

Reuse beats a stale victim, whatever the counts say (LIRS's test; Jiang & Zhang 2002): a
candidate the filter turned away after the victim came into probation is admitted when
it comes back. The victim has sat there unused all that time, so the candidate's reuse
distance is the shorter of the two. Counts that were halved away, or earned in an
earlier phase, cannot hold it out. Rejected keys are remembered for half to one capacity
of rejections (ARC's ghost lists span one; swept every half capacity, which is cheap);
the loops keep their resident part, since a loop's candidate was last rejected a whole
loop ago, before any resident victim entered. Cost: a dict lookup and a store on a miss,
two on an admission (4-6% of the time per request on the L1 benchmark, see RESULTS.md).

How much room recency gets is not fixed (`adapt`):

- "ghost" (default): two shadow lists remember the keys the admission filter
  rejected last and the main victims it evicted last, each up to 1/32 of the capacity
  (by weight; at least 64 units, at most an eighth): narrow, so they measure the
  margin of the split, not a band around it. A miss on a rejected key says a somewhat
  larger window would have kept it: the window grows; a miss on an evicted victim says
  a larger main would have: it shrinks. Steps are ARC's (the key's weight, times the
  ratio of the two lists' lengths when the other is longer). Both probes have the same
  fixed size, so the split follows whichever side gains more from the next slice
  of room (a marginal-utility comparison, with no feedback from the split itself
  into the probes); a loop longer than the cache moves nothing. Every step is a
  miss's O(1) work: no sampling noise. When nearly all recent shadow hits agree
  (7 in 8, over about 64), the split is far from its balance (the start, or a phase
  change): steps then grow with the agreement, up to 6.25% of the capacity, so the
  window crosses the cache in hundreds of misses, not thousands.
  The shadow lists only see the margin of the current split, so on their own they
  move slowly at the start and after a phase change, and can rest far from a better
  split. Set dueling (Qureshi et al. 2007, DIP) covers that: two leaders run on a
  hash sample of the keys (SHARDS, Waldspurger et al. 2015: a 1/P sample of the keys
  at 1/P of the capacity estimates the full-size hit ratio), exact LRU (the window
  grown to the whole cache) and W-TinyLFU at Caffeine's fixed 1% window, and each
  sampled request is scored against this cache's own hit or miss on it. While a leader beats
  this cache significantly on the recent disagreements (a sign test, z = 3, that banks
  none of this cache's own lead, as in Page's CUSUM: after a change the leader's hits
  count from zero) and is also ahead of the other leader over a longer span, a hit of
  it that this cache missed moves the target 6.25% of the capacity its way (Caffeine's
  step) and halves the weight of the disagreements so far, so the next step needs new
  ones (a one-sided run still crosses the cache in about 64 of them). A split the
  shadow lists found between the two ends beats both leaders, so the duel then does
  nothing. Count capacity only (`maxbytes` unset).
  Two rules price in what the frequency side costs when the working set changes: each new
  key is turned away once (LRU keeps it) before the split can move, and a shift of
  popularity costs hundreds of hits that way. **The frequency side must earn its keep:**
  every sample period (10 x capacity requests, Caffeine's) the two leaders are compared
  over the last few periods; while the 1% leader beats the LRU leader by less than
  DEAD_BAND (1 point) and the split is on the frequency side, the cache is exact LRU (the
  window takes the whole cache; shadow and duel steps wait), until the 1% leader is over
  the band again and the split goes back to 1%. **The start:** until the cache first fills,
  a fill trial plays every request on an LRU and a 1% W-TinyLFU of half the capacity (3-4x
  the cost of a request, for the fill only). If LRU led by the band, significantly, the
  cache starts at the LRU end, in exact recency order; otherwise at Caffeine's 1%, which
  keeps the first keys that a loop comes back to.
- "climb": Caffeine's hill climber: every `sample_factor` x capacity requests it
  moves capacity by a step (6.25% of the capacity, decaying 2% per sample,
  restarting on a 5-point jump) in the direction that raised the hit rate. It
  adapts too slowly and too noisily on recency-heavy workloads (see RESULTS.md).
- "fixed": the initial split for ever.
"""

from __future__ import annotations

import heapq
import random
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from echo_ray.cache.eviction.base import MISSING, EvictionPolicy
from echo_ray.cache.eviction.sketch import MAX_COUNT, FrequencyCounter

ADAPT_MODES = ("ghost", "climb", "fixed")
# Caffeine's hill-climber constants (BoundedLocalCache).
STEP_PERCENT = 0.0625
STEP_DECAY = 0.98
RESTART_THRESHOLD = 0.05
# Caffeine's guard against hash flooding (and against a popular candidate stuck behind a
# victim whose counters collide): a candidate that loses with an estimate of at least 6 is
# still admitted once in 128 times, from a seeded generator so runs repeat.
ADMIT_JITTER_FREQ = 6
ADMIT_JITTER = 1 / 128
# Each shadow list ("ghost" mode) covers 1/32 of the capacity, but at least 64 units (at
# most 1/8, on a small cache). Narrow, so that a hit in it speaks for the split's margin:
# over a wider band, main's hit curve (concave: it keeps the most frequent keys first)
# reads flatter than at the margin, and the split drifts toward the LRU end (RESULTS.md,
# thirteenth pass). The floor keeps a small cache's lists wide enough to see hits.
PROBE_DIVISOR = 32
PROBE_MIN = 64
PROBE_MAX_DIVISOR = 8
# "ghost" steps speed up when the recent shadow hits agree: an exponentially decayed sum of
# their directions (+1 grow, -1 shrink) over about AGREE_SPAN hits. Past AGREE_LEVEL of its
# largest value (7 of 8 recent hits pointing one way; a fair coin almost never gets there)
# each step is multiplied by 1 + the excess, at most Caffeine's step of 6.25% of capacity.
AGREE_SPAN = 64
AGREE_LEVEL = 0.75
# Set dueling ("ghost" mode): the leaders run on the keys whose hash is 0 modulo a prime P,
# at 1/P of the capacity; P the largest of SAMPLE_PRIMES that leaves them DUEL_MIN_SIZE
# entries (a SHARDS sample below ~100 entries estimates the hit ratio poorly). A prime
# modulus spreads strided keys (aligned addresses, dense ids) evenly. A leader's lead over
# this cache is a sign test on their last ~DUEL_SPAN disagreements at DUEL_Z (one-sided
# p = 0.0013; its sum stops at zero); which leader leads the other is taken over
# DUEL_LONG_SPAN disagreements (the range of DIP's 10-bit selector counter).
DUEL_MIN_SIZE = 128
DUEL_SPAN = AGREE_SPAN
DUEL_LONG_SPAN = 512
DUEL_Z = 3.0
SAMPLE_PRIMES = (1, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749,
                 65521)  # the largest prime below each power of two (1: every key)
# The frequency side must earn its keep ("ghost" mode). Every sample period (`sample_factor`
# x capacity requests) the duel's two leaders are compared over the last few periods (each
# period's counts weigh PERIOD_WEIGHT of the next's, so about four count): while the 1%
# leader beats the LRU leader by less than DEAD_BAND of the sampled requests and the split is
# on the frequency side, the cache is exact LRU. A lead that small is not worth what the
# frequency side costs when the working set changes (a new key must then be asked for twice
# to get in). The same band decides the start: the fill trial's LRU must lead its 1%
# W-TinyLFU by DEAD_BAND, significantly (DUEL_Z), for the cache to start at the LRU end.
DEAD_BAND = 0.01
PERIOD_WEIGHT = 0.75


class _Shadow(OrderedDict):
    """Keys that lately left one way (key -> weight, oldest first), at most `limit` weight
    in all (and at least one key)."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        self.weight = 0

    def add(self, key: Hashable, w: int) -> None:
        self[key] = w
        self.weight += w
        while len(self) > 1 and self.weight > self.limit:
            self.weight -= self.popitem(last=False)[1]

    def take(self, key: Hashable) -> None:
        self.weight -= self.pop(key)


class _Rejections(dict):
    """The candidates the admission filter turned away: key -> the number of its
    rejection (the weight rejected so far, counted from `probe`).

    The latest `probe` weight of rejections is "ghost" mode's shadow list of rejected
    keys (a miss on one says a larger window would have kept it). The reuse rule, which
    compares a rejection's number with the number at which the victim came into
    probation, reads further back: every `span` weight of rejections, the ones more
    than `span` old are forgotten, so between one and two spans are kept. A plain dict
    swept in one pass, not an ordered one trimmed at every rejection: this one is large,
    and it sits on the miss path."""

    def __init__(self, probe: int, span: int):
        super().__init__()
        self.probe, self.span = probe, max(span, probe)
        self.number = probe
        self.next_sweep = self.number + self.span
        self._taken: list[tuple[int, int]] = []  # heap of (number, weight) taken by a miss
        self._taken_weight = 0

    def add(self, key: Hashable, w: int) -> None:
        self.number += w
        self[key] = self.number
        if self.number >= self.next_sweep:
            self.sweep()

    def sweep(self) -> None:
        """Forget the rejections more than `span` old."""
        horizon = self.number - self.span
        for key in [key for key, number in self.items() if number <= horizon]:
            del self[key]
        self.next_sweep = self.number + self.span

    def in_probe(self, key: Hashable) -> bool:
        number = self.get(key)
        return number is not None and number > self.number - self.probe

    def take(self, key: Hashable, w: int) -> None:
        """A miss on `key` moved the split: it leaves the probe (the policy has kept its
        number, for the reuse rule)."""
        heapq.heappush(self._taken, (self.pop(key), w))
        self._taken_weight += w

    def probe_weight(self) -> int:
        """The weight in the probe: its span, less what misses took out of it."""
        taken, horizon = self._taken, self.number - self.probe
        while taken and taken[0][0] <= horizon:
            self._taken_weight -= heapq.heappop(taken)[1]
        return min(self.probe, horizon) - self._taken_weight


class _SignTest:
    """Which of two policies hits more often lately: an exponentially decayed sum of their
    disagreements (+1 the first hit and the second missed, -1 the reverse), and that sum's
    variance if neither were better (each disagreement a fair coin).

    `one_sided`: the sum stops at zero (Page's CUSUM), so the second's lead is not banked.
    A leader tested against this cache then counts its hits from zero after a change, not
    from minus the cache's lead in the phase before (about 64 disagreements to undo)."""

    __slots__ = ("decay", "floor", "sum", "var")

    def __init__(self, span: int, one_sided: bool = False):
        self.decay = 1.0 - 1.0 / span
        self.floor = 0.0 if one_sided else float("-inf")
        self.sum = self.var = 0.0

    def add(self, first_hit: bool) -> None:
        total = self.sum * self.decay + (1.0 if first_hit else -1.0)
        self.sum = total if total > self.floor else self.floor
        self.var = self.var * self.decay * self.decay + 1.0

    def first_ahead(self) -> bool:
        """The first is significantly ahead (sum > DUEL_Z standard deviations)."""
        total = self.sum
        return total > 0.0 and total * total > DUEL_Z * DUEL_Z * self.var

    def discount(self) -> None:
        """Halve the weight of every disagreement so far: they were about a split that has
        just moved, so the next move needs new ones to agree with them (the z score only
        stays up if they do). Without it one burst of evidence drives the split to the
        end, past the shadow lists' balance, where their own signals are too rare to bring
        it back."""
        self.sum *= 0.5
        self.var *= 0.25


class _Leaders:
    """The two ends of the split, side by side on the same requests: an exact LRU and a
    W-TinyLFU with a fixed 1% window, each of `size` entries."""

    def __init__(self, size: int):
        self.size = size
        self.lru: OrderedDict = OrderedDict()
        self.small = TinyLFUPolicy(maxsize=size, adapt="fixed")

    def full(self) -> bool:
        return len(self.lru) >= self.size

    def play(self, key: Hashable) -> tuple[bool, bool]:
        """Whether LRU and the 1% W-TinyLFU hit `key`; both hold it afterwards."""
        lru = self.lru
        lru_hit = key in lru
        if lru_hit:
            lru.move_to_end(key)
        else:
            lru[key] = None
            if len(lru) > self.size:
                lru.popitem(last=False)
        small_hit = self.small.get(key) is not None
        if not small_hit:
            self.small.put(key, True)
        return lru_hit, small_hit


class _Duel(_Leaders):
    """The leaders of "ghost" mode's set dueling, on the sampled keys, each at the sample's
    share of the capacity."""

    def __init__(self, capacity: int):
        self.prime = max([p for p in SAMPLE_PRIMES if capacity // p >= DUEL_MIN_SIZE],
                         default=1)  # sampled: hash(key) % prime == 0
        super().__init__(capacity // self.prime)
        self.lru_vs_us = _SignTest(DUEL_SPAN, one_sided=True)
        self.small_vs_us = _SignTest(DUEL_SPAN, one_sided=True)
        self.lru_vs_small = _SignTest(DUEL_LONG_SPAN)
        # Sampled requests and the 1% leader's hits minus LRU's, over the last few sample
        # periods (`small_lead`).
        self.requests = self.small_minus_lru = 0.0

    def observe(self, key: Hashable, hit: bool) -> int:
        """Play a sampled request on both leaders; `hit` is this cache's outcome. Returns
        +1 to grow the window toward LRU, -1 to shrink it toward 1%, 0 to leave it."""
        lru_hit, small_hit = self.play(key)
        self.requests += 1
        if lru_hit != small_hit:
            self.lru_vs_small.add(lru_hit)
            self.small_minus_lru += -1 if lru_hit else 1
        move = 0
        if lru_hit != hit:
            test = self.lru_vs_us
            test.add(lru_hit)
            if lru_hit and self.lru_vs_small.sum > 0 and test.first_ahead():
                test.discount()
                move = 1
        if small_hit != hit:
            test = self.small_vs_us
            test.add(small_hit)
            if small_hit and self.lru_vs_small.sum < 0 and test.first_ahead():
                test.discount()
                move = -1
        return move

    def small_lead(self) -> float:
        """How much more often the 1% leader hit than the LRU leader, as a share of the
        sampled requests, over the last few sample periods; then the period ends (the counts
        so far weigh PERIOD_WEIGHT)."""
        lead = self.small_minus_lru / max(1.0, self.requests)
        self.requests *= PERIOD_WEIGHT
        self.small_minus_lru *= PERIOD_WEIGHT
        return lead


class _FillTrial:
    """Until the cache first fills, every request also plays on an exact LRU and a W-TinyLFU
    with a fixed 1% window, each of half the capacity (so the fill's second half scores
    them), and the keys' exact recency order is kept. Nothing is evicted during a fill, so
    the split does not matter yet; what the cache holds when the first eviction comes does.
    On a recency workload a 1% window would then turn away the new keys LRU keeps, for the
    thousands of requests the split takes to move; a loop or a frequency workload shows no
    LRU lead by then, and keeps the 1% start (Caffeine's) that holds the first keys."""

    def __init__(self, capacity: int):
        self.order: OrderedDict = OrderedDict()  # every key seen, least recently used first
        self.leaders = _Leaders(max(1, capacity // 2))
        self.requests = self.lru_lead = self.disagreements = 0

    def observe(self, key: Hashable) -> None:
        order = self.order
        if key in order:
            order.move_to_end(key)
        else:
            order[key] = None
        scored = self.leaders.full()
        lru_hit, small_hit = self.leaders.play(key)
        if scored:
            self.requests += 1
            if lru_hit != small_hit:
                self.disagreements += 1
                self.lru_lead += 1 if lru_hit else -1

    def lru_leads(self) -> bool:
        """LRU hit more often by DEAD_BAND of the scored requests, and significantly (a sign
        test on the disagreements at DUEL_Z)."""
        lead = self.lru_lead
        return lead > DEAD_BAND * self.requests and lead * lead > DUEL_Z * DUEL_Z * \
            self.disagreements


class TinyLFUPolicy(EvictionPolicy):
    """Capacity is in weight units when `maxbytes` is set, else in items.

    `window_fraction` (initial window, default 0.01 of the capacity) and
    `protected_fraction` (0.8 of the main region) follow Caffeine. Frequencies are
    exact counts with Caffeine's cap and halving (`FrequencyCounter`), counted in batches
    in C. `duel=False` turns "ghost" mode's set dueling off (the shadow lists alone).
    """

    name = "tinylfu"

    def __init__(self, *args: Any, window_fraction: float = 0.01,
                 protected_fraction: float = 0.8,
                 adapt: str = "ghost", sample_factor: int = 10, duel: bool = True,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        if not 0.0 < window_fraction < 1.0:
            raise ValueError(f"window_fraction must be in (0, 1), got {window_fraction!r}")
        if not 0.0 < protected_fraction < 1.0:
            raise ValueError(f"protected_fraction must be in (0, 1), got {protected_fraction!r}")
        if adapt not in ADAPT_MODES:
            raise ValueError(f"adapt must be one of {ADAPT_MODES}, got {adapt!r}")
        capacity = self.maxbytes if self.maxbytes is not None else self.maxsize
        self.capacity = capacity
        self.protected_fraction = protected_fraction
        self.window_capacity = max(1, int(capacity * window_fraction))
        # A frequency tie admits the candidate once the window holds most of the cache.
        self._ties_admit = 2 * self.window_capacity > capacity
        self.protected_capacity = int(self.main_capacity * protected_fraction)
        items_hint = self.maxsize if self.maxsize is not None else max(16, capacity // 1024)
        self.sketch = FrequencyCounter(items_hint, sample_factor=sample_factor)
        # Each region maps key -> weight, least recently used first.
        self._window: OrderedDict = OrderedDict()
        self._probation: OrderedDict = OrderedDict()
        self._protected: OrderedDict = OrderedDict()
        self._window_weight = 0
        self._probation_weight = 0
        self._protected_weight = 0
        self.adapt = adapt
        self._ghosting, self._climbing = adapt == "ghost", adapt == "climb"
        # Bound once: the hot paths below save the attribute lookups.
        self._lookup = self._data.get
        self._increment = self.sketch.increment
        self._estimate = self.sketch.estimate
        self._count = self.sketch._counts.get  # the dict is halved in place: stays bound
        self._pending, self._batch = self.sketch._pending, self.sketch.batch
        self._victim_key: Any = MISSING  # the last victim estimated, its estimate and when
        self._victim_freq = self._victim_version = 0
        self._victim_entered = 0  # and when it came into probation
        self._jitter = random.Random(0).random
        # Rejected candidates (the reuse rule, and "ghost" mode's probe of them) and, in
        # "ghost" mode, recently evicted main victims.
        probe = max(1, min(capacity // PROBE_MAX_DIVISOR,
                           max(PROBE_MIN, capacity // PROBE_DIVISOR)))
        self._rejected, self._victims = _Rejections(probe, capacity // 2), _Shadow(probe)
        # Probation's keys -> the rejection number when each came in.
        self._entered: dict = {}
        # Window keys that came back after a rejection -> that rejection's number.
        self._returning: dict = {}
        self._target = float(self.window_capacity)
        self._agreement = 0.0  # decayed sum of the recent shadow hits' directions
        self._max_boost = max(1.0, STEP_PERCENT * capacity)
        self._duel = _Duel(capacity) if duel and self._ghosting and self.maxbytes is None \
            else None
        # A key is sampled when hash(key) % _sample_prime == _sample_residue (-1: never),
        # which a miss tests. A hit tests `_sampled` instead (a set lookup is a third of
        # the hash arithmetic): the sampled keys inserted lately, which holds every
        # sampled key in the cache.
        self._sample_prime = self._duel.prime if self._duel is not None else 1
        self._sample_residue = 0 if self._duel is not None else -1
        self._sampled: set = set()
        self._initial_window = self.window_capacity
        self._lru_mode = False  # exact LRU while the frequency side earns too little
        self._fill_trial = _FillTrial(capacity) if self._duel is not None else None
        if self._fill_trial is not None:
            # Every request is observed until the cache fills: each hit is of a key in
            # `_data`, each miss passes the modulus 1.
            self._sampled, self._sample_prime = self._data, 1
        # "climb": the current sample's misses, and the count of requests (the counter's
        # increments, one per request) when it began: no hit counter on the hit path.
        self.sample_period = sample_factor * items_hint
        self._sample_start = 0
        self._sample_misses = 0
        self._previous_hit_rate = 0.0
        self._step = -STEP_PERCENT * capacity  # Caffeine starts by trying a smaller window
        self._period_end = self.sample_period  # "ghost": when the leaders are next compared

    def _requests(self) -> int:
        """Requests so far: each one incremented the counter once."""
        return self.sketch.counted + len(self._pending)

    @property
    def main_capacity(self) -> int:
        return self.capacity - self.window_capacity

    # -- frequency ------------------------------------------------------------------------
    def frequency(self, key: Hashable) -> int:
        return self._estimate(key)

    # -- hooks ----------------------------------------------------------------------------
    def _reserve(self, weight: int) -> None:
        """Nothing to do up front: the admission step runs after the insert."""

    def _on_insert(self, key: Hashable) -> None:
        if hash(key) % self._sample_prime == self._sample_residue:
            self._observe(key, False)
        number = self._rejected.get(key)
        if number is not None and number > self._victim_entered:
            self._returning[key] = number  # it may beat the victim when it leaves the window
        self._insert(key)

    def _insert(self, key: Hashable) -> None:
        self._increment(key)
        w = self._sizes[key] if self._sizes is not None else 1
        self._window[key] = w
        self._window_weight += w
        if self._ghosting:
            if self._rejected.in_probe(key) or key in self._victims:
                self._ghost_step(key, w)
        elif self._climbing:
            self._sample_misses += 1
            if self._requests() - self._sample_start >= self.sample_period:
                self._climb()
        if self._window_weight > self.window_capacity:
            self._admit_from_window()

    def _on_hit(self, key: Hashable) -> None:
        if key in self._sampled:
            self._observe(key, True)
        self._increment(key)
        window = self._window
        if key in window:
            window.move_to_end(key)
        elif key in self._protected:
            self._protected.move_to_end(key)
        else:
            self._promote(key)

    def _promote(self, key: Hashable) -> None:
        """A probation hit moves to protected, which demotes its LRU entries if it overflows."""
        w = self._probation.pop(key)
        self._probation_weight -= w
        del self._entered[key]
        self._protected[key] = w
        self._protected_weight += w
        self._demote_protected()

    # -- fast paths: count capacity, no weights, no TTL in play ---------------------------
    def get(self, key: Hashable, default: Any = None) -> Any:
        value = self._lookup(key, MISSING)
        if value is MISSING:
            return default
        if self._expiry and self._is_expired(key):
            self._expire(key)
            return default
        # `_on_hit`, written out, with the counter's increment (a list append): no call
        # on the hit path but for a sampled key.
        if key in self._sampled:
            self._observe(key, True)
        pending = self._pending
        pending.append(key)
        if len(pending) >= self._batch:
            self.sketch.flush()
        # Protected first: it holds most entries, and so most hits.
        protected = self._protected
        if key in protected:
            protected.move_to_end(key)
        elif key in self._window:
            self._window.move_to_end(key)
        else:
            self._promote(key)
        return value

    def put(self, key: Hashable, value: Any, ttl: float | None = None) -> bool:
        if ttl is not None or self._sizes is not None or self._expiry:
            return super().put(key, value, ttl)
        data = self._data
        if key in data:
            data[key] = value
            self._on_hit(key)
            return True
        if hash(key) % self._sample_prime == self._sample_residue:
            self._observe(key, False)
        data[key] = value
        rejected = self._rejected
        number = rejected.get(key)
        if number is not None and number > self._victim_entered:
            self._returning[key] = number  # it may beat the victim when it leaves the window
        if self._climbing or key in self._victims \
                or (number is not None and number > rejected.number - rejected.probe):
            self._insert(key)  # a step of the climber, or a shadow hit that moves the split
            return key in data
        # The common miss, written out: unit weight, no shadow hit, so the window is over
        # by exactly one entry and at most one entry leaves (same result as `_on_insert`).
        pending = self._pending
        pending.append(key)
        if len(pending) >= self._batch:
            self.sketch.flush()
        window = self._window
        window[key] = 1
        if self._window_weight < self.window_capacity:
            self._window_weight += 1
            return True
        candidate = window.popitem(last=False)[0]
        returning = self._returning
        came_back = returning.pop(candidate, None) if returning else None  # its rejection
        probation = self._probation
        if len(data) <= self.capacity:  # room before this key came in (unit weights)
            probation[candidate] = 1
            self._probation_weight += 1
            self._entered[candidate] = rejected.number
            return True
        if probation:
            victim, region = next(iter(probation)), probation
        elif self._protected:
            victim, region = next(iter(self._protected)), self._protected
        else:  # a main region of no entries: the candidate leaves at once
            self._evict_unit(candidate)
            return key in data
        count = self._count  # the counter's `estimate`, written out
        if victim != self._victim_key or self.sketch.version != self._victim_version:
            self._victim_key, self._victim_version = victim, self.sketch.version
            victim_freq = count(victim, 0)
            self._victim_freq = victim_freq if victim_freq < MAX_COUNT else MAX_COUNT
            self._victim_entered = self._entered.get(victim, 0)
        freq = count(candidate, 0)
        if freq > MAX_COUNT:
            freq = MAX_COUNT
        if freq > self._victim_freq or (freq == self._victim_freq and self._ties_admit) \
                or (freq >= ADMIT_JITTER_FREQ and self._jitter() < ADMIT_JITTER) \
                or (came_back is not None and came_back > self._victim_entered):
            del region[victim]
            if region is probation:
                self._probation_weight -= 1
            else:
                self._protected_weight -= 1
            probation[candidate] = 1
            self._probation_weight += 1
            entered = self._entered
            entered[candidate] = rejected.number
            entered.pop(victim, None)
            # `_evict_unit` and `_Shadow.add`, written out for a unit weight.
            evicted = data.pop(victim)
            self.evictions += 1
            if self._on_evict is not None:
                self._on_evict(victim, evicted)
            victims = self._victims
            victims[victim] = 1
            victims.weight += 1
            if victims.weight > victims.limit:
                victims.weight -= victims.popitem(last=False)[1]
            return key in data
        # `_evict_unit` and `_Rejections.add`, written out for a unit weight.
        evicted = data.pop(candidate)
        self.evictions += 1
        if self._on_evict is not None:
            self._on_evict(candidate, evicted)
        rejected.number = number = rejected.number + 1
        rejected[candidate] = number
        if number >= rejected.next_sweep:
            rejected.sweep()
        return key in data

    def _evict_unit(self, key: Hashable) -> None:
        """Evict `key`, already out of its region (the unit-weight path of `_drop`)."""
        value = self._data.pop(key)
        self.evictions += 1
        if self._on_evict is not None:
            self._on_evict(key, value)

    def _on_update(self, key: Hashable) -> None:
        new_w = self._sizes[key] if self._sizes is not None else 1
        for region in (self._window, self._probation, self._protected):
            old_w = region.get(key, MISSING)
            if old_w is not MISSING:
                region[key] = new_w
                self._add_weight(region, new_w - old_w)
                break
        self._on_hit(key)
        self._admit_from_window()

    def _on_remove(self, key: Hashable) -> None:
        self._entered.pop(key, None)
        self._returning.pop(key, None)
        for region in (self._window, self._probation, self._protected):
            w = region.pop(key, MISSING)
            if w is not MISSING:
                self._add_weight(region, -w)
                return

    def _victim(self) -> Hashable:
        for region in (self._probation, self._protected, self._window):
            if region:
                return next(iter(region))
        raise KeyError("victim requested from an empty TinyLFU policy")

    # -- regions --------------------------------------------------------------------------
    def _add_weight(self, region: OrderedDict, delta: int) -> None:
        if region is self._window:
            self._window_weight += delta
        elif region is self._probation:
            self._probation_weight += delta
        else:
            self._protected_weight += delta

    def _demote_protected(self) -> None:
        """Protected's LRU entries go back to probation while it is over its share."""
        protected, probation = self._protected, self._probation
        while protected and self._protected_weight > self.protected_capacity:
            old, ow = protected.popitem(last=False)
            self._protected_weight -= ow
            probation[old] = ow
            self._probation_weight += ow
            self._entered[old] = self._rejected.number

    def _resident_weight(self) -> int:
        return self._window_weight + self._probation_weight + self._protected_weight

    # -- admission ------------------------------------------------------------------------
    def _admit_from_window(self) -> None:
        """Move window overflow to probation; while the cache is over capacity, each such
        candidate must beat probation's LRU entry in the sketch, or it is the one to go."""
        window, probation, protected = self._window, self._probation, self._protected
        estimate, sketch = self._estimate, self.sketch
        while self._window_weight > self.window_capacity and len(window) > 1:
            candidate, cw = window.popitem(last=False)
            came_back = self._returning.pop(candidate, 0)  # the number of its rejection
            self._window_weight -= cw
            probation[candidate] = cw
            self._probation_weight += cw
            self._entered[candidate] = self._rejected.number
            while (self._window_weight + self._probation_weight + self._protected_weight
                   > self.capacity):
                victim, region = next(iter(probation)), probation
                if victim == candidate and protected:
                    victim, region = next(iter(protected)), protected
                if victim == candidate:
                    self._drop(candidate, probation)
                    break
                # Probation's LRU entry usually faces many candidates in a row, and its
                # estimate only moves when the sketch does: keep it until then.
                if victim != self._victim_key or sketch.version != self._victim_version:
                    self._victim_key, self._victim_version = victim, sketch.version
                    self._victim_freq = estimate(victim)
                    self._victim_entered = self._entered.get(victim, 0)
                freq = estimate(candidate)
                if freq > self._victim_freq or (freq == self._victim_freq
                                                and self._ties_admit) \
                        or (freq >= ADMIT_JITTER_FREQ and self._jitter() < ADMIT_JITTER) \
                        or came_back > self._victim_entered:
                    self._victims.add(victim, self._drop(victim, region))
                else:
                    self._rejected.add(candidate, self._drop(candidate, probation))
                    break

    def _drop(self, key: Hashable, region: OrderedDict) -> int:
        """Evict `key` from `region` (the base class's `_evict`, without searching the
        regions for the key); returns its weight."""
        w = region.pop(key)
        if region is self._probation:
            self._probation_weight -= w
        else:
            self._add_weight(region, -w)
        self._entered.pop(key, None)
        value = self._data.pop(key)
        if self._sizes is not None:
            self.currbytes -= self._sizes.pop(key)
        if self._expiry:
            self._expiry.pop(key, None)
        self.evictions += 1
        if self._on_evict is not None:
            self._on_evict(key, value)
        return w

    # -- adapting the split ---------------------------------------------------------------
    def _ghost_step(self, key: Hashable, w: int) -> None:
        """A miss on a shadowed key moves the window target toward the side that would
        have kept it (ARC's rule), then the regions follow the target. When nearly all
        recent shadow hits point the same way the split is far from where it should be
        (a phase change, or the start): the step grows with that agreement, so the window
        crosses the cache in a few hundred misses instead of thousands; mixed hits (a
        split near its balance) keep ARC's step."""
        rejected, victims = self._rejected, self._victims
        if rejected.in_probe(key):
            direction = 1
            rejected.take(key, w)
            step = max(victims.weight / max(1, rejected.probe_weight()), 1.0) * w
        elif key in victims:
            direction = -1
            victims.take(key)
            step = max(rejected.probe_weight() / max(1, victims.weight), 1.0) * w
        else:
            return
        agreement = self._agreement * (1.0 - 1.0 / AGREE_SPAN) + direction
        self._agreement = agreement
        excess = agreement * direction - AGREE_LEVEL * AGREE_SPAN
        if excess > 0:
            step *= min(1.0 + excess, self._max_boost)
        if not self._lru_mode:
            self._move_target(self._target + direction * step)

    def _observe(self, key: Hashable, hit: bool) -> None:
        """A sampled request (this cache's `hit` or miss) for the duel; a leader that is
        significantly ahead pulls the target its way by Caffeine's step. Until the cache
        fills, every request comes here, for the fill trial."""
        duel = self._duel
        if self._fill_trial is not None:
            self._fill_trial.observe(key)
            # This miss brings the first eviction; or the cache has not filled in a sample
            # period, and the trial (which costs 3-4x a request) ends anyway.
            if (not hit and len(self._data) - (key in self._data) >= self.capacity) \
                    or self._requests() >= self.sample_period:
                self._end_fill()
            if hash(key) % duel.prime:
                return  # not a sampled key
        if not hit and self._fill_trial is None:
            sampled = self._sampled
            if len(sampled) > 2 * duel.size:  # forget the keys since evicted
                self._sampled = sampled = {k for k in sampled if k in self._data}
            sampled.add(key)
        move = duel.observe(key, hit)
        if move and not self._lru_mode:
            self._move_target(self._target + move * self._max_boost)
        if self._requests() >= self._period_end:
            self._end_period()

    def _end_fill(self) -> None:
        """The fill trial ends: back to the duel's sample, and the cache starts at the LRU
        end (in the trial's exact recency order) if the trial's LRU led."""
        trial, self._fill_trial = self._fill_trial, None
        prime = self._sample_prime = self._duel.prime
        self._sampled = {k for k in self._data if hash(k) % prime == 0}
        self._period_end = self._requests() + self.sample_period
        if trial.lru_leads():
            self._move_target(self.capacity - 1.0)
            window = self._window
            for key in trial.order:
                if key in window:
                    window.move_to_end(key)

    def _end_period(self) -> None:
        """A sample period ended: exact LRU while the 1% leader's lead over the LRU leader
        stays under DEAD_BAND and the split is on the frequency side; back to the 1% split
        once it is over the band."""
        self._period_end = self._requests() + self.sample_period
        lead = self._duel.small_lead()
        if self._lru_mode:
            if lead > DEAD_BAND:
                self._lru_mode = False
                self._move_target(float(self._initial_window))
        elif lead < DEAD_BAND and not self._ties_admit:
            self._lru_mode = True  # the window takes the whole cache: exact LRU
            self._target = float(self.capacity)
            self._grow_window(self.main_capacity, keep=0)

    def _move_target(self, target: float) -> None:
        """New window target (main keeps at least one unit, so does the window); the
        regions follow it."""
        self._target = target = min(self.capacity - 1.0, max(1.0, target))
        change = int(target) - self.window_capacity
        if change > 0:
            self._grow_window(change)
        elif change < 0:
            self._shrink_window(-change)

    def _climb(self) -> None:
        """One hill-climbing step on the hit rate of the sample just ended (Caffeine's
        determineAdjustment): keep going while the hit rate rises, turn back when it falls."""
        now = self._requests()
        requests = now - self._sample_start
        hits = requests - self._sample_misses
        self._sample_start, self._sample_misses = now, 0
        if 2 * self._resident_weight() < self.capacity:  # not warmed up: no verdict yet
            self._previous_hit_rate = 0.0
            return
        hit_rate = hits / requests
        change = hit_rate - self._previous_hit_rate
        amount = self._step if change >= 0 else -self._step
        if abs(change) >= RESTART_THRESHOLD:
            self._step = STEP_PERCENT * self.capacity * (1 if amount >= 0 else -1)
        else:
            self._step = STEP_DECAY * amount
        self._previous_hit_rate = hit_rate
        if amount >= 1:
            self._grow_window(int(amount))
        elif amount <= -1:
            self._shrink_window(int(-amount))

    def _set_window(self, window_capacity: int) -> None:
        """New split: the window gets `window_capacity`, main the rest, protected its
        fixed share of main."""
        self.window_capacity = window_capacity
        self._ties_admit = 2 * window_capacity > self.capacity
        self.protected_capacity = int(self.main_capacity * self.protected_fraction)
        self._demote_protected()

    def _grow_window(self, quota: int, keep: int = 1) -> int:
        """Move up to `quota` weight of main's LRU entries (probation first) into the
        window, whose capacity grows by the weight moved; main keeps at least `keep` units
        (none only in LRU mode). Returns the weight moved."""
        quota = min(quota, self.main_capacity - keep)
        moved = 0
        window = self._window
        for region in (self._probation, self._protected):
            while region:
                key = next(iter(region))
                w = region[key]
                if moved + w > quota:
                    break
                del region[key]
                self._add_weight(region, -w)
                self._entered.pop(key, None)
                window[key] = w
                self._window_weight += w
                moved += w
        self._set_window(self.window_capacity + moved)
        return moved

    def _shrink_window(self, quota: int) -> int:
        """Move up to `quota` weight of the window's LRU entries to probation, giving the
        room to main; the window keeps at least one unit. Returns the weight moved."""
        quota = min(quota, self.window_capacity - 1)
        moved = 0
        window, probation = self._window, self._probation
        while window:
            key = next(iter(window))
            w = window[key]
            if moved + w > quota:
                break
            del window[key]
            self._window_weight -= w
            probation[key] = w
            self._probation_weight += w
            self._entered[key] = self._rejected.number
            self._returning.pop(key, None)
            moved += w
        self._set_window(self.window_capacity - moved)
        return moved
