"""Input validation shared by the renderers: every problem is a ``ValueError`` naming the index and field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from renderers.types import Message

__all__ = ["KNOWN_ROLES", "CheckedMessage", "CheckedToolCall", "check_messages", "plain_json"]

KNOWN_ROLES = ("system", "user", "assistant", "tool")
# transformers aliases these onto ``reasoning_content`` (first non-None wins); we do the same.
_REASONING_KEYS = ("reasoning_content", "thinking", "reasoning")


@dataclass(frozen=True, slots=True)
class CheckedToolCall:
    name: str
    arguments: Any  # a plain dict or a str


@dataclass(frozen=True, slots=True)
class CheckedMessage:
    role: str
    content: str
    reasoning: str | None
    tool_calls: tuple[CheckedToolCall, ...]


def plain_json(value: Any) -> Any:
    """Mappings to dicts and tuples to lists, recursively, so ``json.dumps`` sees plain JSON types."""
    if isinstance(value, Mapping):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    return value


def _tool_calls(where: str, raw: Any) -> tuple[CheckedToolCall, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise ValueError(f"{where}.tool_calls: expected a list of tool calls, got {type(raw).__name__}")
    out: list[CheckedToolCall] = []
    for k, call in enumerate(raw):
        here = f"{where}.tool_calls[{k}]"
        if not isinstance(call, Mapping):
            raise ValueError(f"{here}: expected a mapping, got {type(call).__name__}")
        fn: Any = call.get("function")
        if fn:  # the Qwen template also accepts the flat {name, arguments} form
            if not isinstance(fn, Mapping):
                raise ValueError(f"{here}.function: expected a mapping, got {type(fn).__name__}")
            here = f"{here}.function"
        else:
            fn = call
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{here}.name: missing tool name (got {name!r})")
        args = fn.get("arguments")
        if isinstance(args, Mapping):
            args = plain_json(args)
        elif not isinstance(args, str):
            raise ValueError(f"{here}.arguments: expected a mapping or a JSON string, got {type(args).__name__}")
        out.append(CheckedToolCall(name=name, arguments=args))
    return tuple(out)


def check_messages(messages: Sequence[Message]) -> list[CheckedMessage]:
    """Validate ``messages`` and return them in a uniform shape.

    ``content`` must be a string for system, user and tool messages; for assistant messages it may be
    missing or ``None`` (rendered as empty, as the upstream Qwen3 template does).
    """
    given: Any = messages
    if isinstance(given, str | bytes) or not isinstance(given, Sequence):
        raise ValueError(f"messages: expected a list of messages, got {type(given).__name__}")
    if not messages:
        raise ValueError("messages: no messages provided (empty list)")
    out: list[CheckedMessage] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(msg).__name__}")
        role = msg.get("role")
        if role not in KNOWN_ROLES:
            raise ValueError(f"{where}.role: unknown role {role!r} (expected one of {', '.join(KNOWN_ROLES)})")
        content: Any = msg.get("content")
        if role == "assistant" and content is None:
            content = ""
        if not isinstance(content, str):
            raise ValueError(f"{where}.content: expected a string for a {role} message, got {type(content).__name__}")
        reasoning: Any = None
        reasoning_key = "reasoning_content"
        for key in _REASONING_KEYS:
            if msg.get(key) is not None:
                reasoning, reasoning_key = msg.get(key), key
                break
        if reasoning is not None and not isinstance(reasoning, str):
            raise ValueError(f"{where}.{reasoning_key}: expected a string, got {type(reasoning).__name__}")
        calls = _tool_calls(where, msg.get("tool_calls")) if role == "assistant" else ()
        out.append(CheckedMessage(role=str(role), content=content, reasoning=reasoning, tool_calls=calls))
    return out
