"""The application both mocks share: state, the fault middleware, the journal, body limits, admin routes, binding.

A server package (``mockservers.vllm``, ``mockservers.dynamo``) brings its routes and its error envelope; ``make_app``
wraps them with everything here. ``bind_site`` starts an application on a host and port (the CLI, ``MockServer`` and
the benchmarks' floor server use it); ``serve_until_signalled`` runs one from a command line until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiohttp import web

from mockservers.config import MockConfig
from mockservers.engine import Engine
from mockservers.faults import FAULT_HEADER, NO_FAULT, Dropped, FaultError, FaultSpec, FaultState, respond_with_fault
from mockservers.journal import Journal
from mockservers.tokenizer import MockTokenizer, load_tokenizer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ErrorFactory(Protocol):
    """A server's error envelope: ``error(status, message, type_=..., param=...)``."""

    def __call__(
        self, status: int, message: str, type_: str | None = None, param: str | None = None
    ) -> web.Response: ...


FAULT_KEY = web.RequestKey("mockservers.fault", FaultSpec)


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
    return spec if isinstance(spec, FaultSpec) else NO_FAULT


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
    return state.error(413, f"Request body {what}exceeds the limit of {limit} bytes")


async def simulate_latency(config: MockConfig, n_tokens: int) -> None:
    delay = (config.ttft_s if n_tokens else 0.0) + config.per_token_s * max(n_tokens - 1, 0)
    if delay > 0:
        await asyncio.sleep(delay)


def _journal_body(request: web.Request) -> bytes | None:
    """The request body as the journal keeps it: the raw bytes the route read (decoded when the journal is read, see
    ``journal.decode_body``), so a busy server holds no parsed bodies for the cyclic GC to walk; None when empty or
    not read."""
    raw: bytes | None = getattr(request, "_read_bytes", None)
    return raw or None


def _route_error(state: MockState, request: web.Request, exc: web.HTTPException) -> web.Response:
    if state.kind == "vllm":
        detail = "Not Found" if exc.status == 404 else exc.reason
        return json_response(orjson.dumps({"detail": detail}), exc.status)
    return state.error(exc.status, f"Route not found: {request.method} {request.path}")


@web.middleware
async def mock_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    path = request.path

    async def routed(req: web.Request) -> web.StreamResponse:
        try:
            return await handler(req)
        except web.HTTPException as exc:  # no route, a wrong method: still the server's envelope
            return _route_error(state, req, exc)

    if path.startswith("/_mock/"):
        return await routed(request)
    counters = state.counters
    counters["requests"] = counters.get("requests", 0) + 1
    now = time.time()
    headers = request.headers
    header = headers.get(FAULT_HEADER)
    fault = None
    status: Any = None
    try:
        if header is None and state.faults.quiet:
            # No fault anywhere (the normal case): no decision to make, nothing to apply (``fault_of`` gives
            # NO_FAULT for a request without one).
            result = await routed(request)
        else:
            try:
                decision = state.faults.decide(header)
            except FaultError as exc:
                result = state.error(400, f"invalid {FAULT_HEADER} header: {exc}")
                status = result.status
                return result
            spec = decision.active
            request[FAULT_KEY] = spec
            fault = decision.to_journal()
            if spec.breaks_transport and request.body_exists:
                # Take the whole request in before misbehaving, as a real server would have.
                body = await read_body(request)
                if isinstance(body, web.Response):
                    status = body.status
                    return body
            result = await respond_with_fault(request, spec, routed, state.error, state.config.hang_max_s)
        status = result.status
        return result
    except Dropped as exc:
        status = exc.outcome
        # Nothing can be sent; aiohttp is told the request is over without writing a response.
        raise asyncio.CancelledError from None
    finally:
        state.journal.add(
            now, request.method, path, request.query_string, headers, fault, status, _journal_body(request)
        )


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
    raw = await request.read() or b"{}"
    try:
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise FaultError(f"the body must be a JSON object of fault fields, got {raw[:200]!r}")
        spec = FaultSpec.from_mapping(data)
    except orjson.JSONDecodeError as exc:
        return state.error(400, f"invalid fault: the body is not JSON ({exc}): {raw[:200]!r}")
    except FaultError as exc:
        return state.error(400, f"invalid fault: {exc}")
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


async def bind_site(app: web.Application, config: MockConfig, **runner_options: Any) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``config.host``/``config.port``; return the runner (``cleanup()`` stops it) and the bound
    port (the chosen one when ``port`` is 0)."""
    access_log = logging.getLogger("aiohttp.access") if config.access_log else None
    runner = web.AppRunner(app, handle_signals=False, access_log=access_log, **runner_options)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    return runner, (sockets[0].getsockname()[1] if sockets else config.port)


async def serve_until_signalled(runner: web.AppRunner, ready: str) -> None:
    """Print ``ready``, serve until the first SIGINT or SIGTERM, then stop ``runner``. The signal handlers are in
    place before ``ready`` is printed, so a signal sent by whoever waits for that line always stops the server."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(ready, flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
