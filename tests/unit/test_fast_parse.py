"""The msgspec fast path of ``parse_completion``: taken for conforming bodies, identical results, and every body it
cannot vouch for goes to the per-element path, whose errors name the field and index."""

from __future__ import annotations

from typing import Any

import orjson
import pybase64
import pytest

from renderers.client import _parse as base_mod
from renderers.client._parse import _parse_fast, _parse_slow, parse_completion
from renderers.client._transports import TRANSPORTS
from renderers.errors import LogprobMismatchError, MalformedResponseError, ResponseError

ROUTED: dict[str, Any] = {
    "data": pybase64.b64encode(bytes(range(12))).decode(),
    "shape": [2, 3, 2],
    "start": 0,
    "dtype": "uint8",
}


def vllm_doc(ids: list[int], lps: list[float], *, form: str = "token") -> dict[str, Any]:
    content: list[dict[str, Any]]
    if form == "token":
        content = [{"token": f"token_id:{i}", "logprob": lp, "bytes": None, "top_logprobs": []}
                   for i, lp in zip(ids, lps, strict=True)]  # fmt: skip
    else:
        content = [{"token_id": i, "logprob": lp, "rank": 1} for i, lp in zip(ids, lps, strict=True)]
    return {"request_id": "r1", "choices": [{"token_ids": ids, "logprobs": {"content": content},
                                             "finish_reason": "length", "routed_experts": dict(ROUTED)}]}  # fmt: skip


def dynamo_doc(ids: list[int], lps: list[float]) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "choices": [{"finish_reason": "stop", "logprobs": None}],
            "nvext": {"engine_data": {"completion_token_ids": ids, "completion_logprobs": lps,
                                      "routed_experts": dict(ROUTED)}}}  # fmt: skip


def outcome(raw: bytes, *, slow: bool = False) -> tuple[str, object]:
    fn = _parse_slow if slow else parse_completion
    try:
        r = fn(raw, prompt_len=1)
    except ResponseError as exc:
        return type(exc).__name__, (exc.field, str(exc))
    return "ok", (r.completion_ids, r.completion_logprobs, r.routed_experts, r.request_id, r.finish_reason)


@pytest.mark.parametrize("make", [vllm_doc, dynamo_doc, lambda i, lp: vllm_doc(i, lp, form="id")])
def test_conforming_bodies_take_the_fast_path_with_the_same_result(make) -> None:  # type: ignore[no-untyped-def]
    raw = orjson.dumps(make([5, 7], [-0.5, -1.0]))
    fast = _parse_fast(raw, prompt_len=1, prompt_start=None, chat_logprobs_float32=False)
    assert fast is not None
    assert fast == _parse_slow(raw, prompt_len=1)
    assert fast.routed_experts is not None
    assert fast.routed_experts.to_numpy().tobytes() == bytes(range(12))


@pytest.mark.parametrize(
    ("edit", "field", "err"),
    [
        (lambda d: d["choices"][0]["token_ids"].__setitem__(1, -3), "choices[0].token_ids[1]", MalformedResponseError),
        (lambda d: d["choices"][0]["token_ids"].__setitem__(0, 2**32), "choices[0].token_ids[0]",
         MalformedResponseError),
        (lambda d: d["choices"][0]["token_ids"].__setitem__(0, True), "choices[0].token_ids[0]",
         MalformedResponseError),
        (lambda d: d["choices"][0]["logprobs"]["content"][1].__setitem__("logprob", -9999.0),
         "choices[0].logprobs.content[1].logprob", MalformedResponseError),
        (lambda d: d["choices"][0]["logprobs"]["content"][1].__setitem__("logprob", 0.25),
         "choices[0].logprobs.content[1].logprob", MalformedResponseError),
        (lambda d: d["choices"][0]["logprobs"]["content"][0].__setitem__("logprob", None),
         "choices[0].logprobs.content[0].logprob", MalformedResponseError),
        (lambda d: d["choices"][0]["logprobs"]["content"][1].__setitem__("token", "token_id:99"),
         "choices[0].logprobs.content[1].token_id", MalformedResponseError),
        (lambda d: d["choices"][0]["logprobs"]["content"].pop(), "choices[0].logprobs.content",
         LogprobMismatchError),
        (lambda d: d["choices"][0].__setitem__("finish_reason", 3), "choices[0].finish_reason",
         MalformedResponseError),
        (lambda d: d.__setitem__("nvext", 5), "nvext", MalformedResponseError),
    ],
)  # fmt: skip
def test_a_body_the_typed_decode_refuses_gets_the_per_element_error(edit, field, err) -> None:  # type: ignore[no-untyped-def]
    doc = vllm_doc([5, 7], [-0.5, -1.0])
    edit(doc)
    raw = orjson.dumps(doc)
    assert _parse_fast(raw, prompt_len=1, prompt_start=None, chat_logprobs_float32=False) is None
    with pytest.raises(err) as info:
        parse_completion(raw, prompt_len=1)
    assert info.value.field == field
    assert outcome(raw) == outcome(raw, slow=True)


def test_legal_shapes_outside_the_fast_path_still_parse() -> None:
    """A logprob below -9999 (legal, but the fast path's bound), a float token id equal to the id, a token text
    that ``int()`` reads: the per-element path decides, as before."""
    doc = vllm_doc([5, 7], [-0.5, -12000.0])
    doc["choices"][0]["logprobs"]["content"][0]["token"] = "token_id: 5"
    raw = orjson.dumps(doc)
    assert _parse_fast(raw, prompt_len=1, prompt_start=None, chat_logprobs_float32=False) is None
    assert parse_completion(raw, prompt_len=1).completion_logprobs == [-0.5, -12000.0]


def test_invalid_utf8_in_an_unread_field_is_still_invalid_json() -> None:
    raw = orjson.dumps(vllm_doc([5, 7], [-0.5, -1.0])).replace(b'"request_id"', b'"x":"\xc0\xaf","request_id"')
    with pytest.raises(MalformedResponseError) as info:
        parse_completion(raw, prompt_len=1)
    assert info.value.field is None


def test_out_of_range_number_in_an_unread_field_does_not_change_the_result() -> None:
    """msgspec skips an unread number without converting it; orjson refused the whole body for ``1e999``. The
    number is never read, so the result is the one of the same body without it."""
    good = orjson.dumps(dynamo_doc([5, 7], [-0.5, -1.0]))
    odd = good.replace(b'"id"', b'"usage":{"x":1e999},"id"')
    assert outcome(odd) == outcome(good)
    # in a field that is read, it is still an error naming the field
    bad = good.replace(b"[-0.5,", b"[-1e999,")
    with pytest.raises(MalformedResponseError) as info:
        TRANSPORTS["dynamo"].parse(bad, prompt_len=1)
    assert info.value.field is None  # orjson refuses the body as a whole, as before


def test_duplicate_keys_last_one_wins_on_both_paths() -> None:
    raw = orjson.dumps(vllm_doc([5, 7], [-0.5, -1.0])).replace(
        b'{"token_ids":[5,7]', b'{"token_ids":[1,2],"token_ids":[5,7]'
    )
    assert outcome(raw)[0] == "ok"
    assert outcome(raw) == outcome(raw, slow=True)


def test_fast_path_failure_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = base_mod._parse_slow

    def spy(raw: bytes, **kw: object) -> object:
        calls.append(raw)
        return real(raw, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(base_mod, "_parse_slow", spy)
    good = orjson.dumps(vllm_doc([5, 7], [-0.5, -1.0]))
    parse_completion(good, prompt_len=1)
    assert calls == []
    with pytest.raises(MalformedResponseError):
        parse_completion(good.replace(b"-0.5", b"0.5"), prompt_len=1)
    assert len(calls) == 1


@pytest.mark.parametrize(
    "tokens",
    [
        ["token_id:5,token_id:7", ""],  # the joined texts match, the elements do not
        ["token_id:5", "token_id:7,"],
        ["token_id:5,", "token_id:7"],
        [None, "token_id:7"],
        ["token_id:05", "token_id:7"],
        ["token_id:5", "token_id:7 "],
        ["token_id:5", "token_id:07"],
        ["token_id:5", "token_id:+7"],
    ],
)
def test_token_texts_are_compared_element_by_element(tokens: list[object]) -> None:
    """The fast path compares the joined ``token`` texts; only element-wise exact ``token_id:<id>`` texts pass it,
    anything else gets the per-element path's answer (an error naming the entry, or the same parse)."""
    doc = vllm_doc([5, 7], [-0.5, -1.0])
    for entry, tok in zip(doc["choices"][0]["logprobs"]["content"], tokens, strict=True):
        entry["token"] = tok
    raw = orjson.dumps(doc)
    assert _parse_fast(raw, prompt_len=1, prompt_start=None, chat_logprobs_float32=False) is None
    assert outcome(raw) == outcome(raw, slow=True)


def test_empty_completion_with_empty_token_texts_takes_the_fast_path() -> None:
    raw = orjson.dumps(vllm_doc([], []))
    doc = orjson.loads(raw)
    doc["choices"][0].pop("routed_experts")
    raw = orjson.dumps(doc)
    fast = _parse_fast(raw, prompt_len=1, prompt_start=None, chat_logprobs_float32=False)
    assert fast is not None
    assert fast == _parse_slow(raw, prompt_len=1)


def test_a_data_key_before_the_routed_experts_object_keeps_the_zero_copy_path() -> None:
    """Only a ``"data"`` after the cut can be a second key of the routed-experts object; one before it belongs to
    another object and changes nothing (same result as the full decode)."""
    doc = vllm_doc([5, 7], [-0.5, -1.0])
    raw = b'{"usage":{"data":"QUJD"},' + orjson.dumps(doc)[1:]
    _rest, blob = base_mod.split_body(raw)
    assert blob is not None
    assert bytes(blob) == ROUTED["data"].encode()
    fast = _parse_fast(raw, prompt_len=1, prompt_start=None, chat_logprobs_float32=False)
    assert fast is not None
    assert fast == _parse_slow(raw, prompt_len=1)
    after = raw.replace(b'"dtype":"uint8"', b'"dtype":"uint8","data":""')
    assert base_mod.split_body(after)[1] is None
    assert outcome(after) == outcome(after, slow=True)


@pytest.mark.parametrize("lp", [-3.4028235677973366e38, -1e300])
def test_a_chat_echo_logprob_beyond_float32_is_an_error_not_minus_inf(lp: float) -> None:
    """Found by the tree-edit fuzzer: the Dynamo chat echo is rounded to float32, and a finite double below
    -FLT_MAX rounded to -inf and was returned. It cannot be a float32 engine logprob: an error naming the entry."""
    doc = {"id": "chatcmpl-r1", "choices": [{"index": 0, "finish_reason": None, "logprobs": {"content": [
        {"token": "x", "token_id": 0, "logprob": -0.5}, {"token": "x", "token_id": 0, "logprob": lp}]}}],
        "nvext": {"completion_token_ids": [0, 0]}}  # fmt: skip
    raw = orjson.dumps(doc)
    assert _parse_fast(raw, prompt_len=1, prompt_start=None, chat_logprobs_float32=True) is None
    with pytest.raises(MalformedResponseError) as info:
        TRANSPORTS["dynamo"].parse(raw, prompt_len=1)
    assert info.value.field == "choices[0].logprobs.content[1].logprob"
    ok = orjson.dumps(doc).replace(orjson.dumps(lp), b"-3.4028234663852886e+38")
    assert TRANSPORTS["dynamo"].parse(ok, prompt_len=1).completion_logprobs[1] == -3.4028234663852886e38
