"""What the byte tiers (L2, L3, L4) store for one key: its tags and its value.

Keeping the tags inside the stored bytes lets a value promoted from disk or
Redis carry its tags into the in-process tiers, so a later `delete_by_tags`
still finds it there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from echo_ray.cache.codec import CodecError, decode, encode

ENTRY_VERSION = 1


def pack_entry(value: Any, tags: Iterable[str] = ()) -> bytes:
    """Encode `value` with its tags; TypeError if the value cannot be encoded."""
    return encode([ENTRY_VERSION, sorted(tags), value])


def unpack_entry(blob: bytes) -> tuple[Any, tuple[str, ...]]:
    """Return (value, tags) from `pack_entry` bytes; CodecError if they are not an entry."""
    record = decode(blob)
    if (not isinstance(record, list) or len(record) != 3 or record[0] != ENTRY_VERSION
            or not isinstance(record[1], list)):
        raise CodecError("bytes are not an echo_ray cache entry")
    return record[2], tuple(record[1])
