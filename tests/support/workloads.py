"""Synthetic inputs the in-process and HTTP tests of the cognitive processors share."""

from __future__ import annotations

import numpy as np


def walker(rng, skill, jitter, steps=40):
    """A 2-d walker heading for the origin: `skill` in [0, 1] sets how straight it goes,
    `jitter` in [0, 1] how much noise it adds. Observations: position and scaled velocity."""
    p = rng.uniform(-1, 1, 2)
    p /= np.linalg.norm(p)
    obs = []
    for _ in range(steps):
        v = 0.05 * skill * (-p / max(np.linalg.norm(p), 1e-6)) + 0.03 * jitter * rng.standard_normal(2)
        p = p + v
        obs.append([p[0], p[1], 25 * v[0], 25 * v[1]])
    return np.array(obs).tolist()


def modal_sample(rng, a, b, modalities):
    """Modality 'a': a noisy 10-step level a; modality 'b': a 3-d vector whose first entry is b."""
    s = {}
    if "a" in modalities:
        s["a"] = {"series": (a + 0.1 * rng.standard_normal((10, 1))).tolist()}
    if "b" in modalities:
        s["b"] = {"vector": [b] + rng.uniform(-1, 1, 2).tolist()}
    return s
