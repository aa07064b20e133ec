"""Group 6: peak extra memory while parsing the 32k + routed-experts response (body already in memory).

Measured with ``tracemalloc``: the peak of traced memory during one parse (result kept alive until the end), minus
what was traced before it. tracemalloc sees every Python object, the ``bytes`` pybase64 returns, and numpy's data
buffers (numpy reports its allocations to tracemalloc). The parse allocates: the body without the base64 (joined
copy), the decoded document, the result lists, and the decoded table (``uint8`` view on the decoded bytes).
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from functools import partial
from typing import Any

from benchmarks import bodies, parse
from benchmarks.harness import Section, Target, fmt_bytes, md_table


def peak_extra(fn: Callable[[], Any], repeats: int = 3) -> int:
    """Smallest (over ``repeats``) peak traced bytes above the baseline while ``fn`` runs and its result lives."""
    best = None
    for _ in range(repeats):
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            result = fn()
            peak = tracemalloc.get_traced_memory()[1]
            del result
        finally:
            tracemalloc.stop()
        extra = peak - base
        best = extra if best is None else min(best, extra)
    assert best is not None
    return best


def run(*, quick: bool, peer: Callable[[bytes], Any] | None) -> Section:
    spec = bodies.SPECS[2] if not quick else bodies.Spec("c_8k_routed", 8192, (8192, 48, 8))
    assert spec.routed is not None
    payload = bodies.make_payload(spec)
    raw_size = payload.routed.nbytes if payload.routed is not None else 0
    b64_size = 4 * ((raw_size + 2) // 3)
    sec = Section(f"6. Peak extra memory while parsing {spec.name}")
    sec.blocks.append(__doc__.split("\n\n", 1)[1].strip() if __doc__ else "")
    rows = []
    panel: dict[str, float] = {}
    for shape, make in bodies.SHAPES.items():
        raw = make(payload, spec.prompt_len)
        cases: dict[str, Callable[[], Any]] = {
            "client": partial(parse.client_parse(shape, spec.prompt_len), raw),
            "floor": partial(parse.floor_parse, raw, spec.routed),
        }
        if peer is not None and shape == "vllm":
            cases["peer 0.1.12 + base64"] = partial(peer, raw)
        for name, fn in cases.items():
            extra = peak_extra(fn)
            rows.append(
                [
                    f"{spec.name}/{shape}",
                    f"`{name}`",
                    f"{fmt_bytes(len(raw))}",
                    fmt_bytes(extra),
                    f"{extra / raw_size:.2f}",
                    f"{extra / b64_size:.2f}",
                ]
            )
            panel[f"{shape} {name}"] = extra / 1e6
            if name == "client":
                what = f"{shape}: client peak extra / routed table ({fmt_bytes(raw_size)})"
                sec.targets.append(Target("6", what, extra / raw_size, 2.0, "le"))
        del raw
    header = ["body", "pipeline", "body size", "peak extra", "× table (raw)", "× table (base64)"]
    sec.blocks.append(
        f"Routed table: {raw_size:,} bytes raw, {b64_size:,} bytes base64.\n\n" + md_table(header, rows, "llrrrr")
    )
    sec.plot["peak extra memory (MB)"] = panel
    return sec
