"""Retries: ``RetryPolicy`` (when and how long to wait) and ``RetryingClient`` (an ``HTTPClient`` that applies it).

``generate(..., retries=N)`` wraps the client with ``with_retries``; retries live here and only here. Only
failures where the server certainly did not start generating are retried: a refused connection, and a
429/503/529 status (an answer that says "not now", sent instead of any generation output). A reset, a timeout, a
truncated body or any other status is never retried: the engine may have run the request.
"""

from __future__ import annotations

import asyncio
import errno
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final

from renderers.client._http import HTTPClient, RawResponse
from renderers.client._http_errors import parse_retry_after
from renderers.errors import EngineConnectionError

__all__ = ["RETRY_STATUSES", "RetryPolicy", "RetryingClient", "is_connection_refused", "with_retries"]


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

    __slots__ = ("attempts", "inner", "policy", "rand", "sleep")

    def __init__(
        self,
        inner: HTTPClient,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(inner.root_url, inner.server_info)
        self.inner = inner
        self.policy = policy
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
