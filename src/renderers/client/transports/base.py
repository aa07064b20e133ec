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
from typing import Any, ClassVar

import numpy as np
import orjson

from renderers.client.http import HTTPClient, RawResponse
from renderers.client.routed_experts import RoutedExperts, decode_body, routed_experts_from_wire
from renderers.client.wire import (
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


def parse_completion(
    raw: bytes, *, prompt_len: int, prompt_start: int | None = None, chat_logprobs_float32: bool = False
) -> WireResult:
    """Parse one non-streaming response body (vLLM generate or Dynamo chat) into a ``WireResult``.

    ``chat_logprobs_float32``: the chat echo ``choices[0].logprobs`` was printed from float32 values (Dynamo's
    frontend types logprobs as ``f32`` and prints the shortest float32 text, ``-7.6456947`` for the engine's
    ``-7.645694732666016``). When the logprobs come from that echo, they are rounded back to float32, which
    recovers the engine's value exactly (engine logprobs are float32), so both transports agree to the bit.
    """
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
            logprobs = np.asarray(logprobs, dtype=np.float32).tolist()
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
