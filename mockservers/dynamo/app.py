"""Mock NVIDIA Dynamo 1.6.1 frontend: ``POST /v1/chat/completions`` with ``nvext``, ``POST /v1/completions``,
``GET /v1/models``, ``/health``, ``/live``, ``/metrics``.

Request rules live in ``rules``, bodies in ``responses``; this module holds the routes. Validation is as strict as
1.6.1: unknown top-level keys give 400 ``Validation: Unsupported parameter(s): ...``
(unless ``lax_validation``), unknown ``nvext`` keys give serde's ``unknown field`` 400, errors use the flat body
``{"message", "type", "code"}``. The worker behind the frontend is chosen by ``dynamo_backend``: ``vllm`` (the real
``dynamo.vllm`` worker: ``engine_data``, logprobs), ``mocker`` (no logprobs, no ``engine_data``) or ``sample``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, NamedTuple

import orjson
from aiohttp import web

from mockservers.app import STATE, MockState, fault_of, json_response, make_app, read_body, simulate_latency
from mockservers.config import MockConfig
from mockservers.dynamo import rules
from mockservers.dynamo.responses import Answer, chat_body, chat_events, chat_logprobs, completion_body
from mockservers.dynamo.rules import worker_id
from mockservers.faults import FaultSpec, apply_content_fault
from mockservers.protocol import RequestError

_REASONS = {499: "Client Closed Request", 529: "Overloaded"}


def dynamo_error(status: int, message: str, type_: str | None = None, param: str | None = None) -> web.Response:
    """Dynamo's flat error body: ``type`` is the HTTP reason phrase."""
    return json_response(orjson.dumps(_envelope(status, message, type_)), status)


def _envelope(status: int, message: str, type_: str | None) -> dict[str, Any]:
    if type_ is None:
        try:
            type_ = _REASONS.get(status) or HTTPStatus(status).phrase
        except ValueError:
            type_ = "Error"
    return {"message": message, "type": type_, "code": status}


def _refused(exc: RequestError) -> web.Response:
    body = _envelope(exc.status, exc.message, exc.type)
    if exc.details is not None:
        body["details"] = exc.details
    return json_response(orjson.dumps(body), exc.status)


def _json_content_type(value: str) -> bool:
    """axum's ``Json`` test: ``application/json`` or ``application/<anything>+json``, any case, parameters allowed."""
    mime = value.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


async def _read_json_body(request: web.Request) -> bytes | web.Response:
    if not _json_content_type(request.headers.get("Content-Type", "")):
        return dynamo_error(415, "Expected request with Content-Type application/json", "Unsupported Media Type")
    return await read_body(request)


class _Accepted(NamedTuple):
    """An accepted request: the server state, the request body, the fault it runs under, and its answer."""

    state: MockState
    body: dict[str, Any]
    fault: FaultSpec
    answer: Answer


async def _accept(
    request: web.Request,
    parse: Callable[[bytes, MockState], rules.ParsedRequest],
    id_prefix: str,
    engine_logprobs: Callable[[Any], bool],
) -> _Accepted | web.Response:
    """Read and check the body with ``parse`` and generate its answer (id ``{id_prefix}-{uuid}``), or the
    response refusing it. ``engine_logprobs(body["logprobs"])``: whether the request asks for logprobs."""
    t0 = time.time()
    raw = await _read_json_body(request)
    if isinstance(raw, web.Response):
        return raw
    state = request.app[STATE]
    try:
        parsed = parse(raw, state)
    except RequestError as exc:
        return _refused(exc)
    fault, body = fault_of(request), parsed.body
    c = state.engine.generate(parsed.prompt, parsed.params)
    has_logprobs = state.config.dynamo_backend != "mocker"
    lp = None
    if body.get("logprobs") is True and has_logprobs:
        top = body.get("top_logprobs")
        as_ids = body.get("return_tokens_as_token_ids") is True
        holder = {"logprobs": chat_logprobs(state, c, 1 if top is None else int(top), as_ids)}
        apply_content_fault(fault, holder, logprobs_key="logprobs", source="chat")
        lp = holder["logprobs"]
    answer = Answer(
        prompt=parsed.prompt,
        completion=c,
        nvext=parsed.nvext,
        logprobs=lp,
        engine_logprobs=engine_logprobs(body.get("logprobs")) and has_logprobs,
        skip_special_tokens=body.get("skip_special_tokens") is not False,
        t0=t0,
        t_first=time.time(),
        rid=f"{id_prefix}-{uuid.uuid4()}",
        created=int(time.time()),
    )
    return _Accepted(state, body, fault, answer)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    accepted = await _accept(request, rules.parse_chat, "chatcmpl", lambda logprobs: logprobs is True)
    if isinstance(accepted, web.Response):
        return accepted
    state, body, fault, ans = accepted
    cfg = state.config
    if body.get("stream") is not True:
        await simulate_latency(cfg, len(ans.completion.token_ids))
        return json_response(chat_body(state, ans, fault))
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    out = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await out.prepare(request)
    n = len(ans.completion.token_ids)
    for i, event in chat_events(state, ans, fault, include_usage):
        if i < n:
            delay = cfg.ttft_s if i == 0 else cfg.per_token_s
            if delay > 0:
                await asyncio.sleep(delay)
        await out.write(event)
    await out.write_eof()
    return out


async def completions(request: web.Request) -> web.StreamResponse:
    """``/v1/completions`` (non-streaming): a string prompt or one list of token ids."""
    accepted = await _accept(request, rules.parse_completion, "cmpl", lambda logprobs: logprobs is not None)
    if isinstance(accepted, web.Response):
        return accepted
    state, body, fault, ans = accepted
    await simulate_latency(state.config, len(ans.completion.token_ids))
    n_lp = body.get("logprobs")
    return json_response(completion_body(state, ans, None if n_lp is None else int(n_lp), fault))


async def models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    card = {
        "id": state.config.model,
        "object": "model",
        "created": state.created,
        "owned_by": "nvidia",
        "context_window": state.max_model_len,
    }
    return json_response(orjson.dumps({"object": "list", "data": [card]}))


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    wid = worker_id(state)
    host, port = request.host.rsplit(":", 1) if ":" in request.host else (request.host, "0")
    instance = {
        "component": "backend",
        "endpoint": "generate",
        "namespace": "dynamo",
        "instance_id": wid,
        "transport": {"tcp": f"{host}:{port}/{wid:016x}/dynamo/backend/generate"},
        "device_type": "cpu",
        "request_plane_codec": "msgpack",
    }
    body = {"status": "healthy", "endpoints": ["dyn://dynamo.backend.generate"], "instances": [instance]}
    return json_response(orjson.dumps(body))


async def live(request: web.Request) -> web.Response:
    return json_response(b'{"status":"live","message":"Service is live"}')


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    lines = [
        "# HELP dynamo_frontend_requests_total Requests received by the mock frontend",
        "# TYPE dynamo_frontend_requests_total counter",
        f"dynamo_frontend_requests_total {state.counters.get('requests', 0)}",
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")


def create_app(config: MockConfig | None = None) -> web.Application:
    """The mock Dynamo frontend application."""
    return make_app(
        "dynamo",
        config or MockConfig(),
        dynamo_error,
        [
            web.post("/v1/chat/completions", chat_completions),
            web.post("/v1/completions", completions),
            web.get("/v1/models", models),
            web.get("/health", health),
            web.get("/live", live),
            web.get("/metrics", metrics),
        ],
    )
