"""Regression: the zero-copy routed-experts path attached another field's base64 text to an empty ``data``."""

from __future__ import annotations

import orjson
import pytest

from renderers.client._parse import decode_body, parse_completion
from renderers.errors import MalformedResponseError, RoutedExpertsError

_LP = '"logprobs":{"content":[{"logprob":-1},{"logprob":-1}]}'


@pytest.mark.parametrize(
    "body",
    [
        # another field's base64 text must never stand in for an empty routed_experts.data
        '{"usage":{"routed_experts":{"data":"AAAA"}},"choices":[{"token_ids":[1,2],' + _LP
        + ',"routed_experts" : {"data" : "", "shape":[2,1,1]}}]}',
        # the same with the second key spelled with an escape
        '{"usage":{"routed_experts":{"data":"AAAA"}},"choices":[{"token_ids":[1,2],' + _LP
        + ',"routed\\u005fexperts":{"data":"","shape":[2,1,1]}}]}',
        # a duplicate data key: the last one wins in a full decode, so it must win on the fast path too
        '{"choices":[{"token_ids":[1,2],' + _LP + ',"routed_experts":{"data":"AAAA","data" :"","shape":[2,1,1]}}]}',
        '{"choices":[{"token_ids":[1,2],' + _LP + ',"routed_experts":{"data":"AAAA","d\\u0061ta":"",'
        '"shape":[2,1,1]}}]}',
    ],
)  # fmt: skip
def test_zero_copy_never_borrows_another_fields_text(body: str) -> None:
    raw = body.encode()
    with pytest.raises(RoutedExpertsError) as info:
        parse_completion(raw, prompt_len=1)
    assert info.value.field == "choices[0].routed_experts.data"
    # the full decode of a reformatted copy says the same
    with pytest.raises(RoutedExpertsError):
        parse_completion(orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2), prompt_len=1)


def test_zero_copy_still_taken_for_a_normal_body() -> None:
    raw = ('{"choices":[{"token_ids":[1,2],' + _LP + ',"routed_experts":{"data":"AAAA","shape":[2,1,1]}}]}').encode()
    _, blob = decode_body(raw)
    assert blob is not None
    assert bytes(blob) == b"AAAA"


@pytest.mark.parametrize("junk", [b"\xc3(", b"\xff", b"\n", b"\x00", b"\x7f"], ids=repr)
def test_zero_copy_never_hides_invalid_json_bytes(junk: bytes) -> None:
    """Bytes that make the body invalid JSON, inside the routed-experts text: the body is invalid, as a full decode
    says (it used to be accepted because the text was cut out before the JSON decode)."""
    raw = (b'{"choices":[{"token_ids":[1,2],' + _LP.encode() + b',"routed_experts":{"data":"' + junk
           + b"A" * (8 - len(junk)) + b'","shape":[2,1,3],"dtype":"uint8"}}]}')  # fmt: skip
    try:
        import json

        json.loads(raw)
        valid = True
    except ValueError:
        valid = False
    if valid:  # DEL is a legal JSON string character: then the text is simply not base64
        out = parse_completion(raw, prompt_len=1)
        assert out.routed_experts is not None
        with pytest.raises(RoutedExpertsError):
            out.routed_experts.to_numpy()
        return
    with pytest.raises(MalformedResponseError) as info:
        parse_completion(raw, prompt_len=1)
    assert info.value.field is None
