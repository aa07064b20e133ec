"""Interleaved timing: every round times every case once, in an order that rotates from round to round.

On a shared, noisy machine a slow period then hits all cases alike, so the ratios between cases stay meaningful.
Each case is called ``k`` times in a row per round (``k`` calibrated to about ``target_s``); the time per call of a
round is the total divided by ``k``. Reports give the median over rounds, with min and max.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Case:
    """One timed operation. ``fn`` takes no argument; its inputs are built beforehand."""

    name: str
    fn: Callable[[], Any]


@dataclass
class Timing:
    """Per-round seconds per call for one case."""

    name: str
    samples: list[float] = field(default_factory=list)
    calls: int = 1

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)


def _calibrate(fn: Callable[[], Any], target_s: float) -> int:
    fn()  # warm-up (imports, caches, first-touch page faults)
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    return max(1, min(100_000, int(target_s / once)))


def interleaved(cases: Sequence[Case], *, rounds: int, target_s: float = 0.03) -> dict[str, Timing]:
    """Time ``cases`` over ``rounds`` rounds (rotating order, ``gc.collect()`` between rounds, GC enabled)."""
    if not cases:
        return {}
    ks = [_calibrate(c.fn, target_s) for c in cases]
    out = {c.name: Timing(c.name, calls=k) for c, k in zip(cases, ks, strict=True)}
    n = len(cases)
    for r in range(rounds):
        gc.collect()
        for j in range(n):
            i = (j + r) % n
            case, k = cases[i], ks[i]
            fn = case.fn
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            out[case.name].samples.append((time.perf_counter() - t0) / k)
    return out


def fmt_seconds(s: float) -> str:
    """``1.234 ms`` / ``56.7 µs`` / ``1.20 s``."""
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3f} ms"
    return f"{s * 1e6:.1f} µs"


def fmt_bytes(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.2f} MB"
    if n >= 1e3:
        return f"{n / 1e3:.1f} kB"
    return f"{n:.0f} B"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sequence."""
    s = sorted(values)
    idx = min(len(s) - 1, max(0, round(q / 100.0 * (len(s) - 1))))
    return s[idx]


@dataclass(frozen=True)
class Target:
    """One target of the issue: ``value`` compared against ``limit`` (``le``: at most, ``ge``: at least)."""

    group: str
    what: str
    value: float
    limit: float
    op: str  # "le" | "ge"
    unit: str = "×"
    note: str = ""

    @property
    def holds(self) -> bool:
        return self.value <= self.limit if self.op == "le" else self.value >= self.limit

    def row(self) -> list[str]:
        sign = "≤" if self.op == "le" else "≥"
        val = f"{self.value:.2f}{self.unit}" if self.unit == "×" else f"{self.value:g} {self.unit}"
        lim = f"{sign} {self.limit:g}{self.unit}" if self.unit == "×" else f"{sign} {self.limit:g} {self.unit}"
        return [self.group, self.what, val, lim, "**pass**" if self.holds else "**FAIL**", self.note]


@dataclass
class Section:
    """What a benchmark group hands to the report: markdown blocks, targets, and numbers for the plot."""

    title: str
    blocks: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    plot: dict[str, dict[str, float]] = field(default_factory=dict)  # panel -> label -> value
    plot_units: dict[str, str] = field(default_factory=dict)


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is one char per column (``l`` or ``r``)."""
    spec = align or ("l" + "r" * (len(header) - 1))
    sep = ["---:" if a == "r" else "---" for a in spec]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def timing_table(timings: dict[str, Timing], baseline: str, *, extra: dict[str, str] | None = None) -> str:
    """Median/min/max per call and the ratio to ``baseline`` for every case."""
    base = timings[baseline].median
    rows = []
    for t in timings.values():
        rows.append(
            [
                f"`{t.name}`",
                fmt_seconds(t.median),
                fmt_seconds(t.low),
                fmt_seconds(t.high),
                f"{len(t.samples)} × {t.calls}",
                f"{t.median / base:.2f}",
                (extra or {}).get(t.name, ""),
            ]
        )
    return md_table(["case", "median", "min", "max", "rounds × calls", f"× `{baseline}`", "note"], rows, "lrrrrrl")


def profile_text(fn: Callable[[], Any], *, calls: int = 5, top: int = 12) -> str:
    """cProfile of ``calls`` calls of ``fn``: the ``top`` functions by own time, as a fenced text block."""
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(top)
    lines = [ln.rstrip() for ln in buf.getvalue().splitlines()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    body = "\n".join(ln.replace("/work/main/", "") for ln in lines[start:] if ln.strip())
    return f"```text\n{body}\n```"
