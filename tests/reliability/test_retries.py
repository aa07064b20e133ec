"""The optional ``retries`` setting: off by default, retries only what certainly did not generate, never after a
response began, capped exponential backoff with jitter, ``Retry-After`` honoured and capped."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from renderers.client import EngineClient, generate
from renderers.client._http import HTTPClient, RawResponse
from renderers.client._retry import RETRY_STATUSES, RetryingClient, RetryPolicy, is_connection_refused, with_retries
from renderers.errors import EngineConnectionError, EngineHTTPError, EngineTimeoutError
from renderers.types import Message
from tests.helpers.fake_renderer import FakeRenderer
from tests.reliability.scripted import ScriptedServer, Step, refused_url

MESSAGES: list[Message] = [{"role": "user", "content": "hi"}]


# ---- the policy ----------------------------------------------------------------------------------------------
def test_policy_delay_is_capped_exponential_with_jitter() -> None:
    p = RetryPolicy(retries=10, backoff=0.1, backoff_max=1.0, jitter=0.5)
    lows = [p.delay(n, None, lambda: 0.0) for n in range(8)]
    highs = [p.delay(n, None, lambda: 1.0) for n in range(8)]
    assert lows == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.5, 0.5, 0.5, 0.5])
    assert highs == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0])
    assert p.delay(1000, None) <= 1.0  # no overflow far out
    no_jitter = RetryPolicy(retries=1, backoff=0.3, jitter=0)
    assert no_jitter.delay(0, None) == pytest.approx(0.3)


def test_policy_retry_after_replaces_backoff_and_is_capped() -> None:
    p = RetryPolicy(retries=1, backoff=0.1, retry_after_max=2.0)
    assert p.delay(0, 1.5) == 1.5
    assert p.delay(0, 3600.0) == 2.0
    assert p.delay(0, 0.0) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"retries": -1}, "retries"), ({"retries": True}, "retries"), ({"retries": 1.5}, "retries"),
     ({"backoff": -1}, "backoff"), ({"backoff_max": float("inf")}, "backoff_max"),
     ({"retry_after_max": float("nan")}, "retry_after_max"), ({"jitter": 2}, "jitter")],
)  # fmt: skip
def test_policy_rejects_bad_settings(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_off_by_default_is_the_same_client() -> None:
    inner = Scripted([])
    assert with_retries(inner, 0) is inner
    assert with_retries(inner, None) is inner
    assert with_retries(inner, RetryPolicy()) is inner
    wrapped = with_retries(inner, 2)
    assert isinstance(wrapped, RetryingClient)
    assert wrapped.root_url == inner.root_url
    with pytest.raises(ValueError, match="retries"):
        with_retries(inner, -1)


# ---- a fake inner client: the property over every outcome sequence -----------------------------------------
def _refused() -> EngineConnectionError:
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError as cause:
        err = EngineConnectionError("request failed: refused")
        err.__cause__ = cause
        return err


def _reset() -> EngineConnectionError:
    err = EngineConnectionError("request failed: reset mid-body")
    err.__cause__ = ConnectionResetError(104, "Connection reset by peer")
    return err


OUTCOMES: dict[str, Callable[[], BaseException | RawResponse]] = {
    "refused": _refused,
    "reset": _reset,
    "timeout": lambda: EngineTimeoutError("no complete response after 1 s"),
    **{f"status{s}": functools.partial(RawResponse, s, b"{}", None, "u") for s in (200, 400, 429, 500, 502, 503, 529)},
}
RETRYABLE = {"refused", "status429", "status503", "status529"}


class Scripted(HTTPClient):
    def __init__(self, outcomes: list[str]) -> None:
        super().__init__("http://scripted")
        self.outcomes = outcomes
        self.calls = 0

    async def request(self, method: str, path: str, *, body: bytes | None = None,
                      headers: object = None, timeout: float | None = None) -> RawResponse:  # noqa: ASYNC109  # fmt: skip
        outcome = OUTCOMES[self.outcomes[min(self.calls, len(self.outcomes) - 1)]]()
        self.calls += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


@given(
    outcomes=st.lists(st.sampled_from(sorted(OUTCOMES)), min_size=1, max_size=8),
    retries=st.integers(0, 6),
)
def test_retries_only_what_never_generated(outcomes: list[str], retries: int) -> None:
    """Exactly the leading run of retryable outcomes is retried, at most ``retries`` times; the first outcome
    where the server may have generated (a reset, a timeout, a truncated body, any other status) ends it."""
    inner = Scripted(outcomes)
    sleeps: list[float] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)

    client = RetryingClient(inner, RetryPolicy(retries=retries, backoff=0.01, backoff_max=0.05), sleep=sleep)
    padded = outcomes + [outcomes[-1]] * (retries + 1)
    expected_calls = 1
    while expected_calls <= retries and padded[expected_calls - 1] in RETRYABLE:
        expected_calls += 1
    last = padded[expected_calls - 1]
    if last.startswith("status"):
        resp = asyncio.run(client.request("POST", "/x", body=b"{}"))
        assert resp.status == int(last.removeprefix("status"))
    else:
        with pytest.raises(EngineTimeoutError if last == "timeout" else EngineConnectionError):
            asyncio.run(client.request("POST", "/x", body=b"{}"))
    assert inner.calls == expected_calls == client.attempts
    assert len(sleeps) == expected_calls - 1
    assert all(0 <= s <= 0.05 for s in sleeps)


def test_is_connection_refused_reads_the_chain() -> None:
    assert is_connection_refused(_refused())
    assert not is_connection_refused(_reset())
    assert not is_connection_refused(EngineConnectionError("x"))
    loop = EngineConnectionError("self-cycle")
    loop.__context__ = loop
    assert not is_connection_refused(loop)


# ---- over the wire: both client kinds -------------------------------------------------------------------------
def _client(kind: str, url: str) -> EngineClient | httpx.AsyncClient:
    return EngineClient(url) if kind == "aiohttp" else httpx.AsyncClient(base_url=url)


async def _close(client: EngineClient | httpx.AsyncClient) -> None:
    await client.aclose()


async def _gen(client: object, retries: int | RetryPolicy, timeout: float = 5.0) -> object:  # noqa: ASYNC109
    return await generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m",
                          max_prompt_len=100, timeout=timeout, retries=retries)  # fmt: skip


FAST = RetryPolicy(retries=3, backoff=0.01, backoff_max=0.02, retry_after_max=0.3)
KINDS = ["aiohttp", "httpx"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", sorted(RETRY_STATUSES))
async def test_retryable_status_then_success(kind: str, status: int) -> None:
    async with ScriptedServer([Step("status", status), Step("status", status), Step("ok")]) as srv:
        client = _client(kind, srv.url)
        try:
            out = await _gen(client, FAST)
        finally:
            await _close(client)
    assert out["completion_ids"] == [7, 8]  # type: ignore[index]
    assert srv.requests == 3


@pytest.mark.parametrize("kind", KINDS)
async def test_retries_run_out_gives_the_last_status(kind: str) -> None:
    async with ScriptedServer([Step("status", 503, retry_after="0")]) as srv:
        client = _client(kind, srv.url)
        try:
            with pytest.raises(EngineHTTPError) as info:
                await _gen(client, FAST)
        finally:
            await _close(client)
    assert info.value.status == 503
    assert info.value.retry_after == 0.0
    assert srv.requests == 4


@pytest.mark.parametrize("kind", KINDS)
async def test_retry_after_is_honoured_and_capped(kind: str) -> None:
    loop = asyncio.get_running_loop()
    async with ScriptedServer([Step("status", 429, retry_after="0.2"), Step("ok")]) as srv:
        client = _client(kind, srv.url)
        try:
            t0 = loop.time()
            await _gen(client, RetryPolicy(retries=1, backoff=0.0, retry_after_max=5))
            honoured = loop.time() - t0
        finally:
            await _close(client)
    assert 0.2 <= honoured < 2.0
    async with ScriptedServer([Step("status", 529, retry_after="3600"), Step("ok")]) as srv:
        client = _client(kind, srv.url)
        try:
            t0 = loop.time()
            await _gen(client, FAST)
            capped = loop.time() - t0
        finally:
            await _close(client)
    assert 0.3 <= capped < 2.0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("step", "error"),
    [
        (Step("truncate"), EngineConnectionError),
        (Step("reset_mid_body"), EngineConnectionError),
        (Step("reset_before"), EngineConnectionError),
        (Step("hang_after_headers"), EngineTimeoutError),
        (Step("hang_no_headers"), EngineTimeoutError),
        (Step("status", 500), EngineHTTPError),
        (Step("status", 502), EngineHTTPError),
        (Step("truncate", 503), EngineConnectionError),
        (Step("hang_after_headers", 503), EngineTimeoutError),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else f"{v.action}-{v.status}",
)
async def test_never_retries_after_a_response_began(kind: str, step: Step, error: type[Exception]) -> None:
    """A reset, a timeout, a truncated body (even of a 503), a 5xx other than 503/529: exactly one request."""
    async with ScriptedServer([step, Step("ok")], hang_max_s=5) as srv:
        client = _client(kind, srv.url)
        try:
            with pytest.raises(error):
                await _gen(client, FAST, timeout=0.3)
        finally:
            await _close(client)
    assert srv.requests == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_refused_is_retried_and_recovers_when_the_server_comes_up(kind: str) -> None:
    url = refused_url()
    port = int(url.rsplit(":", 1)[1])
    srv = ScriptedServer([Step("ok")])
    sleeps: list[float] = []

    async def start_on_second_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            srv._server = await asyncio.start_server(srv._handle, "127.0.0.1", port)

    client = _client(kind, url)
    try:
        from renderers.client._http import as_http_client

        http = RetryingClient(as_http_client(client), RetryPolicy(retries=5, backoff=0.01), sleep=start_on_second_sleep)
        out = await generate(client=http, renderer=FakeRenderer(), messages=MESSAGES, model="m", max_prompt_len=100)
    finally:
        await _close(client)
        if srv._server is not None:
            await srv.__aexit__()
    assert out["completion_ids"] == [7, 8]
    assert http.attempts == 3
    assert srv.requests == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_refused_runs_out_with_a_connection_error(kind: str) -> None:
    client = _client(kind, refused_url())
    loop = asyncio.get_running_loop()
    try:
        t0 = loop.time()
        with pytest.raises(EngineConnectionError):
            await _gen(client, RetryPolicy(retries=2, backoff=0.05, backoff_max=0.05, jitter=0))
        elapsed = loop.time() - t0
    finally:
        await _close(client)
    assert 0.1 <= elapsed < 3.0


@pytest.mark.parametrize("kind", KINDS)
async def test_default_is_no_retry(kind: str) -> None:
    async with ScriptedServer([Step("status", 503), Step("ok")]) as srv:
        client = _client(kind, srv.url)
        try:
            with pytest.raises(EngineHTTPError):
                await _gen(client, 0)
        finally:
            await _close(client)
    assert srv.requests == 1


async def test_bad_retries_argument_is_a_value_error() -> None:
    async with EngineClient("http://127.0.0.1:9") as client:
        with pytest.raises(ValueError, match="retries"):
            await _gen(client, -2)
