"""The one small HTTP interface the transports speak, and adapters for the three accepted clients.

``HTTPClient.request(method, path, body=..., headers=..., timeout=...) -> RawResponse`` is all a transport
needs: ``path`` is absolute from the server root (``/inference/v1/generate``, ``/v1/chat/completions``,
``/v1/models``), so a base URL with or without ``/v1`` behaves the same. Every adapter maps its library's
exceptions into the error tree (timeouts -> ``EngineTimeoutError``, anything else that prevents a complete
response -> ``EngineConnectionError``); nothing else escapes except ``asyncio.CancelledError``.

Retries live here and only here: ``RetryingClient`` wraps any ``HTTPClient`` with a ``RetryPolicy`` (``generate(...,
retries=N)`` does that). Only failures where the server certainly did not start generating are retried: a refused
connection, and a 429/503/529 status (an answer that says "not now", sent instead of any generation output).
A reset, a timeout, a truncated body or any other status is never retried: the engine may have run the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import random
import weakref
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from renderers.client.wire import parse_retry_after
from renderers.errors import EngineConnectionError, EngineTimeoutError, GenerateError

__all__ = [
    "RETRY_STATUSES",
    "HTTPClient",
    "HttpxAdapter",
    "OpenAIAdapter",
    "RawResponse",
    "RetryPolicy",
    "RetryingClient",
    "as_http_client",
    "is_connection_refused",
    "root_url",
    "with_retries",
]

JSON_HEADERS: Final[Mapping[str, str]] = {"Content-Type": "application/json", "Accept": "application/json"}


@dataclass(frozen=True, slots=True)
class RawResponse:
    """A complete HTTP response: status, raw body bytes, the ``Retry-After`` header, and the URL asked."""

    status: int
    body: bytes
    retry_after: str | None
    url: str


def root_url(base_url: str) -> str:
    """The server root: trailing ``/`` and one trailing ``/v1`` removed."""
    return base_url.rstrip("/").removesuffix("/v1").rstrip("/")


class HTTPClient(ABC):
    """What transports call. ``root_url`` identifies the server (caches are keyed on it)."""

    root_url: str

    @abstractmethod
    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> RawResponse:
        """Send one request and read the whole response body."""

    def in_flight_gate(self) -> asyncio.Semaphore | None:
        """The semaphore ``generate()`` holds for its whole call (``EngineClient(max_in_flight=...)``), or ``None``."""
        return None


def _transport_error(exc: BaseException, url: str, timeout: float | None) -> GenerateError:
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        limit = f" after {timeout} s" if timeout is not None else ""
        return EngineTimeoutError(f"no complete response from {url}{limit} ({type(exc).__name__}: {exc})")
    return EngineConnectionError(f"request to {url} failed: {type(exc).__name__}: {exc}")


class HttpxAdapter(HTTPClient):
    """Adapter for a caller's ``httpx.AsyncClient`` (its ``base_url`` may be the root or end in ``/v1``)."""

    __slots__ = ("_client", "_extra_headers", "_timeout_default", "_urls", "root_url")

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        default_timeout: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> None:
        self._client = client
        self.root_url = root_url(str(client.base_url) if base_url is None else base_url)
        self._extra_headers = dict(headers or {})
        self._timeout_default = default_timeout
        self._urls: dict[str, str] = {}

    def _url(self, path: str) -> str:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self.root_url + path
        return url

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> RawResponse:
        url = self._url(path)
        merged = {**self._extra_headers, **JSON_HEADERS, **(headers or {})}
        t: Any = self._timeout_default if timeout is None else httpx.Timeout(timeout)
        try:
            resp = await self._client.request(method, url, content=body, headers=merged, timeout=t)
            data = resp.content
        except GenerateError:
            raise
        except Exception as exc:
            raise _transport_error(exc, url, timeout) from exc
        return RawResponse(resp.status_code, data, resp.headers.get("retry-after"), url)


class OpenAIAdapter(HttpxAdapter):
    """Adapter for ``openai.AsyncOpenAI``: reuses its base URL, auth/default headers and inner httpx client.

    Duck-typed (``openai`` stays an optional dependency): any object with ``base_url``, ``default_headers``
    (plus optional ``auth_headers``) and an ``httpx.AsyncClient`` in ``_client`` works.
    """

    __slots__ = ()

    def __init__(self, client: Any) -> None:
        merged = {**dict(client.default_headers), **dict(getattr(client, "auth_headers", None) or {})}
        headers = {k: v for k, v in merged.items() if isinstance(v, str)}  # drops openai's Omit placeholders
        timeout = getattr(client, "timeout", None)
        default: Any = httpx.USE_CLIENT_DEFAULT
        if isinstance(timeout, (int, float, httpx.Timeout)) and not isinstance(timeout, bool):
            default = timeout
        super().__init__(client._client, base_url=str(client.base_url), headers=headers, default_timeout=default)


_adapters: weakref.WeakKeyDictionary[Any, HTTPClient] = weakref.WeakKeyDictionary()


def _is_openai_like(client: Any) -> bool:
    return (
        isinstance(getattr(client, "_client", None), httpx.AsyncClient)
        and hasattr(client, "base_url")
        and hasattr(client, "default_headers")
    )


def as_http_client(client: Any) -> HTTPClient:
    """The ``HTTPClient`` for an ``EngineClient``, ``httpx.AsyncClient`` or ``openai.AsyncOpenAI`` (cached)."""
    if isinstance(client, HTTPClient):
        return client
    try:
        cached = _adapters.get(client)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None:
        return cached
    adapter: HTTPClient
    if isinstance(client, httpx.AsyncClient):
        adapter = HttpxAdapter(client)
    elif _is_openai_like(client):
        adapter = OpenAIAdapter(client)
    else:
        raise ValueError(
            "client must be a renderers.EngineClient, an httpx.AsyncClient or an openai.AsyncOpenAI, "
            f"got {type(client).__name__}"
        )
    with contextlib.suppress(TypeError):
        _adapters[client] = adapter
    return adapter


# ---------------------------------------------------------------------------------------------------------- retries

#: Statuses that mean "not now, nothing was generated": rate limited, unavailable, overloaded (Anthropic/Dynamo 529).
RETRY_STATUSES: Final = frozenset({429, 503, 529})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before sending a request again. Off by default (``retries=0``).

    - ``retries``: extra attempts after the first (so at most ``retries + 1`` requests go out).
    - Delay before retry ``n`` (0-based): ``min(backoff_max, backoff * 2**n)``, of which the fraction ``jitter`` is
      random (``d * (1 - jitter) + uniform(0, d * jitter)``), so a crowd of workers does not come back in step.
    - A ``Retry-After`` header (seconds or an HTTP date) replaces the computed delay, capped at
      ``retry_after_max``.

    Every attempt gets the full per-request timeout; the worst case before the final error is therefore
    ``(retries + 1) * timeout + retries * max(backoff_max, retry_after_max)``.
    """

    retries: int = 0
    backoff: float = 0.25
    backoff_max: float = 8.0
    retry_after_max: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {self.retries!r}")
        for name in ("backoff", "backoff_max", "retry_after_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, (int, float)) or not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be a number in [0, 1], got {self.jitter!r}")

    def delay(self, attempt: int, retry_after: float | None, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        d = min(self.backoff_max, self.backoff * 2.0 ** min(attempt, 62))
        return d * (1.0 - self.jitter) + rand() * d * self.jitter


def is_connection_refused(exc: BaseException) -> bool:
    """Whether ``exc`` (or anything in its cause/context chain) is a refused TCP connection."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError) or (isinstance(cur, OSError) and cur.errno == errno.ECONNREFUSED):
            return True
        os_error = getattr(cur, "os_error", None)  # aiohttp.ClientConnectorError keeps the OSError here
        if isinstance(os_error, ConnectionRefusedError):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


class RetryingClient(HTTPClient):
    """An ``HTTPClient`` that sends again, per ``policy``, only when the server certainly did not generate.

    Retried: ``EngineConnectionError`` caused by a refused connection (nothing was sent), and a complete
    response with a status in ``RETRY_STATUSES``. Everything else (timeouts, resets, truncated bodies, other
    statuses, a 2xx) is returned or raised on the first occurrence. When the retries run out, the last response
    is returned (the transport turns it into ``EngineHTTPError`` with ``retry_after``) or the last error raised.
    ``sleep`` and ``rand`` are injectable for tests.
    """

    __slots__ = ("attempts", "inner", "policy", "rand", "root_url", "sleep")

    def __init__(
        self,
        inner: HTTPClient,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.inner = inner
        self.policy = policy
        self.root_url = inner.root_url
        self.sleep = sleep
        self.rand = rand
        #: Requests sent through this wrapper (first attempts and retries).
        self.attempts = 0

    def in_flight_gate(self) -> asyncio.Semaphore | None:
        return self.inner.in_flight_gate()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> RawResponse:
        policy = self.policy
        retry = 0
        while True:
            self.attempts += 1
            try:
                resp = await self.inner.request(method, path, body=body, headers=headers, timeout=timeout)
            except EngineConnectionError as exc:
                if retry >= policy.retries or not is_connection_refused(exc):
                    raise
                wait = policy.delay(retry, None, self.rand)
            else:
                if retry >= policy.retries or resp.status not in RETRY_STATUSES:
                    return resp
                wait = policy.delay(retry, parse_retry_after(resp.retry_after), self.rand)
            retry += 1
            await self.sleep(wait)


def with_retries(http: HTTPClient, retries: int | RetryPolicy | None) -> HTTPClient:
    """``http`` itself when retries are off, else a ``RetryingClient`` around it."""
    if retries is None or (isinstance(retries, int) and not isinstance(retries, bool) and retries == 0):
        return http
    policy = retries if isinstance(retries, RetryPolicy) else RetryPolicy(retries=retries)
    return http if policy.retries == 0 else RetryingClient(http, policy)
