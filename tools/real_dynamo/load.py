"""Load through real Dynamo 1.6.1: frontend + 2 mock-engine workers, N ``generate()`` calls, every result checked.

Usage::

    python tools/real_dynamo/load.py --python .nox/dynamo-runtime/bin/python \
        [--requests 10000] [--concurrency 256] [--kill-restart] [--migration-limit 3]

Runs with the project's Python (``renderers`` installed); ``--python`` is the interpreter with ``ai-dynamo``.
Each call is ``generate(transport="dynamo")`` of a distinct prompt (seeded, 8-64 ids, 16 tokens, MoE routing on);
its expected answer is computed here with the same engine (``mockservers.engine``), so every result is compared
id for id, logprob for logprob (exact) and row for row of the routing table. ``--kill-restart`` SIGKILLs worker 0
once a third of the calls are done and starts it again a second later; workers then stream one token every
``--per-token-s`` so calls are in flight when it dies.

Prints one JSON line: counts of equal results, wrong results (must be 0), typed errors by class and status,
lost calls (must be 0), migrations the frontend logged (streams recreated mid-generation, and requests re-sent after
a failed connection), elapsed seconds and calls per second.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from mockservers.config import BUILTIN_TOKENIZER
from mockservers.dynamo_stack import dynamo_stack
from mockservers.engine import Engine, SamplingParams
from mockservers.tokenizer import load_tokenizer
from renderers.client import EngineClient
from renderers.errors import EngineHTTPError, RenderersError
from renderers.testing.equivalence import run_case
from renderers.testing.strategies import Case

MODEL = "tiny-qwen3"
LAYERS, TOP_K, EXPERTS = 2, 2, 64
MAX_TOKENS = 16


def make_cases(n: int) -> list[Case]:
    rng = random.Random(1234)
    return [
        Case([rng.randrange(2301) for _ in range(rng.randint(8, 64))], {"max_tokens": MAX_TOKENS, "seed": i}, [2303])
        for i in range(n)
    ]


def expected(engine: Engine, case: Case) -> tuple[list[int], list[float], np.ndarray[Any, Any]]:
    sp = case.sampling_params
    c = engine.generate(case.prompt_ids, SamplingParams(max_tokens=sp["max_tokens"], seed=sp["seed"],
                                                        stop_token_ids=frozenset(case.stop_token_ids)))  # fmt: skip
    routed = engine.routed_experts([*case.prompt_ids, *c.token_ids], 0, LAYERS, TOP_K, EXPERTS)
    return c.token_ids, c.logprobs, routed


async def drive(url: str, cases: list[Case], concurrency: int, on_progress: Any) -> list[Any]:
    results: list[Any] = [None] * len(cases)
    gate = asyncio.Semaphore(concurrency)
    done = 0
    async with EngineClient(url, max_in_flight=None) as client:

        async def one(i: int) -> None:
            nonlocal done
            async with gate:
                results[i] = await run_case(client, transport="dynamo", model=MODEL, case=cases[i], timeout=120.0)
            done += 1
            await on_progress(done)

        await asyncio.gather(*(one(i) for i in range(len(cases))))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--python", required=True, help="python with ai-dynamo 1.6.1")
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--kill-restart", action="store_true")
    p.add_argument("--migration-limit", type=int, default=3)
    p.add_argument("--per-token-s", type=float, default=0.002)
    p.add_argument("--workdir", default=None)
    args = p.parse_args(argv)

    tok = load_tokenizer(str(BUILTIN_TOKENIZER))
    engine = Engine(tok.ordinary_ids, tok.eos_id, 128, tok.vocab_size)
    cases = make_cases(args.requests)
    worker_args = ["--moe-layers", str(LAYERS), "--moe-top-k", str(TOP_K), "--num-experts", str(EXPERTS)]
    if args.kill_restart:
        worker_args += ["--per-token-s", str(args.per_token_s)]
    events: list[str] = []
    with dynamo_stack(python=args.python, worker="mock", workers=2, workdir=args.workdir, worker_args=worker_args,
                      frontend_env={"DYN_MIGRATION_LIMIT": str(args.migration_limit), "DYN_LOG": "warn"},
                      max_model_len=4096) as stack:  # fmt: skip
        killed = False

        async def on_progress(done: int) -> None:
            nonlocal killed
            if args.kill_restart and not killed and done >= len(cases) // 3:
                killed = True
                await asyncio.to_thread(stack.kill_worker, 0)
                events.append(f"killed worker0 after {done} calls")
                await asyncio.sleep(1.0)
                stack.restart_worker(0)
                events.append("restarted worker0")

        t0 = time.perf_counter()
        outcomes = asyncio.run(drive(stack.url, cases, args.concurrency, on_progress))
        elapsed = time.perf_counter() - t0
        frontend = next(proc for proc in stack.processes if proc.name == "frontend")
        log = frontend.log_tail(10**9)
        migrations = {
            "mid_stream": log.count("recreating stream"),
            "before_first_token": log.count("Creating new stream"),
        }
    counts: collections.Counter[str] = collections.Counter()
    wrong: list[str] = []
    for case, outcome in zip(cases, outcomes, strict=True):
        if outcome is None:
            counts["lost"] += 1
            continue
        if outcome.error is not None:
            err = outcome.error
            status = f" {err.status}" if isinstance(err, EngineHTTPError) else ""
            counts[f"error {type(err).__name__}{status}"] += 1
            if not isinstance(err, RenderersError):
                wrong.append(f"untyped error {err!r}")
            continue
        ids, lps, routed = expected(engine, case)
        r = outcome.result
        got_routed = r["routed_experts"].to_numpy() if r["routed_experts"] is not None else None
        if r["completion_ids"] == ids and r["completion_logprobs"] == lps and got_routed is not None \
                and np.array_equal(got_routed, routed):  # fmt: skip
            counts["equal"] += 1
        else:
            counts["wrong"] += 1
            wrong.append(f"seed {case.sampling_params['seed']}: {outcome.describe()}")
    report = {
        "requests": len(cases),
        "concurrency": args.concurrency,
        "workers": 2,
        "kill_restart": args.kill_restart,
        "migration_limit": args.migration_limit,
        "counts": dict(counts),
        "migrations_logged": migrations,
        "events": events,
        "elapsed_s": round(elapsed, 1),
        "calls_per_s": round(len(cases) / elapsed, 1),
        "wrong_examples": wrong[:5],
    }
    print(json.dumps(report))
    return 0 if not wrong and not counts["lost"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
