"""Qwen3 renderer: a native Python mirror of Qwen3's chat template with per-token attribution.

The text is built piece by piece exactly as Qwen3's Jinja template lays it out, then encoded in one
tokenizer pass over the whole string, so the ids are the ids ``apply_chat_template(..., tokenize=True)``
gives (BPE merges across piece boundaries happen exactly as they do on the template's string).
Each token is attributed to the piece holding its first character (``offsets``), which decides its
``message_indices``, ``sampled_mask`` and ``is_content``. A token whose characters straddle two pieces
(for example a ``"\\n\\n"`` made of the role line's newline and a newline the content starts with)
takes the attributes of the piece it starts in.

Attribution:

- ``message_indices``: each message's own block (role line, body, ``<|im_end|>\\n``). The tools block
  belongs to the first message when it is a system message, else ``-1``. Consecutive tool messages
  share one ``<|im_start|>user`` block: the opener goes to the first, each
  ``\\n<tool_response>\\n…\\n</tool_response>`` to its message, ``<|im_end|>\\n`` to the last.
  The generation prompt is ``-1``.
- ``sampled_mask``: assistant bodies (the ``<think>`` block, content, tool calls) and their
  ``<|im_end|>``; not the ``<|im_start|>assistant\\n`` line, nor the newline after ``<|im_end|>``.
- ``is_content``: text that came from the caller's messages (system/user/tool content); on assistant
  turns it equals ``sampled_mask``.

:class:`QwenChatRenderer` holds what every Qwen chat template of this lineage shares (the ChatML blocks, the
``<tool_response>`` grouping of tool messages, the last-query rule, the bridge's checks, the marker parser);
:class:`Qwen3Renderer` adds Qwen3's tools header, assistant layout and bridge refusals, and
:mod:`renderers.families.qwen3_5` adds Qwen3.5's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from renderers._messages import CheckedMessage
from renderers.families.pieces import Piece, PieceRenderer, cut_completion, tojson
from renderers.families.registry import (
    Family,
    check_options,
    enable_thinking_kwargs,
    reasoning_history_probe,
    tool_results_probe,
)
from renderers.parsing import MarkerParser
from renderers.types import Message, ParsedResponse, RenderedTokens, ToolSpecLike

__all__ = [
    "EMPTY_THINK",
    "FAMILY",
    "GEN_PROMPT",
    "QWEN3_SPECIAL_TOKENS",
    "Qwen3Renderer",
    "QwenChatRenderer",
    "split_inline_reasoning",
]

QWEN3_SPECIAL_TOKENS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
)

_TOOLS_HEADER = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_TOOLS_FOOTER = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": '
    "<args-json-object>}\n</tool_call><|im_end|>\n"
)
GEN_PROMPT = "<|im_start|>assistant\n"
EMPTY_THINK = "<think>\n\n</think>\n\n"


def split_inline_reasoning(content: str) -> tuple[str, str]:
    """``(reasoning, content)`` from a content holding ``…</think>``, split the way the Qwen templates do."""
    reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
    return reasoning, content.split("</think>")[-1].lstrip("\n")


class QwenChatRenderer(PieceRenderer):
    """What the Qwen3 and Qwen3.5 templates share; subclasses supply the parts where they differ.

    Hooks: ``_text`` (how the template normalises message text: as is, or trimmed), ``_header_pieces`` (system
    and tools block), ``_assistant_pieces``, ``_gen_prompt_text``, ``_last_query_index`` and ``_bridge_refused``.
    """

    family = "Qwen"
    # Whether a tool message with no message before it opens a ``<|im_start|>user`` block.
    _tool_opener_at_start = True

    def __init__(self, tokenizer: Any, *, enable_thinking: bool = True) -> None:
        super().__init__(tokenizer)
        self.enable_thinking = enable_thinking
        ids = self._token_ids(QWEN3_SPECIAL_TOKENS)
        self._ids = ids
        self.im_start_id = ids["<|im_start|>"]
        self.im_end_id = ids["<|im_end|>"]
        self.endoftext_id = ids["<|endoftext|>"]
        self._gen_prompt_ids = self._encode(self._gen_prompt_text())
        self._parser = MarkerParser(
            decode=self._decode,
            stop_ids=frozenset((self.im_end_id, self.endoftext_id)),
            think_start_id=ids["<think>"],
            think_end_id=ids["</think>"],
            tool_call_start_id=ids["<tool_call>"],
            tool_call_end_id=ids["</tool_call>"],
        )

    # ------------------------------------------------------------------ protocol

    def parse_response(
        self, token_ids: Sequence[int], *, tools: Sequence[ToolSpecLike] | None = None
    ) -> ParsedResponse:
        return self._parser.parse(token_ids)

    def get_stop_token_ids(self) -> list[int]:
        return [self.im_end_id, self.endoftext_id]

    def bridge_to_next_turn(
        self,
        previous_prompt_ids: Sequence[int],
        previous_completion_ids: Sequence[int],
        new_messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
    ) -> RenderedTokens | None:
        """Append user/system/tool follow-ups after a completion without re-tokenizing it.

        The completion is cut after its first ``<|im_end|>`` (an ``<|endoftext|>`` stop or a truncated
        completion gets ``<|im_end|>`` instead). Returns ``None`` when the result could differ from a
        full re-render: empty prompt or new messages, a prompt that does not end with this renderer's
        generation prompt, an assistant among the new messages, or a family-specific reason
        (``_bridge_refused``, documented on each renderer). New messages the template rejects raise ``ValueError``
        (``_check_new_messages``).
        """
        start = self._bridge_start(previous_prompt_ids, new_messages, gen_prompt_ids=self._gen_prompt_ids)
        if start is None:
            return None
        prompt, msgs, roles = start
        completion = cut_completion(previous_completion_ids, self.im_end_id, (self.endoftext_id,))
        if self._bridge_refused(prompt, completion, msgs):
            return None
        pieces: list[Piece] = [Piece("\n", -1)]
        pieces.extend(self._message_pieces(msgs, last_query_index=-1, continues=True))
        pieces.extend(self._gen_prompt_pieces())
        prompt += completion  # _bridge_start made the list: extended in place, not copied
        return self._bridge(prompt, pieces, roles)

    # ------------------------------------------------------------------ hooks

    def _text(self, text: str) -> str:
        """Message text as the template writes it."""
        return text

    def _gen_prompt_text(self) -> str:
        raise NotImplementedError

    def _header_pieces(self, msgs: list[CheckedMessage], tool_list: list[ToolSpecLike]) -> list[Piece]:
        raise NotImplementedError

    def _assistant_pieces(self, m: CheckedMessage, j: int, *, keep_think_ok: bool, is_last: bool) -> list[Piece]:
        raise NotImplementedError

    def _last_query_index(self, msgs: Sequence[CheckedMessage]) -> int:
        """The index of the last user query; the last message's index when there is none."""
        for i in range(len(msgs) - 1, -1, -1):
            if self._is_user_query(msgs[i]):
                return i
        return len(msgs) - 1

    def _bridge_refused(self, prompt: list[int], completion: list[int], msgs: list[CheckedMessage]) -> bool:
        raise NotImplementedError

    # ------------------------------------------------------------------ shared layout

    def _is_user_query(self, m: CheckedMessage) -> bool:
        """A user message that is not a ``<tool_response>…</tool_response>`` wrapper."""
        if m.role != "user":
            return False
        text = self._text(m.content)
        return not (text.startswith("<tool_response>") and text.endswith("</tool_response>"))

    def _gen_prompt_pieces(self) -> list[Piece]:
        return [Piece(self._gen_prompt_text(), -1)]

    def _pieces(
        self, msgs: list[CheckedMessage], tool_list: list[ToolSpecLike], add_generation_prompt: bool
    ) -> list[Piece]:
        pieces = self._header_pieces(msgs, tool_list)
        pieces.extend(self._message_pieces(msgs, last_query_index=self._last_query_index(msgs), continues=False))
        if add_generation_prompt:
            pieces.extend(self._gen_prompt_pieces())
        return pieces

    def _message_pieces(self, msgs: list[CheckedMessage], *, last_query_index: int, continues: bool) -> list[Piece]:
        """The blocks of ``msgs``; ``continues``: they follow an assistant turn (a bridge), not the header."""
        out: list[Piece] = []
        n = len(msgs)
        for i, m in enumerate(msgs):
            if m.role == "user" or (m.role == "system" and (i > 0 or continues)):
                out.append(Piece(f"<|im_start|>{m.role}\n", i, False, False))
                out.append(Piece(self._text(m.content), i, False, True))
                out.append(Piece("<|im_end|>\n", i, False, False))
            elif m.role == "assistant":
                out.extend(self._assistant_pieces(m, i, keep_think_ok=i > last_query_index, is_last=i == n - 1))
            elif m.role == "tool":
                if (i > 0 and msgs[i - 1].role != "tool") or (i == 0 and (continues or self._tool_opener_at_start)):
                    out.append(Piece("<|im_start|>user", i, False, False))
                out.append(Piece("\n<tool_response>\n", i, False, False))
                out.append(Piece(self._text(m.content), i, False, True))
                out.append(Piece("\n</tool_response>", i, False, False))
                if i == n - 1 or msgs[i + 1].role != "tool":
                    out.append(Piece("<|im_end|>\n", i, False, False))
        return out


class Qwen3Renderer(QwenChatRenderer):
    """Renders Qwen3 conversations token-exactly with its chat template, and parses completions.

    ``enable_thinking=False`` adds the empty ``<think>\\n\\n</think>\\n\\n`` block to the generation
    prompt, as the template does. Thinking retention follows the template: an assistant turn keeps its
    ``<think>`` block only after the last user query (and, unless it is the last message, only when
    its reasoning is non-empty).

    ``bridge_to_next_turn`` also returns ``None`` for a new user query when the history holds a ``</think>`` token
    (the template would then drop that earlier thinking), and for a last turn with an empty ``<think>`` block
    (kept by the template only on the final message; this includes every ``enable_thinking=False`` prompt).
    """

    family = "Qwen3"

    def _bridge_refused(self, prompt: list[int], completion: list[int], msgs: list[CheckedMessage]) -> bool:
        think_end = self._ids["</think>"]
        if any(self._is_user_query(m) for m in msgs) and (think_end in prompt or think_end in completion):
            return True
        # The template keeps an empty <think> block only on the final message.
        return self._last_turn_has_empty_think(prompt, completion)

    def _last_turn_has_empty_think(self, prompt: list[int], completion: list[int]) -> bool:
        start = len(prompt) - 1 - prompt[::-1].index(self.im_start_id) if self.im_start_id in prompt else 0
        turn = prompt[start:] + completion
        think_end = self._ids["</think>"]
        if think_end not in turn:
            return False
        end = turn.index(think_end)
        inner = turn[:end]
        think_start = self._ids["<think>"]
        if think_start in inner:
            inner = inner[len(inner) - inner[::-1].index(think_start) :]
        return self._decode(inner).strip("\n") == ""

    # ------------------------------------------------------------------ text layout

    def _gen_prompt_text(self) -> str:
        return GEN_PROMPT + ("" if self.enable_thinking else EMPTY_THINK)

    def _header_pieces(self, msgs: list[CheckedMessage], tool_list: list[ToolSpecLike]) -> list[Piece]:
        pieces: list[Piece] = []
        has_system = msgs[0].role == "system"
        if tool_list:
            owner = 0 if has_system else -1
            pieces.append(Piece("<|im_start|>system\n", owner, False, False))
            if has_system:
                pieces.append(Piece(msgs[0].content, 0, False, True))
                pieces.append(Piece("\n\n", 0, False, False))
            body = _TOOLS_HEADER + "".join("\n" + tojson(t) for t in tool_list) + _TOOLS_FOOTER
            pieces.append(Piece(body, owner, False, False))
        elif has_system:
            pieces.append(Piece("<|im_start|>system\n", 0, False, False))
            pieces.append(Piece(msgs[0].content, 0, False, True))
            pieces.append(Piece("<|im_end|>\n", 0, False, False))
        return pieces

    def _assistant_pieces(self, m: CheckedMessage, j: int, *, keep_think_ok: bool, is_last: bool) -> list[Piece]:
        content = m.content
        reasoning = ""
        if m.reasoning is not None:
            reasoning = m.reasoning
        elif "</think>" in content:
            reasoning, content = split_inline_reasoning(content)
        out: list[Piece] = [Piece(GEN_PROMPT, j)]
        if keep_think_ok and (is_last or reasoning):
            out.append(Piece("<think>\n", j, True, True))
            out.append(Piece(reasoning.strip("\n"), j, True, True))
            out.append(Piece("\n</think>\n\n", j, True, True))
            out.append(Piece(content.lstrip("\n"), j, True, True))
        else:
            out.append(Piece(content, j, True, True))
        for k, call in enumerate(m.tool_calls):
            if k > 0 or content:
                out.append(Piece("\n", j, True, True))
            args = call.arguments if isinstance(call.arguments, str) else tojson(call.arguments)
            out.append(
                Piece(
                    '<tool_call>\n{"name": "' + call.name + '", "arguments": ' + args + "}\n</tool_call>", j, True, True
                )
            )
        out.append(Piece("<|im_end|>", j, True, True))
        out.append(Piece("\n", j, False, False))
        return out


def _build(tokenizer: Any, enable_thinking: bool, options: Mapping[str, Any]) -> Qwen3Renderer:
    check_options(options, "Qwen3Renderer")
    return Qwen3Renderer(tokenizer, enable_thinking=enable_thinking)


# A Qwen3-vocabulary tokenizer whose own template disagrees on any of these (QwQ, Qwen3-2507, Qwen3.5 with its
# different ids) is not claimed.
FAMILY = Family(
    name="qwen3",
    marker_tokens=QWEN3_SPECIAL_TOKENS,
    build=_build,
    probes=(reasoning_history_probe(), tool_results_probe({"x": 1})),
    template_kwargs=enable_thinking_kwargs,
)
