"""``EngineClient``: this package's own HTTP client on aiohttp (pooled keep-alive connections), the fast default."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType
from typing import Final

import aiohttp
from yarl import URL

from renderers.client._http import JSON_HEADERS, HTTPClient, RawResponse, request_failure, root_url

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "EngineClient"]

#: Default cap on one client's concurrent ``generate()`` calls: none (see ``EngineClient``). A default cap would
#: also cap how many sequences one rollout worker keeps in the engine's batch, silently costing throughput.
DEFAULT_MAX_IN_FLIGHT: Final[int | None] = None


class EngineClient(HTTPClient):
    """An aiohttp-based client for one inference server.

    ``base_url`` may be the server root or end in ``/v1``. ``api_key`` is sent as ``Authorization: Bearer``;
    ``headers`` go on every request; ``timeout`` is the default per-request total timeout in seconds
    (``None`` = no limit); ``max_connections`` caps the keep-alive pool.

    ``max_in_flight`` caps the ``generate()`` calls running through this client at once (rendering, sending,
    reading and parsing); further calls wait their turn in FIFO order, after their arguments are checked and before
    any work, and the wait is not part of their timeout. Without it a burst of 1,000 calls runs 1,000 first steps,
    then up to 1,000 ready responses, in single event-loop iterations, stalling every other coroutine for the
    whole batch (measured against a mock answering in milliseconds: loop lag p99 ~190 ms uncapped, ~10 ms with
    ``max_in_flight=32``; docs/benchmarks.md group 5). The cap is also the most requests this client keeps at the
    engine at once, so it is off by default (``None``): set it when other coroutines in the process need a
    responsive loop and the engine's batch does not need more than that many of this worker's sequences.

    Use it as an async context manager (``async with EngineClient(url) as client: ...``) or call ``aclose()``.
    The session is created lazily on first use, inside the running event loop.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = 600.0,
        max_connections: int = 1024,
        max_in_flight: int | None = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        if max_in_flight is not None and (
            isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1
        ):
            raise ValueError(f"max_in_flight must be an int >= 1 or None, got {max_in_flight!r}")
        super().__init__(root_url(base_url))  # its ServerInfo is kept across ``aclose()``
        self.base_url = base_url
        self.timeout = timeout
        self.max_connections = max_connections
        self.max_in_flight = max_in_flight
        self._gate: asyncio.Semaphore | None = None
        merged = dict(JSON_HEADERS)
        if api_key:
            merged["Authorization"] = f"Bearer {api_key}"
        merged.update(headers or {})
        self._headers = merged
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[float | None, aiohttp.ClientTimeout] = {}

    def __repr__(self) -> str:
        return f"EngineClient({self.base_url!r})"

    async def __aenter__(self) -> EngineClient:
        self._get_session()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        return self._session is None or self._session.closed

    async def aclose(self) -> None:
        """Close the pooled connections. The client may be used again afterwards (a new pool is opened)."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0, enable_cleanup_closed=True)
            session = self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, timeout=self._client_timeout(self.timeout)
            )
            # asyncio primitives bind to the loop that first waits on them: a new gate with each session.
            cap = self.max_in_flight
            self._gate = None if cap is None else asyncio.Semaphore(cap)
        return session

    def in_flight_gate(self) -> asyncio.Semaphore | None:
        self._get_session()
        return self._gate

    def _client_timeout(self, timeout: float | None) -> aiohttp.ClientTimeout:
        t = self._timeouts.get(timeout)
        if t is None:
            t = self._timeouts[timeout] = aiohttp.ClientTimeout(total=timeout)
        return t

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self.root_url + path)
        return url

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (passed to the HTTP library)
    ) -> RawResponse:
        url = self._url(path)
        session = self._get_session()
        effective = self.timeout if timeout is None else timeout
        try:
            async with session.request(
                method,
                url,
                data=body,
                headers=headers or None,
                timeout=self._client_timeout(effective),
            ) as resp:
                data = await resp.read()
                return RawResponse(resp.status, data, resp.headers.get("Retry-After"), str(url))
        except Exception as exc:  # aiohttp's errors, OSError, RuntimeError from a closed session: never raw
            raise request_failure(exc, str(url), effective) from exc
