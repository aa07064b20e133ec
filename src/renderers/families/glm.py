"""GLM renderers (GLM-4.5/4.6, GLM-4.7/5, GLM-5.1, GLM-5.2): native mirrors of Zhipu's chat templates.

Every GLM template shares one syntax: a ``[gMASK]<sop>`` prefix, role tokens ``<|system|>``, ``<|user|>``,
``<|assistant|>``, ``<|observation|>`` (no end-of-turn token: a turn ends where the next role token starts),
``<think>…</think>`` reasoning, tool calls ``<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value>…
</tool_call>`` whose values are written raw when they are strings and with ``tojson`` otherwise (so the
templates need mapping ``arguments``; a JSON-string ``arguments`` makes them fail, and the renderer raises a
``ValueError`` naming the field instead), and tool results under ``<|observation|>`` as
``<tool_response>…</tool_response>`` (consecutive tool messages share one ``<|observation|>``).

The variants differ in white space and in what history keeps:

- :class:`Glm45Renderer` (TRL ``glm4moe.jinja``; GLM-4.5 and GLM-4.6 ship it byte-identical): newlines after
  the role tokens and around every tool-call line; an assistant turn is ``\\n<think>R</think>`` (its reasoning
  is kept only after the last user message, and stripped) or ``\\n<think></think>``, then ``\\n`` + the
  stripped content; ``enable_thinking=False`` appends ``/nothink`` to every user message and
  ``\\n<think></think>`` to the generation prompt ``<|assistant|>``.
- :class:`Glm47Renderer` (GLM-4.7 and GLM-5, whose templates differ only in Jinja white-space control and
  render the same text): compact, no separators; an assistant turn is ``<think>R</think>`` (kept after the
  last user message, or everywhere with ``clear_thinking=False``) or a lone ``</think>``; the generation
  prompt is ``<|assistant|><think>`` (``<|assistant|></think>`` with ``enable_thinking=False``), so the
  model's completion starts inside the thought.
- :class:`Glm51Renderer` (GLM-5.1): as 4.7, but tools are rendered as their ``function`` object without the
  ``strict`` / ``defer_loading`` keys (``defer_loading`` tools are left out), reasoning is no longer stripped,
  and an assistant turn after the last user message always keeps a think block (``<think></think>`` when it
  has no reasoning, unless ``enable_thinking=False``); with ``clear_thinking=False`` an earlier turn without
  ``reasoning_content`` gets ``<think></think>`` when another turn of the same user query has reasoning.
- :class:`Glm52Renderer` (GLM-5.2): as 5.1 for tools, but the dropped think block is ``<think></think>``
  (never a lone ``</think>``), the prompt opens with ``<|system|>Reasoning Effort: Max`` (``High`` with
  ``reasoning_effort="high"``) when thinking is on, and ``enable_thinking=False`` ends the generation prompt
  with ``<think></think>``.

Attribution (``message_indices``, ``sampled_mask``, ``is_content``):

- ``[gMASK]<sop>``, the tools block (GLM renders it as its own ``<|system|>`` block before any system
  message), 5.2's reasoning-effort line and the generation prompt are ``-1``.
- A user or system message owns its role token, its separator and its content (``/nothink`` included); tool
  messages own their ``<tool_response>`` blocks, the first of a group also its ``<|observation|>``.
- An assistant message owns ``<|assistant|>`` and its body. Its sampled tokens are what the model emits after
  the generation prompt: for 4.5 the whole body (its empty ``\\n<think></think>`` only when thinking is on);
  for 4.7 and later the body after the ``<think>`` opener
  (which the generation prompt supplies), a lone ``</think>`` only when thinking is on, 5.2's
  ``<think></think>`` only when thinking is on. The role token that follows an assistant turn when it is
  ``<|user|>`` or ``<|observation|>`` is that turn's end-of-turn token (the model stops by sampling it): it is
  attributed to the assistant message and sampled. On assistant turns ``is_content`` equals ``sampled_mask``.

Bridge (``bridge_to_next_turn``) returns ``None`` where a full re-render would differ: empty inputs, a prompt
that does not end with this renderer's generation prompt, an assistant among the new messages, a new user
message when the history after the previous user message holds non-empty reasoning that the template would
then drop (4.5, 4.7/5 and 5.2 with ``clear_thinking`` on), a new user message for 5.1 (it rewrites the think
blocks of every earlier turn), and a 4.7/5 completion whose thought is empty (the template renders an empty
thought as a lone ``</think>``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from renderers._messages import CheckedMessage
from renderers.families.pieces import Piece, PieceRenderer, tojson
from renderers.families.registry import Family, Probe, check_options, enable_thinking_kwargs, tool_results_probe
from renderers.parsing import MarkerParser
from renderers.types import (
    Message,
    ParsedResponse,
    ParsedToolCall,
    RenderedTokens,
    ToolCallParseStatus,
    ToolSpecLike,
    normalize_tool_spec,
)

__all__ = [
    "FAMILIES",
    "GLM_SPECIAL_TOKENS",
    "Glm45Renderer",
    "Glm47Renderer",
    "Glm51Renderer",
    "Glm52Renderer",
    "GlmRenderer",
    "parse_glm_tool_call",
]

GLM_SPECIAL_TOKENS = (
    "[gMASK]",
    "<sop>",
    "<|endoftext|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<arg_key>",
    "</arg_key>",
    "<arg_value>",
    "</arg_value>",
    "<tool_response>",
    "</tool_response>",
)

_PREFIX = "[gMASK]<sop>"
_TOOLS_HEADER = (
    "<|system|>\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
_TOOLS_FOOTER_45 = (
    "</tools>\n\nFor each function call, output the function name and arguments within the following XML format:"
    "\n<tool_call>{function-name}\n<arg_key>{arg-key-1}</arg_key>\n<arg_value>{arg-value-1}</arg_value>\n"
    "<arg_key>{arg-key-2}</arg_key>\n<arg_value>{arg-value-2}</arg_value>\n...\n</tool_call>"
)
_TOOLS_FOOTER_47 = (
    "</tools>\n\nFor each function call, output the function name and arguments within the following XML format:"
    "\n<tool_call>{function-name}<arg_key>{arg-key-1}</arg_key><arg_value>{arg-value-1}</arg_value>"
    "<arg_key>{arg-key-2}</arg_key><arg_value>{arg-value-2}</arg_value>...</tool_call>"
)


# ---------------------------------------------------------------------------------------------- parsing


def _decode_value(raw: str, declared_string: bool) -> Any:
    """An ``<arg_value>``: the template writes strings raw and everything else with ``tojson``.

    So a value that reads as JSON of a non-string (number, boolean, null, array, object) is decoded, and any
    other text is the string itself. A parameter the tool schema declares ``"type": "string"`` stays raw
    (the string ``"3"`` and the number ``3`` render alike; the schema tells them apart).
    """
    if declared_string or raw != raw.strip():  # tojson never writes surrounding white space
        return raw
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        return raw
    return raw if isinstance(value, str) else value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON that tojson writes")


def parse_glm_tool_call(
    body: str, token_span: tuple[int, int], string_params: Mapping[str, frozenset[str]] | None = None
) -> ParsedToolCall:
    """Parse the text between ``<tool_call>`` and ``</tool_call>``: ``NAME`` then ``<arg_key>…</arg_key>``
    ``<arg_value>…</arg_value>`` pairs, white space allowed between the parts (GLM-4.5 writes newlines there).

    Keys are taken verbatim and values as :func:`_decode_value` says (``string_params`` maps a tool name to its
    parameters declared as strings). No name -> ``MISSING_NAME``; text outside the pairs, an unclosed pair or a
    repeated key -> ``MALFORMED_STRUCTURE``. A body never has ``INVALID_JSON``: a value that is not JSON is a
    string.
    """
    first = body.find("<arg_key>")
    name = (body if first < 0 else body[:first]).strip()
    if any(tag in name for tag in ("</arg_key>", "<arg_value>", "</arg_value>")):
        return ParsedToolCall(raw=body, token_span=token_span, status=ToolCallParseStatus.MALFORMED_STRUCTURE)
    strings = (string_params or {}).get(name, frozenset())
    args: dict[str, Any] = {}
    pos = len(body) if first < 0 else first
    malformed = False
    while pos < len(body):
        rest = body[pos:]
        if not rest.strip():
            break
        if not rest.startswith("<arg_key>"):
            malformed = True
            break
        key_end = body.find("</arg_key>", pos)
        if key_end < 0:
            malformed = True
            break
        key = body[pos + len("<arg_key>") : key_end]
        after_key = key_end + len("</arg_key>")
        value_open = body.find("<arg_value>", after_key)
        if value_open < 0 or body[after_key:value_open].strip():
            malformed = True
            break
        value_start = value_open + len("<arg_value>")
        value_end = body.find("</arg_value>", value_start)
        if value_end < 0 or key in args or "<arg_key>" in key:
            malformed = True
            break
        args[key] = _decode_value(body[value_start:value_end], key in strings)
        pos = value_end + len("</arg_value>")
        while pos < len(body) and body[pos].isspace():
            pos += 1
    if malformed:
        return ParsedToolCall(
            raw=body,
            name=name or None,
            arguments=args,
            token_span=token_span,
            status=ToolCallParseStatus.MALFORMED_STRUCTURE,
        )
    if not name:
        return ParsedToolCall(raw=body, arguments=args, token_span=token_span, status=ToolCallParseStatus.MISSING_NAME)
    return ParsedToolCall(raw=body, name=name, arguments=args, token_span=token_span)


def _string_params(tools: Sequence[ToolSpecLike] | None) -> dict[str, frozenset[str]]:
    """Tool name -> the parameters its JSON schema declares as ``"type": "string"``."""
    out: dict[str, frozenset[str]] = {}
    for t, tool in enumerate(tools or ()):
        spec = normalize_tool_spec(tool, t)
        params = spec.get("parameters")
        props = params.get("properties") if isinstance(params, Mapping) else None
        if isinstance(props, Mapping):
            strings = {k for k, v in props.items() if isinstance(v, Mapping) and v.get("type") == "string"}
            out[spec["name"]] = out.get(spec["name"], frozenset()) | strings
    return out


# ---------------------------------------------------------------------------------------------- renderers


def _split_reasoning(m: CheckedMessage, *, strip_newlines: bool) -> tuple[str | None, str]:
    """``(reasoning, content)`` as the templates read them: ``reasoning_content`` when it is a string, else
    the text before ``</think>`` in the content (4.5/4.7 trim newlines around both parts, 5.x does not)."""
    if m.reasoning is not None:
        return m.reasoning, m.content
    if "</think>" in m.content:
        head, _, _ = m.content.partition("</think>")
        tail = m.content.split("</think>")[-1]
        if strip_newlines:
            return head.rstrip("\n").split("<think>")[-1].lstrip("\n"), tail.lstrip("\n")
        return head.split("<think>")[-1], tail
    return None, m.content


class GlmRenderer(PieceRenderer):
    """The shared GLM layout; the subclasses set the variant's white space and its think-block rules."""

    family = "GLM"
    # Text between a user/system role token and the content; text around a tool result.
    role_sep: ClassVar[str] = ""
    response_open: ClassVar[str] = "<tool_response>"
    response_close: ClassVar[str] = "</tool_response>"
    # Supported chat_template_kwargs besides enable_thinking.
    options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, tokenizer: Any, *, enable_thinking: bool = True) -> None:
        super().__init__(tokenizer)
        self.enable_thinking = enable_thinking
        ids = self._token_ids(GLM_SPECIAL_TOKENS)
        self._ids = ids
        self.endoftext_id = ids["<|endoftext|>"]
        self.user_id = ids["<|user|>"]
        self.observation_id = ids["<|observation|>"]
        self._gen_prompt_ids = self._encode(self._gen_prompt_text())

    # ------------------------------------------------------------------ protocol

    def get_stop_token_ids(self) -> list[int]:
        """``<|endoftext|>`` and the role tokens that end an assistant turn (GLM's ``generation_config``)."""
        return [self.endoftext_id, self.user_id, self.observation_id]

    def parse_response(
        self, token_ids: Sequence[int], *, tools: Sequence[ToolSpecLike] | None = None
    ) -> ParsedResponse:
        """Reasoning, content and tool calls of a completion (cut at the first stop id).

        ``tools`` (optional) lets parameters declared ``"type": "string"`` stay strings when their text reads
        as JSON (``"3"``, ``"true"``); without it such a value is decoded.
        """
        strings = _string_params(tools)
        parser = MarkerParser(
            decode=self._decode,
            stop_ids=frozenset(self.get_stop_token_ids()),
            think_start_id=self._ids["<think>"],
            think_end_id=self._ids["</think>"],
            tool_call_start_id=self._ids["<tool_call>"],
            tool_call_end_id=self._ids["</tool_call>"],
            parse_call=lambda body, span: parse_glm_tool_call(body, span, strings),
        )
        if not self._prompt_opens_thought():
            return parser.parse(token_ids)
        # The generation prompt ends with <think>: the completion starts inside the thought.
        parsed = parser.parse([self._ids["<think>"], *token_ids])
        calls = tuple(_shift(c, -1) for c in parsed.tool_calls)
        return ParsedResponse(content=parsed.content, reasoning_content=parsed.reasoning_content, tool_calls=calls)

    def bridge_to_next_turn(
        self,
        previous_prompt_ids: Sequence[int],
        previous_completion_ids: Sequence[int],
        new_messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
    ) -> RenderedTokens | None:
        """Append user/system/tool follow-ups after a completion without re-tokenizing it.

        The completion is cut at its first stop id (``<|user|>``, ``<|observation|>``, ``<|endoftext|>``);
        the new messages then start with their own role token, as a full re-render would write them. See the
        module docstring for the cases that return ``None``.
        """
        start = self._bridge_start(previous_prompt_ids, new_messages, gen_prompt_ids=self._gen_prompt_ids)
        if start is None:
            return None
        prompt, msgs, roles = start
        completion = list(previous_completion_ids)
        stops = set(self.get_stop_token_ids())
        for pos, tok in enumerate(completion):
            if tok in stops:
                completion = completion[:pos]
                break
        prior = prompt  # _bridge_start made the list: extended in place, not copied
        prior += completion
        if not self._bridge_keeps_history(prior, new_user=any(m.role == "user" for m in msgs)):
            return None
        pieces = self._message_pieces(msgs, start=0, ctx=_Context.for_history(msgs), prev_role="assistant")
        pieces.append(Piece(self._gen_prompt_text(), -1))
        return self._bridge(prior, pieces, roles)

    # ------------------------------------------------------------------ variant hooks

    def _gen_prompt_text(self) -> str:
        raise NotImplementedError

    def _prompt_opens_thought(self) -> bool:
        return self._gen_prompt_text().endswith("<think>")

    def _prefix_pieces(self) -> list[Piece]:
        return [Piece(_PREFIX, -1)]

    def _tools_text(self, tools: list[ToolSpecLike]) -> str:
        raise NotImplementedError

    def _user_suffix(self, content: str) -> str:
        return ""

    def _think_pieces(self, m: CheckedMessage, i: int, ctx: _Context) -> tuple[list[Piece], str]:
        """The think block of assistant message ``i`` (caller index set later) and the content left to write."""
        raise NotImplementedError

    def _call_text(self, name: str, args: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def _content_text(self, content: str) -> str:
        return content.strip()

    def _bridge_keeps_history(self, prior: list[int], *, new_user: bool) -> bool:
        """Whether the template renders the history in ``prior`` unchanged after the new messages."""
        raise NotImplementedError

    def _holds_reasoning(self, prior: list[int], *, blank_counts: bool = False) -> bool:
        """A ``<think>…</think>`` with reasoning anywhere in ``prior`` (a new user query would drop the ones after
        the previous query; earlier ones are already empty unless a message's text spells think markers, and
        then ``None`` is merely cautious). White space alone counts only when ``blank_counts`` (templates that do
        not strip it)."""
        open_id, close_id = self._ids["<think>"], self._ids["</think>"]
        assistant_id = self._ids["<|assistant|>"]
        inside: int | None = None
        for pos, tok in enumerate(prior):
            if tok == open_id and inside is None:  # a <think> inside a thought is part of its text
                inside = pos + 1
            elif tok == close_id and inside is not None:
                if self._has_text(prior[inside:pos], blank_counts):
                    return True
                inside = None
            elif tok == close_id and (pos == 0 or prior[pos - 1] != assistant_id):
                # A </think> outside any thought that no template writes (they write one only right after
                # <|assistant|>, with thinking off): a message's text spells it, maybe reasoning "</think>".
                return True
        return inside is not None and self._has_text(prior[inside:], blank_counts)

    def _has_text(self, ids: list[int], blank_counts: bool) -> bool:
        return bool(ids) if blank_counts else bool(self._decode(ids).strip())

    def _last_thought_empty(self, prior: list[int]) -> bool:
        open_id = self._ids["<think>"]
        if open_id not in prior:
            return False
        start = len(prior) - prior[::-1].index(open_id)
        close_id = self._ids["</think>"]
        end = prior.index(close_id, start) if close_id in prior[start:] else len(prior)
        return end < len(prior) and not self._decode(prior[start:end]).strip()

    # ------------------------------------------------------------------ layout

    def _pieces(
        self, msgs: list[CheckedMessage], tool_list: list[ToolSpecLike], add_generation_prompt: bool
    ) -> list[Piece]:
        pieces = self._prefix_pieces()
        if tool_list:
            pieces.append(Piece(self._tools_text(tool_list), -1))
        pieces.extend(self._message_pieces(msgs, start=0, ctx=_Context.for_history(msgs), prev_role=None))
        if add_generation_prompt:
            pieces.append(Piece(self._gen_prompt_text(), -1))
        return pieces

    def _message_pieces(
        self, msgs: list[CheckedMessage], *, start: int, ctx: _Context, prev_role: str | None
    ) -> list[Piece]:
        out: list[Piece] = []
        for i, m in enumerate(msgs):
            j = start + i
            before = msgs[i - 1].role if i > 0 else prev_role
            # <|user|> / <|observation|> right after an assistant turn is that turn's sampled end-of-turn token
            # (only inside one render: a bridge's previous assistant is not among its messages).
            ends_turn = before == "assistant" and i > 0
            if m.role in ("user", "system"):
                token = f"<|{m.role}|>"
                if m.role == "user" and ends_turn:
                    out.append(Piece(token, j - 1, True, True))
                    out.append(Piece(self.role_sep, j))
                else:
                    out.append(Piece(token + self.role_sep, j))
                out.append(Piece(m.content, j, False, True))
                if m.role == "user":
                    out.append(Piece(self._user_suffix(m.content), j))
            elif m.role == "tool":
                if before != "tool":
                    out.append(
                        Piece("<|observation|>", j - 1, True, True) if ends_turn else Piece("<|observation|>", j)
                    )
                out.append(Piece(self.response_open, j))
                out.append(Piece(m.content, j, False, True))
                out.append(Piece(self.response_close, j))
            else:
                out.append(Piece("<|assistant|>", j))
                think, content = self._think_pieces(m, i, ctx)
                out.extend(p._replace(message=j) for p in think)
                text = self._content_text(content)
                if text:
                    out.append(Piece(text, j, True, True))
                for k, call in enumerate(m.tool_calls):
                    if not isinstance(call.arguments, Mapping):
                        raise ValueError(
                            f"messages[{j}].tool_calls[{k}].function.arguments: GLM templates need a mapping "
                            f"(they iterate its items), got a {type(call.arguments).__name__}; "
                            "pass json.loads(arguments)"
                        )
                    out.append(Piece(self._call_text(call.name, call.arguments), j, True, True))
        return out


def _value_text(v: Any) -> str:
    return v if isinstance(v, str) else tojson(v)


def _shift(call: ParsedToolCall, by: int) -> ParsedToolCall:
    if call.token_span is None:
        return call
    a, b = call.token_span
    return ParsedToolCall(
        raw=call.raw, name=call.name, arguments=call.arguments, token_span=(a + by, b + by), status=call.status
    )


class _Context:
    """What the think-block rules look up: the last user message and, per user query, whether one of its
    assistant turns has ``reasoning_content`` (GLM-5.1's ``thinking_indices``)."""

    __slots__ = ("has_thinking", "last_user", "turn_user")

    def __init__(self, last_user: int, turn_user: list[int], has_thinking: frozenset[int]) -> None:
        self.last_user = last_user
        self.turn_user = turn_user  # per message: index of the latest user message before it, -1 if none
        self.has_thinking = has_thinking  # user indices whose query has an assistant with reasoning_content

    @classmethod
    def for_history(cls, msgs: Sequence[CheckedMessage]) -> _Context:
        last = -1
        turn_user: list[int] = []
        thinking: set[int] = set()
        for i, m in enumerate(msgs):
            turn_user.append(last)
            if m.role == "user":
                last = i
            elif m.role == "assistant" and m.reasoning is not None:
                thinking.add(last)
        return cls(last, turn_user, frozenset(thinking))


class Glm45Renderer(GlmRenderer):
    """GLM-4.5 / GLM-4.6 (TRL ``glm4moe.jinja``). ``enable_thinking=False`` appends ``/nothink`` to every user
    message and ``\\n<think></think>`` to the generation prompt, as the template does."""

    family = "GLM-4.5"
    role_sep = "\n"
    response_open = "\n<tool_response>\n"
    response_close = "\n</tool_response>"

    def _gen_prompt_text(self) -> str:
        return "<|assistant|>" + ("" if self.enable_thinking else "\n<think></think>")

    def _tools_text(self, tools: list[ToolSpecLike]) -> str:
        return _TOOLS_HEADER + "".join(tojson(t) + "\n" for t in tools) + _TOOLS_FOOTER_45

    def _user_suffix(self, content: str) -> str:
        return "" if self.enable_thinking or content.endswith("/nothink") else "/nothink"

    def _think_pieces(self, m: CheckedMessage, i: int, ctx: _Context) -> tuple[list[Piece], str]:
        reasoning, content = _split_reasoning(m, strip_newlines=True)
        if i > ctx.last_user and reasoning:
            return [Piece("\n<think>" + reasoning.strip() + "</think>", -1, True, True)], content
        # An empty thought is the model's own only when thinking is on (else the generation prompt wrote it).
        return [Piece("\n<think></think>", -1, self.enable_thinking, self.enable_thinking)], content

    def _content_text(self, content: str) -> str:
        text = content.strip()
        return "\n" + text if text else ""

    def _call_text(self, name: str, args: Mapping[str, Any]) -> str:
        pairs = "".join(f"<arg_key>{k}</arg_key>\n<arg_value>{_value_text(v)}</arg_value>\n" for k, v in args.items())
        return f"\n<tool_call>{name}\n{pairs}</tool_call>"

    def _bridge_keeps_history(self, prior: list[int], *, new_user: bool) -> bool:
        return not new_user or not self._holds_reasoning(prior)


class Glm47Renderer(GlmRenderer):
    """GLM-4.7 and GLM-5 (the same text). ``clear_thinking=False`` keeps the reasoning of every assistant turn
    (the template's ``clear_thinking`` switch); by default only turns after the last user message keep it."""

    family = "GLM-4.7"
    options = frozenset({"clear_thinking"})

    def __init__(self, tokenizer: Any, *, enable_thinking: bool = True, clear_thinking: bool = True) -> None:
        self.clear_thinking = clear_thinking
        super().__init__(tokenizer, enable_thinking=enable_thinking)

    def _gen_prompt_text(self) -> str:
        return "<|assistant|>" + ("<think>" if self.enable_thinking else "</think>")

    def _tools_text(self, tools: list[ToolSpecLike]) -> str:
        return _TOOLS_HEADER + "".join(tojson(t) + "\n" for t in tools) + _TOOLS_FOOTER_47

    def _kept(self, i: int, ctx: _Context) -> bool:
        return not self.clear_thinking or i > ctx.last_user

    def _think_pieces(self, m: CheckedMessage, i: int, ctx: _Context) -> tuple[list[Piece], str]:
        reasoning, content = _split_reasoning(m, strip_newlines=True)
        if self._kept(i, ctx) and reasoning:
            return self._thought(reasoning.strip()), content
        return [Piece("</think>", -1, self.enable_thinking, self.enable_thinking)], content

    @staticmethod
    def _thought(reasoning: str) -> list[Piece]:
        # The generation prompt supplies <think>; the model samples the rest.
        return [Piece("<think>", -1), Piece(reasoning + "</think>", -1, True, True)]

    def _call_text(self, name: str, args: Mapping[str, Any]) -> str:
        pairs = "".join(f"<arg_key>{k}</arg_key><arg_value>{_value_text(v)}</arg_value>" for k, v in args.items())
        return f"<tool_call>{name}{pairs}</tool_call>"

    def _bridge_keeps_history(self, prior: list[int], *, new_user: bool) -> bool:
        if self.enable_thinking and self._last_thought_empty(prior):
            return False  # rendered back as a lone </think>
        return not new_user or not self.clear_thinking or not self._holds_reasoning(prior)


class Glm51Renderer(Glm47Renderer):
    """GLM-5.1: tools as bare ``function`` objects, unstripped reasoning, and think blocks on every turn after
    the last user message (see the module docstring)."""

    family = "GLM-5.1"

    def _tools_text(self, tools: list[ToolSpecLike]) -> str:
        lines = []
        for t, tool in enumerate(tools):
            raw: Mapping[str, Any] = tool
            fn = raw.get("function", raw)  # the template unwraps any tool that has a "function" key
            if not isinstance(fn, Mapping):
                raise ValueError(f"tools[{t}].function: expected a mapping, got {type(fn).__name__}")
            if fn.get("defer_loading"):
                continue
            fields = ", ".join(f'"{k}": {tojson(v)}' for k, v in fn.items() if k not in ("defer_loading", "strict"))
            lines.append("{" + fields + "}\n")
        return _TOOLS_HEADER + "".join(lines) + _TOOLS_FOOTER_47

    def _think_pieces(self, m: CheckedMessage, i: int, ctx: _Context) -> tuple[list[Piece], str]:
        reasoning, content = _split_reasoning(m, strip_newlines=False)
        after_query = i > ctx.last_user and self.enable_thinking
        query_has_thinking = i < ctx.last_user and ctx.turn_user[i] >= 0 and ctx.turn_user[i] in ctx.has_thinking
        if reasoning is None and (after_query or query_has_thinking):
            reasoning = ""
        if self._kept(i, ctx) and reasoning is not None:
            return self._thought(reasoning), content
        return [Piece("</think>", -1, self.enable_thinking, self.enable_thinking)], content

    def _bridge_keeps_history(self, prior: list[int], *, new_user: bool) -> bool:
        # A new user query turns every think block of the previous query into </think> (or, with
        # clear_thinking=False, into <think></think> depending on reasoning_content the ids do not show).
        return not new_user


class Glm52Renderer(Glm51Renderer):
    """GLM-5.2: ``<think></think>`` for a dropped thought, a ``Reasoning Effort`` system line when thinking is on
    (``reasoning_effort="high"`` or ``"max"``, the default), ``<think></think>`` after the generation prompt
    when thinking is off."""

    family = "GLM-5.2"
    options = frozenset({"clear_thinking", "reasoning_effort"})

    def __init__(
        self,
        tokenizer: Any,
        *,
        enable_thinking: bool = True,
        clear_thinking: bool = True,
        reasoning_effort: str = "max",
    ) -> None:
        if reasoning_effort not in ("high", "max"):
            raise ValueError(
                f"chat_template_kwargs.reasoning_effort: GLM-5.2 knows 'high' and 'max', got {reasoning_effort!r}"
            )
        self.reasoning_effort = reasoning_effort
        super().__init__(tokenizer, enable_thinking=enable_thinking, clear_thinking=clear_thinking)

    def _gen_prompt_text(self) -> str:
        return "<|assistant|>" + ("<think>" if self.enable_thinking else "<think></think>")

    def _prefix_pieces(self) -> list[Piece]:
        if not self.enable_thinking:
            return [Piece(_PREFIX, -1)]
        return [Piece(_PREFIX + "<|system|>Reasoning Effort: " + self.reasoning_effort.capitalize(), -1)]

    def _think_pieces(self, m: CheckedMessage, i: int, ctx: _Context) -> tuple[list[Piece], str]:
        reasoning, content = _split_reasoning(m, strip_newlines=False)
        if self._kept(i, ctx) and reasoning is not None:
            return self._thought(reasoning), content
        if self.enable_thinking:
            return self._thought(""), content
        return [Piece("<think></think>", -1)], content

    def _bridge_keeps_history(self, prior: list[int], *, new_user: bool) -> bool:
        return not new_user or not self.clear_thinking or not self._holds_reasoning(prior, blank_counts=True)


# ---------------------------------------------------------------------------------------------- detection


def _builder(cls: type[GlmRenderer]) -> Any:
    def build(tokenizer: Any, enable_thinking: bool, options: Mapping[str, Any]) -> GlmRenderer:
        check_options(options, cls.__name__, cls.options, bools=("clear_thinking",))
        return cls(tokenizer, enable_thinking=enable_thinking, **options)

    return build


# Histories whose assistant turns all follow the last user message, so that no probe depends on clear_thinking.
_PROBES = (
    Probe(
        [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "A1", "reasoning_content": "R1"},
            {"role": "tool", "content": "T"},
            {"role": "assistant", "content": "A2"},
        ],
        add_generation_prompt=False,
    ),
    tool_results_probe({"x": 1, "y": "s"}),
)


def _family(name: str, cls: type[GlmRenderer]) -> Family:
    return Family(
        name=name,
        marker_tokens=GLM_SPECIAL_TOKENS,
        build=_builder(cls),
        probes=_PROBES,
        template_kwargs=enable_thinking_kwargs,
    )


# Same vocabulary strings (GLM-4.5's ids are 151329+, GLM-4.7/5's 154820+); the probes tell the templates apart.
FAMILIES: tuple[Family, ...] = (
    _family("glm45", Glm45Renderer),
    _family("glm47", Glm47Renderer),
    _family("glm51", Glm51Renderer),
    _family("glm52", Glm52Renderer),
)
