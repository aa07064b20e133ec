"""Request checks both mocks share: ``RequestError`` (a refused request), token-id range checks, the context-length
message. Each server's own rules live in its ``rules`` module."""

from __future__ import annotations

from typing import Any


class RequestError(Exception):
    """A request the server refuses; carries the status and the pieces of the error envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str | None = None,
        param: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.details = details
        """Extra envelope field some servers add (Dynamo: ``{"backend_status": 500}`` on a worker failure)."""


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def ids_in_range(values: list[Any], upper: int) -> bool:
    """True when every value is a plain int in ``[0, upper)``: checked at C speed (``map``, ``min``, ``max``).

    False means "look closer": callers then walk the list element by element to build the exact error.
    """
    if not values:
        return True
    kinds = set(map(type, values))
    return kinds == {int} and min(values) >= 0 and max(values) < upper


def context_error(prompt_len: int, max_model_len: int) -> str:
    """vLLM's input-processor message for a prompt that leaves no room for output."""
    if prompt_len > max_model_len:
        return (
            f"The decoder prompt (length {prompt_len}) is longer than the maximum model length of {max_model_len}. "
            "Make sure that `max_model_len` is no smaller than the number of text tokens."
        )
    return (
        f"The decoder prompt (length {prompt_len}) plus the number of requested output tokens (at least 1) is "
        f"longer than the maximum model length of {max_model_len}. Make sure that `max_model_len` is no smaller "
        "than the number of text tokens plus the number of requested output tokens."
    )
