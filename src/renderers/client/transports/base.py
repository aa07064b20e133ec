"""The transport ABC, the request a transport turns into a body, and the one response parser both share.

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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Annotated, Any, ClassVar, Final

import msgspec
import numpy as np
import orjson
import pybase64

from renderers.client.http import HTTPClient, RawResponse
from renderers.client.routed_experts import RoutedExperts, decode_body, routed_experts_from_wire, split_body
from renderers.client.wire import (
    MAX_TOKEN_ID,
    VLLM_MISSING_LOGPROB,
    WireResult,
    check_alignment,
    error_from_response,
    extract_chat_logprobs,
    first_choice,
    optional_mapping,
    validate_ids,
    validate_logprob_list,
)
from renderers.errors import MalformedResponseError, MissingCompletionIdsError, RoutedExpertsError

__all__ = ["Transport", "WireRequest", "encode_body", "parse_completion"]


@dataclass(frozen=True, slots=True)
class WireRequest:
    """Everything a transport needs to build a body.

    ``sampling_params`` already carries the renderer's ``stop_token_ids``, ``logprobs=1`` and the
    ``skip_special_tokens`` default. ``priority`` uses this API's single meaning (vLLM's: lower runs first).
    ``prompt_start`` is the caller's ``routed_experts_prompt_start`` (``None`` when not requested).
    """

    model: str
    prompt_ids: list[int]
    sampling_params: Mapping[str, Any] = field(default_factory=dict)
    cache_salt: str | None = None
    priority: int | None = None
    prompt_start: int | None = None
    #: ``prompt_ids`` already encoded as a JSON array (``generate()`` gets it from its id check); when set, the
    #: body embeds it as is instead of encoding the ids a second time. It must be the encoding of ``prompt_ids``.
    prompt_ids_json: bytes | None = None

    def prompt_ids_value(self) -> Any:
        """What goes into the body for the prompt ids: the pre-encoded text, or the list."""
        return self.prompt_ids if self.prompt_ids_json is None else orjson.Fragment(self.prompt_ids_json)


def encode_body(body: Mapping[str, Any]) -> bytes:
    """orjson-encode a request body; unserializable caller values are a ``ValueError``."""
    try:
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"request body is not JSON-serializable: {exc}") from None


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


class Transport(ABC):
    """One wire protocol: how a ``WireRequest`` becomes a body, and how a response becomes a ``WireResult``.

    ``build_body`` and ``parse`` are pure (property-testable without I/O); ``send`` does the exchange.
    """

    name: ClassVar[str]
    path: ClassVar[str]

    @abstractmethod
    def build_body(self, request: WireRequest) -> bytes:
        """The request body bytes."""

    def parse(self, raw: bytes, *, prompt_len: int, prompt_start: int | None = None) -> WireResult:
        """Parse a 2xx response body (shared rules, see the module docstring)."""
        return parse_completion(raw, prompt_len=prompt_len, prompt_start=prompt_start)

    async def _post(
        self,
        http: HTTPClient,
        body: bytes,
        *,
        headers: Mapping[str, str] | None,
        timeout: float | None,  # noqa: ASYNC109
    ) -> RawResponse:
        return await http.request("POST", self.path, body=body, headers=headers, timeout=timeout)

    def _raise_for_status(self, resp: RawResponse, request: WireRequest, max_prompt_len: int | None) -> None:
        if not 200 <= resp.status < 300:
            raise error_from_response(
                resp.status,
                resp.body,
                url=resp.url,
                retry_after=resp.retry_after,
                prompt_len=len(request.prompt_ids),
                max_prompt_len=max_prompt_len,
            )

    async def send(
        self,
        http: HTTPClient,
        request: WireRequest,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
        max_prompt_len: int | None = None,
    ) -> WireResult:
        """POST the request, map a non-2xx status to an error, parse the body."""
        resp = await self._post(http, self.build_body(request), headers=headers, timeout=timeout)
        self._raise_for_status(resp, request, max_prompt_len)
        return self.parse(resp.body, prompt_len=len(request.prompt_ids), prompt_start=request.prompt_start)
