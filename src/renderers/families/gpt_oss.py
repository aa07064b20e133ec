"""gpt-oss renderer: a native mirror of gpt-oss's chat template (harmony format) with per-token attribution.

Layout (the upstream ``chat_template.jinja``, TRL's ``gptoss.jinja``)::

    <|start|>system<|message|>{model_identity}\\nKnowledge cutoff: 2024-06\\nCurrent date: {date}\\n\\n
        Reasoning: {reasoning_effort}\\n\\n# Valid channels: analysis, commentary, final. Channel must be included for
        every message.[\\nCalls to these tools must go to the commentary channel: 'functions'.]<|end|>
    [<|start|>developer<|message|>[# Instructions\\n\\n{messages[0].content}\\n\\n][# Tools\\n\\n{namespace}]<|end|>]
    <|start|>user<|message|>{content}<|end|>
    <|start|>assistant<|channel|>final<|message|>{content}<|end|>                   (an earlier answer)
    [<|start|>assistant<|channel|>analysis<|message|>{reasoning}<|end|>]
        <|start|>assistant to=functions.{name}<|channel|>commentary json<|message|>{arguments|tojson}<|call|>
    <|start|>functions.{name} to=assistant<|channel|>commentary<|message|>{content|tojson}<|end|>
    [<|start|>assistant<|channel|>analysis<|message|>{reasoning}<|end|>]
        <|start|>assistant<|channel|>final<|message|>{content}<|return|>            (last message, no generation prompt)
    <|start|>assistant                                                              (generation prompt)

The system block is always there; a leading system message becomes the developer block's instructions, and
``tools`` its TypeScript-like namespace (:mod:`renderers.families.gpt_oss_tools`). ``date`` defaults to the local
date at render time, as the template's ``strftime_now`` does; pass one for reproducible prompts.

Reasoning retention (the template's rules): an answer's analysis is rendered only for the last message when there
is no generation prompt (then the answer ends with ``<|return|>``, else with ``<|end|>``); a tool-call turn keeps
its analysis (its ``content`` when non-empty, else its reasoning) until a later assistant message without tool
calls exists. Tool results are JSON-quoted (``content|tojson``) and named after the most recent tool call.

Where the template raises, the renderer raises a ``ValueError`` naming the field: a tool message with no earlier
tool call, content and reasoning both non-empty beside a tool call, ``<|channel|>analysis<|message|>`` or
``<|channel|>final<|message|>`` inside an assistant's content or reasoning, a tool without a string description.
Inputs the template would silently drop raise too: a system message after the first, several tool calls in one
assistant message (the template renders only the first; send one call per assistant message, as harmony does).
Left out: ``builtin_tools`` (browser/python) and a tool call's ``content_type``. Unlike the template, flat tool
specs (``{name, description, parameters}``) are accepted, and an empty ``tool_calls`` list counts as none.

Attribution:

- ``message_indices``: the system block is ``-1``; the developer block belongs to message 0 when it is a system
  message (else ``-1``); every other message owns its block(s); the generation prompt is ``-1``.
- ``sampled_mask``: an assistant message's tokens after its first ``<|start|>assistant`` (later headers,
  channels, bodies, ``<|end|>``/``<|call|>``/``<|return|>``): what the model writes after the generation prompt.
- ``is_content``: message text (user/system/tool content; the quotes ``tojson`` adds to a tool result are
  not); on assistant turns it equals ``sampled_mask``.

Bridge: only after a tool call (the completion's first stop is ``<|call|>``), with tool and user messages.
``None`` otherwise: after an answer (the template re-renders it with ``<|end|>`` in place of the sampled
``<|return|>`` and drops its analysis), after a completion that ended on ``<|endoftext|>`` or was cut off, when the
completion is not ``[analysis] + one functions.* call``, when the prompt does not end with ``<|start|>assistant``,
or when the new messages hold an assistant message (it could drop the kept analysis of the call).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

from renderers._messages import CheckedMessage
from renderers.families.gpt_oss_tools import render_tool_namespace
from renderers.families.harmony import HarmonyIds, HarmonyParser
from renderers.families.pieces import Piece, PieceRenderer, tojson
from renderers.families.registry import Family, check_options, read_only, reasoning_history_probe, tool_results_probe
from renderers.types import Message, ParsedResponse, RenderedTokens, ToolSpecLike

__all__ = ["FAMILY", "GPT_OSS_SPECIAL_TOKENS", "GptOssRenderer"]

GPT_OSS_SPECIAL_TOKENS = (
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|channel|>",
    "<|constrain|>",
    "<|return|>",
    "<|call|>",
    "<|endoftext|>",
)
DEFAULT_MODEL_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."
_GEN_PROMPT = "<|start|>assistant"
_CHANNEL_TAGS = ("<|channel|>analysis<|message|>", "<|channel|>final<|message|>")


def _date_text(date: _dt.date | str | None) -> str:
    if date is None:
        return _dt.datetime.now().strftime("%Y-%m-%d")
    if isinstance(date, _dt.date):
        return date.strftime("%Y-%m-%d")
    return date


class GptOssRenderer(PieceRenderer):
    """Renders gpt-oss conversations token-exactly with its chat template, and parses harmony completions.

    ``reasoning_effort`` and ``model_identity`` are the template's kwargs of the same names; ``date`` is the
    ``Current date`` line (a ``datetime.date`` or a ``YYYY-MM-DD`` string; default: today, read at each render).
    """

    family = "gpt-oss"

    def __init__(
        self,
        tokenizer: Any,
        *,
        reasoning_effort: str = "medium",
        model_identity: str = DEFAULT_MODEL_IDENTITY,
        date: _dt.date | str | None = None,
    ) -> None:
        super().__init__(tokenizer)
        for name, value in (("reasoning_effort", reasoning_effort), ("model_identity", model_identity)):
            if not isinstance(value, str):
                raise ValueError(f"GptOssRenderer: {name} must be a string, got {type(value).__name__} {value!r}")
        if date is not None and not isinstance(date, _dt.date | str):
            raise ValueError(f"GptOssRenderer: date must be a datetime.date or a string, got {type(date).__name__}")
        self.reasoning_effort = reasoning_effort
        self.model_identity = model_identity
        self.date = date
        ids = self._token_ids(GPT_OSS_SPECIAL_TOKENS)
        self.start_id = ids["<|start|>"]
        self.end_id = ids["<|end|>"]
        self.return_id = ids["<|return|>"]
        self.call_id = ids["<|call|>"]
        self.endoftext_id = ids["<|endoftext|>"]
        self._gen_prompt_ids = self._encode(_GEN_PROMPT)
        self._parser = HarmonyParser(
            decode=self._decode,
            ids=HarmonyIds(
                start=self.start_id,
                message=ids["<|message|>"],
                end=self.end_id,
                call=self.call_id,
                return_=self.return_id,
                endoftext=self.endoftext_id,
            ),
        )

    # ------------------------------------------------------------------ protocol

    def parse_response(
        self, token_ids: Sequence[int], *, tools: Sequence[ToolSpecLike] | None = None
    ) -> ParsedResponse:
        return self._parser.parse(token_ids)

    def get_stop_token_ids(self) -> list[int]:
        """``<|return|>`` (an answer), ``<|call|>`` (a tool call) and ``<|endoftext|>``, as vLLM stops gpt-oss."""
        return [self.return_id, self.call_id, self.endoftext_id]

    def bridge_to_next_turn(
        self,
        previous_prompt_ids: Sequence[int],
        previous_completion_ids: Sequence[int],
        new_messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
    ) -> RenderedTokens | None:
        """Append tool results (and user messages) after a tool-call completion without re-tokenizing it.

        The completion is cut after its first ``<|call|>``. ``None`` in the cases the module docstring lists.
        """
        start = self._bridge_start(previous_prompt_ids, new_messages, gen_prompt_ids=self._gen_prompt_ids)
        if start is None:
            return None
        prompt, msgs, roles = start
        stops = (self.call_id, self.return_id, self.endoftext_id)
        cut = next((k for k, tok in enumerate(previous_completion_ids) if tok in stops), None)
        if cut is None or previous_completion_ids[cut] != self.call_id:
            return None
        completion = list(previous_completion_ids[: cut + 1])
        parts = self._parser.messages(completion)
        if not parts:
            return None  # a bare <|call|>: no message to extend
        *before, call = parts
        if call.terminator != self.call_id or not (call.recipient or "").startswith("functions."):
            return None
        name = (call.recipient or "").removeprefix("functions.")
        if not name or len(before) > 1:
            return None
        if before and (before[0].channel != "analysis" or before[0].recipient is not None or not before[0].body):
            return None  # the template re-renders only one non-empty analysis message before a call
        pieces = self._message_pieces(msgs, offset=0, last_call=name, add_generation_prompt=True)
        pieces.append(Piece(_GEN_PROMPT, -1))
        prompt += completion  # _bridge_start made the list: extended in place, not copied
        return self._bridge(prompt, pieces, roles)

    # ------------------------------------------------------------------ text layout

    def _system_text(self, tools: list[ToolSpecLike]) -> str:
        text = (
            f"<|start|>system<|message|>{self.model_identity}\nKnowledge cutoff: 2024-06\n"
            f"Current date: {_date_text(self.date)}\n\nReasoning: {self.reasoning_effort}\n\n"
            "# Valid channels: analysis, commentary, final. Channel must be included for every message."
        )
        if tools:
            text += "\nCalls to these tools must go to the commentary channel: 'functions'."
        return text + "<|end|>"

    def _pieces(
        self, msgs: list[CheckedMessage], tool_list: list[ToolSpecLike], add_generation_prompt: bool
    ) -> list[Piece]:
        pieces = [Piece(self._system_text(tool_list), -1)]
        has_system = msgs[0].role == "system"
        instructions = msgs[0].content if has_system else ""
        if instructions or tool_list:
            owner = 0 if has_system else -1
            pieces.append(Piece("<|start|>developer<|message|>", owner))
            if instructions:
                pieces.append(Piece("# Instructions\n\n", owner))
                pieces.append(Piece(instructions, 0, False, True))
                pieces.append(Piece("\n\n", owner))
            if tool_list:
                pieces.append(Piece("# Tools\n\n" + render_tool_namespace(tool_list), owner))
            pieces.append(Piece("<|end|>", owner))
        first = 1 if has_system else 0
        pieces.extend(
            self._message_pieces(
                msgs[first:], offset=first, last_call=None, add_generation_prompt=add_generation_prompt
            )
        )
        if add_generation_prompt:
            pieces.append(Piece(_GEN_PROMPT, -1))
        return pieces

    def _message_pieces(
        self,
        msgs: Sequence[CheckedMessage],
        *,
        offset: int,
        last_call: str | None,
        add_generation_prompt: bool,
    ) -> list[Piece]:
        """Pieces of ``msgs`` (caller indices start at ``offset``); ``last_call`` names the latest tool call."""
        out: list[Piece] = []
        for k, m in enumerate(msgs):
            j = offset + k
            where = f"messages[{j}]"
            if m.role == "system":
                raise ValueError(
                    f"{where}.role: gpt-oss's chat template renders only a leading system message "
                    f"(as the developer instructions); a system message at index {j} would be dropped"
                )
            if m.role == "user":
                out += [
                    Piece("<|start|>user<|message|>", j),
                    Piece(m.content, j, False, True),
                    Piece("<|end|>", j),
                ]
            elif m.role == "tool":
                if last_call is None:
                    raise ValueError(
                        f"{where}: a tool message needs an earlier assistant message with a tool call "
                        "(gpt-oss names the result after it)"
                    )
                quoted = tojson(m.content)
                out += [
                    Piece(f'<|start|>functions.{last_call} to=assistant<|channel|>commentary<|message|>"', j),
                    Piece(quoted[1:-1], j, False, True),
                    Piece('"<|end|>', j),
                ]
            else:
                future_answer = any(later.role == "assistant" and not later.tool_calls for later in msgs[k + 1 :])
                is_last = k == len(msgs) - 1
                out += self._assistant_pieces(
                    m, j, future_answer=future_answer, final=is_last and not add_generation_prompt
                )
                last_call = m.tool_calls[0].name if m.tool_calls else None
        return out

    @staticmethod
    def _assistant_pieces(m: CheckedMessage, j: int, *, future_answer: bool, final: bool) -> list[Piece]:
        where = f"messages[{j}]"
        for field, text in (("content", m.content), ("reasoning_content", m.reasoning)):
            if text is not None and any(tag in text for tag in _CHANNEL_TAGS):
                raise ValueError(
                    f"{where}.{field}: holds harmony channel tags ({text!r}); pass the analysis text as "
                    "reasoning_content and the final text as content"
                )

        def sampled(text: str) -> Piece:
            return Piece(text, j, True, True)

        out = [Piece("<|start|>assistant", j)]

        def analysis(text: str) -> None:
            out.extend([sampled("<|channel|>analysis<|message|>"), sampled(text), sampled("<|end|><|start|>assistant")])

        if m.tool_calls:
            if len(m.tool_calls) > 1:
                raise ValueError(
                    f"{where}.tool_calls: gpt-oss's chat template renders only the first of "
                    f"{len(m.tool_calls)} tool calls; send one call per assistant message"
                )
            if m.content and m.reasoning:
                raise ValueError(
                    f"{where}: content and reasoning_content are both set beside a tool call; gpt-oss renders one "
                    "analysis message there, so put it in one or the other"
                )
            if not future_answer and (m.content or m.reasoning):
                analysis(m.content or m.reasoning or "")
            call = m.tool_calls[0]
            out += [
                sampled(f" to=functions.{call.name}<|channel|>commentary json<|message|>"),
                sampled(tojson(call.arguments)),
                sampled("<|call|>"),
            ]
        elif final:
            if m.reasoning is not None:
                analysis(m.reasoning)
            out += [sampled("<|channel|>final<|message|>"), sampled(m.content), sampled("<|return|>")]
        else:
            out += [sampled("<|channel|>final<|message|>"), sampled(m.content), sampled("<|end|>")]
        return out


_OPTIONS = ("reasoning_effort", "model_identity")


def _build(tokenizer: Any, enable_thinking: bool, options: Mapping[str, Any]) -> GptOssRenderer:
    check_options(options, "GptOssRenderer", _OPTIONS)
    return GptOssRenderer(tokenizer, **dict(options))


_PROBE_TOOLS: Final[tuple[ToolSpecLike, ...]] = read_only(
    (
        {
            "type": "function",
            "function": {
                "name": "probe",
                "description": "d",
                "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
            },
        },
    )
)

# gpt-oss always reasons: enable_thinking is not read by its template (nor by this renderer).
FAMILY = Family(
    name="gpt-oss",
    marker_tokens=GPT_OSS_SPECIAL_TOKENS,
    build=_build,
    probes=(reasoning_history_probe(), tool_results_probe({"x": 1}, results=("T1",), tools=_PROBE_TOOLS)),
)
