"""HTTP plumbing shared by both mocks: state, fault injection, the journal, body limits, admin routes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from mockservers.config import MockConfig
from mockservers.engine import Engine
from mockservers.faults import FAULT_HEADER, NO_FAULT, FaultError, FaultSpec, FaultState
from mockservers.journal import Journal
from mockservers.tokenizer import MockTokenizer, load_tokenizer

ErrorFactory = Callable[[int, str, str | None, str | None], web.Response]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

FAULT_KEY = web.RequestKey("mockservers.fault", FaultSpec)
BODY_KEY = web.RequestKey("mockservers.body", object)


@dataclass
class MockState:
    """Everything a running mock holds. One per application."""

    kind: str
    config: MockConfig
    error: ErrorFactory
    tokenizer: MockTokenizer = field(init=False)
    engine: Engine = field(init=False)
    faults: FaultState = field(init=False)
    journal: Journal = field(init=False)
    max_model_len: int = field(init=False)
    created: int = field(init=False)
    counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tokenizer = load_tokenizer(str(self.config.tokenizer))
        self.engine = Engine(
            self.tokenizer.ordinary_ids, self.tokenizer.eos_id, self.config.eos_period, self.tokenizer.vocab_size
        )
        self.faults = FaultState(self.config.faults)
        self.journal = Journal(self.config.journal_size)
        self.max_model_len = self.config.max_model_len or self.tokenizer.model_max_length
        self.created = int(time.time())

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


STATE = web.AppKey("mockservers.state", MockState)


def json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def fault_of(request: web.Request) -> FaultSpec:
    spec = request.get(FAULT_KEY)
    return spec if isinstance(spec, FaultSpec) else FaultSpec()


async def read_body(request: web.Request) -> bytes | web.Response:
    """The raw body, or a 413 response in the server's envelope when it is over the limit."""
    state = request.app[STATE]
    limit = state.config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _too_large(state, request.content_length)
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _too_large(state, None)


def _too_large(state: MockState, size: int | None) -> web.Response:
    limit = state.config.max_body_bytes
    what = f"of {size} bytes " if size is not None else ""
    return state.error(413, f"Request body {what}exceeds the limit of {limit} bytes", None, None)


async def simulate_latency(config: MockConfig, n_tokens: int) -> None:
    delay = (config.ttft_s if n_tokens else 0.0) + config.per_token_s * max(n_tokens - 1, 0)
    if delay > 0:
        await asyncio.sleep(delay)


def _transport_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def reset_connection(request: web.Request) -> None:
    """Close the client's connection with a TCP RST (SO_LINGER 0), no HTTP response."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _hang(request: web.Request, limit: float) -> None:
    deadline = time.monotonic() + limit
    while not _transport_gone(request) and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the socket
        await asyncio.sleep(0.05)


def _journal_body(request: web.Request) -> Any:
    """The request body as the journal keeps it: the raw bytes (decoded when the journal is read, see
    ``journal.decode_body``), so a busy server holds no parsed bodies for the cyclic GC to walk."""
    raw = getattr(request, "_read_bytes", None)
    if raw:
        return raw
    return request.get(BODY_KEY)


class _Dropped(Exception):
    """The fault closed the connection: there is no response to send."""


def _fault_status_response(state: MockState, spec: FaultSpec) -> web.Response:
    assert spec.status is not None
    if spec.body is None:
        return state.error(spec.status, f"mock fault: HTTP {spec.status}", None, None)
    if isinstance(spec.body, str | bytes):
        text = spec.body.encode() if isinstance(spec.body, str) else spec.body
        return web.Response(body=text, status=spec.status, content_type="application/json")
    return json_response(orjson.dumps(spec.body), spec.status)


async def _truncated(request: web.Request, resp: web.Response) -> web.StreamResponse:
    body = resp.body if isinstance(resp.body, bytes) else b""
    out = web.StreamResponse(status=resp.status, headers={"Content-Type": resp.content_type})
    out.content_length = len(body)
    await out.prepare(request)
    await out.write(body[: len(body) // 2])
    reset_connection(request)
    raise _Dropped


@web.middleware
async def mock_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    path = request.path
    if path.startswith("/_mock/"):
        try:
            return await handler(request)
        except web.HTTPException as exc:  # admin routes off, or a wrong method: still the server's envelope
            return _route_error(state, request, exc)
    counters = state.counters
    counters["requests"] = counters.get("requests", 0) + 1
    now = time.time()
    headers = request.headers
    header = headers.get(FAULT_HEADER)
    if header is None and state.faults.quiet:
        # No fault anywhere (the normal case): no decision to make, nothing to apply.
        request[FAULT_KEY] = NO_FAULT
        status: Any = None
        try:
            try:
                result = await handler(request)
            except web.HTTPException as exc:
                result = _route_error(state, request, exc)
            status = result.status
            return result
        finally:
            state.journal.add(
                now, request.method, path, request.query_string, headers, None, status, _journal_body(request)
            )
    fault = None
    status = None
    try:
        try:
            decision = state.faults.decide(header)
        except FaultError as exc:
            resp = state.error(400, f"invalid {FAULT_HEADER} header: {exc}", None, None)
            status = resp.status
            return resp
        spec = decision.active
        request[FAULT_KEY] = spec
        fault = decision.to_journal()
        if spec.breaks_transport and request.body_exists:
            # Take the whole request in before misbehaving, as a real server would have.
            body = await read_body(request)
            if isinstance(body, web.Response):
                status = body.status
                return body
        if spec.delay_s:
            await asyncio.sleep(spec.delay_s)
        if spec.hang:
            await _hang(request, state.config.hang_max_s)
            status = "hang"
            reset_connection(request)
            raise _Dropped
        if spec.reset:
            status = "reset"
            reset_connection(request)
            raise _Dropped
        if spec.status is not None:
            resp = _fault_status_response(state, spec)
            status = resp.status
            return resp
        try:
            result = await handler(request)
        except web.HTTPException as exc:
            result = _route_error(state, request, exc)
        status = result.status
        if isinstance(result, web.Response) and not result.prepared:
            if spec.invalid_json:
                body = result.body if isinstance(result.body, bytes) else b"{}"
                result = web.Response(
                    body=b'{"mock": "invalid json", ' + body[: max(len(body) // 2, 1)],
                    status=200,
                    content_type="application/json",
                )
                status = 200
            elif spec.truncate:
                status = "truncated"
                return await _truncated(request, result)
        return result
    except _Dropped:
        # Nothing can be sent; aiohttp is told the request is over without writing a response.
        raise asyncio.CancelledError from None
    finally:
        state.journal.add(
            now, request.method, path, request.query_string, headers, fault, status, _journal_body(request)
        )


def _route_error(state: MockState, request: web.Request, exc: web.HTTPException) -> web.Response:
    if state.kind == "vllm":
        detail = "Not Found" if exc.status == 404 else exc.reason
        return json_response(orjson.dumps({"detail": detail}), exc.status)
    return state.error(exc.status, f"Route not found: {request.method} {request.path}", None, None)


# ---- admin and journal routes ----------------------------------------------------------------------
async def get_journal(request: web.Request) -> web.Response:
    return json_response(orjson.dumps(request.app[STATE].journal.entries()))


async def delete_journal(request: web.Request) -> web.Response:
    request.app[STATE].journal.clear()
    return json_response(b'{"cleared":true}')


async def get_faults(request: web.Request) -> web.Response:
    return json_response(orjson.dumps(request.app[STATE].faults.current.to_dict()))


async def post_faults(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        data = orjson.loads(await request.read() or b"{}")
        if not isinstance(data, dict):
            raise FaultError("the body must be a JSON object")
        spec = FaultSpec.from_mapping(data)
    except (orjson.JSONDecodeError, FaultError) as exc:
        return state.error(400, f"invalid fault: {exc}", None, None)
    state.faults.set(spec)
    return json_response(orjson.dumps(spec.to_dict()))


async def delete_faults(request: web.Request) -> web.Response:
    request.app[STATE].faults.clear()
    return json_response(b"{}")


def make_app(kind: str, config: MockConfig, error: ErrorFactory, routes: list[web.AbstractRouteDef]) -> web.Application:
    app = web.Application(middlewares=[mock_middleware], client_max_size=config.max_body_bytes)
    app[STATE] = MockState(kind, config, error)
    app.router.add_routes(routes)
    app.router.add_routes([web.get("/_mock/requests", get_journal), web.delete("/_mock/requests", delete_journal)])
    if config.admin:
        app.router.add_routes(
            [
                web.get("/_mock/faults", get_faults),
                web.post("/_mock/faults", post_faults),
                web.delete("/_mock/faults", delete_faults),
            ]
        )
    return app
