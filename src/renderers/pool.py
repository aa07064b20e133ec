"""A thread-safe pool of independent renderers that is itself a ``Renderer``."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from renderers.protocol import Renderer
from renderers.types import Message, ParsedResponse, RenderedTokens, ToolSpecLike

__all__ = ["RendererPool"]


class RendererPool:
    """``size`` renderers built by ``factory``, each used by one thread at a time.

    ``factory`` must return a renderer with its *own* tokenizer (HF tokenizers are not safe to share
    across threads). With ``size == 1`` the single renderer is guarded by a lock; otherwise renderers
    wait in a queue and :meth:`checkout` blocks while all are busy. Every ``Renderer`` method delegates
    to a checked-out renderer, so a pool can be used wherever a renderer is expected, including from
    worker threads (``asyncio.to_thread``).
    """

    def __init__(self, factory: Callable[[], Renderer], size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"RendererPool size must be a positive integer, got {size!r}")
        self._size = size
        self._lock: threading.Lock | None = None
        self._queue: queue.Queue[Renderer] | None = None
        if size == 1:
            renderers = [factory()]
            self._lock = threading.Lock()
            self._single: Renderer | None = renderers[0]
        else:
            # The first renderer is built on this thread, alone: it runs every lazy first import (transformers'
            # ``AutoTokenizer`` among them), which is not safe to race (concurrent first imports of transformers'
            # lazy module failed with ``ImportError: cannot import name 'AutoTokenizer'``). The rest fan out.
            renderers = [factory()]
            with ThreadPoolExecutor(max_workers=min(size - 1, 8)) as ex:
                renderers += ex.map(lambda _: factory(), range(size - 1))
            self._single = None
            self._queue = queue.Queue(maxsize=size)
            for r in renderers:
                self._queue.put_nowait(r)
        sample = renderers[0]
        self._renderer_cls: type = type(sample)
        self._supports_tools = bool(getattr(sample, "supports_tools", True))

    @property
    def size(self) -> int:
        return self._size

    @property
    def renderer_cls(self) -> type:
        """The class of the pooled renderers."""
        return self._renderer_cls

    @property
    def supports_tools(self) -> bool:
        return self._supports_tools

    @contextmanager
    def checkout(self) -> Iterator[Renderer]:
        """Borrow one renderer for exclusive use; blocks while all are busy."""
        if self._lock is not None:
            assert self._single is not None
            with self._lock:
                yield self._single
            return
        assert self._queue is not None
        r = self._queue.get()
        try:
            yield r
        finally:
            self._queue.put(r)

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
        add_generation_prompt: bool = False,
    ) -> RenderedTokens:
        with self.checkout() as r:
            return r.render(messages, tools=tools, add_generation_prompt=add_generation_prompt)

    def render_ids(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
        add_generation_prompt: bool = False,
    ) -> list[int]:
        with self.checkout() as r:
            return r.render_ids(messages, tools=tools, add_generation_prompt=add_generation_prompt)

    def parse_response(
        self, token_ids: Sequence[int], *, tools: Sequence[ToolSpecLike] | None = None
    ) -> ParsedResponse:
        with self.checkout() as r:
            return r.parse_response(token_ids, tools=tools)

    def get_stop_token_ids(self) -> list[int]:
        with self.checkout() as r:
            return r.get_stop_token_ids()

    def bridge_to_next_turn(
        self,
        previous_prompt_ids: Sequence[int],
        previous_completion_ids: Sequence[int],
        new_messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
    ) -> RenderedTokens | None:
        with self.checkout() as r:
            return r.bridge_to_next_turn(previous_prompt_ids, previous_completion_ids, new_messages, tools=tools)
