"""Parameter fitting by a small grid search on one-step-ahead squared error.

Minimising the one-step sum of squared errors on training data is what statsmodels' exponential
smoothing fit does too, so the benchmark fits both sides on the same criterion. The search
drives the model's own `_observe`/`_point` code (no interval bookkeeping), so the fitted model is
exactly the one that runs online afterwards.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .forecast import Forecaster


def one_step_sse(model: Forecaster, y: Sequence[float], skip: int = 0) -> float:
    """Feed `y` through a fresh `model`; sum squared 1-step errors after the first `skip + 1`."""
    if model.n_observations:
        raise ValueError("model must be fresh (no observations yet)")
    values = np.asarray(y, dtype=float)
    if values.ndim != 1 or values.size < skip + 2 or not np.isfinite(values).all():
        raise ValueError(f"y must be a finite 1-D series longer than skip + 1 = {skip + 1}")
    observe, point = model._observe, model._point
    sse = 0.0
    for i, v in enumerate(values.tolist()):
        if i > skip:
            e = v - point(1)
            sse += e * e
        observe(v)
    return sse


def grid_search(factory: Callable[..., Forecaster], grid: Mapping[str, Sequence],
                y: Sequence[float], skip: int = 0) -> tuple[dict, list[dict]]:
    """Try every combination in `grid`; return (best params, table of {params, sse})."""
    if not grid:
        raise ValueError("grid must name at least one parameter")
    names = list(grid)
    table = []
    for combo in itertools.product(*(grid[n] for n in names)):
        params = dict(zip(names, combo, strict=True))
        table.append({"params": params, "sse": one_step_sse(factory(**params), y, skip)})
    best = min(table, key=lambda row: row["sse"])
    return dict(best["params"]), table
