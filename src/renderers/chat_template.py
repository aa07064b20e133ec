"""A renderer for any Hugging Face tokenizer with a chat template, via ``apply_chat_template``.

Ids are exactly ``apply_chat_template(messages, tools=..., tokenize=True, **chat_template_kwargs)``.
Attribution comes from incremental rendering and is conservative:

- ``message_indices``: with ``F`` the full render and ``P_i`` the render of ``messages[:i+1]``, message
  ``i`` owns the tokens between the common prefixes of ``F`` with ``P_{i-1}`` and with ``P_i``. Tokens
  after the last message (the generation prompt) are ``-1``. When a template re-renders earlier turns
  once later ones are added (for example dropping old thinking), the changed tokens go to the later
  message. A prefix the template refuses to render leaves its message without tokens of its own.
- ``sampled_mask``: only for an assistant message whose renders are prefix-consistent (``P_{i-1}`` is a
  prefix of ``G_i`` = the render of ``messages[:i]`` with a generation prompt, ``G_i`` a prefix of
  ``P_i``, and ``P_i`` a prefix of ``F``): its tokens after ``G_i`` up to and including the last
  stop token in its span (all of the rest when there is none). Everything else is ``False``.
- ``is_content`` equals ``sampled_mask``: message text is not located outside assistant bodies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from renderers._messages import check_messages
from renderers.parsing import MarkerParser
from renderers.types import Message, ParsedResponse, RenderedTokens, ToolSpecLike, tool_specs

__all__ = ["ChatTemplateRenderer"]

_EXTRA_STOPS = ("<|im_end|>", "<|endoftext|>")


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class ChatTemplateRenderer:
    """Renders with the tokenizer's own chat template; parses with a Qwen-style parser or none.

    ``parser="qwen"`` splits ``<think>`` reasoning and ``<tool_call>`` JSON blocks (markers that the
    vocabulary lacks are simply not recognised); ``parser=None`` returns the decoded text as content.
    ``chat_template_kwargs`` are passed to every ``apply_chat_template`` call (e.g. ``enable_thinking``).
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        parser: Literal["qwen"] | None = "qwen",
        chat_template_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if parser not in ("qwen", None):
            raise ValueError(f"parser: unknown parser {parser!r} (expected 'qwen' or None)")
        if not getattr(tokenizer, "chat_template", None):
            name = getattr(tokenizer, "name_or_path", "?")
            raise ValueError(f"tokenizer {name!r} has no chat template; ChatTemplateRenderer needs one")
        self.tokenizer = tokenizer
        self.parser_name = parser
        self.chat_template_kwargs: dict[str, Any] = dict(chat_template_kwargs or {})
        for reserved in ("tools", "tokenize", "add_generation_prompt", "return_dict", "conversation"):
            if reserved in self.chat_template_kwargs:
                raise ValueError(f"chat_template_kwargs: {reserved!r} is set by the renderer itself")
        stops: list[int] = []
        eos = getattr(tokenizer, "eos_token_id", None)
        if isinstance(eos, int):
            stops.append(eos)
        if parser == "qwen":
            for tok in _EXTRA_STOPS:
                tid = self._token_id(tok)
                if tid is not None and tid not in stops:
                    stops.append(tid)
        self._stop_ids = stops
        self._parser: MarkerParser | None = None
        if parser == "qwen":
            self._parser = MarkerParser(
                decode=self._decode,
                stop_ids=frozenset(stops),
                think_start_id=self._token_id("<think>"),
                think_end_id=self._token_id("</think>"),
                tool_call_start_id=self._token_id("<tool_call>"),
                tool_call_end_id=self._token_id("</tool_call>"),
            )

    @property
    def supports_tools(self) -> bool:
        """True only with a tool-call parser (``parser="qwen"`` and a vocabulary with the markers)."""
        return self._parser is not None and self._parser.tool_call_start_id is not None

    # ------------------------------------------------------------------ protocol

    def render_ids(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
        add_generation_prompt: bool = False,
    ) -> list[int]:
        check_messages(messages)
        return self._apply(messages, tools, add_generation_prompt)

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
        add_generation_prompt: bool = False,
    ) -> RenderedTokens:
        checked = check_messages(messages)
        full = self._apply(messages, tools, add_generation_prompt)
        n = len(messages)
        indices = [-1] * len(full)
        sampled = [False] * len(full)
        stop_set = set(self._stop_ids)
        prev_render: list[int] = []
        prev_end = 0
        for i in range(n):
            try:
                cur = self._apply(messages[: i + 1], tools, False)
            except Exception:  # some templates refuse partial conversations: leave this message unattributed
                continue
            end = max(prev_end, _common_prefix(cur, full))
            for pos in range(prev_end, end):
                indices[pos] = i
            if checked[i].role == "assistant" and end == len(cur):
                gen = self._try_apply(messages[:i], tools, True) if i > 0 else None
                if (
                    gen is not None
                    and gen[: len(prev_render)] == prev_render
                    and cur[: len(gen)] == gen
                    and prev_end <= len(gen) <= end
                ):
                    last = end
                    for pos in range(end - 1, len(gen) - 1, -1):
                        if full[pos] in stop_set:
                            last = pos + 1
                            break
                    for pos in range(len(gen), last):
                        sampled[pos] = True
            prev_render = cur
            prev_end = end
        if not add_generation_prompt:
            for pos in range(prev_end, len(full)):
                indices[pos] = n - 1
        return RenderedTokens(
            token_ids=full,
            message_indices=indices,
            sampled_mask=sampled,
            is_content=list(sampled),
            message_roles=[m.role for m in checked],
        )

    def parse_response(
        self, token_ids: Sequence[int], *, tools: Sequence[ToolSpecLike] | None = None
    ) -> ParsedResponse:
        if self._parser is not None:
            return self._parser.parse(token_ids)
        ids = list(token_ids)
        stop_set = set(self._stop_ids)
        for pos, tok in enumerate(ids):
            if tok in stop_set:
                ids = ids[:pos]
                break
        return ParsedResponse(content=str(self.tokenizer.decode(ids, skip_special_tokens=True)))

    def get_stop_token_ids(self) -> list[int]:
        return list(self._stop_ids)

    def bridge_to_next_turn(
        self,
        previous_prompt_ids: Sequence[int],
        previous_completion_ids: Sequence[int],
        new_messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
    ) -> RenderedTokens | None:
        """Always ``None``: a generic template gives no proof that an extension equals a re-render."""
        return None

    # ------------------------------------------------------------------ helpers

    def _token_id(self, token: str) -> int | None:
        tid = self.tokenizer.convert_tokens_to_ids(token)
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if not isinstance(tid, int) or tid < 0 or (unk is not None and tid == unk):
            return None
        return tid

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=False))

    def _try_apply(
        self, messages: Sequence[Message], tools: Sequence[ToolSpecLike] | None, gen: bool
    ) -> list[int] | None:
        try:
            return self._apply(messages, tools, gen)
        except Exception:
            return None

    def _apply(self, messages: Sequence[Message], tools: Sequence[ToolSpecLike] | None, gen: bool) -> list[int]:
        if not messages:
            return []
        tool_list = list(tools) if tools else None
        if tool_list:
            tool_specs(tool_list)  # validation: each tool needs a name
        out = self.tokenizer.apply_chat_template(
            [dict(m) for m in messages],
            tools=tool_list,
            add_generation_prompt=gen,
            tokenize=True,
            return_dict=False,
            **self.chat_template_kwargs,
        )
        return [int(t) for t in out]
