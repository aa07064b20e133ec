"""generate()'s errors: HTTP library exceptions and non-2xx answers become the typed error tree."""

from __future__ import annotations

import httpx
import pytest

from renderers.errors import (
    EngineConnectionError,
    EngineHTTPError,
    EngineTimeoutError,
    OverlongPromptError,
)
from tests.helpers.scripted_engine import (
    VLLM_URL,
    ScriptedEngine,
    run,
)


@pytest.mark.parametrize("transport", ["vllm", "dynamo"])
@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("refused"), EngineConnectionError),
        (httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
         EngineConnectionError),
        (httpx.ReadTimeout("slow"), EngineTimeoutError),
        (ValueError("boom"), EngineConnectionError),
    ],
)  # fmt: skip
async def test_transport_exceptions_are_mapped(transport: str, exc: Exception, expected: type[Exception]) -> None:
    with pytest.raises(expected) as info:
        await run(ScriptedEngine(exc), transport=transport, max_prompt_len=100)
    assert info.value.__cause__ is exc


async def test_timeout_error_is_also_builtin_timeout() -> None:
    with pytest.raises(TimeoutError):
        await run(ScriptedEngine(httpx.ReadTimeout("slow")))


async def test_vllm_error_envelope() -> None:
    raw = b'{"error":{"message":"The model `nope` does not exist.","type":"NotFoundError","param":"model","code":404}}'
    with pytest.raises(EngineHTTPError) as info:
        await run(ScriptedEngine(httpx.Response(404, content=raw)))
    err = info.value
    assert err.status == 404
    assert err.message == "The model `nope` does not exist."
    assert err.body == raw
    assert err.error_type == "NotFoundError"
    assert err.url == VLLM_URL
    assert err.retry_after is None


async def test_dynamo_flat_error_and_retry_after() -> None:
    resp = httpx.Response(529, json={"message": "Overloaded", "type": "Overloaded", "code": 529},
                          headers={"Retry-After": "2.5"})  # fmt: skip
    with pytest.raises(EngineHTTPError) as info:
        await run(ScriptedEngine(resp), transport="dynamo")
    assert info.value.status == 529
    assert info.value.message == "Overloaded"
    assert info.value.retry_after == 2.5


async def test_non_json_error_body() -> None:
    with pytest.raises(EngineHTTPError) as info:
        await run(ScriptedEngine(httpx.Response(502, content=b"<html>bad gateway</html>")))
    assert info.value.status == 502
    assert "bad gateway" in info.value.message


@pytest.mark.parametrize(
    "message",
    ["The decoder prompt (length 600) is longer than the maximum model length of 512. Make sure ...",
     "This model's maximum context length is 512 tokens. However, you requested 600 tokens."],
)  # fmt: skip
async def test_overlong_400_becomes_overlong_prompt_error(message: str) -> None:
    resp = httpx.Response(400, json={"error": {"message": message, "type": "BadRequestError", "code": 400}})
    with pytest.raises(OverlongPromptError) as info:
        await run(ScriptedEngine(resp))
    assert info.value.prompt_len == 3
    assert info.value.max_prompt_len == 512
    assert info.value.detail == message
