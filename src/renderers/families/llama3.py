"""Llama 3.1 / 3.2 renderer: a native mirror of Meta's Llama 3.1 and 3.2 chat templates, with JSON and
``<|python_tag|>`` tool calls.

Verified token for token against TRL's verbatim ``llama3_1.jinja`` and ``llama3_2.jinja`` with the Llama 3
``tokenizer.json`` (``<|begin_of_text|>`` 128000, ``<|start_header_id|>`` 128006, ``<|end_header_id|>`` 128007,
``<|eom_id|>`` 128008, ``<|eot_id|>`` 128009, ``<|python_tag|>`` 128010).

Layout (``apply_chat_template`` text)::

    <|begin_of_text|><|start_header_id|>system<|end_header_id|>\\n\\n
    [Environment: ipython\\n]                        (tools given, or builtin_tools; 3.1 only for the latter)
    [Tools: brave_search, wolfram_alpha\\n\\n]        (builtin_tools without code_interpreter; 3.1 only)
    Cutting Knowledge Date: December 2023\\nToday Date: {date_string}\\n\\n
    [tool instructions + each tool as JSON (indent 4) + \\n\\n]   (tools with tools_in_user_message=False)
    {first system message, trimmed}<|eot_id|>
    [<|start_header_id|>user<|end_header_id|>\\n\\n{instructions}{tools}{first message's content, trimmed}<|eot_id|>]
    <|start_header_id|>{role}<|end_header_id|>\\n\\n{content, trimmed}<|eot_id|>
    <|start_header_id|>assistant<|end_header_id|>\\n\\n{"name": "f", "parameters": {args JSON}}<|eot_id|>
    <|start_header_id|>assistant<|end_header_id|>\\n\\n<|python_tag|>brave_search.call(query="x")<|eom_id|>
    <|start_header_id|>ipython<|end_header_id|>\\n\\n{tool content as JSON}<|eot_id|>
    <|start_header_id|>assistant<|end_header_id|>\\n\\n                    (generation prompt)

Template facts mirrored here: with ``tools`` (default ``tools_in_user_message=True``) the tool list goes into the
first message after the system message, whatever its role, rendered as a user turn; a turn with tool calls
renders only its single call (content is dropped; more than one call raises, as the template does); arguments
are written with ``tojson``, so a JSON-string argument is written as a JSON string literal; tool results
(role ``tool`` or ``ipython``) are written with ``tojson`` too, so a string result appears in quotes; with
``builtin_tools`` (3.1) every tool call ends with ``<|eom_id|>`` and a call to a built-in tool is written as
``<|python_tag|>name.call(k="v", ...)`` (string values only). ``tools=[]`` differs from ``tools=None`` as in the
template (``Environment: ipython`` and an empty tool section). The template has no reasoning; reasoning fields
are ignored as the template ignores them, and ``enable_thinking`` is accepted and ignored.

``date_string`` is the template variable of that name: Llama 3.1's template defaults to ``26 Jul 2024``, 3.2's to
today's date (``strftime_now("%d %b %Y")``); pass it for deterministic prompts. ``tools_in_user_message`` and
``builtin_tools`` are the template variables of those names; all three are also accepted through
``chat_template_kwargs``.

Attribution:

- ``message_indices``: the system block (``<|begin_of_text|>`` included) belongs to message 0 when it is a system
  message, else ``-1``; the tools-in-user block belongs to the message whose content it carries; every other
  message owns its header, body and end token; the generation prompt is ``-1``.
- ``sampled_mask``: assistant bodies after ``<|end_header_id|>\\n\\n`` and their ``<|eot_id|>``/``<|eom_id|>``.
- ``is_content``: the caller's text (system/user/tool content, assistant bodies); the tool JSON, instructions and
  header lines are not.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from renderers._messages import CheckedMessage, check_messages
from renderers.families.pieces import Piece, PieceRenderer, tojson
from renderers.families.registry import PROBE_TOOLS, Family, Probe, check_options, tool_call
from renderers.parsing import json_call_fields
from renderers.types import (
    Message,
    ParsedResponse,
    ParsedToolCall,
    RenderedTokens,
    ToolCallParseStatus,
    ToolSpecLike,
)

__all__ = ["FAMILY_3_1", "FAMILY_3_2", "LLAMA3_SPECIAL_TOKENS", "Llama3Renderer", "Variant"]

LLAMA3_SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
)

Variant = Literal["3.1", "3.2"]
LLAMA3_1_DATE = "26 Jul 2024"

_INSTRUCTIONS = (
    'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.'
    "Do not use variables.\n\n"
)
_SYSTEM_TOOLS = (
    "You have access to the following functions. To call a function, please respond with JSON for a function call."
    + _INSTRUCTIONS
)
_USER_TOOLS = (
    "Given the following functions, please respond with a JSON for a function call "
    "with its proper arguments that best answers the given prompt.\n\n" + _INSTRUCTIONS
)
_BUILTIN_CALL = re.compile(r"\s*([A-Za-z_][\w]*)\.call\((.*)\)\s*", re.DOTALL)
_BUILTIN_ARG = re.compile(r'([A-Za-z_]\w*)="(.*?)"(?:, (?=[A-Za-z_]\w*=")|$)', re.DOTALL)


def _header(role: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n"


def _prepare(messages: Sequence[Message]) -> tuple[Any, list[str]]:
    """``ipython`` messages as ``tool`` ones, and the checks that need the raw messages; also the caller's roles.

    Anything that is not a list of mappings is passed on as it is: ``check_messages`` names the problem.
    """
    given: Any = messages
    if isinstance(given, str | bytes) or not isinstance(given, Sequence):
        return given, []
    out: list[Any] = []
    roles: list[str] = []
    for i, item in enumerate(given):
        msg: Any = item
        if not isinstance(msg, Mapping):
            out.append(msg)
            continue
        roles.append(str(msg.get("role")))
        if "tool_calls" in msg:
            calls: Any = msg["tool_calls"]
            if msg.get("role") != "assistant":
                raise ValueError(f"messages[{i}].tool_calls: only assistant messages carry tool calls")
            if not isinstance(calls, list | tuple) or len(calls) != 1:
                got = len(calls) if isinstance(calls, list | tuple) else type(calls).__name__
                raise ValueError(
                    f"messages[{i}].tool_calls: the Llama 3 template supports exactly one tool call per assistant "
                    f"turn (got {got}); leave the key out for a turn without calls"
                )
            if not isinstance(calls[0], Mapping) or not isinstance(calls[0].get("function"), Mapping):
                raise ValueError(
                    f"messages[{i}].tool_calls[0].function: the Llama 3 template reads tool_call.function "
                    "(OpenAI shape {'function': {'name', 'arguments'}})"
                )
        out.append({**msg, "role": "tool"} if msg.get("role") == "ipython" else msg)
    return out, roles


def _tool_result(content: str) -> str:
    # The template writes ``message.content | tojson`` for anything iterable, strings included.
    return tojson(content)


class Llama3Renderer(PieceRenderer):
    """Renders Llama 3.1 (``variant="3.1"``) or 3.2 conversations token-exactly, and parses completions."""

    family = "Llama 3"

    def __init__(
        self,
        tokenizer: Any,
        *,
        variant: Variant = "3.1",
        enable_thinking: bool = True,
        date_string: str | None = None,
        tools_in_user_message: bool = True,
        builtin_tools: Sequence[str] | None = None,
    ) -> None:
        super().__init__(tokenizer)
        if variant not in ("3.1", "3.2"):
            raise ValueError(f"variant: expected '3.1' or '3.2', got {variant!r}")
        if date_string is not None and not isinstance(date_string, str):
            raise ValueError(f"date_string: expected a string such as '26 Jul 2024', got {type(date_string).__name__}")
        if builtin_tools is not None:
            if variant != "3.1":
                raise ValueError("builtin_tools: only the Llama 3.1 template has built-in tools")
            if isinstance(builtin_tools, str) or not all(isinstance(t, str) for t in builtin_tools):
                raise ValueError(f"builtin_tools: expected a list of tool names, got {builtin_tools!r}")
        self.variant = variant
        self.enable_thinking = enable_thinking  # accepted for the protocol; the template has no reasoning
        self.date_string = date_string
        self.tools_in_user_message = bool(tools_in_user_message)
        self.builtin_tools = tuple(builtin_tools) if builtin_tools is not None else None
        ids = self._token_ids(LLAMA3_SPECIAL_TOKENS)
        self.bos_id = ids["<|begin_of_text|>"]
        self.end_of_text_id = ids["<|end_of_text|>"]
        self.eot_id = ids["<|eot_id|>"]
        self.eom_id = ids["<|eom_id|>"]
        self.python_tag_id = ids["<|python_tag|>"]
        self._gen_prompt_ids = self._encode(_header("assistant"))

    # ------------------------------------------------------------------ protocol

    def get_stop_token_ids(self) -> list[int]:
        return [self.eot_id, self.eom_id, self.end_of_text_id]

    def parse_response(
        self, token_ids: Sequence[int], *, tools: Sequence[ToolSpecLike] | None = None
    ) -> ParsedResponse:
        """Parse a completion sampled after ``<|start_header_id|>assistant<|end_header_id|>\\n\\n``.

        The completion is cut at its first stop id (``<|eot_id|>``, ``<|eom_id|>``, ``<|end_of_text|>``).

        - ``<|python_tag|>`` opens a call: the text before it is the content; after it, ``name.call(k="v", ...)``
          is a built-in call with string arguments, a JSON object is a JSON call (as below), anything else is
          code for ``code_interpreter`` (``{"code": text}``). Without a stop id the call was cut short:
          ``UNCLOSED_BLOCK``.
        - Text that starts (after white space) with ``{`` and is a JSON object with a ``name`` and
          ``parameters`` (or ``arguments``) is a JSON call with empty content: no string ``name`` ->
          ``MISSING_NAME``, ``parameters`` neither an object nor a string -> ``MALFORMED_STRUCTURE``. Text that
          starts with ``{"name"`` but is not JSON is a failed call: ``INVALID_JSON``, or ``UNCLOSED_BLOCK``
          without a stop id. Any other text is content (it is returned as sampled; the template trims it when
          it renders the turn again).

        The Llama 3 templates render one call per turn, so at most one call is reported.
        """
        ids = list(token_ids)
        ended = False
        for pos, tok in enumerate(ids):
            if tok in (self.eot_id, self.eom_id, self.end_of_text_id):
                ids, ended = ids[:pos], True
                break
        if self.python_tag_id in ids:
            tag = ids.index(self.python_tag_id)
            body = self._decode(ids[tag + 1 :])
            span = (tag, len(ids) + (1 if ended else 0))
            return ParsedResponse(content=self._decode(ids[:tag]), tool_calls=(_python_tag_call(body, span, ended),))
        text = self._decode(ids)
        stripped = text.lstrip()
        if stripped.startswith("{"):
            call = _json_call(text, (0, len(ids) + (1 if ended else 0)), ended)
            if call is not None:
                return ParsedResponse(content="", tool_calls=(call,))
        return ParsedResponse(content=text)

    def bridge_to_next_turn(
        self,
        previous_prompt_ids: Sequence[int],
        previous_completion_ids: Sequence[int],
        new_messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
    ) -> RenderedTokens | None:
        """Append user/system/tool follow-ups after a completion without re-tokenizing it.

        The completion is cut after its first ``<|eot_id|>`` or ``<|eom_id|>``; one cut short (or ended by
        ``<|end_of_text|>``) gets the end token the template would write. The template never rewrites earlier
        turns, so the bridge equals a full re-render whenever the completion's own turn re-renders to the same
        tokens. Returns ``None`` otherwise: empty prompt or new messages, a prompt that does not end with the
        generation prompt, an assistant among the new messages, or a completion whose re-rendered turn differs
        from its tokens (content with surrounding white space, which the template trims; a call the template
        would write differently, e.g. other JSON spacing or an ``<|eom_id|>``/``<|eot_id|>`` other than the one
        it writes; a malformed call; text before ``<|python_tag|>``).
        """
        start = self._bridge_start(previous_prompt_ids, new_messages, gen_prompt_ids=self._gen_prompt_ids)
        if start is None:
            return None
        prompt, msgs, roles = start
        completion = self._cut(previous_completion_ids)
        expected = self._completion_turn(self.parse_response(completion))
        if expected is None or self._encode(expected) != completion:
            return None
        pieces = self._message_pieces(msgs, offset=0)
        pieces.append(Piece(_header("assistant"), -1))
        prompt += completion  # _bridge_start made the list: extended in place, not copied
        return self._bridge(prompt, pieces, roles)

    # ------------------------------------------------------------------ text layout

    def _checked(self, messages: Sequence[Message]) -> tuple[list[CheckedMessage], list[str]]:
        """``ipython`` messages read as ``tool`` ones (:func:`_prepare`); the roles are the caller's."""
        prepared, roles = _prepare(messages)
        return check_messages(prepared), roles

    def _cut(self, completion: Sequence[int]) -> list[int]:
        out: list[int] = []
        for tok in completion:
            if tok in (self.eot_id, self.eom_id):
                return [*out, tok]
            if tok == self.end_of_text_id:
                break
            out.append(tok)
        return [*out, self.eot_id]

    def _completion_turn(self, parsed: ParsedResponse) -> str | None:
        """The sampled text of the assistant turn a full re-render writes for ``parsed`` (``None``: not renderable)."""
        if not parsed.tool_calls:
            return parsed.content.strip() + "<|eot_id|>"
        call = parsed.tool_calls[0]
        if call.status is not ToolCallParseStatus.OK or call.name is None or parsed.content:
            return None
        return self._call_text(call.name, call.arguments, where="completion")

    def _date(self) -> str:
        if self.date_string is not None:
            return self.date_string
        return LLAMA3_1_DATE if self.variant == "3.1" else time.strftime("%d %b %Y")

    def _render_pieces(
        self, msgs: list[CheckedMessage], tools: Sequence[ToolSpecLike] | None, add_generation_prompt: bool
    ) -> list[Piece]:
        tool_list = None if tools is None else self._tools(tools)
        has_system = msgs[0].role == "system"
        owner = 0 if has_system else -1
        head = "<|begin_of_text|>" + _header("system")
        if self.builtin_tools is not None or tool_list is not None:
            head += "Environment: ipython\n"
        if self.builtin_tools is not None:
            head += "Tools: " + ", ".join(t for t in self.builtin_tools if t != "code_interpreter") + "\n\n"
        head += "Cutting Knowledge Date: December 2023\nToday Date: " + self._date() + "\n\n"
        tools_text = "".join(tojson(t, indent=4) + "\n\n" for t in tool_list or ())
        if tool_list is not None and not self.tools_in_user_message:
            head += _SYSTEM_TOOLS + tools_text
        pieces = [Piece(head, owner)]
        if has_system:
            pieces.append(Piece(msgs[0].content.strip(), 0, False, True))
        pieces.append(Piece("<|eot_id|>", owner))
        start = 1 if has_system else 0
        if tool_list is not None and self.tools_in_user_message:
            if start >= len(msgs):
                raise ValueError(
                    "messages: with tools (tools_in_user_message=True) the Llama 3 template puts them in the first "
                    "message after the system message, and there is none"
                )
            pieces.append(Piece(_header("user") + _USER_TOOLS + tools_text, start))
            pieces.append(Piece(msgs[start].content.strip(), start, False, True))
            pieces.append(Piece("<|eot_id|>", start))
            start += 1
        pieces.extend(self._message_pieces(msgs[start:], offset=start))
        if add_generation_prompt:
            pieces.append(Piece(_header("assistant"), -1))
        return pieces

    def _message_pieces(self, msgs: list[CheckedMessage], *, offset: int) -> list[Piece]:
        out: list[Piece] = []
        for i, m in enumerate(msgs):
            j = i + offset
            if m.role == "tool":
                out += [Piece(_header("ipython"), j), Piece(_tool_result(m.content), j, False, True)]
                out.append(Piece("<|eot_id|>", j))
            elif m.role == "assistant":
                out.append(Piece(_header("assistant"), j))
                if m.tool_calls:
                    call = m.tool_calls[0]
                    out.append(Piece(self._call_text(call.name, call.arguments, where=f"messages[{j}]"), j, True, True))
                else:
                    out.append(Piece(m.content.strip() + "<|eot_id|>", j, True, True))
            else:
                out += [Piece(_header(m.role), j), Piece(m.content.strip(), j, False, True), Piece("<|eot_id|>", j)]
        return out

    def _call_text(self, name: str, arguments: Any, *, where: str) -> str:
        """The sampled text of a tool-call turn, end token included."""
        end = "<|eot_id|>" if self.builtin_tools is None else "<|eom_id|>"
        if self.builtin_tools is not None and name in self.builtin_tools:
            if not isinstance(arguments, Mapping) or not all(isinstance(v, str) for v in arguments.values()):
                raise ValueError(
                    f"{where}.tool_calls[0].function.arguments: a call to the built-in tool {name!r} is written as "
                    f'{name}.call(k="v"), which needs a mapping of strings (got {arguments!r})'
                )
            args = ", ".join(f'{k}="{v}"' for k, v in arguments.items())
            return f"<|python_tag|>{name}.call({args}){end}"
        return '{"name": "' + name + '", "parameters": ' + tojson(arguments) + "}" + end


def _python_tag_call(body: str, span: tuple[int, int], ended: bool) -> ParsedToolCall:
    if not ended:
        return ParsedToolCall(raw=body, token_span=span, status=ToolCallParseStatus.UNCLOSED_BLOCK)
    match = _BUILTIN_CALL.fullmatch(body)
    if match is not None:
        name, args_text = match.group(1), match.group(2)
        args: dict[str, Any] = {}
        pos = 0
        for am in _BUILTIN_ARG.finditer(args_text):
            if am.start() != pos:
                break
            args[am.group(1)] = am.group(2)
            pos = am.end()
        if pos != len(args_text):
            return ParsedToolCall(raw=body, name=name, token_span=span, status=ToolCallParseStatus.MALFORMED_STRUCTURE)
        return ParsedToolCall(raw=body, name=name, arguments=args, token_span=span)
    if body.lstrip().startswith("{"):
        call = _json_call(body, span, ended)
        if call is not None:
            return call
        return ParsedToolCall(raw=body, token_span=span, status=ToolCallParseStatus.MALFORMED_STRUCTURE)
    return ParsedToolCall(raw=body, name="code_interpreter", arguments={"code": body}, token_span=span)


def _json_call(text: str, span: tuple[int, int], ended: bool) -> ParsedToolCall | None:
    """A JSON tool call, a failed one, or ``None`` when the text is ordinary content that happens to be JSON."""
    try:
        obj: Any = json.loads(text)
    except ValueError:
        if not re.match(r'\s*\{\s*"name"', text):
            return None
        status = ToolCallParseStatus.INVALID_JSON if ended else ToolCallParseStatus.UNCLOSED_BLOCK
        return ParsedToolCall(raw=text, token_span=span, status=status)
    if not isinstance(obj, dict) or "name" not in obj or not ("parameters" in obj or "arguments" in obj):
        return None
    return json_call_fields(text, obj["name"], obj["parameters"] if "parameters" in obj else obj["arguments"], span)


_OPTIONS = ("date_string", "tools_in_user_message", "builtin_tools")


def _builder(variant: Variant) -> Any:
    def build(tokenizer: Any, enable_thinking: bool, options: Mapping[str, Any]) -> Llama3Renderer:
        check_options(options, "Llama3Renderer", _OPTIONS)
        return Llama3Renderer(tokenizer, variant=variant, enable_thinking=enable_thinking, **dict(options))

    return build


_PROBES = (
    Probe(
        [
            {"role": "system", "content": " S "},
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
        ]
    ),
    Probe(
        [
            {"role": "user", "content": "Q"},
            {
                "role": "assistant",
                "tool_calls": [tool_call("probe", {"x": 1})],
            },
            {"role": "tool", "content": "T"},
        ],
        tools=PROBE_TOOLS,
    ),
)

# Both share the Llama 3 vocabulary; the first probe's date line tells them apart (3.1 writes 26 Jul 2024, 3.2
# today's date). Templates of other Llama-vocabulary models (Llama 3.0, R1 distills) render the probes otherwise.
FAMILY_3_1 = Family(name="llama3_1", marker_tokens=LLAMA3_SPECIAL_TOKENS, build=_builder("3.1"), probes=_PROBES)
FAMILY_3_2 = Family(name="llama3_2", marker_tokens=LLAMA3_SPECIAL_TOKENS, build=_builder("3.2"), probes=_PROBES)
