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
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from typing import Any

from renderers._messages import CheckedMessage, check_messages, plain_json
from renderers.parsing import QwenStyleParser
from renderers.types import Message, ParsedResponse, RenderedTokens, ToolSpecLike, normalize_tool_spec

__all__ = ["QWEN3_SPECIAL_TOKENS", "Qwen3Renderer"]

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
_GEN_PROMPT = "<|im_start|>assistant\n"
_EMPTY_THINK = "<think>\n\n</think>\n\n"

# A piece of rendered text: (text, message index, sampled, is_content).
_Piece = tuple[str, int, bool, bool]


def _tojson(value: Any) -> str:
    # transformers' ``tojson`` filter: json.dumps with ensure_ascii=False and default separators.
    return json.dumps(plain_json(value), ensure_ascii=False)


def _last_query_index(msgs: Sequence[CheckedMessage]) -> int:
    for i in range(len(msgs) - 1, -1, -1):
        m = msgs[i]
        if m.role == "user" and not (
            m.content.startswith("<tool_response>") and m.content.endswith("</tool_response>")
        ):
            return i
    return len(msgs) - 1


def _is_user_query(m: CheckedMessage) -> bool:
    return m.role == "user" and not (m.content.startswith("<tool_response>") and m.content.endswith("</tool_response>"))


class Qwen3Renderer:
    """Renders Qwen3 conversations token-exactly with its chat template, and parses completions.

    ``enable_thinking=False`` adds the empty ``<think>\\n\\n</think>\\n\\n`` block to the generation
    prompt, as the template does. Thinking retention follows the template: an assistant turn keeps its
    ``<think>`` block only after the last user query (and, unless it is the last message, only when
    its reasoning is non-empty).
    """

    def __init__(self, tokenizer: Any, *, enable_thinking: bool = True) -> None:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ValueError("Qwen3Renderer needs a fast (tokenizers-backed) tokenizer with offsets")
        self.tokenizer = tokenizer
        self.enable_thinking = enable_thinking
        self._backend = backend
        ids: dict[str, int] = {}
        for tok in QWEN3_SPECIAL_TOKENS:
            tid = backend.token_to_id(tok)
            if tid is None:
                raise ValueError(f"tokenizer lacks the Qwen3 token {tok!r}; it is not a Qwen3 tokenizer")
            ids[tok] = int(tid)
        self._ids = ids
        self.im_start_id = ids["<|im_start|>"]
        self.im_end_id = ids["<|im_end|>"]
        self.endoftext_id = ids["<|endoftext|>"]
        self._gen_prompt_ids = self._encode(self._gen_prompt_text())
        self._parser = QwenStyleParser(
            decode=self._decode,
            stop_ids=frozenset((self.im_end_id, self.endoftext_id)),
            think_start_id=ids["<think>"],
            think_end_id=ids["</think>"],
            tool_call_start_id=ids["<tool_call>"],
            tool_call_end_id=ids["</tool_call>"],
        )

    # ------------------------------------------------------------------ protocol

    @property
    def supports_tools(self) -> bool:
        return True

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
        add_generation_prompt: bool = False,
    ) -> RenderedTokens:
        msgs = check_messages(messages)
        pieces = self._pieces(msgs, tools, add_generation_prompt)
        ids, idx, sampled, content = self._encode_pieces(pieces)
        return RenderedTokens(
            token_ids=ids,
            message_indices=idx,
            sampled_mask=sampled,
            is_content=content,
            message_roles=[m.role for m in msgs],
        )

    def render_ids(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
        add_generation_prompt: bool = False,
    ) -> list[int]:
        msgs = check_messages(messages)
        return self._encode("".join(p[0] for p in self._pieces(msgs, tools, add_generation_prompt)))

    def render_text(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
        add_generation_prompt: bool = False,
    ) -> str:
        """The rendered string (what the chat template would produce)."""
        msgs = check_messages(messages)
        return "".join(p[0] for p in self._pieces(msgs, tools, add_generation_prompt))

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
        generation prompt, an assistant among the new messages, a new user query when the history
        holds a ``</think>`` token (the template would then drop that earlier thinking), or a last turn
        with an empty ``<think>`` block (kept by the template only on the final message; this includes
        every ``enable_thinking=False`` prompt).
        """
        prompt = list(previous_prompt_ids)
        if not prompt or not new_messages:
            return None
        n = len(self._gen_prompt_ids)
        if len(prompt) < n or prompt[-n:] != self._gen_prompt_ids:
            return None
        msgs = check_messages(new_messages)
        if any(m.role == "assistant" for m in msgs):
            return None
        completion = list(previous_completion_ids)
        for pos, tok in enumerate(completion):
            if tok == self.im_end_id:
                completion = completion[: pos + 1]
                break
            if tok == self.endoftext_id:
                completion = [*completion[:pos], self.im_end_id]
                break
        else:
            completion.append(self.im_end_id)
        prior = prompt + completion
        if any(_is_user_query(m) for m in msgs) and self._ids["</think>"] in prior:
            return None
        if self._last_turn_has_empty_think(prompt, completion):
            return None  # the template keeps an empty <think> block only on the final message

        pieces: list[_Piece] = [("\n", -1, False, False)]
        pieces.extend(self._message_pieces(msgs, start=0, last_query_index=-1, first_is_header=False))
        pieces.extend(self._gen_prompt_pieces())
        ids, idx, _sampled, content = self._encode_pieces(pieces)
        k = len(prior)
        return RenderedTokens(
            token_ids=prior + ids,
            message_indices=[-1] * k + idx,
            sampled_mask=[False] * (k + len(ids)),
            is_content=[False] * k + content,
            message_roles=[m.role for m in msgs],
        )

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
        return _GEN_PROMPT + ("" if self.enable_thinking else _EMPTY_THINK)

    def _gen_prompt_pieces(self) -> list[_Piece]:
        return [(self._gen_prompt_text(), -1, False, False)]

    def _pieces(
        self, msgs: list[CheckedMessage], tools: Sequence[ToolSpecLike] | None, add_generation_prompt: bool
    ) -> list[_Piece]:
        tool_list = list(tools or ())
        for t, tool in enumerate(tool_list):
            normalize_tool_spec(tool, t)  # validation only: the template renders each tool as given
        pieces: list[_Piece] = []
        has_system = msgs[0].role == "system"
        if tool_list:
            owner = 0 if has_system else -1
            pieces.append(("<|im_start|>system\n", owner, False, False))
            if has_system:
                pieces.append((msgs[0].content, 0, False, True))
                pieces.append(("\n\n", 0, False, False))
            body = _TOOLS_HEADER + "".join("\n" + _tojson(t) for t in tool_list) + _TOOLS_FOOTER
            pieces.append((body, owner, False, False))
        elif has_system:
            pieces.append(("<|im_start|>system\n", 0, False, False))
            pieces.append((msgs[0].content, 0, False, True))
            pieces.append(("<|im_end|>\n", 0, False, False))
        pieces.extend(
            self._message_pieces(msgs, start=0, last_query_index=_last_query_index(msgs), first_is_header=True)
        )
        if add_generation_prompt:
            pieces.extend(self._gen_prompt_pieces())
        return pieces

    def _message_pieces(
        self, msgs: list[CheckedMessage], *, start: int, last_query_index: int, first_is_header: bool
    ) -> list[_Piece]:
        out: list[_Piece] = []
        n = len(msgs)
        for i, m in enumerate(msgs):
            j = start + i
            if m.role == "user" or (m.role == "system" and not (i == 0 and first_is_header)):
                out.append((f"<|im_start|>{m.role}\n", j, False, False))
                out.append((m.content, j, False, True))
                out.append(("<|im_end|>\n", j, False, False))
            elif m.role == "assistant":
                out.extend(self._assistant_pieces(m, j, keep_think_ok=i > last_query_index, is_last=i == n - 1))
            elif m.role == "tool":
                if i == 0 or msgs[i - 1].role != "tool":
                    out.append(("<|im_start|>user", j, False, False))
                out.append(("\n<tool_response>\n", j, False, False))
                out.append((m.content, j, False, True))
                out.append(("\n</tool_response>", j, False, False))
                if i == n - 1 or msgs[i + 1].role != "tool":
                    out.append(("<|im_end|>\n", j, False, False))
        return out

    @staticmethod
    def _assistant_pieces(m: CheckedMessage, j: int, *, keep_think_ok: bool, is_last: bool) -> list[_Piece]:
        content = m.content
        reasoning = ""
        if m.reasoning is not None:
            reasoning = m.reasoning
        elif "</think>" in content:
            reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
            content = content.split("</think>")[-1].lstrip("\n")
        out: list[_Piece] = [("<|im_start|>assistant\n", j, False, False)]
        if keep_think_ok and (is_last or reasoning):
            out.append(("<think>\n", j, True, True))
            out.append((reasoning.strip("\n"), j, True, True))
            out.append(("\n</think>\n\n", j, True, True))
            out.append((content.lstrip("\n"), j, True, True))
        else:
            out.append((content, j, True, True))
        for k, call in enumerate(m.tool_calls):
            if k > 0 or content:
                out.append(("\n", j, True, True))
            args = call.arguments if isinstance(call.arguments, str) else _tojson(call.arguments)
            out.append(
                ('<tool_call>\n{"name": "' + call.name + '", "arguments": ' + args + "}\n</tool_call>", j, True, True)
            )
        out.append(("<|im_end|>", j, True, True))
        out.append(("\n", j, False, False))
        return out

    # ------------------------------------------------------------------ encoding

    def _encode(self, text: str) -> list[int]:
        return list(self._backend.encode(text, add_special_tokens=False).ids)

    def _decode(self, ids: list[int]) -> str:
        return str(self._backend.decode(ids, skip_special_tokens=False))

    def _encode_pieces(self, pieces: list[_Piece]) -> tuple[list[int], list[int], list[bool], list[bool]]:
        starts: list[int] = []
        pos = 0
        kept: list[_Piece] = []
        for p in pieces:
            if p[0]:
                starts.append(pos)
                kept.append(p)
                pos += len(p[0])
        enc = self._backend.encode("".join(p[0] for p in kept), add_special_tokens=False)
        ids = list(enc.ids)
        idx: list[int] = []
        sampled: list[bool] = []
        content: list[bool] = []
        for begin, _end in enc.offsets:
            p = kept[bisect.bisect_right(starts, begin) - 1]
            idx.append(p[1])
            sampled.append(p[2])
            content.append(p[3])
        return ids, idx, sampled, content
