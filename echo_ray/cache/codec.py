"""The project codec: msgpack with explicit numpy support. It never unpickles.

    encode(obj) -> bytes        decode(data) -> obj

Encodes None, bool, int (64-bit), float, str, bytes, lists, tuples (kept as
tuples), dicts (any encodable keys) and numpy arrays and scalars. Arrays travel
as (dtype string, shape, C-order bytes) in a msgpack ExtType; object arrays are
refused both ways, because their items would need pickle. Anything else raises
TypeError naming its type. Malformed input, pickles and object dtypes raise
CodecError (a ValueError) on decode.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

__all__ = ["CodecError", "decode", "encode"]

EXT_NDARRAY = 1
EXT_NUMPY_SCALAR = 2
EXT_TUPLE = 3

# Fixed-width kinds whose raw bytes round-trip without pickle.
_PLAIN_KINDS = frozenset("biufcmMSU")


class CodecError(ValueError):
    """Bytes that are not a valid echo_ray codec payload."""


def _check_dtype(dtype: np.dtype, exc: type[Exception]) -> None:
    if dtype.kind not in _PLAIN_KINDS or dtype.hasobject:
        raise exc(f"numpy dtype {dtype.str!r} (kind {dtype.kind!r}) is not supported: "
                  "only bool, int, uint, float, complex, datetime, timedelta and "
                  "fixed-width bytes/str dtypes are (object arrays would need pickle)")


def _default(obj: Any) -> msgpack.ExtType:
    if isinstance(obj, np.ndarray):
        _check_dtype(obj.dtype, TypeError)
        payload = [obj.dtype.str, list(obj.shape), np.ascontiguousarray(obj).tobytes()]
        return msgpack.ExtType(EXT_NDARRAY, msgpack.packb(payload, use_bin_type=True))
    if isinstance(obj, np.generic):
        _check_dtype(obj.dtype, TypeError)
        # An empty bytes/str scalar has dtype S0/U0 (itemsize 0), yet numpy's tobytes() gives
        # one NUL (S0) or one NUL code point (U0): keep exactly `itemsize` bytes.
        payload = [obj.dtype.str, obj.tobytes()[:obj.dtype.itemsize]]
        return msgpack.ExtType(EXT_NUMPY_SCALAR, msgpack.packb(payload, use_bin_type=True))
    if isinstance(obj, tuple):
        return msgpack.ExtType(EXT_TUPLE, _pack(list(obj)))
    # strict_types sends subclasses of the builtins here (IntEnum, OrderedDict, ...):
    # they travel as their base type.
    bases: tuple[type, ...] = (bool, int, float, str, bytes, list, dict)
    for base in bases:
        if isinstance(obj, base):
            return base(obj)
    raise TypeError(f"cannot encode value of type {type(obj).__module__}.{type(obj).__qualname__}")


def _pack(obj: Any) -> bytes:
    try:
        return msgpack.packb(obj, default=_default, use_bin_type=True, strict_types=True)
    except OverflowError as exc:
        raise TypeError(f"cannot encode int outside the 64-bit range: {exc}") from None
    except ValueError as exc:  # e.g. nesting too deep, or a value too large for msgpack
        raise TypeError(f"cannot encode value: {exc}") from None


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_NDARRAY:
        dtype_str, shape, raw = msgpack.unpackb(data, raw=False)
        dtype = _decode_dtype(dtype_str)
        if not isinstance(shape, list) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise CodecError(f"array shape must be a list of non-negative ints, got {shape!r}")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not isinstance(raw, bytes) or len(raw) != count * dtype.itemsize:
            raise CodecError(f"array payload has {len(raw) if isinstance(raw, bytes) else 0} "
                             f"bytes, expected {count * dtype.itemsize} for shape {shape} "
                             f"{dtype.str}")
        if dtype.itemsize == 0:  # S0/U0: np.frombuffer refuses itemsize 0; no data to copy
            if count > 1 << 24:
                raise CodecError(f"array of {count} empty strings is too large")
            return np.ndarray(tuple(shape), dtype=dtype)
        _check_code_points(raw, dtype)
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if code == EXT_NUMPY_SCALAR:
        dtype_str, raw = msgpack.unpackb(data, raw=False)
        dtype = _decode_dtype(dtype_str)
        # Codec versions before the S0/U0 fix wrote 1 (S0) or 4 (U0) NUL bytes for an empty
        # bytes/str scalar; accept those too.
        legacy_empty = (dtype.itemsize == 0 and isinstance(raw, bytes)
                        and raw == b"\0" * (1 if dtype.kind == "S" else 4))
        if not isinstance(raw, bytes) or (len(raw) != dtype.itemsize and not legacy_empty):
            raise CodecError(f"numpy scalar payload has the wrong size for {dtype.str}")
        if dtype.kind == "S":  # np.bytes_ keeps trailing NULs; indexing an array strips them
            return np.bytes_(raw[:dtype.itemsize])
        if dtype.kind == "U":
            _check_code_points(raw[:dtype.itemsize], dtype)
            n = dtype.itemsize // 4
            text = str(np.frombuffer(raw, dtype=dtype)[0]) if n else ""
            return np.str_(text + "\0" * (n - len(text)))  # put stripped trailing NULs back
        return np.frombuffer(raw, dtype=dtype)[0]
    if code == EXT_TUPLE:
        return tuple(_unpack(data))
    raise CodecError(f"unknown msgpack extension type {code}")


def _check_code_points(raw: bytes, dtype: np.dtype) -> None:
    """UTF-32 payloads of a `U` dtype must hold valid code points: numpy accepts any uint32
    in a buffer, and reading such an element later raises SystemError, not ValueError."""
    if dtype.kind == "U" and raw:
        units = np.frombuffer(raw, dtype=dtype.str[0] + "u4")  # "<U3" -> "<u4"
        if units.max() > 0x10FFFF:
            raise CodecError("str payload holds a value that is not a Unicode code point")


def _decode_dtype(dtype_str: Any) -> np.dtype:
    if not isinstance(dtype_str, str):
        raise CodecError(f"array dtype must be a string, got {type(dtype_str).__name__}")
    try:
        dtype = np.dtype(dtype_str)
    except TypeError as exc:
        raise CodecError(f"unknown numpy dtype {dtype_str!r}") from exc
    _check_dtype(dtype, CodecError)
    return dtype


def _unpack(data: bytes | bytearray | memoryview) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False,
                           use_list=True)


def encode(obj: Any) -> bytes:
    """Serialize `obj`; raises TypeError naming the first type it cannot encode."""
    return _pack(obj)


def decode(data: bytes | bytearray | memoryview) -> Any:
    """Rebuild a value from `encode` output; arrays come back writable and C-ordered."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode expects bytes, got {type(data).__name__}")
    head = bytes(data[:2])
    if len(data) > 1 and head[0] == 0x80 and head[1] <= 5:
        raise CodecError("payload looks like a Python pickle; echo_ray never unpickles")
    try:
        return _unpack(data)
    except CodecError:
        raise
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError,
            TypeError, IndexError) as exc:
        raise CodecError(
            f"not a valid echo_ray codec payload ({type(exc).__name__}: {exc})") from None
