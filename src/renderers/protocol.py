"""The ``Renderer`` protocol: what ``generate()`` and training code need from a renderer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from renderers.types import Message, ParsedResponse, RenderedTokens, ToolSpecLike

__all__ = ["Renderer"]


@runtime_checkable
class Renderer(Protocol):
    """Turns messages into token ids (with attribution) and completion ids back into a parsed response."""

    @property
    def supports_tools(self) -> bool:
        """Whether ``tools=`` is rendered into the prompt and tool calls are parsed from completions."""
        ...

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
        add_generation_prompt: bool = False,
    ) -> RenderedTokens:
        """Render messages to token ids with per-token attribution."""
        ...

    def render_ids(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
        add_generation_prompt: bool = False,
    ) -> list[int]:
        """Render messages to token ids only (the same ids as ``render(...).token_ids``)."""
        ...

    def parse_response(
        self, token_ids: Sequence[int], *, tools: Sequence[ToolSpecLike] | None = None
    ) -> ParsedResponse:
        """Split completion ids into content, reasoning and tool calls; stop at the first stop token."""
        ...

    def get_stop_token_ids(self) -> list[int]:
        """Token ids that end an assistant turn."""
        ...

    def bridge_to_next_turn(
        self,
        previous_prompt_ids: Sequence[int],
        previous_completion_ids: Sequence[int],
        new_messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
    ) -> RenderedTokens | None:
        """Extend a conversation without re-tokenizing what the model produced.

        The result's ids start with ``previous_prompt_ids + previous_completion_ids`` (after trimming
        the completion to its last turn-closing token) and end with the next assistant opener.
        ``message_indices`` are ``-1`` over the previous part and index ``new_messages`` after it.
        Returns ``None`` when the extension cannot be proven identical to a full re-render.
        """
        ...
