"""Run the benchmark groups and write ``docs/benchmarks.md`` + ``docs/benchmarks.png``.

    python -m benchmarks.run                 # every group (about 3-5 minutes)
    python -m benchmarks.run --quick         # smoke run: small sizes, few rounds (writes under /tmp by default)
    python -m benchmarks.run parse memory    # a selection (names or numbers 1-7)

The peer (``renderers==0.1.12``) is found through ``RENDERERS_BENCH_PEER_DIR``; without it the peer rows are
skipped and the report says so.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks import peer as peer_mod
from benchmarks.harness import Section

ROOT = Path(__file__).resolve().parent.parent
GROUPS = ("parse", "request", "e2e", "mock", "stress", "memory", "render")
ALIASES = {str(i + 1): name for i, name in enumerate(GROUPS)}


# Why a target is missed, in one line each (the profiles in the report are the evidence). Applied to failing targets
# whose description contains the key.
WHY: dict[str, str] = {
    "peer / client": "every pipeline pays for the 32k per-token logprob entries; the client skips them with a typed "
    "msgspec decode, the peer builds them with json",
    "routed/dynamo: client / floor": "the validated typed decode of the flat id/logprob lists costs more than the "
    "floor's unvalidated orjson decode; see the profile",
    "routed/vllm: client / floor": "see the profile: typed decode, bulk checks and the token-text comparison",
    "client / floor": "on small flat-list bodies msgspec's range-checked decode of ids and logprobs is ~1.35x "
    "orjson's unchecked decode (the floor validates nothing); the bulk alternatives measured were not cheaper",
    "generate path": "the id check encodes the ids once with orjson and scans the text; `build_body` embeds that "
    "text (see the profile)",
    "httpx CPU/req": "httpx itself costs ~6-7x a bare aiohttp post here, while EngineClient is ~1.1-1.3x that post: "
    "10x would need EngineClient to cost less than the bare post it is built on",
    "EngineClient CPU/req": "the validated parse and generate()'s argument checks over the raw post (see the profile)",
    "mock throughput": "server CPU per small request ~400-460 us for the mock against ~160 us for the floor (/proc "
    "CPU time over 3,000 requests, side by side). Stages added one at a time to the same route (2026-11-30): reading "
    "the body and answering constant bytes ~170 us (the floor's cost plus ~10 us of middleware and journal); "
    "reading and validating the request ~+135-145 us, of which pydantic's validation against vLLM's schema is "
    "~100 us; the prompt's prefix ~+15 us; the 16-token engine ~+65-120 us; the body ~+25-40 us. 0.5x needs "
    "~375 us; the mock without vLLM's validation would be at ~350 us, and that validation is what it is for. "
    "Each stage costs 2.5-4x its isolated micro-benchmark under load",
    "mock time to serve": "mock CPU per 21.9 MB response ~35-45 ms (engine ~5 ms, logprob text ~8 ms, routing rows "
    "and base64 ~7 ms, the rest sending) against ~23-27 ms for the floor, which only sends; the floor's own time to "
    "serve moves between ~17 and ~55 ms from run to run (the client's reading), and the ratio with it; making the "
    "chunks in a worker thread while the loop sends gave no gain (the making holds the GIL)",
    "loop lag": "1,000 responses landing in a few loop iterations; `EngineClient(max_in_flight=...)` spreads them",
    "peak extra": "the decoded table plus the response bytes and the typed structs of 32k entries",
}


def _why(what: str) -> str:
    return next((note for key, note in WHY.items() if key in what), "")


def _group_runner(name: str, *, quick: bool, peer: Callable[[bytes], Any] | None) -> Callable[[], Section]:
    rounds = 5 if quick else 15
    if name == "parse":
        from benchmarks import parse

        return lambda: parse.run(rounds=rounds, quick=quick, peer=peer)
    if name == "request":
        from benchmarks import request_body

        return lambda: request_body.run(rounds=rounds, quick=quick)
    if name == "e2e":
        from benchmarks import e2e

        return lambda: e2e.run(quick=quick)
    if name == "mock":
        from benchmarks import mock_server

        return lambda: mock_server.run(quick=quick)
    if name == "stress":
        from benchmarks import stress

        return lambda: stress.run(quick=quick)
    if name == "memory":
        from benchmarks import memory

        return lambda: memory.run(quick=quick, peer=peer)
    if name == "render":
        from benchmarks import render

        return lambda: render.run(rounds=3 if quick else 7, quick=quick, peer_ok=peer is not None)
    raise ValueError(name)


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("groups", nargs="*", help=f"groups to run: {', '.join(GROUPS)} (or 1-7); default all")
    ap.add_argument("--quick", action="store_true", help="smoke run: small sizes and few rounds")
    ap.add_argument("--out", type=Path, default=None, help="markdown path (default docs/benchmarks.md; quick: /tmp)")
    args = ap.parse_args(args_list)
    selected = [ALIASES.get(g, g) for g in args.groups] or list(GROUPS)
    unknown = [g for g in selected if g not in GROUPS]
    if unknown:
        ap.error(f"unknown group(s) {unknown}; choose from {', '.join(GROUPS)} or 1-7")
    out = args.out or (Path("/tmp/renderers-bench-quick/benchmarks.md") if args.quick else ROOT / "docs/benchmarks.md")
    png = out.with_suffix(".png")

    peer: Callable[[bytes], Any] | None = None
    peer_version = "not installed (set RENDERERS_BENCH_PEER_DIR; peer rows skipped)"
    if peer_mod.peer_dir() is not None:
        peer = peer_mod.make_peer_parse(peer_mod.load_peer_client())
        peer_version = f"{peer_mod.peer_version()} (from {peer_mod.peer_dir()}, loaded as `renderers_peer`)"
    elif not args.quick:
        print("warning: RENDERERS_BENCH_PEER_DIR is not set; the peer rows are skipped", file=sys.stderr)

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    sections: list[Section] = []
    for name in GROUPS:
        if name not in selected:
            continue
        runner = _group_runner(name, quick=args.quick, peer=peer)
        # Setup objects (imports, the peer, tokenizers) go to the permanent generation, so the cyclic GC work a
        # parse triggers is about what the parse allocates, not about this process's unrelated heap.
        gc.collect()
        gc.freeze()
        g0 = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        sec = runner()
        print(f"[bench] {name} done in {time.perf_counter() - g0:.1f} s", file=sys.stderr, flush=True)
        sec.targets = [t if t.holds or t.note else replace(t, note=_why(t.what)) for t in sec.targets]
        sections.append(sec)
        for t in sec.targets:
            print(f"  {'ok  ' if t.holds else 'FAIL'} {t.what}: {t.row()[2]} (limit {t.row()[3]})", file=sys.stderr)
        gc.unfreeze()
    seconds = time.perf_counter() - t0

    from benchmarks import report

    has_plot = report.write_plot(png, sections)
    report.write_markdown(
        out,
        sections,
        argv=args_list,
        seconds=seconds,
        peer_version=peer_version,
        load_before=load_before,
        load_after=os.getloadavg(),
        quick=args.quick,
        plot_name=png.name if has_plot else None,
    )
    print(f"[bench] wrote {out}" + (f" and {png}" if has_plot else "") + f" ({seconds:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
