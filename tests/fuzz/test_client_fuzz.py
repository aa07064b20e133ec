"""Client under bad input: hypothesis-generated response bodies for both transports' shapes.

Each body gives either the correct result or a ``ResponseError`` (the client's typed error) naming the field;
never another exception, never a wrong result, never a hang. The example counts come from the hypothesis profile: a
few dozen in the default ``tests`` session, 20,000 per property in ``nox -s fuzz`` (profile ``fuzz``).
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pybase64
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renderers.client._parse import MAX_TOKEN_ID, VLLM_MISSING_LOGPROB, WireResult
from renderers.client._routed_experts import DTYPE_ITEMSIZE
from renderers.client._transports import TRANSPORTS
from renderers.errors import (
    LogprobMismatchError,
    MalformedResponseError,
    MissingCompletionIdsError,
    ResponseError,
    RoutedExpertsError,
)
from tests.fuzz.counter import count

#: A parse is cheap: twice the examples of the loaded hypothesis profile (``nox -s fuzz`` loads ``fuzz``).
PARSE = settings(max_examples=2 * settings().max_examples)
PARSE_BOUND_S = 5.0  # "never a hang": one parse of a fuzz body (at most a few MB) takes far less

SHAPES = ("vllm-prime", "vllm-0.32", "dynamo-engine", "dynamo-nvext")
NP_DTYPE = {"uint8": "u1", "uint16": "<u2", "int16": "<i2", "int32": "<i4"}
ROOTS = ("choices", "nvext", "request_id", "id")


# ---- ground truth and the valid body that carries it -------------------------------------------------------
@dataclass(frozen=True)
class Truth:
    shape: str
    prompt_len: int
    ids: list[int]
    logprobs: list[float]
    routed: np.ndarray[Any, Any] | None
    start: int
    finish: str | None


def _logprob() -> st.SearchStrategy[float]:
    # float32 values: engines compute logprobs in float32, and the Dynamo transport rounds chat logprobs back to it
    return st.floats(-60.0, 0.0, allow_nan=False, width=32).filter(lambda x: x != VLLM_MISSING_LOGPROB)


@st.composite
def truths(draw: st.DrawFn) -> Truth:
    shape = draw(st.sampled_from(SHAPES))
    prompt_len = draw(st.integers(1, 12))
    n = draw(st.integers(0, 12))
    ids = draw(st.lists(st.one_of(st.integers(0, 3000), st.integers(0, MAX_TOKEN_ID)), min_size=n, max_size=n))
    lps = draw(st.lists(_logprob(), min_size=n, max_size=n))
    routed = None
    start = 0
    if draw(st.booleans()):
        dtype = draw(st.sampled_from(sorted(DTYPE_ITEMSIZE)))
        layers, top_k = draw(st.integers(1, 3)), draw(st.integers(1, 4))
        if shape != "vllm-0.32":
            start = draw(st.integers(0, prompt_len))
        rows = max(prompt_len + n - 1 - start, 0)
        info = np.iinfo(np.dtype(NP_DTYPE[dtype]))
        flat = draw(st.lists(st.integers(max(info.min, -100), min(info.max, 300)), min_size=rows * layers * top_k,
                             max_size=rows * layers * top_k))  # fmt: skip
        routed = np.asarray(flat, dtype=np.dtype(NP_DTYPE[dtype])).reshape(rows, layers, top_k)
    finish = draw(st.sampled_from([None, "stop", "length"]))
    return Truth(shape, prompt_len, ids, lps, routed, start, finish)


def _routed_object(t: Truth) -> dict[str, Any]:
    assert t.routed is not None
    data = pybase64.b64encode(np.ascontiguousarray(t.routed).tobytes()).decode()
    return {"data": data, "shape": list(t.routed.shape), "start": t.start, "dtype": t.routed.dtype.name}


def _npy(t: Truth) -> str:
    assert t.routed is not None
    buf = io.BytesIO()
    np.save(buf, t.routed, allow_pickle=False)
    return pybase64.b64encode(buf.getvalue()).decode()


def build_doc(t: Truth) -> dict[str, Any]:
    """A valid body in the given shape, as the server would send it."""
    if t.shape == "vllm-prime":
        content: list[dict[str, Any]] = [{"token": f"token_id:{i}", "logprob": lp, "bytes": None, "top_logprobs": []}
                                         for i, lp in zip(t.ids, t.logprobs, strict=True)]  # fmt: skip
        choice: dict[str, Any] = {"index": 0, "logprobs": {"content": content}, "finish_reason": t.finish,
                                  "token_ids": t.ids, "routed_experts": None}  # fmt: skip
        if t.routed is not None:
            choice["routed_experts"] = _routed_object(t)
        return {"request_id": "generate-tokens-r1", "model": None, "choices": [choice], "usage": {"x": 1}}
    if t.shape == "vllm-0.32":
        content = [{"token_id": i, "logprob": lp, "rank": 1} for i, lp in zip(t.ids, t.logprobs, strict=True)]
        routed = _npy(t) if t.routed is not None else None
        choice = {"index": 0, "finish_reason": t.finish, "token_ids": t.ids, "routed_experts": routed,
                  "logprobs": {"content": content}}  # fmt: skip
        return {"request_id": "generate-tokens-r1", "output_mode": "tokens", "choices": [choice]}
    content = [{"token": "x", "token_id": i, "logprob": lp, "bytes": [120], "top_logprobs": []}
               for i, lp in zip(t.ids, t.logprobs, strict=True)]  # fmt: skip
    choice = {"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": t.finish,
              "logprobs": {"content": content}}  # fmt: skip
    nvext: dict[str, Any] = {"worker_id": {"prefill_worker_id": 1}}
    if t.shape == "dynamo-engine":
        nvext["engine_data"] = {"completion_token_ids": t.ids, "completion_logprobs": t.logprobs}
    else:
        nvext["completion_token_ids"] = t.ids
    if t.routed is not None:
        nvext["routed_experts"] = _routed_object(t)
    return {"id": "chatcmpl-r1", "object": "chat.completion", "choices": [choice], "nvext": nvext}


def encode(doc: Any, style: str) -> bytes:
    """Compact (the zero-copy path's form), indented, or spaced with every non-ASCII character escaped."""
    if style == "compact":
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    if style == "indent":
        return json.dumps(doc, indent=2, ensure_ascii=False).encode()
    return json.dumps(doc, separators=(" , ", " : "), ensure_ascii=True).encode()


# ---- running the client parser ----------------------------------------------------------------------------
Outcome = tuple[str, Any]


def parse(raw: bytes, t: Truth, transport: str) -> Outcome:
    """``("ok", WireResult)`` or ``(error class name, field)``; anything else fails the test."""
    started = time.monotonic()
    try:
        result = TRANSPORTS[transport].parse(raw, prompt_len=t.prompt_len)
    except ResponseError as exc:
        error: ResponseError = exc
    else:
        check_invariants(result, t)
        return "ok", result
    finally:
        assert time.monotonic() - started < PARSE_BOUND_S, "the parser took too long"
    assert str(error), "a typed error without a message"
    if error.field is None:
        assert isinstance(error, MalformedResponseError), f"{type(error).__name__} names no field: {error}"
    else:
        assert error.field.split(".")[0].split("[")[0] in ROOTS, f"field {error.field!r} is not a body path"
    return type(error).__name__, error.field


def check_invariants(r: WireResult, t: Truth) -> None:
    """What holds for every body that parses."""
    assert len(r.completion_ids) == len(r.completion_logprobs)
    assert all(type(i) is int and 0 <= i <= MAX_TOKEN_ID for i in r.completion_ids)
    assert all(type(x) is float and math.isfinite(x) and x <= 0 for x in r.completion_logprobs)
    assert isinstance(r.request_id, str)
    assert r.finish_reason is None or isinstance(r.finish_reason, str)
    re = r.routed_experts
    if re is not None:
        assert re.rows == max(t.prompt_len + len(r.completion_ids) - 1 - re.start, 0)
        try:
            assert re.to_numpy().shape == re.shape
        except RoutedExpertsError as exc:  # decoded lazily: non-base64 text surfaces here, typed and named
            field = exc.field
            assert field == f"{re.field}.data", field


def same(a: Outcome, b: Outcome) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] != "ok":
        return bool(a[1] == b[1])
    x, y = a[1], b[1]
    return bool(
        x.completion_ids == y.completion_ids
        and x.completion_logprobs == y.completion_logprobs
        and x.request_id == y.request_id
        and x.finish_reason == y.finish_reason
        and x.routed_experts == y.routed_experts
    )


def assert_truth(out: Outcome, t: Truth) -> None:
    assert out[0] == "ok", f"a valid body was refused: {out}"
    r: WireResult = out[1]
    assert r.completion_ids == t.ids
    assert r.completion_logprobs == t.logprobs
    assert r.finish_reason == t.finish
    if t.routed is None:
        assert r.routed_experts is None
    else:
        assert r.routed_experts is not None
        assert r.routed_experts.start == t.start
        assert np.array_equal(r.routed_experts.to_numpy(), t.routed)
        assert r.routed_experts.to_numpy().dtype == t.routed.dtype


# ---- property 1: valid bodies in every encoding give exactly the truth ------------------------------------------
def _valid(t: Truth, style: str, transport: str) -> None:
    count("client: valid bodies")
    assert_truth(parse(encode(build_doc(t), style), t, transport), t)


_valid_args = {"t": truths(), "style": st.sampled_from(["compact", "indent", "spaced"]),
               "transport": st.sampled_from(["vllm", "dynamo"])}  # fmt: skip
test_valid_bodies = PARSE(given(**_valid_args)(_valid))


# ---- property 2: targeted corruptions give the named typed error -----------------------------------------------
def _ids_path(t: Truth) -> tuple[str, list[str | int]]:
    if t.shape == "dynamo-engine":
        return "nvext.engine_data.completion_token_ids", ["nvext", "engine_data", "completion_token_ids"]
    if t.shape == "dynamo-nvext":
        return "nvext.completion_token_ids", ["nvext", "completion_token_ids"]
    return "choices[0].token_ids", ["choices", 0, "token_ids"]


def _get(doc: Any, path: list[str | int]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


BAD_IDS = [-1, -(2**40), 1.5, 3.0, "7", True, None, [1], {"id": 1}, 2**32, 2**63, "placeholder"]
BAD_LOGPROBS = [0.5, 1e-300, 1e308, "-0.5", True, None, [-1.0], {"v": -1}, VLLM_MISSING_LOGPROB, "NaN"]
BAD_ROUTED: list[tuple[str, Any]] = [
    ("dtype", "float16"), ("dtype", "int64"), ("dtype", 8), ("dtype", ""),
    ("shape", [1, 1]), ("shape", [-1, 1, 1]), ("shape", "1,1,1"), ("shape", [1.0, 1, 1]), ("shape", None),
    ("start", -1), ("start", "0"), ("start", True), ("data", 123), ("data", None), ("data", ["AAAA"]),
]  # fmt: skip


@st.composite
def corruptions(draw: st.DrawFn) -> tuple[Truth, str, Any, type[ResponseError], str]:
    """A valid truth, then one corruption with the error class it must give and the field it must name."""
    t = draw(truths().filter(lambda t: len(t.ids) > 0))
    doc = build_doc(t)
    kind = draw(st.sampled_from(["id", "logprob", "drop-logprob", "extra-logprob", "routed", "ids-type",
                                 "routed-rows", "no-ids", "routed-string"]))  # fmt: skip
    id_field, id_path = _ids_path(t)
    n = len(t.ids)
    i = draw(st.integers(0, n - 1))
    engine = t.shape == "dynamo-engine"
    if kind == "id":
        bad = draw(st.sampled_from(BAD_IDS))
        if bad is None:  # a null entry is a wrong type; a null list is "absent" (tested by no-ids)
            bad = "null"
        _get(doc, id_path)[i] = bad
        return t, style(draw), doc, MalformedResponseError, f"{id_field}[{i}]"
    if kind == "ids-type":
        _get(doc, id_path[:-1])[id_path[-1]] = draw(st.sampled_from(["1,2", 7, {"0": 1}, True]))
        return t, style(draw), doc, MalformedResponseError, id_field
    if kind == "no-ids":
        del _get(doc, id_path[:-1])[id_path[-1]]
        return t, style(draw), doc, MissingCompletionIdsError, "choices[0].token_ids"
    if kind == "logprob":
        bad = draw(st.sampled_from(BAD_LOGPROBS))
        if engine:
            doc["nvext"]["engine_data"]["completion_logprobs"][i] = bad
            return t, style(draw), doc, MalformedResponseError, f"nvext.engine_data.completion_logprobs[{i}]"
        doc["choices"][0]["logprobs"]["content"][i]["logprob"] = bad
        return t, style(draw), doc, MalformedResponseError, f"choices[0].logprobs.content[{i}].logprob"
    if kind in ("drop-logprob", "extra-logprob"):
        lps = doc["nvext"]["engine_data"]["completion_logprobs"] if engine else doc["choices"][0]["logprobs"]["content"]
        if kind == "drop-logprob":
            del lps[-1]  # a middle one would (also correctly) be reported as a token_id misalignment
        else:
            lps.append(-1.0 if engine else {"token_id": 0, "logprob": -1.0})
        field = "nvext.engine_data.completion_logprobs" if engine else "choices[0].logprobs.content"
        return t, style(draw), doc, LogprobMismatchError, field
    # routed experts corruptions (need a routed payload in the object form)
    if t.routed is None or t.shape == "vllm-0.32":
        holder = doc["nvext"] if t.shape.startswith("dynamo") else doc["choices"][0]
        if kind == "routed-string" or t.shape == "vllm-0.32":
            holder["routed_experts"] = draw(st.sampled_from(["placeholder", "", "AAAA", "!!!!", "QUJD"]))
        else:
            holder["routed_experts"] = draw(st.sampled_from([7, ["AAAA"], True]))
        re_field = "nvext.routed_experts" if t.shape.startswith("dynamo") else "choices[0].routed_experts"
        if isinstance(holder["routed_experts"], str) or t.shape.startswith("dynamo"):
            # a non-object nvext.routed_experts is not looked at there; choices[0].routed_experts is absent
            if t.shape.startswith("dynamo") and not isinstance(holder["routed_experts"], str):
                return t, style(draw), doc, ResponseError, "ok-if-absent"
            if t.shape.startswith("dynamo"):
                return t, style(draw), doc, ResponseError, "ok-if-absent"
        return t, style(draw), doc, RoutedExpertsError, re_field
    re_field = "nvext.routed_experts" if t.shape.startswith("dynamo") else "choices[0].routed_experts"
    payload = doc["nvext"]["routed_experts"] if t.shape.startswith("dynamo") else doc["choices"][0]["routed_experts"]
    if kind == "routed-rows":
        payload["shape"][0] += draw(st.sampled_from([1, -1])) if payload["shape"][0] > 0 else 1
        return t, style(draw), doc, RoutedExpertsError, f"{re_field}.data"
    key, bad = draw(st.sampled_from(BAD_ROUTED))
    payload[key] = bad
    if key == "start" and bad is None:
        return t, style(draw), doc, ResponseError, "ok-if-absent"
    if key == "dtype" and bad == "":
        return t, style(draw), doc, RoutedExpertsError, f"{re_field}.dtype"
    return t, style(draw), doc, RoutedExpertsError, f"{re_field}.{key}"


def style(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(["compact", "indent", "spaced"]))


def _corrupt(case: tuple[Truth, str, Any, type[ResponseError], str], transport: str) -> None:
    count("client: targeted corruptions")
    t, sty, doc, err, field = case
    out = parse(encode(doc, sty), t, transport)
    if field == "ok-if-absent":  # a value the parser does not read there: either correct, or a named error
        assert out[0] == "ok" or out[1] is not None
        return
    assert out[0] != "ok", f"a corrupted body ({err.__name__} at {field}) parsed: {out[1]}"
    assert issubclass(getattr(__import__("renderers.errors", fromlist=[out[0]]), out[0]), err), out
    if err is RoutedExpertsError and field.endswith(".data"):
        assert out[1].startswith(field.removesuffix(".data")), out  # rows/length: the payload's shape or data
    else:
        assert out[1] == field, f"expected the error to name {field}, got {out}"


_corrupt_args = {"case": corruptions(), "transport": st.sampled_from(["vllm", "dynamo"])}
test_corruptions = PARSE(given(**_corrupt_args)(_corrupt))


# ---- property 3: arbitrary edits of the tree, byte damage, duplicate keys: typed outcome, encodings agree -----
JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12), st.sampled_from(["placeholder", "token_id:3", "AAAA", "routed_experts", "data", "\\u0041"]),
)  # fmt: skip
JSON = st.recursive(JSON_LEAF, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                    max_leaves=12)  # fmt: skip


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


RELEVANT = (("choices",), ("nvext",), ("request_id",), ("id",))


def _relevant(path: tuple[Any, ...], t: Truth) -> bool:
    if not path:
        return True
    if path[0] == "choices":
        return len(path) < 2 or (path[1] == 0 and (len(path) < 3 or path[2] in (
            "token_ids", "logprobs", "routed_experts", "finish_reason")))  # fmt: skip
    if path[0] == "nvext":
        return len(path) < 2 or path[1] in ("engine_data", "completion_token_ids", "routed_experts")
    return path[0] in ("request_id", "id")


@st.composite
def edits(draw: st.DrawFn) -> tuple[Truth, Any, bool]:
    """A valid body with 1-3 random edits (replace, delete, insert); ``True`` when every edit is irrelevant."""
    t = draw(truths())
    doc: Any = build_doc(t)  # any JSON value once an edit replaces the root
    irrelevant = True
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        action = draw(st.sampled_from(["replace", "delete", "insert"]))
        if not path:
            if action == "replace":
                doc = draw(JSON)
                irrelevant = False
            continue
        parent = _get(doc, list(path[:-1]))
        key = path[-1]
        if action == "replace":
            parent[key] = draw(JSON)
        elif action == "delete":
            del parent[key]
        else:
            target = _get(doc, list(path))
            if isinstance(target, dict):
                target[draw(st.text(max_size=6))] = draw(JSON)
            elif isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), draw(JSON))
            else:
                continue
        if _relevant(path, t) or (action == "insert" and _relevant((*path, 0), t)):
            irrelevant = False
        if not isinstance(doc, dict):
            irrelevant = False
            break
    return t, doc, irrelevant


def _edit(case: tuple[Truth, Any, bool], transport: str) -> None:
    count("client: random tree edits")
    t, doc, irrelevant = case
    outs = [parse(encode(doc, s), t, transport) for s in ("compact", "indent")]
    assert same(outs[0], outs[1]), f"compact and indented bodies disagree: {outs}"
    if irrelevant:
        assert_truth(outs[0], t)


_edit_args = {"case": edits(), "transport": st.sampled_from(["vllm", "dynamo"])}
test_tree_edits = PARSE(given(**_edit_args)(_edit))


@st.composite
def damaged(draw: st.DrawFn) -> tuple[Truth, bytes, str]:
    t = draw(truths())
    raw = bytearray(encode(build_doc(t), draw(st.sampled_from(["compact", "indent"]))))
    kind = draw(st.sampled_from(["truncate", "flip", "splice", "dup-key", "escape"]))
    if kind == "truncate":
        raw = raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]
    elif kind == "flip":
        for _ in range(draw(st.integers(1, 4))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.sampled_from(b'"\\{}[],:0-e.n \xff\x00AZ+/='))
    elif kind == "splice":
        at = draw(st.integers(0, len(raw)))
        raw[at:at] = draw(st.sampled_from([b'"routed_experts":{"data":"AAAA",', b'"data":"",', b",", b'"\\u0041"',
                                           b"\xc3\x28", b"NaN", b"Infinity", b"1e999"]))  # fmt: skip
    elif kind == "dup-key":
        # re-send one key of an object with another value right after the object opens: the last one wins
        at = raw.find(b"{", draw(st.integers(0, len(raw) - 1)))
        if at >= 0:
            key = draw(st.sampled_from([b"token_ids", b"routed_experts", b"data", b"nvext", b"logprobs",
                                        b"completion_token_ids", b"choices", b"shape"]))  # fmt: skip
            value = draw(st.sampled_from([b"null", b"[]", b'""', b"[1,2]", b'{"data":""}', b'"AAAA"']))
            raw[at + 1 : at + 1] = b'"' + key + b'":' + value + b","
    else:
        # the routed experts text with an escape in it (same characters, decoded by the JSON layer)
        pos = raw.find(b'"data":"')
        if pos >= 0 and bytes(raw[pos + 8 : pos + 9]) not in (b'"', b""):
            raw[pos + 8 : pos + 9] = b"\\u%04x" % raw[pos + 8]
    return t, bytes(raw), kind


def _in_range(value: Any) -> Any:
    """``value`` with every number beyond float64's range (orjson refuses those) replaced by 0."""
    if isinstance(value, dict):
        return {k: _in_range(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_in_range(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1.8e308:
        return 0
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _only_unread_numbers_out_of_range(raw: bytes, out: Outcome, t: Truth, transport: str) -> None:
    """orjson refuses the body, the client did not: allowed only for a number beyond float64's range (RFC 8259
    lets a parser limit the range) in a field the client never reads. The body must be valid JSON otherwise, and
    the outcome must be the one of the same body with those numbers in range (so they cannot matter)."""
    try:
        doc = json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        raise AssertionError(f"invalid JSON gave {out}") from None
    fixed = orjson.dumps(_in_range(doc), option=orjson.OPT_INDENT_2)
    assert same(out, parse(fixed, t, transport)), f"an out-of-range number changed the outcome: {out}"


def _damage(case: tuple[Truth, bytes, str], transport: str) -> None:
    count("client: damaged bytes")
    t, raw, kind = case
    out = parse(raw, t, transport)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if out != ("MalformedResponseError", None):
            _only_unread_numbers_out_of_range(raw, out, t, transport)
        return
    # the full decode of the same content (reformatted, so no zero-copy) must agree with the zero-copy path
    assert same(out, parse(orjson.dumps(doc, option=orjson.OPT_INDENT_2), t, transport)), kind
    if kind == "escape":
        assert_truth(out, t)


_damage_args = {"case": damaged(), "transport": st.sampled_from(["vllm", "dynamo"])}
test_damaged_bytes = PARSE(given(**_damage_args)(_damage))


def _arbitrary(body: bytes | Any, transport: str) -> None:
    count("client: arbitrary bodies")
    raw = body if isinstance(body, bytes) else encode(body, "compact")
    t = Truth("x", 3, [], [], None, 0, None)
    parse(raw, t, transport)


_arb_args = {
    "body": st.one_of(st.binary(max_size=64), JSON, st.fixed_dictionaries({"choices": st.lists(JSON, max_size=2)},
                      optional={"nvext": JSON, "request_id": JSON})),
    "transport": st.sampled_from(["vllm", "dynamo"]),
}  # fmt: skip
test_arbitrary_bodies = PARSE(given(**_arb_args)(_arbitrary))


# ---- huge bodies -------------------------------------------------------------------------------------------------
def _timed(fn: Callable[[], Outcome]) -> tuple[Outcome, float]:
    t0 = time.monotonic()
    out = fn()
    return out, time.monotonic() - t0


@pytest.mark.parametrize("transport", ["vllm", "dynamo"])
def test_huge_valid_body(transport: str) -> None:
    """200,000 completion tokens with a routing table of 64 layers x 8 experts (about 140 MB of base64 would be
    too much for CI; 16 layers x 8 is ~35 MB): parsed correctly and quickly."""
    n, prompt_len = 200_000, 1000
    rng = np.random.default_rng(0)
    routed = rng.integers(0, 256, size=(prompt_len + n - 1, 16, 8), dtype=np.uint8)
    t = Truth("dynamo-engine" if transport == "dynamo" else "vllm-prime", prompt_len,
              rng.integers(0, 150_000, n).tolist(), (-rng.random(n)).tolist(), routed, 0, "length")  # fmt: skip
    raw = encode(build_doc(t), "compact")
    out, secs = _timed(lambda: parse(raw, t, transport))
    assert_truth(out, t)
    assert secs < PARSE_BOUND_S


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"[" * 200_000 + b"]" * 200_000, None),  # deep nesting
        (b'{"choices":[{"token_ids":[' + b"1," * 2_000_000 + b"1]}]}", "choices[0].logprobs.content"),
        (b'{"choices":' + b" " * 20_000_000 + b"}", None),
        (b'{"x":"' + b"A" * 30_000_000 + b'"}', "choices"),
        (b"\x00" * 10_000_000, None),
    ],
    ids=["deep", "many-ids-no-logprobs", "whitespace", "long-string", "nul"],
)
@pytest.mark.parametrize("transport", ["vllm", "dynamo"])
def test_huge_bad_body(raw: bytes, field: str | None, transport: str) -> None:
    count("client: huge bodies")
    t = Truth("x", 3, [], [], None, 0, None)
    out, secs = _timed(lambda: parse(raw, t, transport))
    assert out[0] != "ok"
    assert out[1] == field
    assert secs < PARSE_BOUND_S
