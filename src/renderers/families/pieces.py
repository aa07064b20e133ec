"""The machinery every native renderer shares: lay the chat template's text out as attributed pieces,
encode it in one tokenizer pass, and give each token the attributes of the piece its first character is in.

A family renderer subclasses :class:`PieceRenderer` and writes ``_pieces()``: the exact text its chat
template produces, cut into :class:`Piece` s that say which message each stretch of text belongs to, whether the
model samples it, and whether it is message text rather than template scaffolding. Encoding the joined text in
one pass (instead of piece by piece) gives the ids ``apply_chat_template(..., tokenize=True)`` gives: BPE merges
across piece boundaries happen exactly as they do on the template's string. A token whose characters straddle
two pieces takes the attributes of the piece it starts in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from renderers._messages import CheckedMessage, check_messages, plain_json
from renderers.families.segments import SegmentEncoder
from renderers.types import Message, ParsedResponse, RenderedTokens, ToolSpecLike, normalize_tool_spec

__all__ = ["BridgeStart", "Piece", "PieceRenderer", "cut_completion", "ends_with", "tojson"]


class Piece(NamedTuple):
    """A stretch of rendered text and its attribution (see :class:`~renderers.types.RenderedTokens`)."""

    text: str
    message: int  # index of the caller's message, -1 for scaffolding outside any message
    sampled: bool = False
    content: bool = False


def tojson(value: Any, **kwargs: Any) -> str:
    """transformers' ``tojson`` filter: ``json.dumps`` with ``ensure_ascii=False`` (other options as given)."""
    return json.dumps(plain_json(value), ensure_ascii=False, **kwargs)


def ends_with(ids: Sequence[int], tail: Sequence[int]) -> bool:
    """Whether ``ids`` ends with ``tail`` (an empty ``tail`` always matches)."""
    return len(ids) >= len(tail) and list(ids[len(ids) - len(tail) :]) == list(tail)


class BridgeStart(NamedTuple):
    """What :meth:`PieceRenderer._bridge_start` hands a bridge: the prompt ids and the checked new messages."""

    prompt: list[int]  # a copy of the caller's ids, the bridge's to extend
    msgs: list[CheckedMessage]
    roles: list[str]  # the caller's roles, for ``RenderedTokens.message_roles``


def cut_completion(completion: Sequence[int], end_of_turn: int, other_stops: Iterable[int] = ()) -> list[int]:
    """The completion up to and including its first ``end_of_turn`` token, as the template would close it.

    A completion that stopped on one of ``other_stops`` (for example end-of-text), or that was truncated, gets
    ``end_of_turn`` in place of the rest: that is the turn a full re-render of the parsed message would close.
    """
    stops = frozenset(other_stops)
    out: list[int] = []
    for tok in completion:
        if tok == end_of_turn:
            out.append(tok)
            return out
        if tok in stops:
            break
        out.append(tok)
    out.append(end_of_turn)
    return out


class PieceRenderer:
    """Base of the native renderers: ``render``/``render_ids``/``render_text`` from ``_pieces()``.

    Subclasses set ``family`` (a display name for errors), call ``super().__init__(tokenizer)``, look their
    special tokens up with :meth:`_token_ids`, and implement ``_pieces``, ``parse_response``,
    ``get_stop_token_ids`` and ``bridge_to_next_turn`` (which usually opens with :meth:`_bridge_start` and ends
    with :meth:`_bridge`). Hooks: ``_check_raw`` (checks on the caller's messages before a render),
    ``_checked`` (how messages become :class:`CheckedMessage` s) and ``_check_new_messages`` (a bridge's).
    """

    family = "native"

    def __init__(self, tokenizer: Any) -> None:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ValueError(f"{type(self).__name__} needs a fast (tokenizers-backed) tokenizer with offsets")
        self.tokenizer = tokenizer
        self._backend = backend
        self._segments = SegmentEncoder(backend)

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
        self._check_raw(messages)
        msgs, roles = self._checked(messages)
        ids, idx, sampled, content = self._encode_pieces(self._render_pieces(msgs, tools, add_generation_prompt))
        return RenderedTokens(
            token_ids=ids,
            message_indices=idx,
            sampled_mask=sampled,
            is_content=content,
            message_roles=roles,
        )

    def render_ids(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
        add_generation_prompt: bool = False,
    ) -> list[int]:
        return self._encode(self.render_text(messages, tools=tools, add_generation_prompt=add_generation_prompt))

    def render_text(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
        add_generation_prompt: bool = False,
    ) -> str:
        """The rendered string (what the chat template would produce)."""
        self._check_raw(messages)
        msgs, _roles = self._checked(messages)
        return "".join(p.text for p in self._render_pieces(msgs, tools, add_generation_prompt))

    def parse_response(
        self, token_ids: Sequence[int], *, tools: Sequence[ToolSpecLike] | None = None
    ) -> ParsedResponse:
        raise NotImplementedError

    def get_stop_token_ids(self) -> list[int]:
        raise NotImplementedError

    # ------------------------------------------------------------------ for subclasses

    def _pieces(
        self, msgs: list[CheckedMessage], tools: list[ToolSpecLike], add_generation_prompt: bool
    ) -> list[Piece]:
        raise NotImplementedError

    def _render_pieces(
        self, msgs: list[CheckedMessage], tools: Sequence[ToolSpecLike] | None, add_generation_prompt: bool
    ) -> list[Piece]:
        """The pieces of a full render: ``_pieces`` with the tools checked (a family that tells ``tools=None``
        from no tools overrides this)."""
        return self._pieces(msgs, self._tools(tools), add_generation_prompt)

    def _check_raw(self, messages: Sequence[Message]) -> None:
        """Raise ``ValueError`` for what the template rejects in the caller's messages before a render (default:
        nothing beyond :func:`check_messages`). Not run by bridges, which return ``None`` on the cases it covers."""

    def _checked(self, messages: Sequence[Message]) -> tuple[list[CheckedMessage], list[str]]:
        """The messages checked (:func:`check_messages`), and the caller's roles for ``message_roles``."""
        msgs = check_messages(messages)
        return msgs, [m.role for m in msgs]

    def _check_new_messages(self, msgs: list[CheckedMessage]) -> None:
        """Raise ``ValueError`` for a bridge's new messages the template rejects (default: none)."""

    @staticmethod
    def _tools(tools: Sequence[ToolSpecLike] | None) -> list[ToolSpecLike]:
        """The tools as given (templates render each tool as it is), each checked to be a named tool."""
        tool_list = list(tools or ())
        for t, tool in enumerate(tool_list):
            normalize_tool_spec(tool, t)
        return tool_list

    def _token_id(self, token: str) -> int:
        """The id of a special token this family needs; a clear error when the vocabulary lacks it."""
        tid = self._backend.token_to_id(token)
        if tid is None:
            raise ValueError(f"tokenizer lacks the {self.family} token {token!r}; it is not a {self.family} tokenizer")
        return int(tid)

    def _token_ids(self, tokens: Iterable[str]) -> dict[str, int]:
        """:meth:`_token_id` of each token."""
        return {tok: self._token_id(tok) for tok in tokens}

    def clear_cache(self) -> None:
        """Forget the cached encodings of text stretches (see :mod:`renderers.families.segments`)."""
        self._segments.clear()

    def _encode(self, text: str) -> list[int]:
        return self._segments.encode_ids(text)

    def _decode(self, ids: Sequence[int]) -> str:
        return str(self._backend.decode(list(ids), skip_special_tokens=False))

    def _encode_pieces(self, pieces: Iterable[Piece]) -> tuple[list[int], list[int], list[bool], list[bool]]:
        """Encode the joined text once; attribute each token to the piece holding its first character."""
        kept = [p for p in pieces if p.text]
        if not kept:
            return [], [], [], []
        lengths = np.fromiter((len(p.text) for p in kept), dtype=np.int64, count=len(kept))
        starts = np.cumsum(lengths) - lengths
        ids, begins = self._segments.encode("".join(p.text for p in kept))
        which = np.searchsorted(starts, begins, side="right") - 1
        message = np.fromiter((p.message for p in kept), dtype=np.int64, count=len(kept))
        sampled = np.fromiter((p.sampled for p in kept), dtype=bool, count=len(kept))
        content = np.fromiter((p.content for p in kept), dtype=bool, count=len(kept))
        return ids, message[which].tolist(), sampled[which].tolist(), content[which].tolist()

    def _bridge_start(
        self,
        previous_prompt_ids: Sequence[int],
        new_messages: Sequence[Message],
        *,
        gen_prompt_ids: Sequence[int] | None = None,
        refused_roles: tuple[str, ...] = ("assistant",),
    ) -> BridgeStart | None:
        """The checks every bridge opens with; ``None`` where it must decline.

        Declines an empty prompt or empty new messages, a prompt that does not end with ``gen_prompt_ids`` (when
        given), and new messages holding one of ``refused_roles`` (a re-render could rewrite earlier turns
        around them). The new messages go through ``_checked`` and ``_check_new_messages`` (which raise for bad
        input) before the role check.
        """
        prompt = list(previous_prompt_ids)  # this call's own copy: the bridge extends it in place
        if not prompt or not new_messages:
            return None
        if gen_prompt_ids is not None and not ends_with(prompt, gen_prompt_ids):
            return None
        msgs, roles = self._checked(new_messages)
        self._check_new_messages(msgs)
        if any(m.role in refused_roles for m in msgs):
            return None
        return BridgeStart(prompt, msgs, roles)

    def _bridge(self, prior: list[int], pieces: Iterable[Piece], roles: list[str]) -> RenderedTokens:
        """``prior`` ids kept as they are (the list is taken over), followed by ``pieces`` encoded with their
        attribution."""
        ids, idx, _sampled, content = self._encode_pieces(pieces)
        return RenderedTokens._after_history(prior, ids, idx, content, roles)
