"""The data types every renderer speaks: messages and tools in, token ids with attribution out,
and parsed completions back."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypedDict

__all__ = [
    "Message",
    "ParsedResponse",
    "ParsedToolCall",
    "RenderedTokens",
    "Role",
    "ToolCall",
    "ToolCallFunction",
    "ToolCallParseStatus",
    "ToolSpec",
    "ToolSpecEnvelope",
    "ToolSpecLike",
]

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]


class ToolCallFunction(TypedDict):
    """The function part of an assistant tool call. ``arguments`` may be a mapping or a JSON string."""

    name: str
    arguments: Mapping[str, Any] | str


class ToolCall(TypedDict, total=False):
    """An assistant tool call in OpenAI shape."""

    type: Literal["function"]
    id: str
    function: ToolCallFunction


class Message(TypedDict, total=False):
    """A chat message. ``role`` and (except for assistant turns with tool calls) ``content`` are required."""

    role: str
    content: str | None
    reasoning_content: str | None
    tool_calls: list[ToolCall]
    tool_call_id: str
    name: str


class ToolSpec(TypedDict, total=False):
    """A tool in the flat form ``{name, description, parameters}``."""

    name: str
    description: str
    parameters: Mapping[str, Any]


class ToolSpecEnvelope(TypedDict):
    """A tool in the OpenAI envelope ``{"type": "function", "function": {...}}``."""

    type: Literal["function"]
    function: ToolSpec


ToolSpecLike: TypeAlias = ToolSpec | ToolSpecEnvelope | Mapping[str, Any]


class ToolCallParseStatus(enum.StrEnum):
    """Outcome of parsing one tool-call attempt in a completion."""

    OK = "ok"
    INVALID_JSON = "invalid_json"
    UNCLOSED_BLOCK = "unclosed_block"
    MISSING_NAME = "missing_name"
    MALFORMED_STRUCTURE = "malformed_structure"


@dataclass(frozen=True, slots=True)
class ParsedToolCall:
    """One tool-call attempt found in a completion.

    ``raw`` is the text between the tool-call markers, ``token_span`` the half-open range of
    completion token indices the attempt covers (markers included), ``status`` says whether it parsed.
    Malformed attempts are reported with a non-OK status; they are never raised and never dropped.
    """

    raw: str
    name: str | None = None
    arguments: dict[str, Any] | str | None = None
    token_span: tuple[int, int] | None = None
    status: ToolCallParseStatus = ToolCallParseStatus.OK


@dataclass(frozen=True, slots=True)
class ParsedResponse:
    """A completion split into its parts."""

    content: str
    reasoning_content: str | None = None
    tool_calls: tuple[ParsedToolCall, ...] = ()


def _check_message_indices(indices: Sequence[int], n_msgs: int, *, offset: int = 0) -> None:
    """Raise ``ValueError`` naming the first entry outside ``[-1, n_msgs)`` (any index is allowed when ``n_msgs``
    is 0); ``offset``: the position of ``indices[0]`` in the whole list."""
    # min/max run at C speed; the position is looked up only to name a bad entry.
    if indices and (min(indices) < -1 or (n_msgs and max(indices) >= n_msgs)):
        for pos, idx in enumerate(indices, offset):
            if idx < -1 or (n_msgs and idx >= n_msgs):
                raise ValueError(f"RenderedTokens.message_indices[{pos}] = {idx} is outside [-1, {n_msgs})")


@dataclass(frozen=True, slots=True)
class RenderedTokens:
    """Token ids of a rendered conversation with per-token attribution.

    - ``message_indices[i]``: index of the caller's message token ``i`` came from, ``-1`` for
      scaffolding outside any message (for example the generation prompt).
    - ``sampled_mask[i]``: the model would emit token ``i`` (assistant bodies and their end marker).
    - ``is_content[i]``: token ``i`` comes from message text rather than template scaffolding.
    - ``message_roles``: the role of each caller message.

    All per-token lists have the same length as ``token_ids``; this is checked on construction.
    """

    token_ids: list[int]
    message_indices: list[int]
    sampled_mask: list[bool]
    is_content: list[bool]
    message_roles: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.token_ids)
        for name in ("message_indices", "sampled_mask", "is_content"):
            got = len(getattr(self, name))
            if got != n:
                raise ValueError(f"RenderedTokens.{name} has length {got}, expected {n} (len(token_ids))")
        _check_message_indices(self.message_indices, len(self.message_roles))

    @classmethod
    def _after_history(
        cls, history: list[int], ids: list[int], message_indices: list[int], is_content: list[bool], roles: list[str]
    ) -> RenderedTokens:
        """``history`` (ids outside any new message: index -1, not sampled, not content) followed by ``ids`` with
        their attribution, for a bridge to the next turn. The same instance the constructor builds from the
        concatenated lists, but only the new part is checked, so the cost follows the new tokens and not the
        history (a pass over 32k indices is a millisecond). ``history`` is taken over: it becomes ``token_ids``.
        """
        if not len(ids) == len(message_indices) == len(is_content):
            raise ValueError(
                f"RenderedTokens: {len(ids)} new ids with {len(message_indices)} message indices and "
                f"{len(is_content)} content flags"
            )
        _check_message_indices(message_indices, len(roles), offset=len(history))
        k = len(history)
        indices = [-1] * k
        indices += message_indices
        content = [False] * k
        content += is_content
        history += ids
        out = object.__new__(cls)
        for name, value in (
            ("token_ids", history),
            ("message_indices", indices),
            ("sampled_mask", [False] * len(history)),
            ("is_content", content),
            ("message_roles", roles),
        ):
            object.__setattr__(out, name, value)
        return out

    def __len__(self) -> int:
        return len(self.token_ids)

    def message_token_spans(self) -> list[tuple[int, int] | None]:
        """Half-open ``(start, end)`` of each message's tokens, or ``None`` for a message with none."""
        spans: list[tuple[int, int] | None] = [None] * len(self.message_roles)
        for pos, idx in enumerate(self.message_indices):
            if idx < 0:
                continue
            cur = spans[idx]
            spans[idx] = (pos, pos + 1) if cur is None else (cur[0], pos + 1)
        return spans


def normalize_tool_spec(tool: ToolSpecLike, index: int = 0) -> ToolSpec:
    """Return the flat ``{name, description, parameters}`` form of a tool in either accepted shape."""
    if not isinstance(tool, Mapping):
        raise ValueError(f"tools[{index}] must be a mapping, got {type(tool).__name__}")
    raw: Mapping[str, Any] = tool
    inner: Any = raw
    if raw.get("type") == "function" and isinstance(raw.get("function"), Mapping):
        inner = raw["function"]
    name = inner.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"tools[{index}].name must be a non-empty string, got {name!r}")
    return inner  # type: ignore[no-any-return]


def tool_specs(tools: Sequence[ToolSpecLike] | None) -> list[ToolSpec]:
    """Normalize a list of tools (either shape) to the flat form."""
    return [normalize_tool_spec(t, i) for i, t in enumerate(tools or ())]
