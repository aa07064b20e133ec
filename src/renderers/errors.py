"""Every error this package raises on purpose, in one place.

The tree::

    RenderersError                      base of everything below
    ├── GenerateError                   anything that goes wrong in ``generate()``
    │   ├── OverlongPromptError         prompt longer than the model's context (before sending, or a 400 that says so)
    │   ├── TransportError              the request never produced an HTTP response
    │   │   ├── EngineConnectionError   connection refused / reset / closed before a full response
    │   │   └── EngineTimeoutError      no complete response within the timeout (also a ``TimeoutError``)
    │   ├── EngineHTTPError             the engine answered with a non-2xx status
    │   └── ResponseError               a 2xx response that cannot be turned into a correct result
    │       ├── MalformedResponseError  not JSON, or a required field missing or of the wrong type
    │       ├── MissingCompletionIdsError  no completion token ids anywhere in the response
    │       ├── LogprobMismatchError    logprob count differs from the completion id count
    │       ├── RoutedExpertsError      routed experts payload inconsistent (shape, dtype, base64 length)
    │       └── PartialCompletionError  Dynamo's engine_data covers only part of the completion (a migrated
    │                                   request) and the whole cannot be rebuilt exactly
    └── (renderer input problems are plain ``ValueError``s naming the message index and field)

Every error carries a message that names the field and the offending value, so a failed rollout
can be diagnosed from the log line alone.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EngineConnectionError",
    "EngineHTTPError",
    "EngineTimeoutError",
    "GenerateError",
    "LogprobMismatchError",
    "MalformedResponseError",
    "MissingCompletionIdsError",
    "OverlongPromptError",
    "PartialCompletionError",
    "RenderersError",
    "ResponseError",
    "RoutedExpertsError",
    "TransportError",
]


class RenderersError(Exception):
    """Base class of every error raised on purpose by this package."""


class GenerateError(RenderersError):
    """Something went wrong while generating through an inference engine."""


class OverlongPromptError(GenerateError):
    """The prompt does not fit in the model's context window."""

    def __init__(self, *, prompt_len: int, max_prompt_len: int | None, detail: str | None = None) -> None:
        self.prompt_len = prompt_len
        self.max_prompt_len = max_prompt_len
        self.detail = detail
        if max_prompt_len is not None:
            msg = f"Prompt length ({prompt_len}) exceeds maximum context length ({max_prompt_len})."
        else:
            msg = f"Prompt length ({prompt_len}) exceeds the engine's maximum context length."
        if detail:
            msg = f"{msg} Engine said: {detail}"
        super().__init__(msg)


class TransportError(GenerateError):
    """The request did not produce a complete HTTP response."""


class EngineConnectionError(TransportError):
    """The connection failed: refused, reset, or closed before the full response arrived."""


class EngineTimeoutError(TransportError, TimeoutError):
    """No complete response arrived within the configured timeout."""


class EngineHTTPError(GenerateError):
    """The engine answered with a non-2xx HTTP status.

    ``status`` is the HTTP status, ``message`` the server's own message (from vLLM's
    ``{"error": {...}}`` envelope or Dynamo's flat ``{"message", "type", "code"}`` body),
    ``error_type`` the server's ``type`` field when present, ``body`` the raw response bytes,
    and ``retry_after`` the ``Retry-After`` header in seconds when the server sent one.
    """

    def __init__(
        self,
        *,
        status: int,
        message: str,
        body: bytes,
        error_type: str | None = None,
        url: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.body = body
        self.error_type = error_type
        self.url = url
        self.retry_after = retry_after
        where = f" from {url}" if url else ""
        kind = f" ({error_type})" if error_type else ""
        super().__init__(f"HTTP {status}{kind}{where}: {message}")


class ResponseError(GenerateError):
    """A 2xx response that cannot be turned into a correct result.

    ``field`` is the dotted path of the offending field (for example
    ``choices[0].logprobs.content[3].logprob``), or ``None`` when the body as a whole is at fault.
    """

    def __init__(self, message: str, *, field: str | None = None, value: Any = None) -> None:
        self.field = field
        self.value = value
        super().__init__(message)


class MalformedResponseError(ResponseError):
    """The body is not JSON, or a required field is missing or of the wrong type."""


class MissingCompletionIdsError(ResponseError):
    """The response carries no completion token ids in any of the places they may be."""


class LogprobMismatchError(ResponseError):
    """The number of completion logprobs differs from the number of completion token ids."""

    def __init__(self, message: str, *, field: str | None = None, n_ids: int, n_logprobs: int) -> None:
        self.n_ids = n_ids
        self.n_logprobs = n_logprobs
        super().__init__(message, field=field, value=n_logprobs)


class RoutedExpertsError(ResponseError):
    """The routed experts payload is inconsistent: shape, dtype, start or base64 length."""


class PartialCompletionError(ResponseError):
    """Dynamo's ``nvext.engine_data`` disagrees with ``usage`` (or the chat echo): it describes only part of the
    completion, as after a request migrated to a second worker, and the whole answer cannot be rebuilt exactly.

    ``usage`` holds the frontend's counts, ``engine_data_ids`` the number of ``engine_data.completion_token_ids``
    and ``echo_ids`` the number of chat-echo entries (``None`` when absent).
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        usage: dict[str, int | None],
        engine_data_ids: int,
        echo_ids: int | None,
    ) -> None:
        self.usage = usage
        self.engine_data_ids = engine_data_ids
        self.echo_ids = echo_ids
        super().__init__(message, field=field, value=engine_data_ids)
