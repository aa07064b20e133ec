"""Faults survived: each fault gives its documented typed error within the configured timeout, for both client
kinds (EngineClient on aiohttp, httpx.AsyncClient) and both transports where the mock scripts the fault; no
connection is left open afterwards. With ``RENDERERS_WRITE_RELIABILITY_DOC=1`` the measured table is written into
``docs/reliability.md`` (between the ``fault-table`` markers)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from mockservers.server import MockServer
from renderers.client import EngineClient, generate
from renderers.errors import (
    EngineConnectionError,
    EngineHTTPError,
    EngineTimeoutError,
    GenerateError,
    MalformedResponseError,
)
from renderers.types import Message
from tests.helpers.fake_renderer import FakeRenderer
from tests.reliability.scripted import ScriptedServer, Step, refused_url

TIMEOUT = 1.0  # the configured per-request timeout for every row
MESSAGES: list[Message] = [{"role": "user", "content": "hi"}]
DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


@dataclass(frozen=True)
class Fault:
    name: str
    error: type[GenerateError]
    mock: str | None = None  # x-mock-fault header value, or None for the scripted server
    step: Step | None = None
    status: int | None = None
    retry_after: float | None = None


FAULTS = [
    Fault("connection refused", EngineConnectionError),
    Fault("reset before any response", EngineConnectionError, mock="reset"),
    Fault("reset mid-body", EngineConnectionError, step=Step("reset_mid_body")),
    Fault("hang, no headers", EngineTimeoutError, mock="hang"),
    Fault("hang after the headers", EngineTimeoutError, step=Step("hang_after_headers")),
    Fault("429 without Retry-After", EngineHTTPError, mock="status=429", status=429),
    Fault(
        "429 with Retry-After: 7",
        EngineHTTPError,
        step=Step("status", 429, retry_after="7"),
        status=429,
        retry_after=7.0,
    ),
    Fault("503 without Retry-After", EngineHTTPError, mock="status=503", status=503),
    Fault(
        "503 with Retry-After: 2",
        EngineHTTPError,
        step=Step("status", 503, retry_after="2"),
        status=503,
        retry_after=2.0,
    ),
    Fault("529 without Retry-After", EngineHTTPError, mock="status=529", status=529),
    Fault(
        "529 with Retry-After: 1",
        EngineHTTPError,
        step=Step("status", 529, retry_after="1"),
        status=529,
        retry_after=1.0,
    ),
    Fault("500", EngineHTTPError, mock="status=500", status=500),
    Fault("502", EngineHTTPError, mock="status=502", status=502),
    Fault("truncated body", EngineConnectionError, mock="truncate"),
    Fault("invalid JSON (200)", MalformedResponseError, mock="invalid_json"),
    Fault("ids missing (200)", GenerateError, mock="completion_ids=missing"),
    Fault("logprobs one short (200)", GenerateError, mock="logprobs=mismatch"),
]
RESULTS: dict[tuple[str, str, str], tuple[str, float]] = {}


@pytest.fixture(scope="module", autouse=True)
def _write_doc() -> Iterator[None]:
    yield
    if os.environ.get("RENDERERS_WRITE_RELIABILITY_DOC") == "1" and RESULTS:
        write_table()


def client_sockets(port: int) -> list[Any]:
    """This process's TCP sockets connected to ``port`` (the client side of every connection to the server)."""
    return [c for c in psutil.Process().net_connections("tcp") if c.raddr and c.raddr.port == port
            and c.status not in (psutil.CONN_TIME_WAIT, psutil.CONN_CLOSE)]  # fmt: skip


async def _run(fault: Fault, kind: str, transport: str, url: str, port: int | None) -> tuple[str, float]:
    client: Any = EngineClient(url) if kind == "aiohttp" else httpx.AsyncClient(base_url=url)
    headers = {"x-mock-fault": fault.mock} if fault.mock else None
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        with pytest.raises(fault.error) as info:
            await generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="tiny-qwen3",
                           transport=transport, max_prompt_len=1000, timeout=TIMEOUT,
                           extra_headers=headers)  # fmt: skip
        elapsed = loop.time() - t0
    finally:
        await client.aclose()
    exc = info.value
    if fault.status is not None:
        assert isinstance(exc, EngineHTTPError)
        assert exc.status == fault.status
        assert exc.retry_after == fault.retry_after
    assert elapsed < TIMEOUT + 1.0, f"{fault.name}: {elapsed:.2f} s"
    if port is not None:
        for _ in range(50):  # the peer's FIN may need a moment to be processed
            if not client_sockets(port):
                break
            await asyncio.sleep(0.02)
        assert not client_sockets(port), f"{fault.name}: connections left open {client_sockets(port)}"
    what = type(exc).__name__ + (f" {exc.status}" if isinstance(exc, EngineHTTPError) else "")
    if isinstance(exc, EngineHTTPError) and exc.retry_after is not None:
        what += f", retry_after={exc.retry_after:g}"
    return what, elapsed


@pytest.fixture(scope="module")
def mocks() -> Iterator[dict[str, MockServer]]:
    servers = {k: MockServer(k, admin=False, hang_max_s=10.0).start() for k in ("vllm", "dynamo")}
    yield servers
    for s in servers.values():
        s.stop()


@pytest.mark.parametrize("kind", ["aiohttp", "httpx"])
@pytest.mark.parametrize("transport", ["vllm", "dynamo"])
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_fault(fault: Fault, transport: str, kind: str, mocks: dict[str, MockServer]) -> None:
    if fault.mock is not None:
        server = mocks[transport]
        outcome = await _run(fault, kind, transport, server.url, server.port)
    elif fault.step is not None:
        async with ScriptedServer([fault.step], hang_max_s=10) as srv:
            outcome = await _run(fault, kind, transport, srv.url, srv.port)
    else:
        outcome = await _run(fault, kind, transport, refused_url(), None)
    RESULTS[(fault.name, transport, kind)] = outcome


def write_table() -> None:
    lines = [
        f"| fault | client outcome | time to outcome (timeout {TIMEOUT:g} s) aiohttp / httpx |",
        "|---|---|---|",
    ]
    for fault in FAULTS:
        cells = [RESULTS.get((fault.name, t, k)) for t in ("vllm", "dynamo") for k in ("aiohttp", "httpx")]
        got = [c for c in cells if c is not None]
        if not got:
            continue
        outcomes = sorted({c[0] for c in got})
        times = {k: max(c[1] for (n, _, kk), c in RESULTS.items() if n == fault.name and kk == k)
                 for k in ("aiohttp", "httpx")}  # fmt: skip
        lines.append(
            f"| {fault.name} | `{'` / `'.join(outcomes)}` | {times['aiohttp']:.3f} s / {times['httpx']:.3f} s |"
        )
    table = "\n".join(lines)
    text = DOC.read_text()
    start, end = "<!-- fault-table:start -->", "<!-- fault-table:end -->"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    stamp = time.strftime("%Y-%m-%d")
    DOC.write_text(
        f"{head}{start}\n<!-- measured {stamp} by tests/reliability/test_fault_table.py -->\n{table}\n{end}{tail}"
    )
