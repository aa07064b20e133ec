"""Fake renderers for client tests: fixed prompt ids, fixed stop ids, scripted parse results."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from renderers.types import (
    Message,
    ParsedResponse,
    ParsedToolCall,
    RenderedTokens,
    ToolCallParseStatus,
    ToolSpecLike,
)

PROMPT_IDS = [1, 2, 3]
STOP_IDS = [99]


class FakeRenderer:
    """Renders any conversation to ``prompt_ids``; parses completions to content ``"done"`` + one tool call."""

    def __init__(
        self,
        *,
        prompt_ids: Sequence[int] = PROMPT_IDS,
        supports_tools: bool = True,
        tool_status: ToolCallParseStatus | None = ToolCallParseStatus.OK,
    ) -> None:
        self._prompt_ids = list(prompt_ids)
        self._supports_tools = supports_tools
        self.tool_status = tool_status
        self.render_calls: list[dict[str, Any]] = []
        self.parse_calls: list[dict[str, Any]] = []
        self.threads: list[str] = []

    @property
    def supports_tools(self) -> bool:
        return self._supports_tools

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
        add_generation_prompt: bool = False,
    ) -> RenderedTokens:
        self.threads.append(threading.current_thread().name)
        self.render_calls.append({"messages": messages, "tools": tools, "add_generation_prompt": add_generation_prompt})
        n = len(self._prompt_ids)
        return RenderedTokens(
            token_ids=list(self._prompt_ids),
            message_indices=[0] * (n - 1) + [-1] if n else [],
            sampled_mask=[False] * n,
            is_content=[True] * n,
            message_roles=["user"],
        )

    def render_ids(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
        add_generation_prompt: bool = False,
    ) -> list[int]:
        return self.render(messages, tools=tools, add_generation_prompt=add_generation_prompt).token_ids

    def parse_response(
        self, token_ids: Sequence[int], *, tools: Sequence[ToolSpecLike] | None = None
    ) -> ParsedResponse:
        self.threads.append(threading.current_thread().name)
        self.parse_calls.append({"token_ids": list(token_ids), "tools": tools})
        calls: tuple[ParsedToolCall, ...] = ()
        if self.tool_status is not None:
            calls = (ParsedToolCall(raw='{"name": "echo"}', name="echo", arguments={}, status=self.tool_status),)
        return ParsedResponse(content="done", reasoning_content="think", tool_calls=calls)

    def get_stop_token_ids(self) -> list[int]:
        return list(STOP_IDS)

    def bridge_to_next_turn(self, *args: Any, **kwargs: Any) -> RenderedTokens | None:
        return None


class FakePool(FakeRenderer):
    """Pool-like (has ``checkout``): generate() must call it from worker threads."""

    @contextlib.contextmanager
    def checkout(self) -> Iterator[FakeRenderer]:
        yield self
