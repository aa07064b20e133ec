"""The mock Dynamo's ``nvext`` structs: read from maps and from sequences (serde's derive), by the fast check on
orjson's parse and by the scanner that places errors, with one answer between them.

The texts and positions themselves are checked against the real 1.6.1 frontend by the recordings
(``dyn_*nvext_seq*``, ``dyn_serde_metadata_upload_*``, ...) and the ``real_dynamo`` differential; these properties
check that the mock's two readers agree on every generated value, and that nothing but a ``RequestError`` leaves
the rules.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockservers.app import MockState
from mockservers.config import MockConfig
from mockservers.dynamo import rules
from mockservers.dynamo.app import dynamo_error
from mockservers.protocol import RequestError

scalars = st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False) | st.text(max_size=3)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
# Values shaped like the structs: right field names, sequences as long as the structs (17 for NvExt), nested.
field_names = st.sampled_from([*rules.NVEXT_FIELDS, "url", "y", *rules.AGENT_HINTS_FIELDS, "required_taints"])
struct_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=18) | st.dictionaries(field_names, inner, max_size=4),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def state() -> MockState:
    return MockState("dynamo", MockConfig(), dynamo_error)


def _body(nvext: Any) -> bytes:
    """The request as JSON text (the standard library's writer: integers past 64 bits too)."""
    body = {"model": "tiny-qwen3", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1, "nvext": nvext}
    return json.dumps(body).encode()


def _scanned_refusal(raw: bytes, state: MockState) -> str | None:
    try:
        rules.read_streamed(raw, None, state)
    except rules.Refusal as exc:
        return exc.detail
    return None


@given(nvext=st.one_of(values, struct_like))
def test_the_fast_check_and_the_scanner_agree(state: MockState, nvext: Any) -> None:
    """orjson's parse checked without positions, and the body scanned as serde reads it: the same decision. (Only
    the scanner's text is ever sent: it reads numbers as serde_json does, so a float's last digit may differ.)"""
    problem = rules._struct_problem(nvext, rules.NVEXT) if nvext is not None else None
    assert (_scanned_refusal(_body(nvext), state) is None) == (problem is None), problem


@given(nvext=st.one_of(values, struct_like))
def test_only_request_errors_leave_the_rules_and_an_accepted_nvext_is_a_map(state: MockState, nvext: Any) -> None:
    try:
        parsed = rules.parse_chat(_body(nvext), state)
    except RequestError:
        return
    assert isinstance(parsed.nvext, dict)
    for key, kind in rules.NVEXT_FIELDS.items():
        if kind in rules.STRUCTS:
            assert parsed.nvext.get(key) is None or isinstance(parsed.nvext[key], dict), (key, parsed.nvext)


def test_a_sequence_stands_for_the_fields_in_order(state: MockState) -> None:
    names = list(rules.NVEXT_FIELDS)
    seq: list[Any] = [None] * len(names)
    seq[names.index("greed_sampling")] = True
    seq[names.index("agent_hints")] = [3]
    seq[names.index("token_data")] = [5, 6]
    parsed = rules.parse_chat(_body(seq), state)
    assert parsed.prompt == [5, 6]
    assert parsed.nvext["greed_sampling"] is True
    assert parsed.nvext["agent_hints"] == {"priority": 3}


@pytest.mark.parametrize(
    ("nvext", "detail"),
    [
        ([None] * 18, "trailing characters"),
        ({"metadata_upload": []}, "invalid length 0, expected struct MetadataUpload with 1 element"),
        ({"metadata_upload": {"url": "u", "y": 1}}, "unknown field `y`, expected `url`"),
        ({"metadata_upload": {}}, "missing field `url`"),
        ({"routing_constraints": {"required_taints": None}}, "invalid type: null, expected a sequence"),
        ({"routing_constraints": {"preferred_taints": {"a": "x"}}}, 'invalid type: string "x", expected f32'),
    ],
)
def test_struct_refusals_are_worded_as_serde_words_them(state: MockState, nvext: Any, detail: str) -> None:
    with pytest.raises(RequestError) as exc:
        rules.parse_chat(_body(nvext), state)
    assert detail in exc.value.message
