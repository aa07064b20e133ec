"""EngineClient (aiohttp) against a small aiohttp server on 127.0.0.1: success, errors, timeouts, broken peers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from renderers import EngineConnectionError, EngineHTTPError, EngineTimeoutError
from renderers.client import EngineClient, generate
from renderers.types import Message
from tests.helpers.fake_renderer import FakeRenderer

MESSAGES: list[Message] = [{"role": "user", "content": "hi"}]
OK_BODY = {
    "request_id": "gen-1",
    "choices": [{"index": 0, "token_ids": [7, 8], "finish_reason": "length",
                 "logprobs": {"content": [{"token_id": 7, "logprob": -0.5}, {"token_id": 8, "logprob": -0.25}]}}],
}  # fmt: skip


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, Recorder]]:
    rec = Recorder()

    async def generate_route(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        rec.requests.append((request.path, dict(request.headers), body))
        mode = body["sampling_params"].get("mode")
        if mode == "slow":
            await asyncio.sleep(2)
        if mode == "error":
            return web.Response(status=503, body=b'{"error":{"message":"busy","type":"ServiceUnavailable","code":503}}',
                                headers={"Retry-After": "7", "Content-Type": "application/json"})  # fmt: skip
        if mode == "truncate":
            resp = web.StreamResponse(headers={"Content-Length": "1000", "Content-Type": "application/json"})
            await resp.prepare(request)
            await resp.write(b'{"request_id":')
            assert request.transport is not None
            request.transport.close()
            return resp
        return web.Response(body=orjson.dumps(OK_BODY), content_type="application/json")

    async def models(request: web.Request) -> web.Response:
        rec.requests.append((request.path, dict(request.headers), None))
        return web.Response(body=orjson.dumps({"data": [{"id": "m", "max_model_len": 100}]}))

    app = web.Application()
    app.router.add_post("/inference/v1/generate", generate_route)
    app.router.add_get("/v1/models", models)
    srv = TestServer(app, host="127.0.0.1", port=0)
    await srv.start_server()
    try:
        yield srv, rec
    finally:
        await srv.close()


def _url(srv: TestServer, suffix: str = "") -> str:
    return f"http://127.0.0.1:{srv.port}{suffix}"


@pytest.mark.parametrize("suffix", ["", "/v1", "/v1/"])
async def test_engine_client_round_trip(server: tuple[TestServer, Recorder], suffix: str) -> None:
    srv, rec = server
    async with EngineClient(_url(srv, suffix), api_key="sk-1", headers={"X-Team": "rl"}) as client:
        out = await generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m",
                             extra_headers={"X-Session-ID": "s1"})  # fmt: skip
        assert out["completion_ids"] == [7, 8]
        assert out["completion_logprobs"] == [-0.5, -0.25]
        assert out["request_id"] == "gen-1"
        # a second request reuses the pool; discovery was asked once
        await generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m")
    assert client.closed
    paths = [p for p, _, _ in rec.requests]
    assert paths == ["/v1/models", "/inference/v1/generate", "/inference/v1/generate"]
    _, headers, body = rec.requests[1]
    assert headers["Authorization"] == "Bearer sk-1"
    assert headers["X-Team"] == "rl"
    assert headers["X-Session-ID"] == "s1"
    assert headers["Content-Type"] == "application/json"
    assert body["token_ids"] == [1, 2, 3]


async def test_engine_client_http_error(server: tuple[TestServer, Recorder]) -> None:
    srv, _ = server
    async with EngineClient(_url(srv)) as client:
        with pytest.raises(EngineHTTPError) as info:
            await generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m",
                           sampling_params={"mode": "error"})  # fmt: skip
    assert info.value.status == 503
    assert info.value.message == "busy"
    assert info.value.retry_after == 7.0


async def test_engine_client_timeout(server: tuple[TestServer, Recorder]) -> None:
    srv, _ = server
    async with EngineClient(_url(srv)) as client:
        with pytest.raises(EngineTimeoutError):
            await generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m",
                           sampling_params={"mode": "slow"}, timeout=0.2)  # fmt: skip


async def test_engine_client_default_timeout(server: tuple[TestServer, Recorder]) -> None:
    srv, _ = server
    async with EngineClient(_url(srv), timeout=0.2) as client:
        with pytest.raises(TimeoutError):
            await generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m",
                           sampling_params={"mode": "slow"}, max_prompt_len=100)  # fmt: skip


async def test_engine_client_truncated_body(server: tuple[TestServer, Recorder]) -> None:
    srv, _ = server
    async with EngineClient(_url(srv)) as client:
        with pytest.raises(EngineConnectionError):
            await generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m",
                           sampling_params={"mode": "truncate"})  # fmt: skip


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_engine_client_connection_refused() -> None:
    async with EngineClient(f"http://127.0.0.1:{_closed_port()}/v1") as client:
        with pytest.raises(EngineConnectionError):
            await generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m", max_prompt_len=10)


async def test_engine_client_reopens_after_close(server: tuple[TestServer, Recorder]) -> None:
    srv, _ = server
    client = EngineClient(_url(srv))
    out = await generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m")
    await client.aclose()
    assert client.closed
    out = await generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m")
    assert out["completion_ids"] == [7, 8]
    await client.aclose()


async def test_engine_client_many_concurrent(server: tuple[TestServer, Recorder]) -> None:
    srv, rec = server
    async with EngineClient(_url(srv), max_connections=4) as client:
        outs = await asyncio.gather(
            *(generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m") for _ in range(32))
        )
    assert all(o["completion_ids"] == [7, 8] for o in outs)
    assert sum(1 for p, _, _ in rec.requests if p == "/v1/models") == 1


def test_engine_client_rejects_bad_pool_size() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        EngineClient("http://x", max_connections=0)


@pytest.mark.parametrize("cap", [1, 3, 8])
async def test_engine_client_max_in_flight_caps_concurrent_generate_calls(cap: int) -> None:
    """Never more than ``max_in_flight`` requests at the server at once, and every call still completes."""
    state = {"now": 0, "peak": 0}

    async def generate_route(request: web.Request) -> web.Response:
        await request.read()
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        try:
            await asyncio.sleep(0.01)
        finally:
            state["now"] -= 1
        return web.Response(body=orjson.dumps(OK_BODY), content_type="application/json")

    app = web.Application()
    app.router.add_post("/inference/v1/generate", generate_route)
    srv = TestServer(app, host="127.0.0.1", port=0)
    await srv.start_server()
    try:
        async with EngineClient(_url(srv), max_in_flight=cap) as client:
            calls = (generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m",
                              max_prompt_len=100) for _ in range(40))  # fmt: skip
            outs = await asyncio.gather(*calls)
    finally:
        await srv.close()
    assert all(o["completion_ids"] == [7, 8] for o in outs)
    assert state["peak"] == cap


async def test_engine_client_max_in_flight_none_is_uncapped(server: tuple[TestServer, Recorder]) -> None:
    srv, _ = server
    async with EngineClient(_url(srv), max_in_flight=None) as client:
        assert client.in_flight_gate() is None
        out = await generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m")
    assert out["completion_ids"] == [7, 8]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_engine_client_rejects_bad_max_in_flight(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        EngineClient("http://x", max_in_flight=bad)
