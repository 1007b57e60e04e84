"""Membrane-state checkpoints as .npz files (numpy's own format, loaded with allow_pickle=False),
written atomically so a crash mid-write never leaves a torn checkpoint."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def default_checkpoint_dir() -> Path:
    base = os.environ.get("ECHO_RAY_CHECKPOINT_DIR")
    if base:
        return Path(base)
    cache = os.environ.get("CACHE_DIR")
    return Path(cache) / "checkpoints" if cache else Path.home() / ".cache" / "echo-ray" / "checkpoints"


def save_state(path: Path, state: dict) -> None:
    """state = {"steps": int, "states": {membrane index: vector}}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"m{i}": np.asarray(v, dtype=np.float64) for i, v in state["states"].items()}
    arrays["steps"] = np.asarray(state["steps"], dtype=np.int64)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(path: Path) -> dict | None:
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {"steps": int(z["steps"]),
                "states": {int(k[1:]): z[k].copy() for k in z.files if k.startswith("m")}}
