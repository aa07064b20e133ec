"""RoutedExperts: validation, decode, trim, and the zero-copy body decode with its fallbacks."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pybase64
import pytest

from renderers.client._parse import decode_body
from renderers.client._routed_experts import RoutedExperts, routed_experts_from_wire
from renderers.errors import MalformedResponseError, RoutedExpertsError


def payload(arr: np.ndarray, start: int = 0) -> dict[str, Any]:
    return {"data": pybase64.b64encode(arr.tobytes()).decode(), "shape": list(arr.shape), "start": start,
            "dtype": arr.dtype.name}  # fmt: skip


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "int32"])
def test_to_numpy_round_trip(dtype: str) -> None:
    arr = np.arange(5 * 3 * 2).astype(dtype).reshape(5, 3, 2)
    re, explicit = routed_experts_from_wire(payload(arr), field="x")
    assert re is not None
    assert explicit
    np.testing.assert_array_equal(re.to_numpy(), arr)
    assert re.to_numpy().dtype == np.dtype(dtype)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.update(dtype="float16"), "x.dtype"),
        (lambda p: p.update(shape=[5, 3]), "x.shape"),
        (lambda p: p.update(shape=[5, -3, 2]), "x.shape"),
        (lambda p: p.update(shape=[5, 3, 3]), "x.data"),
        (lambda p: p.update(data=p["data"][:-4]), "x.data"),
        (lambda p: p.update(data=5), "x.data"),
        (lambda p: p.update(start=-1), "x.start"),
        (lambda p: p.update(data="é" * len(p["data"])), "x.data"),
    ],
)
def test_validation_names_the_field(mutate: Any, field: str) -> None:
    p = payload(np.zeros((5, 3, 2), dtype=np.uint8))
    mutate(p)
    with pytest.raises(RoutedExpertsError) as info:
        routed_experts_from_wire(p, field="x")
    assert info.value.field == field


def test_non_mapping_payload() -> None:
    with pytest.raises(RoutedExpertsError, match="must be an object"):
        routed_experts_from_wire([1, 2], field="x")


def test_invalid_base64_content_is_reported_on_decode() -> None:
    re = RoutedExperts("!!!!", (1, 1, 3), 0, "uint8")
    with pytest.raises(RoutedExpertsError, match="base64"):
        re.to_numpy()


def test_defaults_for_missing_start_and_dtype() -> None:
    re, explicit = routed_experts_from_wire({"data": "AQID", "shape": [3, 1, 1]}, field="x")
    assert re is not None
    assert (re.start, re.dtype, explicit) == (0, "uint8", False)


@pytest.mark.parametrize("row_bytes", [1, 2, 3, 4, 6, 16])
@pytest.mark.parametrize("drop", [0, 1, 2, 3, 7])
def test_trim_slice_and_decode_paths_agree(row_bytes: int, drop: int) -> None:
    arr = (np.arange(8 * row_bytes) % 251).astype(np.uint8).reshape(8, row_bytes, 1)
    re = RoutedExperts(pybase64.b64encode(arr.tobytes()), (8, row_bytes, 1))
    out = re.trimmed(drop)
    np.testing.assert_array_equal(out.to_numpy(), arr[drop:])
    assert out.start == drop
    assert out.shape == (8 - drop, row_bytes, 1)
    assert out.data.tobytes() == pybase64.b64encode(arr[drop:].tobytes())
    re.to_numpy()  # decoded cache present: the other path
    assert re.trimmed(drop) == out


def test_trim_never_twice_and_clamps() -> None:
    arr = np.arange(4, dtype=np.uint8).reshape(4, 1, 1)
    re = RoutedExperts(pybase64.b64encode(arr.tobytes()), (4, 1, 1))
    once = re.trimmed(2)
    assert once.trimmed(3) is once
    assert re.trimmed(10).shape == (0, 1, 1)


def test_decode_body_fast_path_is_zero_copy() -> None:
    blob = pybase64.b64encode(bytes(range(256)) * 3)
    raw = b'{"choices":[{"token_ids":[1],"routed_experts":{"data":"' + blob + b'","shape":[768,1,1]}}]}'
    doc, mv = decode_body(raw)
    assert mv is not None
    assert mv.obj is raw
    assert mv.tobytes() == blob
    assert doc["choices"][0]["routed_experts"]["data"] == ""


@pytest.mark.parametrize(
    "raw",
    [
        b'{"routed_experts": {"data": "AQID", "shape": [3,1,1]}}',  # not compact
        b'{"routed_experts":{"shape":[3,1,1],"data":"AQID"}}',  # other key order
        b'{"routed_experts":{"data":"AQ\\/D","shape":[3,1,1]}}',  # escaped character
        b'{"a":{"routed_experts":{"data":"AQID"}},"routed_experts":{"data":"AQID"}}',  # several occurrences
        b'{"routed_experts":{"data":"AQID","data":"BBBB"}}',  # duplicate data key
    ],
)
def test_decode_body_falls_back_to_full_decode(raw: bytes) -> None:
    doc, mv = decode_body(raw)
    assert mv is None
    assert doc == orjson.loads(raw)


def test_decode_body_npy_string_fast_path() -> None:
    raw = b'{"choices":[{"routed_experts":"QUJD"}]}'
    doc, mv = decode_body(raw)
    assert mv is not None
    assert mv.tobytes() == b"QUJD"
    assert doc["choices"][0]["routed_experts"] == ""


def test_decode_body_not_json() -> None:
    with pytest.raises(MalformedResponseError):
        decode_body(b'{"routed_experts":{"data":"AQID"')


def test_payload_round_trip_and_repr() -> None:
    re = RoutedExperts("AQID", (3, 1, 1), 2, "uint8")
    assert re.to_payload() == {"data": "AQID", "shape": [3, 1, 1], "start": 2, "dtype": "uint8"}
    assert "shape=(3, 1, 1)" in repr(re)
    assert isinstance(re.data, memoryview)
    assert re.data.readonly
