"""The one small HTTP interface the transports speak, and adapters for the three accepted clients.

``HTTPClient.request(method, path, body=..., headers=..., timeout=...) -> RawResponse`` is all a transport
needs: ``path`` is absolute from the server root (``/inference/v1/generate``, ``/v1/chat/completions``,
``/v1/models``), so a base URL with or without ``/v1`` behaves the same. Every adapter maps its library's
exceptions into the error tree (timeouts -> ``EngineTimeoutError``, anything else that prevents a complete
response -> ``EngineConnectionError``); nothing else escapes except ``asyncio.CancelledError``.

Each ``HTTPClient`` holds a ``ServerInfo``: what it learnt about its server (context length, optional fields the
server rejects), asked once and reused by every later call through that client. Retries wrap an ``HTTPClient``
(``_retry.RetryingClient``).
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import httpx

from renderers.client._server_info import ServerInfo
from renderers.errors import EngineConnectionError, EngineTimeoutError, GenerateError

__all__ = [
    "JSON_HEADERS",
    "HTTPClient",
    "HttpxAdapter",
    "OpenAIAdapter",
    "RawResponse",
    "as_http_client",
    "request_failure",
    "root_url",
]

JSON_HEADERS: Final[Mapping[str, str]] = MappingProxyType(
    {"Content-Type": "application/json", "Accept": "application/json"}
)


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
    """What transports call: one server, ``root_url``, and what this client learnt about it, ``server_info``."""

    __slots__ = ("root_url", "server_info")

    root_url: str
    server_info: ServerInfo

    def __init__(self, root_url: str, server_info: ServerInfo | None = None) -> None:
        """``server_info``: share another client's (a wrapper around it); a new, empty one by default."""
        self.root_url = root_url
        self.server_info = ServerInfo(root_url) if server_info is None else server_info

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


def request_failure(exc: BaseException, url: str, timeout: float | None) -> GenerateError:
    """The error for a request to ``url`` that got no complete response because of ``exc`` (any HTTP library's):
    ``EngineTimeoutError`` for a timeout (``timeout``: the limit in seconds, if any), else ``EngineConnectionError``."""
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        limit = f" after {timeout} s" if timeout is not None else ""
        return EngineTimeoutError(f"no complete response from {url}{limit} ({type(exc).__name__}: {exc})")
    return EngineConnectionError(f"request to {url} failed: {type(exc).__name__}: {exc}")


class HttpxAdapter(HTTPClient):
    """Adapter for a caller's ``httpx.AsyncClient`` (its ``base_url`` may be the root or end in ``/v1``)."""

    __slots__ = ("_client", "_extra_headers", "_timeout_default")

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        default_timeout: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> None:
        super().__init__(root_url(str(client.base_url) if base_url is None else base_url))
        self._client = client
        self._extra_headers = dict(headers or {})
        self._timeout_default = default_timeout

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> RawResponse:
        url = self.root_url + path
        merged = {**self._extra_headers, **JSON_HEADERS, **(headers or {})}
        t: Any = self._timeout_default if timeout is None else httpx.Timeout(timeout)
        try:
            resp = await self._client.request(method, url, content=body, headers=merged, timeout=t)
            data = resp.content
        except GenerateError:
            raise
        except Exception as exc:
            raise request_failure(exc, url, timeout) from exc
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


#: The attribute of a caller's httpx/openai client that keeps its adapter, so the ``ServerInfo`` the adapter holds
#: lives as long as that client (and no longer), and no process-wide table is needed.
_ADAPTER_ATTR: Final = "_renderers_http_client"


def _is_openai_like(client: Any) -> bool:
    return (
        isinstance(getattr(client, "_client", None), httpx.AsyncClient)
        and hasattr(client, "base_url")
        and hasattr(client, "default_headers")
    )


def as_http_client(client: Any) -> HTTPClient:
    """The ``HTTPClient`` for an ``EngineClient``, ``httpx.AsyncClient`` or ``openai.AsyncOpenAI``.

    An adapter is made once per caller client and kept on it (attribute ``_renderers_http_client``): what it
    learns about the server (``ServerInfo``) then serves every later call with that client. A client that takes
    no new attributes gets a fresh adapter (and asks the server again) on every call.
    """
    if isinstance(client, HTTPClient):
        return client
    cached = getattr(client, _ADAPTER_ATTR, None)
    if isinstance(cached, HTTPClient):
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
    with contextlib.suppress(AttributeError, TypeError):
        setattr(client, _ADAPTER_ATTR, adapter)
    return adapter
