"""What both transports share: the common ``WireResult``, and the single implementation of the rules that keep
completion ids and logprobs aligned (id validation, logprob extraction, length check) and of HTTP error mapping.

No silent defaults: a missing, null, non-numeric, non-finite or positive logprob, a non-integer or negative id,
or a count mismatch is an error naming the offending field.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from renderers.client.routed_experts import RoutedExperts
from renderers.errors import EngineHTTPError, LogprobMismatchError, MalformedResponseError, OverlongPromptError

__all__ = [
    "WireResult",
    "check_alignment",
    "error_from_response",
    "extract_chat_logprobs",
    "first_choice",
    "optional_mapping",
    "validate_ids",
    "validate_logprob_list",
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


# ---------------------------------------------------------------------------------------------- HTTP errors

_OVERLONG_PATTERNS: Final = (
    "maximum model length",
    "maximum context length",
    "max_model_len",
    "context length",
    "context window",
    "exceeds the model's context",
    "prompt is too long",
)
_MAX_LEN_RE: Final = re.compile(r"maximum (?:model|context) length (?:of |is )?(\d+)")


def _server_message(body: bytes) -> tuple[str | None, str | None]:
    """``(message, type)`` from vLLM's ``{"error": {...}}`` or Dynamo's flat ``{"message", "type", "code"}``."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(doc, Mapping):
        return None, None
    inner = doc.get("error")
    if isinstance(inner, Mapping):
        doc = inner
    elif isinstance(inner, str) and "message" not in doc:
        return inner, None
    msg, kind = doc.get("message"), doc.get("type")
    if msg is not None and not isinstance(msg, str):
        msg = orjson.dumps(msg).decode()
    return msg, kind if isinstance(kind, str) else None


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return secs if math.isfinite(secs) and secs >= 0 else None


def error_from_response(
    status: int,
    body: bytes,
    *,
    url: str | None,
    retry_after: str | None,
    prompt_len: int,
    max_prompt_len: int | None,
) -> EngineHTTPError | OverlongPromptError:
    """The error for a non-2xx response: ``OverlongPromptError`` for a 400 that says the prompt is too long,
    ``EngineHTTPError`` (status, server message, raw body, ``retry_after``) otherwise."""
    message, kind = _server_message(body)
    if message is None:
        text = body[:500].decode("utf-8", "replace").strip()
        message = text or f"HTTP {status} with an empty body"
    if status in (400, 413):
        low = message.lower()
        if any(p in low for p in _OVERLONG_PATTERNS):
            m = _MAX_LEN_RE.search(low)
            cap = int(m.group(1)) if m else max_prompt_len
            return OverlongPromptError(prompt_len=prompt_len, max_prompt_len=cap, detail=message)
    return EngineHTTPError(
        status=status,
        message=message,
        body=body,
        error_type=kind,
        url=url,
        retry_after=parse_retry_after(retry_after),
    )
