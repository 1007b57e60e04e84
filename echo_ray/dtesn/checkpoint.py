"""Membrane-state checkpoints as .npz bytes (numpy's own format, loaded with
allow_pickle=False: never unpickle what came from disk or Redis), in one of two stores:

- a storage URI read through `pyarrow.fs` (a local path, `s3://`, `gs://`, as Ray Train's
  `storage_path`), written atomically: temp file + rename on a local disk, one object PUT
  (atomic by itself) on an object store;
- Redis, one key per checkpoint written with a single SET.

Which one (`checkpoint_location`): `ECHO_RAY_CHECKPOINT_URI` when set (`redis` = the sessions'
`REDIS_URL`, `redis://`/`rediss://` = that server, anything else = a pyarrow storage URI), else
`REDIS_URL` when set, else `checkpoints/` in the data directory. A local path is node-local:
`DTESNSystem` refuses it on a Ray cluster of more than one node (echo_ray.clusterstate), since a
membrane actor restarted on another node would find no checkpoint there.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from echo_ray.settings import Settings

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
REDIS_KEY_PREFIX = "echo-ray:checkpoint:"


def encode_state(state: dict) -> bytes:
    """state = {"steps": int, "states": {membrane index: vector}} -> .npz bytes."""
    arrays: dict = {f"m{i}": np.asarray(v, dtype=np.float64) for i, v in state["states"].items()}
    arrays["steps"] = np.asarray(state["steps"], dtype=np.int64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def decode_state(data: bytes) -> dict:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {"steps": int(z["steps"]),
                "states": {int(k[1:]): z[k].copy() for k in z.files if k.startswith("m")}}


@dataclass(frozen=True)
class CheckpointLocation:
    """Where a system's checkpoints go: `kind` "redis" (target = the server's URL) or "fs"
    (target = a pyarrow storage URI or a local path). Small and picklable: Ray hands it to
    every membrane actor, which opens the store on whichever node it runs."""

    kind: str
    target: str

    @property
    def node_local(self) -> bool:
        """A path on the disk of the node that reads or writes it."""
        if self.kind == "redis":
            return False
        return _filesystem(self.target)[0].type_name == "local"

    def describe(self) -> str:
        """For messages: never the Redis URL (it may carry a password)."""
        return "Redis (REDIS_URL)" if self.kind == "redis" else self.target

    def open(self, name: str) -> CheckpointStore:
        """The store of one system's checkpoints (`name` = the system's name)."""
        if self.kind == "redis":
            return RedisCheckpointStore(self.target, f"{REDIS_KEY_PREFIX}{name}:")
        return FileCheckpointStore(self.target, name)


def checkpoint_location(uri: str | None = None, settings: Settings | None = None
                        ) -> CheckpointLocation:
    """`uri` (else `ECHO_RAY_CHECKPOINT_URI`), else `REDIS_URL`, else the data directory's
    `checkpoints/`. The rule is in the module's docstring and docs/cluster.md."""
    if settings is None:
        from echo_ray.settings import get_settings

        settings = get_settings()
    uri = uri or settings.paths.checkpoint_uri
    redis_url = settings.sessions.redis_url_value()
    if uri is not None and uri.strip().lower() == "redis":
        if not redis_url:
            raise ValueError("ECHO_RAY_CHECKPOINT_URI=redis names the sessions' Redis, but "
                             "REDIS_URL is not set")
        return CheckpointLocation("redis", redis_url)
    if uri:
        if uri.startswith(REDIS_SCHEMES):
            return CheckpointLocation("redis", uri)
        return CheckpointLocation("fs", uri)
    if redis_url:
        return CheckpointLocation("redis", redis_url)
    return CheckpointLocation("fs", str(settings.paths.checkpoints))


def _filesystem(target: str):
    """(pyarrow FileSystem, path) for a storage URI or a local path (relative: made absolute)."""
    from pyarrow import fs

    if "://" not in target:
        target = str(Path(target).expanduser().resolve())
    return fs.FileSystem.from_uri(target)


class CheckpointStore:
    """One system's checkpoints, by key (e.g. `group-0`). Subclasses move bytes only."""

    def save(self, key: str, state: dict) -> None:
        self.put(key, encode_state(state))

    def load(self, key: str) -> dict | None:
        data = self.get(key)
        return None if data is None else decode_state(data)

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def get(self, key: str) -> bytes | None:
        raise NotImplementedError


class FileCheckpointStore(CheckpointStore):
    """`<target>/<name>/<key>.npz` on a pyarrow filesystem."""

    def __init__(self, target: str, name: str):
        self.fs, root = _filesystem(target)
        self.dir = f"{root.rstrip('/')}/{name}"
        self.local = self.fs.type_name == "local"

    def path(self, key: str) -> str:
        return f"{self.dir}/{key}.npz"

    def put(self, key: str, data: bytes) -> None:
        if self.local:  # temp + fsync + rename: a crash mid-write never leaves a torn file
            _atomic_write(Path(self.path(key)), data)
            return
        self.fs.create_dir(self.dir, recursive=True)
        with self.fs.open_output_stream(self.path(key)) as f:  # one object, visible whole
            f.write(data)

    def get(self, key: str) -> bytes | None:
        from pyarrow import fs

        if self.fs.get_file_info(self.path(key)).type == fs.FileType.NotFound:
            return None
        with self.fs.open_input_stream(self.path(key)) as f:
            return f.read()


class RedisCheckpointStore(CheckpointStore):
    """`<prefix><key>` in Redis, each written with a single SET."""

    def __init__(self, url: str, prefix: str):
        import redis

        self.client = redis.Redis.from_url(url)
        self.prefix = prefix

    def put(self, key: str, data: bytes) -> None:
        self.client.set(self.prefix + key, data)

    def get(self, key: str) -> bytes | None:
        data = self.client.get(self.prefix + key)
        return None if data is None else bytes(data)  # type: ignore[arg-type]


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
