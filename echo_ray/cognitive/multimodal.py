"""Multi-modal fusion: each modality enters its own leaf membrane; the root fuses them.

A sample maps modality names to numeric `series` (steps, channels), `text` or a `vector`. The
tree has one leaf per modality (sorted by name) under one root; every leaf reads its own 16
input columns (`TreeSpec.leaf_channels`): series channels and vectors zero-padded to 16, text as
16-d character vectors (`encoding.text_inputs`). Modalities are aligned at their last step:
sequences are left-padded with zeros to the longest one (at least MIN_STEPS; zero input keeps a
zero-bias reservoir at its zero start state, so padding changes nothing) and a vector is held
for every step. The fused embedding is the root's mean state, final state and mean squared
state; `train` fits a ridge readout (penalty by leave-one-out error) from it to the targets.

Session state: {"layout": [[name, kind, width], ...], "readout": readout dict or None}. The
layout (modality names, kinds, widths) is fixed by `train`; `train` replaces the readout.
"""

from __future__ import annotations

import numpy as np

from echo_ray.dtesn.membrane_tree import TreeSpec
from echo_ray.dtesn.readout import fit_ridge_loo, predict

from .encoding import encode_many, pooled, text_inputs
from .models import (
    MAX_MODALITIES,
    MAX_MODALITY_WIDTH,
    ModalityInfo,
    MultiModalOutput,
    MultiModalRequest,
    MultiModalResult,
)

KEY = "multi_modal"
WIDTH = MAX_MODALITY_WIDTH
MIN_STEPS = 4
LEAF_UNITS, ROOT_UNITS = 50, 100


def engine_spec(n_modalities: int) -> TreeSpec:
    """A root of 100 units over one 50-unit leaf per modality, 16 input columns each."""
    if not 1 <= n_modalities <= MAX_MODALITIES:
        raise ValueError(f"n_modalities must be in [1, {MAX_MODALITIES}], got {n_modalities}")
    m = n_modalities
    return TreeSpec(parents=[-1] + [0] * m, units=[ROOT_UNITS] + [LEAF_UNITS] * m,
                    input_dim=m * WIDTH, seed=505,
                    leaf_channels=[list(range(k * WIDTH, (k + 1) * WIDTH)) for k in range(m)],
                    reservoir={"spectral_radius": 0.9, "leak_rate": 1.0, "input_scaling": 1.0})


def _layout(req: MultiModalRequest) -> list[list]:
    """[[name, kind, width]] of the request, checking every sample agrees."""
    layout: list[list] | None = None
    for n, sample in enumerate(req.samples):
        this = []
        for name in sorted(sample):
            m = sample[name]
            if m.series is not None:
                widths = {len(row) for row in m.series}
                if len(widths) != 1:
                    raise ValueError(f"samples[{n}].{name}.series: every step must have the same "
                                     f"number of channels, got {sorted(widths)}")
                this.append([name, "series", widths.pop()])
            elif m.vector is not None:
                this.append([name, "vector", len(m.vector)])
            else:
                this.append([name, "text", 0])
        if layout is None:
            layout = this
        elif this != layout:
            raise ValueError(f"samples[{n}] has modalities {_describe(this)}, but samples[0] has "
                             f"{_describe(layout)}; every sample must have the same ones")
    assert layout is not None  # samples has min_length=1
    return layout


def _describe(layout) -> str:
    return ", ".join(f"{name} ({kind}{f' {w}' if kind != 'text' else ''})"
                     for name, kind, w in layout)


def _inputs(sample: dict, layout: list[list]) -> np.ndarray:
    parts = []
    for name, kind, _ in layout:
        m = sample[name]
        if kind == "series":
            parts.append(np.asarray(m.series, float))
        elif kind == "text":
            parts.append(text_inputs(m.text, WIDTH))
        else:
            parts.append(np.asarray(m.vector, float)[None, :])
    T = max([MIN_STEPS] + [len(p) for p, (_, kind, _) in zip(parts, layout) if kind != "vector"])
    U = np.zeros((T, len(layout) * WIDTH))
    for k, (p, (_, kind, _)) in enumerate(zip(parts, layout)):
        block = np.repeat(p, T, axis=0) if kind == "vector" else p
        U[T - len(block):, k * WIDTH:k * WIDTH + block.shape[1]] = block
    return U


def embed(engines, samples: list[dict], layout: list[list]) -> np.ndarray:
    """(n, 3 * ROOT_UNITS) fused root embeddings."""
    engine = engines(engine_spec(len(layout)))
    states = encode_many(engine, [_inputs(s, layout) for s in samples])
    return np.stack([pooled({0: s[0]}, final=True, squares=True) for s in states])


def handle(req: MultiModalRequest, state: dict | None,
           engines) -> tuple[MultiModalResult, dict | None]:
    layout = _layout(req)
    stored = state.get("layout") if state else None
    readout = state.get("readout") if state else None
    if req.op == "embed" and readout is not None and layout != stored:
        raise ValueError(f"samples have modalities {_describe(layout)}, but this session's "
                         f"readout was trained on {_describe(stored)}")
    if req.op == "train":
        assert req.targets is not None  # the model requires targets for op="train"
        widths = {len(t) for t in req.targets if isinstance(t, list)}
        if len(widths) > 1:
            raise ValueError(f"targets must all have the same number of outputs, got "
                             f"{sorted(widths)}")
        Y = np.asarray(req.targets, float)
        Y = Y[:, None] if Y.ndim == 1 else Y
    info = [ModalityInfo(name=n, kind=k, width=w) for n, k, w in layout]
    E = embed(engines, req.samples, layout)
    if req.op == "train":
        fit = fit_ridge_loo(E, Y)
        fit["examples"] = len(E)
        return MultiModalResult(op="train", modalities=info, trained=True, examples=len(E),
                                ridge=fit["ridge"], loo_rmse=fit["loo_rmse"]), {
            "layout": layout, "readout": fit}
    preds = predict(readout, E) if readout is not None else None
    outputs = [MultiModalOutput(embedding=E[n].tolist() if req.include_embeddings else None,
                                prediction=None if preds is None else preds[n].tolist())
               for n in range(len(E))]
    return MultiModalResult(op="embed", modalities=info, outputs=outputs,
                            trained=readout is not None,
                            examples=None if readout is None else readout["examples"],
                            ridge=None if readout is None else readout["ridge"],
                            loo_rmse=None if readout is None else readout["loo_rmse"]), None
