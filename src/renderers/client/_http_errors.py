"""HTTP error mapping: a non-2xx response becomes ``OverlongPromptError`` or ``EngineHTTPError``, with the server's
message (vLLM's ``{"error": {...}}`` envelope or Dynamo's flat ``{"message", "type", "code"}``) and its
``Retry-After`` read as seconds.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

import orjson

from renderers.errors import EngineHTTPError, OverlongPromptError

if TYPE_CHECKING:
    from renderers.client._http import RawResponse

__all__ = ["error_from_response", "parse_retry_after", "raise_for_status"]

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


def raise_for_status(resp: RawResponse, *, prompt_len: int, max_prompt_len: int | None) -> None:
    """Nothing for a 2xx response; otherwise raise its ``error_from_response``."""
    if not 200 <= resp.status < 300:
        raise error_from_response(
            resp.status,
            resp.body,
            url=resp.url,
            retry_after=resp.retry_after,
            prompt_len=prompt_len,
            max_prompt_len=max_prompt_len,
        )
