"""Run a mock application on its own event loop in a background thread: usable from sync and async tests."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web

from mockservers.app import STATE, MockState, bind_site
from mockservers.config import MockConfig, ServerKind
from mockservers.faults import FaultSpec


def create_app(kind: str, config: MockConfig) -> web.Application:
    if kind == "vllm":
        from mockservers.vllm import create_app as make
    elif kind == "dynamo":
        from mockservers.dynamo import create_app as make
    else:
        raise ValueError(f"kind must be 'vllm' or 'dynamo', got {kind!r}")
    return make(config)


def format_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class MockServer:
    """A mock vLLM or Dynamo server on a background thread.

    ``MockServer("dynamo", moe_layers=2).start()`` binds an ephemeral loopback port; ``url`` is the root base URL
    (no ``/v1``). Faults and the journal are reached directly, without HTTP. Use as a context manager or call
    ``stop()``; stopping twice is harmless.
    """

    __test__ = False

    def __init__(self, kind: ServerKind | str, config: MockConfig | None = None, **overrides: Any) -> None:
        base = config or MockConfig()
        self.kind = kind
        self.config = base.replace(**overrides) if overrides else base
        self.app = create_app(kind, self.config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self.port = 0

    # ---- lifecycle ----------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> MockServer:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name=f"mock-{self.kind}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"mock {self.kind} did not start within {timeout} s")
        if self._error is not None:
            raise RuntimeError(f"mock {self.kind} failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
            loop.run_forever()
        except BaseException as exc:  # pragma: no cover - surfaced through start()
            self._error = exc
            self._ready.set()
        finally:
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._stopped.set()

    async def _serve(self) -> None:
        self._runner, self.port = await bind_site(self.app, self.config, shutdown_timeout=0.5)
        self._ready.set()

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or self._stopped.is_set():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> MockServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # ---- handle API ---------------------------------------------------------------------------------
    @property
    def state(self) -> MockState:
        return self.app[STATE]

    @property
    def url(self) -> str:
        """Root base URL, e.g. ``http://127.0.0.1:40123`` (append ``/v1`` for OpenAI-style clients)."""
        host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return format_url(host, self.port)

    def set_faults(self, spec: FaultSpec | str | dict[str, Any] | None = None, **fields: Any) -> FaultSpec:
        """Replace the global fault: a ``FaultSpec``, header syntax, a mapping, or keyword fields."""
        if isinstance(spec, str):
            parsed = FaultSpec.parse(spec)
        elif isinstance(spec, dict):
            parsed = FaultSpec.from_mapping(spec)
        else:
            parsed = spec or FaultSpec()
        if fields:
            parsed = parsed.merged(fields)
        self.state.faults.set(parsed)
        return parsed

    def clear_faults(self) -> None:
        """Back to the configured fault (normally none) with fresh ``fail_first`` counters."""
        self.state.faults.set(self.config.faults)
        self.state.faults.reset_counters()

    def journal(self) -> list[dict[str, Any]]:
        return self.state.journal.entries()

    def clear_journal(self) -> None:
        self.state.journal.clear()

    def reset(self) -> None:
        self.clear_faults()
        self.clear_journal()
