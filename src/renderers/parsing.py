"""Marker-based completion parsing: ``<think>…</think>`` reasoning and ``<tool_call>…</tool_call>`` blocks.

The markers are token ids, so every family whose reasoning and tool calls sit between single-token markers
(Qwen3, Qwen3.5, GLM, MiniMax, DeepSeek V3.1, ...) uses this one parser with its own ids and its own
``parse_call`` for the text between the tool-call markers (Qwen's JSON object by default).

The parser works on token ids, not on decoded text, wherever a marker is a single token, so a marker
string that the model spelled out of ordinary sub-word tokens is never mistaken for the real thing.

Rules (shared by every family that uses it and ``ChatTemplateRenderer(parser="qwen")``):

- The completion is cut at the first stop id; everything from there on is ignored.
- Reasoning: if a ``</think>`` token is present, the text before it (with a leading ``<think>``
  removed) is the reasoning, stripped of surrounding newlines, and the content starts after it.
  If there is no ``</think>`` token but the completion starts with ``<think>`` (a truncated thought),
  everything after ``<think>`` is reasoning and the content is empty. Otherwise reasoning is ``None``.
- Tool calls are searched only after the ``</think>`` token, so drafts inside the reasoning are ignored.
  Each ``<tool_call>`` token opens one attempt, reported with a status and never raised:
  no ``</tool_call>`` before the end -> ``UNCLOSED_BLOCK`` (spans to the end, scanning stops);
  the body is read by ``parse_call``. Qwen's JSON body: not JSON -> ``INVALID_JSON``; JSON but not an
  object, or ``arguments`` neither an object nor a string -> ``MALFORMED_STRUCTURE``; no string ``name``
  -> ``MISSING_NAME``; else ``OK``.
  ``token_span`` is the half-open range of completion indices covering both markers.
- Content is the text after the reasoning and before the first ``<tool_call>``, with leading newlines
  removed (the template's separator) and, when a tool call follows, one trailing newline removed.
  Text after the first tool call is not part of the content.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from renderers.types import ParsedResponse, ParsedToolCall, ToolCallParseStatus

__all__ = ["MarkerParser", "ToolCallBodyParser", "json_call_fields", "parse_tool_call_body", "split_tool_call_blocks"]


def parse_tool_call_body(raw: str, token_span: tuple[int, int] | None) -> ParsedToolCall:
    """Parse the text between ``<tool_call>`` and ``</tool_call>`` into a :class:`ParsedToolCall`."""
    try:
        obj: Any = json.loads(raw)
    except ValueError:
        return ParsedToolCall(raw=raw, token_span=token_span, status=ToolCallParseStatus.INVALID_JSON)
    if not isinstance(obj, dict):
        return ParsedToolCall(raw=raw, token_span=token_span, status=ToolCallParseStatus.MALFORMED_STRUCTURE)
    return json_call_fields(raw, obj.get("name"), obj.get("arguments", {}), token_span)


def json_call_fields(raw: str, name: Any, arguments: Any, token_span: tuple[int, int] | None) -> ParsedToolCall:
    """The call a decoded JSON call object names: arguments neither an object nor a string ->
    ``MALFORMED_STRUCTURE``; no (or an empty, or a non-string) name -> ``MISSING_NAME``."""
    if not isinstance(arguments, dict | str):
        return ParsedToolCall(
            raw=raw,
            name=name if isinstance(name, str) else None,
            token_span=token_span,
            status=ToolCallParseStatus.MALFORMED_STRUCTURE,
        )
    if not isinstance(name, str) or not name:
        return ParsedToolCall(
            raw=raw, arguments=arguments, token_span=token_span, status=ToolCallParseStatus.MISSING_NAME
        )
    return ParsedToolCall(raw=raw, name=name, arguments=arguments, token_span=token_span)


# Parses the text between a family's tool-call markers (stripped of surrounding white space); the second
# argument is the half-open token span of the attempt, markers included.
ToolCallBodyParser = Callable[[str, tuple[int, int]], ParsedToolCall]


def _index_from(ids: list[int], target: int | None, start: int) -> int | None:
    """The first index of ``target`` in ``ids`` from ``start`` on, or ``None`` (also for a ``None`` target)."""
    if target is None:
        return None
    try:
        return ids.index(target, start)
    except ValueError:
        return None


def split_tool_call_blocks(
    ids: list[int],
    body_start: int,
    open_id: int | None,
    close_id: int | None,
    decode: Callable[[list[int]], str],
    read_block: Callable[[str, tuple[int, int]], Iterable[ParsedToolCall]],
) -> tuple[str, tuple[ParsedToolCall, ...]]:
    """The content and the tool calls of ``ids[body_start:]``, whose tool calls sit between ``open_id`` and
    ``close_id`` tokens (no tool calls when ``open_id`` is ``None``).

    Each ``open_id`` token opens one block: without a ``close_id`` after it the block is one ``UNCLOSED_BLOCK``
    attempt spanning to the end and scanning stops; else ``read_block`` reads the decoded text between the markers
    (not stripped) with the block's half-open token span, markers included, and returns its calls. The content is
    the text before the first block, leading newlines removed and, when a block follows, one trailing newline.
    """
    tool_calls: list[ParsedToolCall] = []
    first_call: int | None = None
    if open_id is not None:
        pos = body_start
        while pos < len(ids):
            if ids[pos] != open_id:
                pos += 1
                continue
            if first_call is None:
                first_call = pos
            close = _index_from(ids, close_id, pos + 1)
            if close is None:
                raw = decode(ids[pos + 1 :])
                tool_calls.append(
                    ParsedToolCall(raw=raw, token_span=(pos, len(ids)), status=ToolCallParseStatus.UNCLOSED_BLOCK)
                )
                break
            tool_calls.extend(read_block(decode(ids[pos + 1 : close]), (pos, close + 1)))
            pos = close + 1
    content = decode(ids[body_start:first_call]).lstrip("\n")
    if first_call is not None and content.endswith("\n"):
        content = content[:-1]
    return content, tuple(tool_calls)


@dataclass(frozen=True, slots=True)
class MarkerParser:
    """Token-level parser for completions with single-token markers (see the module docstring for the rules).

    ``decode`` turns ids into text without skipping special tokens. Marker ids that the vocabulary
    lacks may be ``None``; the matching feature is then off (no reasoning split / no tool calls).
    ``parse_call`` reads one tool-call body in the family's syntax and reports a status, never raising.
    """

    decode: Callable[[list[int]], str]
    stop_ids: frozenset[int]
    think_start_id: int | None
    think_end_id: int | None
    tool_call_start_id: int | None
    tool_call_end_id: int | None
    parse_call: ToolCallBodyParser = parse_tool_call_body

    def parse(self, token_ids: Sequence[int]) -> ParsedResponse:
        ids = list(token_ids)
        for pos, tok in enumerate(ids):
            if tok in self.stop_ids:
                ids = ids[:pos]
                break

        reasoning: str | None = None
        body_start = 0
        if self.think_end_id is not None and self.think_end_id in ids:
            end = ids.index(self.think_end_id)
            reasoning = self._strip_think_open(ids[:end])
            body_start = end + 1
        elif self.think_start_id is not None and self._starts_with_think(ids):
            # A thought that never closed (for example cut by max_tokens): all of it is reasoning.
            return ParsedResponse(content="", reasoning_content=self._strip_think_open(ids))

        parse_call = self.parse_call
        content, tool_calls = split_tool_call_blocks(
            ids,
            body_start,
            self.tool_call_start_id,
            self.tool_call_end_id,
            self.decode,
            lambda raw, span: (parse_call(raw.strip(), span),),
        )
        return ParsedResponse(content=content, reasoning_content=reasoning, tool_calls=tool_calls)

    def _starts_with_think(self, ids: list[int]) -> bool:
        for tok in ids:
            if tok == self.think_start_id:
                return True
            if self.decode([tok]).strip():
                return False
        return False

    def _strip_think_open(self, ids: list[int]) -> str:
        if self.think_start_id is not None and self.think_start_id in ids:
            before = ids[: ids.index(self.think_start_id)]
            if not self.decode(before).strip():
                ids = ids[ids.index(self.think_start_id) + 1 :]
        return self.decode(ids).strip("\n")
