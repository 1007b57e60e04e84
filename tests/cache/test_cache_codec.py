"""The project codec: numpy and container round trips; it refuses pickle and object arrays."""

from __future__ import annotations

import collections
import pickle

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echo_ray.cache.codec import EXT_NDARRAY, CodecError, decode, encode

DTYPES = ["bool", "int8", "uint8", "int16", ">i4", "<u4", "int64", "uint64", "float16",
          "float32", ">f8", "complex64", "complex128", "datetime64[ns]", "timedelta64[s]",
          "S5", "U3"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_arrays_round_trip_exactly(dtype):
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 100, size=(3, 4, 2))
    array = raw.astype(dtype)
    back = decode(encode(array))
    assert back.dtype == array.dtype and back.shape == array.shape
    assert np.array_equal(back, array)
    assert back.flags.writeable and back.flags.c_contiguous


@pytest.mark.parametrize("array", [
    np.zeros((0, 5)),
    np.array(3.5),  # 0-d
    np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    np.arange(20)[::3],  # non-contiguous view
    np.array([np.nan, np.inf, -0.0]),
])
def test_array_layouts(array):
    back = decode(encode(array))
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("scalar", [np.float32(1.25), np.int64(-7), np.uint8(200),
                                    np.bool_(True), np.complex128(1 - 2j)])
def test_numpy_scalars_keep_their_type(scalar):
    back = decode(encode(scalar))
    assert type(back) is type(scalar) and back == scalar


def test_nested_containers_keep_tuples_and_key_types():
    value = {
        "state": np.ones((2, 2), dtype=np.float32),
        "history": [(1, 2.5, "x"), [b"raw", None, True]],
        7: {"nested": ({"deep": (np.int16(3),)},)},
        (1, "a"): "tuple key",
    }
    back = decode(encode(value))
    assert isinstance(back["history"][0], tuple)
    assert back[(1, "a")] == "tuple key" and back[7]["nested"][0]["deep"][0] == 3
    np.testing.assert_array_equal(back["state"], value["state"])
    assert back["history"][1] == [b"raw", None, True]


def test_builtin_subclasses_travel_as_their_base():
    assert decode(encode(collections.OrderedDict(a=1))) == {"a": 1}
    assert decode(encode(collections.defaultdict(list, a=[1]))) == {"a": [1]}


@pytest.mark.parametrize("value, type_name", [
    (object(), "object"),
    ({1, 2}, "set"),
    (1 + 2j, "complex"),
    (lambda: 1, "function"),
    ({"deep": [pickle]}, "module"),
])
def test_unencodable_values_raise_type_error_naming_the_type(value, type_name):
    with pytest.raises(TypeError, match=type_name):
        encode(value)


def test_object_arrays_and_huge_ints_are_refused():
    with pytest.raises(TypeError, match="object arrays"):
        encode(np.array([1, "a"], dtype=object))
    with pytest.raises(TypeError, match="64-bit"):
        encode(2**70)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_pickle_payloads_are_refused(protocol):
    with pytest.raises(CodecError):
        decode(pickle.dumps({"a": np.arange(3)}, protocol=protocol))


def test_pickle_message_is_clear():
    with pytest.raises(CodecError, match="never unpickles"):
        decode(pickle.dumps([1, 2]))


def test_object_dtype_payload_is_refused_on_decode():
    forged = msgpack.packb(msgpack.ExtType(
        EXT_NDARRAY, msgpack.packb(["|O", [1], b"\x00" * 8], use_bin_type=True)))
    with pytest.raises(CodecError, match="object arrays would need pickle"):
        decode(forged)


@pytest.mark.parametrize("data", [b"", b"\xc1", encode(1) + b"junk",
                                  msgpack.packb(msgpack.ExtType(99, b"x")),
                                  msgpack.packb(msgpack.ExtType(EXT_NDARRAY, msgpack.packb(
                                      ["<f8", [10], b"short"], use_bin_type=True)))])
def test_malformed_payloads_raise_codec_error(data):
    with pytest.raises(CodecError):
        decode(data)


def test_decode_requires_bytes():
    with pytest.raises(TypeError, match="bytes"):
        decode("not bytes")


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.tuples(children, children)
    | st.dictionaries(st.text(max_size=4) | st.integers(-5, 5), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(json_like)
def test_round_trip_property(value):
    assert decode(encode(value)) == value
