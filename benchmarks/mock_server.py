"""Group 4: the mock vLLM server against the floor (a minimal aiohttp handler returning pre-encoded bytes).

Both servers run in their own subprocess; the floor serves the very bytes the mock answered for the same request
(captured once). The load comes from this process through a raw aiohttp session (no parsing), so the client side
is identical for both.

- **Small responses**: closed loop at concurrency 64, a fixed time per server per round; requests/second.
- **Large body**: a 32,768-token completion with ``logprobs=1`` and routing ``uint8[32768, 48, 8]`` (the mock with
  ``--moe-layers 48 --moe-top-k 8``); time from sending the request to having read the whole body, one request at
  a time, servers alternating.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from benchmarks import e2e, servers
from benchmarks.harness import Section, Target, fmt_bytes, fmt_seconds, md_table

GEN = "/inference/v1/generate"
HEADERS = {"Content-Type": "application/json"}


def request_body(prompt_len: int, max_tokens: int) -> bytes:
    sp = {"max_tokens": max_tokens, "temperature": 1.0, "seed": 7, "ignore_eos": True, "logprobs": 1,
          "skip_special_tokens": False}  # fmt: skip
    return orjson.dumps({"model": e2e.MODEL, "token_ids": e2e.prompt(prompt_len), "sampling_params": sp})


async def fetch(url: str, body: bytes) -> bytes:
    async with aiohttp.ClientSession() as s, s.post(url + GEN, data=body, headers=HEADERS) as resp:
        data = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{url} answered {resp.status}: {data[:300]!r}")
        return data


async def throughput(urls: dict[str, str], body: bytes, *, rounds: int, duration: float) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in urls}
    sessions = {name: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) for name in urls}

    async def post(name: str) -> bool:
        async with sessions[name].post(urls[name] + GEN, data=body, headers=HEADERS) as resp:
            await resp.read()
            return resp.status == 200

    try:
        names = list(urls)
        for name in names:
            await e2e.closed_loop(lambda n=name: post(n), 64, 0.3)  # type: ignore[misc]
        for r in range(rounds):
            for j in range(len(names)):
                name = names[(j + r) % len(names)]
                ok, errors, wall, _ = await e2e.closed_loop(lambda n=name: post(n), 64, duration)  # type: ignore[misc]
                if errors:
                    raise RuntimeError(f"{name}: {errors} failed requests")
                out[name].append(ok / wall)
    finally:
        for s in sessions.values():
            await s.close()
    return out


async def serve_times(urls: dict[str, str], body: bytes, *, rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in urls}
    names = list(urls)
    async with aiohttp.ClientSession() as session:

        async def once(name: str) -> float:
            t0 = time.perf_counter()
            async with session.post(urls[name] + GEN, data=body, headers=HEADERS) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{name} answered {resp.status}")
            return time.perf_counter() - t0

        for name in names:
            await once(name)  # warm-up
        for r in range(rounds):
            for j in range(len(names)):
                name = names[(j + r) % len(names)]
                out[name].append(await once(name))
    return out


async def _load(url: str, body: bytes, requests: int, conc: int) -> None:
    async with aiohttp.ClientSession() as session:
        sem = asyncio.Semaphore(conc)

        async def one() -> None:
            async with sem, session.post(url + GEN, data=body, headers=HEADERS) as resp:
                await resp.read()

        await asyncio.gather(*(one() for _ in range(requests)))


def mock_profile(options: list[str], body: bytes, requests: int, conc: int, top: int = 14) -> str:
    """cProfile of the mock subprocess serving ``requests`` requests (top functions by own time)."""
    with tempfile.TemporaryDirectory(prefix="renderers-bench-prof-") as tmp:
        out = Path(tmp) / "mock.prof"
        proc = servers.ServerProcess(
            ["-m", "benchmarks.profiled_mock", str(out), "vllm", "--port", "0", *options], name="mock (profiled)"
        )
        with proc:
            asyncio.run(_load(proc.url, body, requests, conc))
        script = "import pstats,sys; s=pstats.Stats(sys.argv[1]); s.sort_stats('tottime').print_stats(int(sys.argv[2]))"
        text = subprocess.run(
            [sys.executable, "-c", script, str(out), str(top)], capture_output=True, text=True, check=False
        ).stdout
    lines = [ln.rstrip() for ln in text.splitlines()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    body_text = "\n".join(ln.replace(str(servers.ROOT) + "/", "") for ln in lines[start:] if ln.strip())
    return f"```text\n{body_text}\n```"


def _pair(
    kind_opts: list[str], body: bytes, tmp: Path, tag: str
) -> tuple[servers.ServerProcess, servers.ServerProcess]:
    mock = servers.mock("vllm", *kind_opts).start()
    try:
        resp = asyncio.run(fetch(mock.url, body))
        file = tmp / f"{tag}.json"
        file.write_bytes(resp)
        floor = servers.floor(file, GEN).start()
    except BaseException:
        mock.stop()
        raise
    return mock, floor


def run(*, quick: bool) -> Section:
    sec = Section("4. Mock server: throughput for small responses, time to serve the large body")
    sec.blocks.append(__doc__.split("\n\n", 1)[1].strip() if __doc__ else "")
    rounds, duration = (2, 0.3) if quick else (5, 1.0)
    tokens = 4096 if quick else 32768
    small_opts = ["--moe-layers", "0"]  # a dense small response (the mocks are MoE by default)
    big_opts = ["--moe-layers", "48", "--moe-top-k", "8", "--max-model-len", str(tokens + 8)]
    small_body = request_body(e2e.PROMPT_LEN, 16)
    big_body = request_body(1, tokens)
    panel: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="renderers-bench-") as tmpdir:
        tmp = Path(tmpdir)
        mock, floor = _pair(small_opts, small_body, tmp, "small")
        try:
            size_small = (tmp / "small.json").stat().st_size
            rps = asyncio.run(
                throughput({"mock": mock.url, "floor": floor.url}, small_body, rounds=rounds, duration=duration)
            )
        finally:
            mock.stop()
            floor.stop()
        mock, floor = _pair(big_opts, big_body, tmp, "big")
        try:
            size_big = (tmp / "big.json").stat().st_size
            m0, f0 = mock.cpu_seconds(), floor.cpu_seconds()
            times = asyncio.run(serve_times({"mock": mock.url, "floor": floor.url}, big_body, rounds=rounds))
            mock_cpu = (mock.cpu_seconds() - m0) / (rounds + 1)
            floor_cpu = (floor.cpu_seconds() - f0) / (rounds + 1)
        finally:
            mock.stop()
            floor.stop()
    rows = [
        [
            f"small ({fmt_bytes(size_small)} response), c64",
            f"{statistics.median(rps['mock']):,.0f} req/s",
            f"{statistics.median(rps['floor']):,.0f} req/s",
            f"{statistics.median(rps['mock']) / statistics.median(rps['floor']):.2f}",
            f"{min(rps['mock']):,.0f}–{max(rps['mock']):,.0f} / {min(rps['floor']):,.0f}–{max(rps['floor']):,.0f}",
        ],
        [
            f"large ({fmt_bytes(size_big)}, {size_big:,} bytes), c1",
            fmt_seconds(statistics.median(times["mock"])),
            fmt_seconds(statistics.median(times["floor"])),
            f"{statistics.median(times['mock']) / statistics.median(times['floor']):.2f}",
            f"server CPU per response: mock {fmt_seconds(mock_cpu)}, floor {fmt_seconds(floor_cpu)}",
        ],
    ]
    sec.blocks.append(md_table(["workload", "mock (median)", "floor (median)", "mock / floor", "spread / notes"],
                               rows, "lrrrl"))  # fmt: skip
    tput = statistics.median(rps["mock"]) / statistics.median(rps["floor"])
    slow = statistics.median(times["mock"]) / statistics.median(times["floor"])
    t1 = Target("4", "small responses: mock throughput / floor", tput, 0.5, "ge")
    t2 = Target("4", f"large body ({fmt_bytes(size_big)}): mock time to serve / floor", slow, 2.0, "le")
    sec.targets += [t1, t2]
    panel["small: mock req/s"] = statistics.median(rps["mock"])
    panel["small: floor req/s"] = statistics.median(rps["floor"])
    sec.plot["mock server throughput (req/s, c64, small)"] = panel
    sec.plot["time to serve the large body (ms)"] = {
        "mock": statistics.median(times["mock"]) * 1e3,
        "floor": statistics.median(times["floor"]) * 1e3,
    }
    if not t1.holds:
        sec.blocks.append(
            "Profile of the mock serving 1,000 small requests at concurrency 64 (target missed):\n\n"
            + mock_profile(small_opts, small_body, 1000, 64)
        )
    if not t2.holds:
        sec.blocks.append(
            "Profile of the mock serving 2 large bodies (target missed):\n\n" + mock_profile(big_opts, big_body, 2, 1)
        )
    return sec
