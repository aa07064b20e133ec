"""The response parser: one engine response body -> a ``WireResult``, the same rules for both transports.

One parser for both transports means one response content gives one outcome whichever transport carried it:

- completion ids: ``nvext.engine_data.completion_token_ids``, then ``nvext.completion_token_ids``, then
  ``choices[0].token_ids`` (first one present and not null; a present ``[]`` is a valid empty completion);
  absent everywhere -> ``MissingCompletionIdsError``;
- logprobs: ``nvext.engine_data.completion_logprobs`` when that key is present and not null (even ``[]``), else
  ``choices[0].logprobs.content[*].logprob``; absent logprobs count as zero logprobs, and any count different
  from the id count -> ``LogprobMismatchError`` (``logprobs=1`` is always requested, so a completion without
  its logprobs cannot be trained on);
- routed experts: ``nvext.routed_experts`` (when an object), else ``nvext.engine_data.routed_experts``, else
  ``choices[0].routed_experts``; then the trim rule and the row-count check
  (rows = prompt + completion - 1 - start);
- request id: ``request_id``, else ``id``; finish reason: ``choices[0].finish_reason``.

No silent defaults: a missing, null, non-numeric, non-finite or positive logprob, a non-integer or negative id,
or a count mismatch is an error naming the offending field.

In reading order: the per-element checks (each names the field and index it rejects), body splitting (the
routed-experts base64 text cut out of the body before any JSON decode, ``split_body``), the routing row rule,
the fast path (a typed msgspec decode that takes every body satisfying all the rules), ``parse_completion`` (the
fast path, else the slow one), and the slow path (orjson decode, then the checks one value at a time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated, Any, Final

import msgspec
import numpy as np
import orjson
import pybase64

from renderers.client._routed_experts import RoutedExperts, routed_experts_from_wire
from renderers.errors import LogprobMismatchError, MalformedResponseError, MissingCompletionIdsError, RoutedExpertsError

__all__ = [
    "MAX_TOKEN_ID",
    "VLLM_MISSING_LOGPROB",
    "WireResult",
    "decode_body",
    "decode_full",
    "parse_completion",
    "split_body",
]

#: Largest token id accepted from a response: token ids are uint32 on the wire (Dynamo's ``u32``; vLLM's vocab ids
#: are far below). Anything larger cannot be a token and would index out of any vocabulary.
MAX_TOKEN_ID: Final = 2**32 - 1

#: vLLM writes this when it has no logprob for a sampled token; it is not sampling evidence.
VLLM_MISSING_LOGPROB: Final = -9999.0


@dataclass(frozen=True, slots=True)
class WireResult:
    """What a transport read from one engine response, identical in meaning for every transport."""

    completion_ids: list[int]
    completion_logprobs: list[float]
    routed_experts: RoutedExperts | None
    request_id: str
    finish_reason: str | None


# ---- per-element checks ------------------------------------------------------------------------------------------


def optional_mapping(container: Mapping[str, Any], key: str, field: str) -> Mapping[str, Any] | None:
    """``container[key]`` when it is a mapping, ``None`` when absent or null; anything else is malformed."""
    value = container.get(key)
    if value is None or isinstance(value, Mapping):
        return value
    raise MalformedResponseError(f"{field} must be an object, got {type(value).__name__}", field=field, value=value)


def first_choice(doc: Any) -> Mapping[str, Any]:
    """``doc["choices"][0]``, or ``MalformedResponseError`` naming what is missing."""
    if not isinstance(doc, Mapping):
        raise MalformedResponseError(f"response body must be a JSON object, got {type(doc).__name__}", field=None)
    choices = doc.get("choices")
    if not isinstance(choices, list):
        what = "missing" if choices is None else f"a {type(choices).__name__}, not a list"
        raise MalformedResponseError(f"response has no choices list (choices is {what})", field="choices")
    if not choices:
        raise MalformedResponseError("response choices list is empty", field="choices")
    choice = choices[0]
    if not isinstance(choice, Mapping):
        raise MalformedResponseError(
            f"choices[0] must be an object, got {type(choice).__name__}", field="choices[0]", value=choice
        )
    return choice


def validate_ids(value: Any, field: str) -> list[int]:
    """A list of ints in ``[0, MAX_TOKEN_ID]`` (bools rejected)."""
    if not isinstance(value, list):
        raise MalformedResponseError(
            f"{field} must be a list of token ids, got {type(value).__name__}", field=field, value=value
        )
    for i, tok in enumerate(value):
        if type(tok) is not int or not 0 <= tok <= MAX_TOKEN_ID:
            raise MalformedResponseError(
                f"{field}[{i}] must be an integer token id in [0, {MAX_TOKEN_ID}], got {tok!r}",
                field=f"{field}[{i}]",
                value=tok,
            )
    return value


def _check_logprob(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedResponseError(f"{field} must be a number, got {value!r}", field=field, value=value)
    lp = float(value)
    if not math.isfinite(lp) or lp > 0.0:
        raise MalformedResponseError(f"{field} must be a finite number <= 0, got {value!r}", field=field, value=value)
    if lp == VLLM_MISSING_LOGPROB:
        raise MalformedResponseError(
            f"{field} is {VLLM_MISSING_LOGPROB}, vLLM's placeholder for a missing logprob (no sampling evidence)",
            field=field,
            value=value,
        )
    return lp


def validate_logprob_list(value: Any, field: str) -> list[float]:
    """A flat list of logprobs (Dynamo ``engine_data.completion_logprobs``)."""
    if not isinstance(value, list):
        raise MalformedResponseError(
            f"{field} must be a list of logprobs, got {type(value).__name__}", field=field, value=value
        )
    return [_check_logprob(v, f"{field}[{i}]") for i, v in enumerate(value)]


_TOKEN_ID_PREFIX: Final = "token_id:"


def extract_chat_logprobs(choice: Mapping[str, Any], ids: list[int], field: str = "choices[0]") -> list[float] | None:
    """Sampled-token logprobs from an OpenAI-chat-shaped ``choice.logprobs.content``.

    Understands the older entries ``{token: "token_id:N", logprob, ...}`` and vLLM 0.32's
    ``{token_id: N, logprob, rank, ...}`` (Dynamo adds ``token_id`` next to a text ``token``). When an entry names
    its token id, it must equal the completion id at the same position. Returns ``None`` when the response carries
    no logprobs at all (``logprobs`` or ``content`` absent/null).
    """
    lp_field = f"{field}.logprobs"
    logprobs = optional_mapping(choice, "logprobs", lp_field)
    if logprobs is None:
        return None
    content = logprobs.get("content")
    if content is None:
        return None
    c_field = f"{lp_field}.content"
    if not isinstance(content, list):
        raise MalformedResponseError(
            f"{c_field} must be a list, got {type(content).__name__}", field=c_field, value=content
        )
    out: list[float] = []
    n_ids = len(ids)
    for i, entry in enumerate(content):
        e_field = f"{c_field}[{i}]"
        if not isinstance(entry, Mapping):
            raise MalformedResponseError(
                f"{e_field} must be an object, got {type(entry).__name__}", field=e_field, value=entry
            )
        out.append(_check_logprob(entry.get("logprob"), f"{e_field}.logprob"))
        if i >= n_ids:
            continue  # the length check reports this
        tok_id = entry.get("token_id")
        if tok_id is None:
            token = entry.get("token")
            if isinstance(token, str) and token.startswith(_TOKEN_ID_PREFIX):
                try:
                    tok_id = int(token[len(_TOKEN_ID_PREFIX) :])
                except ValueError:
                    raise MalformedResponseError(
                        f"{e_field}.token {token!r} is not 'token_id:<int>'", field=f"{e_field}.token", value=token
                    ) from None
        if tok_id is not None and tok_id != ids[i]:
            raise MalformedResponseError(
                f"{e_field}.token_id is {tok_id!r} but completion token {i} is {ids[i]}: logprobs are misaligned",
                field=f"{e_field}.token_id",
                value=tok_id,
            )
    return out


def check_alignment(ids: list[int], logprobs: list[float] | None, field: str) -> list[float]:
    """Exactly one logprob per completion id. ``None`` (no logprobs in the response) counts as zero logprobs."""
    got = 0 if logprobs is None else len(logprobs)
    if got != len(ids):
        detail = "no logprobs" if logprobs is None else f"{got} logprobs"
        raise LogprobMismatchError(
            f"response carries {detail} ({field}) for {len(ids)} completion token ids; "
            "exactly one per token is required (logprobs=1 was requested)",
            field=field,
            n_ids=len(ids),
            n_logprobs=got,
        )
    return logprobs if logprobs is not None else []


# ---- body splitting ---------------------------------------------------------------------------------------------

_KEY: Final = b'"routed_experts":'
_OBJECT_TAIL: Final = b'{"data":"'
_NAME: Final = b"routed_experts"
_B64_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_DATA_NAME: Final = b'"data"'


def split_body(raw: bytes) -> tuple[bytes, memoryview | None]:
    """Cut the routed-experts base64 text out of a compact JSON body: ``(rest, text)``, or ``(raw, None)``.

    Taken only when the payload is unambiguous: a compact ``"routed_experts":{"data":"`` (or the ``.npy`` string
    form ``"routed_experts":"``) with a closing quote, and, in what is left once the text is cut out (``rest``),
    exactly one literal ``routed_experts`` (whatever the whitespace around the colon), for the object form no
    ``"data"`` after the cut (the object opens right before its ``"data":"``, so a second ``data`` key of that
    object can only follow it; a ``"data"`` before belongs to another object), and no ``\\u`` escape (an escape
    could spell a second ``routed_experts`` or ``data`` key).
    Scanning ``rest`` instead of the whole body is equivalent and ~17x cheaper on a 32k-token table: the cut text
    has no quote, backslash or ``_`` once it is known to be base64 (the caller checks that: ``decode_body`` with
    the alphabet, ``parse_completion`` by decoding it with ``validate=True``), so it can hold no key and no
    escape; a ``"data"`` spelled by the text itself would be the very value being cut out.
    ``rest`` is a new ``bytes`` (the body without the text); ``text`` is a zero-copy ``memoryview`` of ``raw``.
    """
    # One scan for the key; a first occurrence in neither compact form means no zero-copy (a later one would make
    # two ``routed_experts`` in the body, which is refused below anyway).
    pos = raw.find(_KEY)
    if pos < 0:
        return raw, None
    after = pos + len(_KEY)
    if raw.startswith(_OBJECT_TAIL, after):
        object_form, begin = True, after + len(_OBJECT_TAIL)
    elif raw.startswith(b'"', after):
        object_form, begin = False, after + 1
    else:
        return raw, None
    end = raw.find(b'"', begin)
    if end < 0:
        return raw, None
    mv = memoryview(raw)
    rest = b"".join((mv[:begin], mv[end:]))
    # Another ``"data"`` key of the routed-experts object can only come after its first member, i.e. after the cut
    # (``rest[begin]`` is the closing quote of the emptied value): one scan of the object's tail instead of ``rest``.
    if rest.count(_NAME) != 1 or (object_form and rest.find(_DATA_NAME, begin) >= 0):
        return raw, None
    if rest.find(b"\\") >= 0 and rest.find(b"\\u") >= 0:  # memchr for the (rare) backslash first
        return raw, None
    return rest, mv[begin:end]


def decode_body(raw: bytes) -> tuple[Any, memoryview | None]:
    """Decode a JSON response body with orjson, cutting the routed-experts base64 text out first.

    Fast path (``split_body`` found one unambiguous payload, and its text has only base64 characters): the base64 is
    replaced by ``""`` before decoding and returned as a zero-copy ``memoryview`` of ``raw``. Anything else falls
    back to a plain full decode (still correct), with ``None``.
    Raises ``MalformedResponseError`` when the body is not JSON.
    """
    rest, blob = split_body(raw)
    # Only base64 characters: a byte that would make the JSON invalid (control, non-UTF-8) must not be cut away.
    if blob is not None and not bytes(blob).translate(None, _B64_ALPHABET):
        try:
            return orjson.loads(rest), blob
        except orjson.JSONDecodeError:
            pass  # let the full decode report the error on the real body
    return decode_full(raw), None


def decode_full(raw: bytes) -> Any:
    """``orjson.loads(raw)``; ``MalformedResponseError`` (no field) when the body is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        preview = bytes(raw[:200]).decode("utf-8", "replace")
        raise MalformedResponseError(f"response body is not valid JSON ({exc}): {preview!r}", field=None) from None


# ---- routing rows ------------------------------------------------------------------------------------------------


def _finish_routed_experts(
    routed: RoutedExperts | None, explicit_start: bool, *, prompt_len: int, n_completion: int, prompt_start: int | None
) -> RoutedExperts | None:
    if routed is None:
        return None
    full_rows = prompt_len + n_completion - 1
    k = prompt_start or 0
    if k > 0 and not explicit_start and routed.start == 0 and routed.rows == full_rows - k:
        # No start on the wire (upstream .npy form or an older payload) but the row count shows the server trimmed.
        routed = RoutedExperts(routed.data, routed.shape, k, routed.dtype, field=routed.field)
    if k > 0 and routed.start == 0:
        routed = routed.trimmed(k)
    expected = max(full_rows - routed.start, 0)
    if routed.rows != expected:
        raise RoutedExpertsError(
            f"{routed.field} has {routed.rows} rows but prompt ({prompt_len}) + completion ({n_completion}) - 1 "
            f"- start ({routed.start}) = {expected}: the routing table does not line up with the tokens",
            field=f"{routed.field}.shape",
            value=list(routed.shape),
        )
    return routed


# ---- fast path: msgspec typed decoding of only the fields the parser reads --------------------------------------
# Every check that can be done by the decoder is done there, in C: ids are ints in [0, 2**32), logprobs are floats
# (JSON ints accepted, as before) with -9999 < lp <= 0 (JSON has no NaN/inf and an out-of-range number is a decode
# error, so they are finite). A logprob <= -9999 (vLLM's -9999.0 placeholder, or a legitimately tiny value) fails
# the constraint and takes the slow path, which tells the two apart. Unknown fields are skipped without building
# objects, and the structs are ``gc=False`` (32k per-token entries are not tracked by the cyclic GC).
_TokenId = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKEN_ID)]
_Logprob = Annotated[float, msgspec.Meta(le=0.0, gt=VLLM_MISSING_LOGPROB)]
_NO_RAW: Final = msgspec.Raw()


class _Entry(msgspec.Struct, gc=False):
    logprob: _Logprob
    token_id: _TokenId | None = None
    token: str | None = None


class _Logprobs(msgspec.Struct, gc=False):
    content: list[_Entry] | None = None


class _Choice(msgspec.Struct, gc=False):
    token_ids: list[_TokenId] | None = None
    logprobs: _Logprobs | None = None
    finish_reason: str | None = None
    routed_experts: msgspec.Raw = _NO_RAW


class _EngineData(msgspec.Struct, gc=False):
    completion_token_ids: list[_TokenId] | None = None
    completion_logprobs: list[_Logprob] | None = None
    routed_experts: msgspec.Raw = _NO_RAW


class _Nvext(msgspec.Struct, gc=False):
    engine_data: _EngineData | None = None
    completion_token_ids: list[_TokenId] | None = None
    routed_experts: msgspec.Raw = _NO_RAW


class _Body(msgspec.Struct, gc=False):
    request_id: msgspec.Raw = _NO_RAW
    id: msgspec.Raw = _NO_RAW
    choices: list[_Choice] | None = None
    nvext: _Nvext | None = None


_BODY_DECODER: Final = msgspec.json.Decoder(_Body)
_LOGPROB: Final = attrgetter("logprob")
_TOKEN_ID: Final = attrgetter("token_id")
_TOKEN: Final = attrgetter("token")
_TOKEN_ID_SEP: Final = ",token_id:"


def _token_texts_match(content: list[_Entry], ids: list[int]) -> bool:
    """Whether ``content[i].token == f"token_id:{ids[i]}"`` for every ``i`` (``len(content) == len(ids)``).

    Compared as two joined strings instead of ``len(ids)`` built ones (~5x cheaper). Equal joins imply
    equal elements: ``str(id)`` has no comma, so the right side has exactly ``len(ids) - 1`` commas, and the left
    side has that many plus any inside the tokens; equal strings therefore have no comma inside any token, and
    both split at the same places. A ``None`` token fails the join (``TypeError``) and is a mismatch.
    """
    try:
        left = ",".join(map(_TOKEN, content))
    except TypeError:
        return False
    if not ids:
        return True
    # orjson prints the ids (ints in [0, 2**32), canonical decimal) ~4x faster than ``map(str, ids)``.
    return left == "token_id:" + orjson.dumps(ids)[1:-1].decode("ascii").replace(",", _TOKEN_ID_SEP)


def _float32_logprobs(logprobs: list[float]) -> list[float] | int:
    """The logprobs rounded to float32 (the chat echo's precision), or the index of the first one beyond float32
    range (finite as a double, ``-inf`` once rounded: never returned as a logprob)."""
    with np.errstate(over="ignore"):
        arr = np.asarray(logprobs, dtype=np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        return int(np.argmin(finite))
    out: list[float] = arr.tolist()
    return out


class _SlowPath(Exception):
    """The fast path cannot vouch for this body: parse it with the per-element code (which names the field)."""


def _raw_value(raw: msgspec.Raw) -> Any:
    """A ``Raw`` field decoded by orjson (the slow path's decoder, so the value is identical); absent -> ``None``."""
    if not raw:
        return None
    try:
        return orjson.loads(memoryview(raw))
    except orjson.JSONDecodeError:
        raise _SlowPath from None


_Fields = tuple[list[int], list[float], Any, str, Any, "str | None"]


def _read_fields(rest: bytes, chat_logprobs_float32: bool) -> _Fields | None:
    """``(ids, logprobs, routed payload, its field, request id, finish reason)`` from a typed decode of ``rest``,
    or ``None`` when the body is not one the fast path can vouch for. The structs (and ``rest``, which msgspec's
    ``Raw`` values point into) are released when this returns."""
    try:
        doc = _BODY_DECODER.decode(rest)
    except Exception:  # DecodeError, ValidationError, RecursionError on deep nesting: the slow path reports it
        return None
    choices = doc.choices
    if not choices:
        return None
    choice = choices[0]
    nvext = doc.nvext
    engine = nvext.engine_data if nvext is not None else None

    if engine is not None and engine.completion_token_ids is not None:
        ids = engine.completion_token_ids
    elif nvext is not None and nvext.completion_token_ids is not None:
        ids = nvext.completion_token_ids
    elif choice.token_ids is not None:
        ids = choice.token_ids
    else:
        return None

    logprobs: list[float]
    if engine is not None and engine.completion_logprobs is not None:
        logprobs = engine.completion_logprobs
    else:
        lp = choice.logprobs
        content = lp.content if lp is not None else None
        if content is None:
            if ids:
                return None  # no logprobs for a non-empty completion: the slow path raises the mismatch
            logprobs = []
        else:
            if len(content) != len(ids):
                return None
            logprobs = list(map(_LOGPROB, content))
            token_ids = list(map(_TOKEN_ID, content))
            # Every entry names its token: as token_id (vLLM 0.32, Dynamo), or all of them as the older exact
            # "token_id:N" text. Anything else (mixed, unnamed, other spellings) is the per-element path's to judge.
            if token_ids != ids and (token_ids.count(None) != len(token_ids) or not _token_texts_match(content, ids)):
                return None
            if chat_logprobs_float32 and logprobs:
                rounded = _float32_logprobs(logprobs)
                if isinstance(rounded, int):
                    return None  # beyond float32: the slow path names the entry
                logprobs = rounded
    if len(logprobs) != len(ids):
        return None

    try:
        payload: Any = None
        re_field = ""
        if nvext is not None and nvext.routed_experts:
            payload = _raw_value(nvext.routed_experts)
            re_field = "nvext.routed_experts"
        if not isinstance(payload, Mapping):
            payload = _raw_value(engine.routed_experts) if engine is not None else None
            re_field = "nvext.engine_data.routed_experts"
            if payload is None:
                payload = _raw_value(choice.routed_experts)
                re_field = "choices[0].routed_experts"
        request_id = _raw_value(doc.request_id) or _raw_value(doc.id) or ""
    except _SlowPath:
        return None
    return ids, logprobs, payload, re_field, request_id, choice.finish_reason


def _parse_fast(
    raw: bytes, *, prompt_len: int, prompt_start: int | None, chat_logprobs_float32: bool
) -> WireResult | None:
    """The whole parse for a body that satisfies every rule, or ``None`` when anything is off (missing, null,
    mistyped, out of range, misaligned, ambiguous): the caller then runs the per-element path, which raises the
    named error or, for the rare legal shapes this path does not cover, returns the same result.

    Only a success here skips the slow path, and a success implies the slow path succeeds with the same result.
    """
    rest, blob = split_body(raw)
    # msgspec skips unread strings without checking their UTF-8; orjson (the slow path) rejects invalid UTF-8.
    if not rest.isascii():
        try:
            rest.decode("utf-8")
        except UnicodeDecodeError:
            return None
    fields = _read_fields(rest, chat_logprobs_float32)
    del rest  # the body without the base64 text: released before the table is decoded (lower peak memory)
    if fields is None:
        return None
    ids, logprobs, payload, re_field, request_id, finish = fields
    decoded = None
    if blob is not None:
        try:  # the text must be all base64 (see ``split_body``); decoding checks that and does the decode once
            decoded = pybase64.b64decode(blob, validate=True)
        except ValueError:  # binascii.Error is a ValueError: a byte that may not be valid JSON was cut out
            return None
    # From here on the checks (and their errors) are the slow path's own, in the slow path's order.
    routed, explicit_start = routed_experts_from_wire(payload, field=re_field, blob=blob, blob_decoded=decoded)
    routed = _finish_routed_experts(
        routed, explicit_start, prompt_len=prompt_len, n_completion=len(ids), prompt_start=prompt_start
    )
    if not isinstance(request_id, str):
        request_id = str(request_id)
    return WireResult(ids, logprobs, routed, request_id, finish)


def parse_completion(
    raw: bytes, *, prompt_len: int, prompt_start: int | None = None, chat_logprobs_float32: bool = False
) -> WireResult:
    """Parse one non-streaming response body (vLLM generate or Dynamo chat) into a ``WireResult``.

    ``chat_logprobs_float32``: the chat echo ``choices[0].logprobs`` was printed from float32 values (Dynamo's
    frontend types logprobs as ``f32`` and prints the shortest float32 text, ``-7.6456947`` for the engine's
    ``-7.645694732666016``). When the logprobs come from that echo, they are rounded back to float32, which
    recovers the engine's value exactly (engine logprobs are float32), so both transports agree to the bit.

    A typed msgspec decode takes every body that satisfies all the rules (``_parse_fast``); any other body goes
    through the per-element path below, which names the offending field and index.
    """
    fast = _parse_fast(
        raw, prompt_len=prompt_len, prompt_start=prompt_start, chat_logprobs_float32=chat_logprobs_float32
    )
    if fast is not None:
        return fast
    return _parse_slow(raw, prompt_len=prompt_len, prompt_start=prompt_start,
                       chat_logprobs_float32=chat_logprobs_float32)  # fmt: skip


def _parse_slow(
    raw: bytes, *, prompt_len: int, prompt_start: int | None = None, chat_logprobs_float32: bool = False
) -> WireResult:
    """The per-element parser (orjson decode, then every rule checked value by value, naming field and index)."""
    doc, blob = decode_body(raw)
    choice = first_choice(doc)
    nvext = optional_mapping(doc, "nvext", "nvext") or {}
    engine = optional_mapping(nvext, "engine_data", "nvext.engine_data") or {}

    raw_ids: Any
    if engine.get("completion_token_ids") is not None:
        raw_ids, ids_field = engine["completion_token_ids"], "nvext.engine_data.completion_token_ids"
    elif nvext.get("completion_token_ids") is not None:
        raw_ids, ids_field = nvext["completion_token_ids"], "nvext.completion_token_ids"
    elif choice.get("token_ids") is not None:
        raw_ids, ids_field = choice["token_ids"], "choices[0].token_ids"
    else:
        raise MissingCompletionIdsError(
            "response carries no completion token ids (looked in nvext.engine_data.completion_token_ids, "
            "nvext.completion_token_ids and choices[0].token_ids)",
            field="choices[0].token_ids",
        )
    ids = validate_ids(raw_ids, ids_field)

    logprobs: list[float] | None
    if engine.get("completion_logprobs") is not None:
        lp_field = "nvext.engine_data.completion_logprobs"
        logprobs = validate_logprob_list(engine["completion_logprobs"], lp_field)
    else:
        lp_field = "choices[0].logprobs.content"
        logprobs = extract_chat_logprobs(choice, ids)
        if chat_logprobs_float32 and logprobs:
            rounded = _float32_logprobs(logprobs)
            if isinstance(rounded, int):
                bad = f"{lp_field}[{rounded}].logprob"
                raise MalformedResponseError(
                    f"{bad} is {logprobs[rounded]!r}, beyond float32 range: not a float32 engine logprob "
                    "(it would round to -inf)",
                    field=bad,
                    value=logprobs[rounded],
                )
            logprobs = rounded
    logprobs = check_alignment(ids, logprobs, lp_field)

    payload: Any
    re_field: str
    if isinstance(nvext.get("routed_experts"), Mapping):
        payload, re_field = nvext["routed_experts"], "nvext.routed_experts"
    elif engine.get("routed_experts") is not None:
        payload, re_field = engine["routed_experts"], "nvext.engine_data.routed_experts"
    else:
        payload, re_field = choice.get("routed_experts"), "choices[0].routed_experts"
    routed, explicit_start = routed_experts_from_wire(payload, field=re_field, blob=blob)
    routed = _finish_routed_experts(
        routed, explicit_start, prompt_len=prompt_len, n_completion=len(ids), prompt_start=prompt_start
    )

    request_id = doc.get("request_id") or doc.get("id") or ""
    if not isinstance(request_id, str):
        request_id = str(request_id)
    finish = choice.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise MalformedResponseError(
            f"choices[0].finish_reason must be a string or null, got {finish!r}",
            field="choices[0].finish_reason",
            value=finish,
        )
    return WireResult(ids, logprobs, routed, request_id, finish)
