"""Property tests: zero-copy extraction equals a full decode on arbitrary JSON layouts; the trim rule."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pybase64
from hypothesis import given
from hypothesis import strategies as st

from renderers.client._parse import decode_body, parse_completion
from renderers.client._routed_experts import RoutedExperts

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
# keys that make the body tricky for a byte-level search
tricky_keys = st.sampled_from(["data", "routed_experts", "x", '"routed_experts":', 'a"b', "\\"])


def _put_back(doc: Any, blob: str) -> Any:
    """Replace the single empty ``data``/string placeholder under ``routed_experts`` with ``blob``."""
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for k, v in doc.items():
            if k == "routed_experts" and v == "":
                out[k] = blob
            elif k == "routed_experts" and isinstance(v, dict) and v.get("data") == "":
                out[k] = {**v, "data": blob}
            else:
                out[k] = _put_back(v, blob)
        return out
    if isinstance(doc, list):
        return [_put_back(v, blob) for v in doc]
    return doc


@given(
    data=st.binary(max_size=64),
    extras=st.dictionaries(tricky_keys | st.text(max_size=4), json_values, max_size=4),
    inner_extras=st.dictionaries(tricky_keys | st.text(max_size=4), json_values, max_size=3),
    data_first=st.booleans(),
    nesting=st.sampled_from(["choice", "nvext", "engine", "top"]),
    encoder=st.sampled_from(["orjson", "json-compact", "json-spaced", "json-escaped-slash"]),
    npy_string=st.booleans(),
)
def test_zero_copy_equals_full_decode(
    data: bytes,
    extras: dict[str, Any],
    inner_extras: dict[str, Any],
    data_first: bool,
    nesting: str,
    encoder: str,
    npy_string: bool,
) -> None:
    b64 = pybase64.b64encode(data).decode()
    routed: Any
    if npy_string:
        routed = b64
    else:
        inner = {k: v for k, v in inner_extras.items() if k != "data"}
        routed = {"data": b64, **inner} if data_first else {**inner, "data": b64}
    doc: dict[str, Any] = dict(extras)
    if nesting == "choice":
        doc["choices"] = [{"routed_experts": routed}]
    elif nesting == "nvext":
        doc["nvext"] = {"routed_experts": routed}
    elif nesting == "engine":
        doc["nvext"] = {"engine_data": {"routed_experts": routed}}
    else:
        doc["routed_experts"] = routed
    if encoder == "orjson":
        raw = orjson.dumps(doc)
    elif encoder == "json-compact":
        raw = json.dumps(doc, separators=(",", ":")).encode()
    elif encoder == "json-spaced":
        raw = json.dumps(doc).encode()
    else:
        raw = json.dumps(doc, separators=(",", ":")).replace("/", "\\/").encode()
    full = orjson.loads(raw)
    fast, blob = decode_body(raw)
    if blob is None:
        assert fast == full
    else:
        assert _put_back(fast, blob.tobytes().decode()) == full


@given(
    rows=st.integers(2, 12),
    layers=st.integers(1, 4),
    top_k=st.integers(1, 3),
    dtype=st.sampled_from(["uint8", "uint16", "int16", "int32"]),
    k=st.none() | st.integers(0, 14),
    worker_trims=st.booleans(),
)
def test_trim_rule(rows: int, layers: int, top_k: int, dtype: str, k: int | None, worker_trims: bool) -> None:
    """Full-sequence routing is trimmed to the requested start exactly once; no start keeps the full table."""
    n_completion = 2
    prompt_len = rows + 1 - n_completion  # rows = prompt + completion - 1
    full = (np.arange(rows * layers * top_k) % 200).astype(dtype).reshape(rows, layers, top_k)
    start = 0
    table = full
    if worker_trims and k is not None and k <= rows:
        start, table = k, full[k:]
    payload = {"data": pybase64.b64encode(table.tobytes()).decode(), "shape": list(table.shape), "start": start,
               "dtype": dtype}  # fmt: skip
    doc = {"choices": [{"token_ids": [5, 6], "logprobs": {"content": [{"logprob": -1.0}] * 2},
                        "routed_experts": payload}]}  # fmt: skip
    raw = orjson.dumps(doc)
    if k is not None and k > rows:
        return  # a start past the table cannot line up with the tokens (checked elsewhere)
    re = parse_completion(raw, prompt_len=prompt_len, prompt_start=k).routed_experts
    assert isinstance(re, RoutedExperts)
    want_start = k or 0
    assert re.start == want_start
    assert re.shape == (rows - want_start, layers, top_k)
    np.testing.assert_array_equal(re.to_numpy(), full[want_start:])
    # never trims twice
    assert re.trimmed(want_start + 1) is re or want_start == 0
