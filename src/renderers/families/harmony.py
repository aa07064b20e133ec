"""Parsing gpt-oss completions in OpenAI's harmony format: a sequence of messages, each with its own header.

A completion follows the prompt's ``<|start|>assistant``, so its first message has no ``<|start|>`` and no role;
every later one does::

    <|channel|>analysis<|message|>…<|end|>
        <|start|>assistant to=functions.f<|channel|>commentary json<|message|>{…}<|call|>
    <|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final<|message|>…<|return|>

This is not the single-marker shape :class:`~renderers.parsing.MarkerParser` reads (reasoning and tool calls are
told apart by a header's channel and recipient, not by a marker token), so the family has this parser of its own.
It works on token ids: ``<|start|>``, ``<|message|>`` and the terminators are single tokens; only headers and
bodies are decoded.

Rules:

- A header runs to ``<|message|>``; it holds the role (``assistant``; empty for the first message), the channel
  after ``<|channel|>``, a recipient ``to=…`` before or after the channel (the template writes it before, the model
  often after) and a content type (``json`` or ``<|constrain|>json``).
- A body runs to ``<|end|>``, ``<|call|>``, ``<|return|>`` or ``<|endoftext|>``. ``<|end|>`` closes one message
  and parsing goes on with the next ``<|start|>``; the other three end the completion (they are the stop ids),
  and so does anything that is not a ``<|start|>`` after ``<|end|>`` or a message from another role than the
  assistant.
- A message with a recipient is a tool call: ``to=functions.NAME`` gives ``NAME`` (other recipients, such as the
  built-in ``browser.search``, are reported whole). Its status: body cut off before a terminator, or header cut
  off before ``<|message|>`` -> ``UNCLOSED_BLOCK``; empty name -> ``MISSING_NAME``; body not JSON ->
  ``INVALID_JSON``; JSON other than an object or a string -> ``MALFORMED_STRUCTURE``; else ``OK`` (a JSON string
  body is what the template writes for string arguments, and is returned as that string).
  ``token_span`` covers the whole message, its ``<|start|>`` and terminator included.
- Messages on the ``analysis`` channel without a recipient are the reasoning (joined with ``"\\n"`` when there are
  several; ``None`` when there is none). Every other message without a recipient (``final``, a ``commentary``
  preamble, no channel) is content, joined the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from renderers.types import ParsedResponse, ParsedToolCall, ToolCallParseStatus

__all__ = ["HarmonyIds", "HarmonyMessage", "HarmonyParser"]

_CHANNEL = re.compile(r"<\|channel\|>([^\s<]*)")
_RECIPIENT = re.compile(r"(?:^|\s)to=([^\s<]*)")


@dataclass(frozen=True, slots=True)
class HarmonyIds:
    """The harmony special-token ids the parser needs."""

    start: int
    message: int
    end: int
    call: int
    return_: int
    endoftext: int


@dataclass(frozen=True, slots=True)
class HarmonyMessage:
    """One message of a completion: its header fields, body text, terminator (``None`` when cut off) and span."""

    role: str
    channel: str | None
    recipient: str | None
    content_type: str | None
    header: str
    body: str
    terminator: int | None
    span: tuple[int, int]
    complete_header: bool = True


def _header_fields(header: str) -> tuple[str, str | None, str | None, str | None]:
    role = re.match(r"[^\s<]*", header)
    role_text = role.group(0) if role else ""
    rest = header[len(role_text) :]
    channel = None
    m = _CHANNEL.search(rest)
    if m:
        channel = m.group(1)
        rest = rest[: m.start()] + " " + rest[m.end() :]
    recipient = None
    m = _RECIPIENT.search(rest)
    if m:
        recipient = m.group(1)
        rest = rest[: m.start()] + " " + rest[m.end() :]
    content_type = rest.strip() or None
    return role_text, channel, recipient, content_type


@dataclass(frozen=True, slots=True)
class HarmonyParser:
    """Token-level harmony parser (see the module docstring for the rules)."""

    decode: Callable[[list[int]], str]
    ids: HarmonyIds

    def messages(self, token_ids: Sequence[int]) -> list[HarmonyMessage]:
        """The completion's messages, up to the first stop (``<|call|>``, ``<|return|>``, ``<|endoftext|>``)."""
        ids = list(token_ids)
        t = self.ids
        terminators = (t.end, t.call, t.return_, t.endoftext)
        out: list[HarmonyMessage] = []
        pos, n = 0, len(ids)
        while pos < n:
            begin = pos
            if ids[pos] == t.start:
                pos += 1
            elif out:
                break  # text after <|end|> that opens no new message
            head = pos
            while pos < n and ids[pos] != t.message and ids[pos] not in terminators and ids[pos] != t.start:
                pos += 1
            header = self.decode(ids[head:pos])
            role, channel, recipient, ctype = _header_fields(header)
            if out and role != "assistant":
                break  # the model went on with another role's turn
            if pos >= n or ids[pos] != t.message:
                if recipient is not None:  # a tool call whose header was cut off
                    out.append(HarmonyMessage(role, channel, recipient, ctype, header, "", None, (begin, pos), False))
                break
            pos += 1
            body_start = pos
            while pos < n and ids[pos] not in terminators:
                pos += 1
            body = self.decode(ids[body_start:pos])
            term = ids[pos] if pos < n else None
            end = pos + 1 if term is not None else n
            out.append(HarmonyMessage(role, channel, recipient, ctype, header, body, term, (begin, end)))
            if term != t.end:
                break
            pos = end
        return out

    def parse(self, token_ids: Sequence[int]) -> ParsedResponse:
        reasoning: list[str] = []
        content: list[str] = []
        calls: list[ParsedToolCall] = []
        for msg in self.messages(token_ids):
            if msg.recipient is not None:
                calls.append(_tool_call(msg))
            elif msg.channel == "analysis":
                reasoning.append(msg.body)
            else:
                content.append(msg.body)
        return ParsedResponse(
            content="\n".join(content),
            reasoning_content="\n".join(reasoning) if reasoning else None,
            tool_calls=tuple(calls),
        )


def _tool_call(msg: HarmonyMessage) -> ParsedToolCall:
    recipient = msg.recipient or ""
    name = recipient.removeprefix("functions.")
    span = msg.span
    if msg.terminator is None or not msg.complete_header:
        return ParsedToolCall(
            raw=msg.body, name=name or None, token_span=span, status=ToolCallParseStatus.UNCLOSED_BLOCK
        )
    if not name:
        return ParsedToolCall(raw=msg.body, token_span=span, status=ToolCallParseStatus.MISSING_NAME)
    try:
        args: Any = json.loads(msg.body)
    except ValueError:
        return ParsedToolCall(raw=msg.body, name=name, token_span=span, status=ToolCallParseStatus.INVALID_JSON)
    if not isinstance(args, dict | str):
        return ParsedToolCall(raw=msg.body, name=name, token_span=span, status=ToolCallParseStatus.MALFORMED_STRUCTURE)
    return ParsedToolCall(raw=msg.body, name=name, arguments=args, token_span=span)
