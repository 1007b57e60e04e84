"""Property tests (hypothesis, derandomized): the codec round-trips random nested structures
with numpy arrays bit for bit and answers any byte string with a value or CodecError; the
MultiLevelCache (L1, L2, disk L3, Redis L4) behaves like a dict under random sequences of
put / get / delete / delete_by_tags / losing its fast tiers."""

from __future__ import annotations

import math
import shutil
import tempfile
import uuid

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from echo_ray.cache import CacheConfig, MultiLevelCache
from echo_ray.cache.codec import CodecError, decode, encode

PROPS = settings(derandomize=True, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DTYPES = ["bool", "int8", "uint16", ">i4", "<i8", "uint64", "float16", "float32", ">f8",
          "complex64", "complex128", "datetime64[ms]", "timedelta64[ns]", "S4", "U3"]

arrays = hnp.arrays(dtype=st.sampled_from(DTYPES).map(np.dtype),
                    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
# Indexing an array strips trailing NULs from bytes/str items, so scalars built directly
# cover empty ones (dtype S0/U0) and trailing NULs too.
numpy_scalars = (arrays.filter(lambda a: a.size > 0).map(lambda a: a.reshape(-1)[0])
                 | st.binary(max_size=4).map(np.bytes_) | st.text(max_size=3).map(np.str_))
leaves = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
          | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
          | st.binary(max_size=8) | arrays | numpy_scalars)
keys = st.text(max_size=6) | st.integers(-2**63, 2**63 - 1) | st.booleans() | st.none()
nested = st.recursive(
    leaves,
    lambda inner: (st.lists(inner, max_size=4) | st.tuples(inner, inner)
                   | st.dictionaries(keys, inner, max_size=4)),
    max_leaves=25)


def same(a, b) -> bool:
    """Exact equality: same types (tuple stays tuple, numpy scalar types kept), arrays and
    floats bit for bit (NaN, -0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a)
                                                     == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


@settings(PROPS, max_examples=300)
@given(nested)
def test_codec_round_trips_nested_structures_with_arrays(value):
    back = decode(encode(value))
    assert same(back, value), (value, back)


@pytest.mark.parametrize("value", [
    np.bytes_(b""), np.str_(""),                                      # dtype S0 / U0
    np.ndarray((), dtype="S0"), np.ndarray((), dtype="U0"),           # 0-d arrays of them
    np.ndarray((2, 3), dtype="U0"), np.ndarray((0,), dtype="S0"),
    np.array(b""), np.array(""),                                      # numpy makes these S1/U1
    np.bytes_(b"a\0"), np.str_("a\0\0"), np.str_("\0"),              # trailing NULs kept
    [np.bytes_(b""), {"k": (np.str_(""), np.ndarray((), dtype="S0"))}],
], ids=repr)
def test_codec_empty_numpy_bytes_and_str(value):
    assert same(decode(encode(value)), value)


@pytest.mark.parametrize("dtype, raw", [("|S0", b"\0"), ("<U0", b"\0" * 4)])
def test_codec_reads_empty_string_scalars_written_before_the_fix(dtype, raw):
    """Earlier versions wrote 1 (S0) or 4 (U0) NUL bytes for an empty scalar; such entries may
    still sit in Redis or on disk."""
    blob = msgpack.packb(msgpack.ExtType(2, msgpack.packb([dtype, raw], use_bin_type=True)))
    assert same(decode(blob), np.dtype(dtype).type())


@pytest.mark.parametrize("ext, payload", [
    (2, ["<U1", b"\xff\xff\xff\xff"]),                   # not a code point
    (1, ["<U1", [1], b"\x00\x00\x11\x00"]),              # 0x110000, one past the last
    (1, ["|S0", [1 << 40], b""]),                            # 2**40 empty strings
    (2, ["|S0", b"xy"]),
])
def test_codec_refuses_bad_string_payloads(ext, payload):
    blob = msgpack.packb(msgpack.ExtType(ext, msgpack.packb(payload, use_bin_type=True)))
    with pytest.raises(CodecError):
        decode(blob)


@settings(PROPS, max_examples=300)
@given(st.binary(max_size=64))
def test_codec_decodes_any_bytes_to_a_value_or_codec_error(data):
    try:
        decode(data)
    except CodecError:
        pass


@settings(PROPS, max_examples=200)
@given(nested, st.data())
def test_codec_corrupted_encodings_give_a_value_or_codec_error(value, data):
    blob = bytearray(encode(value))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    for candidate in (bytes(blob), bytes(blob[:cut])):
        try:
            decode(candidate)
        except CodecError:
            pass


# -- MultiLevelCache against a dict ---------------------------------------------------------
KEYS = st.sampled_from(["a", "b", "c", "d", "e"])
TAGS = st.lists(st.sampled_from(["t1", "t2", "t3"]), max_size=2, unique=True)
VALUES = st.recursive(st.none() | st.integers(-10, 10) | st.text(max_size=4)
                      | hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=3),
                                   elements=st.floats(-1e3, 1e3)),
                      lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                      max_leaves=6)
OPS = st.lists(st.one_of(
    st.tuples(st.just("put"), KEYS, VALUES, TAGS),
    st.tuples(st.just("get"), KEYS),
    st.tuples(st.just("delete"), KEYS),
    st.tuples(st.just("delete_by_tags"), TAGS),
    st.tuples(st.just("lose_fast_tiers"), KEYS),  # as if L1/L2 evicted it
), max_size=30)
MISSING = object()


@pytest.mark.redis
@settings(PROPS, max_examples=60)
@given(OPS)
def test_multilevel_cache_behaves_like_a_dict(redis_server, ops):
    folder = tempfile.mkdtemp(prefix="echo-ray-prop-")
    cache = MultiLevelCache(CacheConfig(
        cache_dir=folder, namespace=f"prop{uuid.uuid4().hex[:10]}", redis_url=redis_server.url,
        default_ttl_seconds=0, object_store="off", l2_min_bytes=0, l2_min_saving=0.0))
    model: dict[str, tuple] = {}
    try:
        for op in ops:
            if op[0] == "put":
                _, key, value, tags = op
                cache.put(key, value, tags=tags)
                model[key] = (value, set(tags))
            elif op[0] == "get":
                got = cache.get(op[1], MISSING)
                if op[1] in model:
                    assert same(got, model[op[1]][0]), (op, got)
                else:
                    assert got is MISSING, (op, got)
            elif op[0] == "delete":
                assert cache.delete(op[1]) == (op[1] in model), op
                model.pop(op[1], None)
            elif op[0] == "delete_by_tags":
                doomed = {k for k, (_, tags) in model.items() if tags & set(op[1])}
                assert cache.delete_by_tags(op[1]) == len(doomed), (op, doomed)
                for k in doomed:
                    del model[k]
            else:
                cache.l1.delete(op[1])
                if cache.l2 is not None:
                    cache.l2.delete(op[1])
        found = cache.get_many(["a", "b", "c", "d", "e"])
        assert found.keys() == model.keys()
        assert all(same(found[k], model[k][0]) for k in model)
    finally:
        cache.clear()
        cache.close()
        shutil.rmtree(folder, ignore_errors=True)
