"""Group 3: end-to-end ``generate(prompt_ids=...)`` against the mock vLLM over loopback, concurrency 1 and 64.

Clients, all in this process and all against one mock in a subprocess (so only client CPU is counted):

- **EngineClient**: ``generate(client=EngineClient(url), ...)`` (this project's aiohttp client);
- **httpx.AsyncClient**: ``generate(client=httpx.AsyncClient(...), ...)`` through the same ``generate()``;
- **raw aiohttp post (floor)**: ``session.post(url, data=<the same pre-built body bytes>)`` + ``await resp.read()``
  + ``orjson.loads`` of the body: no request building and the unvalidated minimum of parsing.

Like for like: every client uses the same renderer, whose ``parse_response`` returns empty content without
decoding (``ParseFreeRenderer``), so the tokenizer decode that ``generate()`` normally runs is in no client's
CPU and the EngineClient / floor ratio measures the client's own overhead (body building, validated parse,
routing/logprob checks) over a bare post + JSON decode.

Each configuration runs closed-loop (``c`` workers, each sending its next request when the previous one ends) for a
fixed time; configurations rotate within each round. Client CPU per request is the ``time.process_time()`` delta
of this process divided by the completed requests; server CPU per request (psutil, informational) is the mock's.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import orjson

from benchmarks import servers
from benchmarks.harness import Section, Target, md_table, profile_text
from mockservers.config import BUILTIN_TOKENIZER
from mockservers.tokenizer import load_tokenizer as load_mock_tokenizer
from renderers.client import EngineClient, generate
from renderers.client._call import GenerateCall
from renderers.client._transports import TRANSPORTS
from renderers.factory import create_renderer
from renderers.types import ParsedResponse

MODEL = "tiny-qwen3"
PROMPT_LEN = 256
MAX_TOKENS = 64


@dataclass
class Stats:
    requests: list[int] = field(default_factory=list)
    errors: int = 0
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)

    def per_request(self, series: list[float]) -> list[float]:
        return [s / n for s, n in zip(series, self.requests, strict=True) if n]

    @property
    def rps(self) -> float:
        return statistics.median(n / w for n, w in zip(self.requests, self.wall, strict=True))

    @property
    def cpu_us(self) -> float:
        return statistics.median(self.per_request(self.cpu)) * 1e6

    @property
    def server_cpu_us(self) -> float:
        return statistics.median(self.per_request(self.server_cpu)) * 1e6


async def closed_loop(call: Callable[[], Awaitable[bool]], conc: int, duration: float) -> tuple[int, int, float, float]:
    """``(ok, errors, wall s, client CPU s)`` of ``conc`` workers calling ``call`` until ``duration`` has passed."""
    ok = errors = 0
    stop_at = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal ok, errors
        while time.perf_counter() < stop_at:
            try:
                good = await call()
            except Exception:
                good = False
            if good:
                ok += 1
            else:
                errors += 1

    c0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    return ok, errors, time.perf_counter() - t0, time.process_time() - c0


class ParseFreeRenderer:
    """The built-in tokenizer's renderer with a ``parse_response`` that decodes nothing (group 3 measures transport
    and parse overhead; the decode is the renderer's cost, the same for every client)."""

    def __init__(self) -> None:
        self._inner = create_renderer(BUILTIN_TOKENIZER)
        self.supports_tools = False

    def get_stop_token_ids(self) -> list[int]:
        return list(self._inner.get_stop_token_ids())

    def parse_response(self, token_ids: Any, *, tools: Any = None) -> ParsedResponse:
        return ParsedResponse(content="")


def prompt(n: int = PROMPT_LEN, seed: int = 3) -> list[int]:
    ordinary = load_mock_tokenizer(str(BUILTIN_TOKENIZER)).ordinary_ids
    import random

    rng = random.Random(seed)
    return [rng.choice(ordinary) for _ in range(n)]


async def _run(url: str, server: servers.ServerProcess, *, quick: bool) -> tuple[dict[tuple[str, int], Stats], str]:
    renderer = ParseFreeRenderer()
    ids = prompt()
    sp = {"max_tokens": MAX_TOKENS, "temperature": 1.0, "seed": 7, "ignore_eos": True}
    # The exact bytes generate() sends for this request (the floor posts them as they are).
    call = GenerateCall.from_arguments(model=MODEL, sampling_params=sp)
    body = TRANSPORTS["vllm"].build_body(call.wire_request(ids, None, list(renderer.get_stop_token_ids())))
    gen_url = url + "/inference/v1/generate"

    engine = EngineClient(url, max_connections=64, max_in_flight=64)  # c64 runs 64 calls at once, as the others
    hx = httpx.AsyncClient(
        base_url=url, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64), timeout=120.0
    )
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
    headers = {"Content-Type": "application/json"}

    async def via(client: Any) -> bool:
        res = await generate(client=client, renderer=renderer, messages=[], model=MODEL, prompt_ids=ids,
                             sampling_params=sp)  # fmt: skip
        return len(res["completion_ids"]) == MAX_TOKENS and len(res["completion_logprobs"]) == MAX_TOKENS

    async def raw_post() -> bool:
        async with session.post(gen_url, data=body, headers=headers) as resp:
            data = await resp.read()
            return resp.status == 200 and isinstance(orjson.loads(data), dict)

    clients: dict[str, Callable[[], Awaitable[bool]]] = {
        "EngineClient": lambda: via(engine),
        "httpx.AsyncClient": lambda: via(hx),
        "raw aiohttp post (floor)": raw_post,
    }
    # The reference completion (sequential, EngineClient) must equal httpx's: same engine output either way.
    a = await generate(client=engine, renderer=renderer, messages=[], model=MODEL, prompt_ids=ids, sampling_params=sp)
    b = await generate(client=hx, renderer=renderer, messages=[], model=MODEL, prompt_ids=ids, sampling_params=sp)
    same = a["completion_ids"] == b["completion_ids"] and a["completion_logprobs"] == b["completion_logprobs"]
    check = f"EngineClient and httpx returned the same {MAX_TOKENS} ids and logprobs: {same}."
    if not same:
        raise AssertionError(check)

    configs = [(name, conc) for conc in (1, 64) for name in clients]
    stats = {cfg: Stats() for cfg in configs}
    rounds, duration = (2, 0.3) if quick else (5, 1.0)
    try:
        for name, conc in configs:  # warm-up: connections, caches, max_prompt_len discovery
            await closed_loop(clients[name], conc, 0.2)
        for r in range(rounds):
            for j in range(len(configs)):
                name, conc = configs[(j + r) % len(configs)]
                s0 = server.cpu_seconds()
                ok, errors, wall, cpu = await closed_loop(clients[name], conc, duration)
                st = stats[(name, conc)]
                st.requests.append(ok)
                st.errors += errors
                st.wall.append(wall)
                st.cpu.append(cpu)
                st.server_cpu.append(server.cpu_seconds() - s0)
    finally:
        await engine.aclose()
        await hx.aclose()
        await session.close()
    return stats, check


def profile_generate(url: str, calls: int) -> str:
    """cProfile of ``calls`` sequential ``generate()`` calls through EngineClient (the event loop included)."""
    renderer = ParseFreeRenderer()
    ids = prompt()
    sp = {"max_tokens": MAX_TOKENS, "temperature": 1.0, "seed": 7, "ignore_eos": True}

    async def go() -> None:
        async with EngineClient(url) as client:
            await generate(client=client, renderer=renderer, messages=[], model=MODEL, prompt_ids=ids,
                           sampling_params=sp)  # fmt: skip
            for _ in range(calls):
                await generate(client=client, renderer=renderer, messages=[], model=MODEL, prompt_ids=ids,
                               sampling_params=sp)  # fmt: skip

    return profile_text(lambda: asyncio.run(go()), calls=1, top=16)


def run(*, quick: bool) -> Section:
    sec = Section("3. End-to-end generate() over loopback: EngineClient vs httpx.AsyncClient vs a raw aiohttp post")
    sec.blocks.append(__doc__.split("\n\n", 1)[1].strip() if __doc__ else "")
    with servers.mock("vllm", "--moe-layers", "0") as server:  # dense, as measured so far (MoE is the default)
        stats, check = asyncio.run(_run(server.url, server, quick=quick))
        prof = profile_generate(server.url, 100 if quick else 400)
    sec.blocks.append(
        f"Request: {PROMPT_LEN} prompt ids, `max_tokens={MAX_TOKENS}`, `ignore_eos`, seeded sampling, `logprobs=1` "
        f"(mock vLLM, prime-rl profile, dense: `--moe-layers 0`). {check}"
    )
    rows = []
    panel: dict[str, float] = {}
    for (name, conc), st in stats.items():
        rows.append(
            [
                f"`{name}`",
                str(conc),
                f"{st.rps:,.0f}",
                f"{st.cpu_us:,.0f}",
                f"{min(st.per_request(st.cpu)) * 1e6:,.0f}–{max(st.per_request(st.cpu)) * 1e6:,.0f}",
                f"{st.server_cpu_us:,.0f}",
                f"{sum(st.requests):,}",
                str(st.errors),
            ]
        )
        panel[f"{name} c{conc}"] = st.cpu_us
    header = ["client", "conc", "req/s (median)", "client CPU µs/req (median)", "(min–max)", "mock CPU µs/req",
              "requests", "errors"]  # fmt: skip
    sec.blocks.append(md_table(header, rows, "lrrrrrrr"))
    for conc in (1, 64):
        eng, hx, floor = (stats[(n, conc)] for n in ("EngineClient", "httpx.AsyncClient", "raw aiohttp post (floor)"))
        ratio = eng.cpu_us / floor.cpu_us
        gain = hx.cpu_us / eng.cpu_us
        if conc == 64:
            target = Target("3", "c64: EngineClient CPU/req / raw aiohttp post", ratio, 1.3, "le")
            sec.targets.append(target)
            if not target.holds:
                sec.blocks.append(
                    "Profile of sequential `generate()` calls through EngineClient (target missed; cProfile of "
                    f"the whole client process, top functions by own time):\n\n{prof}"
                )
            sec.targets.append(Target("3", "c64: httpx CPU/req / EngineClient CPU/req", gain, 10.0, "ge"))
            errs = sum(s.errors for s in stats.values())
            sec.targets.append(Target("3", "errors in all configurations", errs, 0, "le", unit="errors"))
        else:
            sec.blocks.append(
                f"c1 (no target): EngineClient / raw aiohttp = {ratio:.2f}×, httpx / EngineClient = {gain:.2f}×."
            )
    sec.plot["client CPU per request (µs, median)"] = panel
    return sec
