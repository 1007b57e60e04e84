"""Turning request data into reservoir input and reservoir states into fixed-size features.

Text enters the reservoir one character per step as a fixed random unit vector per Unicode
code point (seeded by the code point, so any character, no vocabulary to fit, the same vector in
every process). Sequences of different lengths are compared through pooled states: the mean of
every membrane's states over time, which is robust to a local edit, optionally with the final
states, which carry the most recent input, and even features (mean squares, activity).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from echo_ray.dtesn.engine import Engine, LocalEngine
from echo_ray.dtesn.membrane_tree import TreeSpec

CHAR_SEED = 0x5EED


@lru_cache(maxsize=8192)
def _char_vector(code_point: int, width: int) -> np.ndarray:
    v = np.random.default_rng([CHAR_SEED, width, code_point]).standard_normal(width)
    v /= np.linalg.norm(v)
    v.flags.writeable = False
    return v


def text_inputs(text: str, width: int) -> np.ndarray:
    """(len(text), width): one fixed random unit vector per character."""
    return np.stack([_char_vector(ord(c), width) for c in text])


def states_matrix(states: dict[int, np.ndarray]) -> np.ndarray:
    """(T, total units): every membrane's states side by side, root first."""
    return np.hstack([states[i] for i in sorted(states)])


def pooled(states: dict[int, np.ndarray], final: bool = False, squares: bool = False,
           activity: bool = False) -> np.ndarray:
    """Mean over time of every membrane's states, then (if asked) their final states, the mean
    of their squares and the mean squared change per step (activity: how fast the states move,
    0 for a single step). Even features matter for readouts: with zero bias a reservoir is an
    odd map (input -u gives states -x), so without them no linear readout can learn a target
    that is symmetric under a sign flip, such as an amplitude or a product."""
    order = sorted(states)
    parts = [states[i].mean(axis=0) for i in order]
    if final:
        parts += [states[i][-1] for i in order]
    if squares:
        parts += [(states[i] ** 2).mean(axis=0) for i in order]
    if activity:
        parts += [(np.diff(states[i], axis=0) ** 2).mean(axis=0) if len(states[i]) > 1
                  else np.zeros(states[i].shape[1]) for i in order]
    return np.concatenate(parts)


def encode_many(engine: Engine, sequences: Sequence[np.ndarray]) -> list[dict[int, np.ndarray]]:
    """Encode each sequence from the zero state (reservoir state never carries between items).
    Uses the engine's `encode_batch` when it has one (one round trip for all), else one
    `encode` call per sequence."""
    batch = getattr(engine, "encode_batch", None)
    if batch is not None:
        return list(batch(list(sequences)))
    return [engine.encode(U) for U in sequences]


def spec_key(spec: TreeSpec) -> str:
    """A canonical string naming a spec (equal specs give equal keys): use it to cache engines."""
    return json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))


class LocalEngines:
    """Engine factory for in-process use (tests, notebooks): one `LocalEngine` per spec."""

    def __init__(self, factory: Callable[[TreeSpec], Engine] = LocalEngine):
        self.factory = factory
        self._engines: dict[str, Engine] = {}

    def __call__(self, spec: TreeSpec) -> Engine:
        key = spec_key(spec)
        if key not in self._engines:
            self._engines[key] = self.factory(spec)
        return self._engines[key]

    def __len__(self) -> int:
        return len(self._engines)
