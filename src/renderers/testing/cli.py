"""``renderers-conformance --vllm URL --dynamo URL --model NAME``: run the conformance checks against your own
servers and print a pass/fail table per property.

Both servers must serve the same model with the same weights and sampler (for example one vLLM worker behind a
Dynamo frontend and the same worker on its own). Every example is one ``generate()`` call made on both
transports; a multi-turn example checks that routing of successive turns stitches into the routing of the
whole sequence on each transport. Exit status: 0 all passed, 1 a property failed, 2 bad usage or no server.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from renderers.testing import HYPOTHESIS_MISSING

__all__ = ["main"]

MULTI_TURN_PROPERTIES = ("multi_turn_prefix", "multi_turn_routing", "multi_turn_equal")


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    first_failure: str = ""

    def add(self, ok: bool | None, detail: str, example: str) -> None:
        if ok is None:
            self.skipped += 1
        elif ok:
            self.passed += 1
        else:
            self.failed += 1
            if not self.first_failure:
                self.first_failure = f"{detail} -- {example}"


@dataclass
class Table:
    rows: dict[str, Tally] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, ok: bool | None, detail: str = "", example: str = "") -> None:
        self.rows.setdefault(name, Tally()).add(ok, detail, example)

    @property
    def failed(self) -> bool:
        return any(t.failed for t in self.rows.values())

    def render(self, width: int = 100) -> str:
        name_w = max([len("property"), *(len(n) for n in self.rows)])
        lines = [f"{'property':<{name_w}}  result  pass  fail  n/a  first failure", "-" * width]
        for name, t in self.rows.items():
            verdict = "FAIL" if t.failed else ("PASS" if t.passed else "n/a")
            detail = t.first_failure.replace("\n", " ")
            detail = detail if len(detail) <= width else detail[: width - 3] + "..."
            lines.append(f"{name:<{name_w}}  {verdict:<6}  {t.passed:>4}  {t.failed:>4}  {t.skipped:>3}  {detail}")
        return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="renderers-conformance",
        description="Check that a vLLM server and a Dynamo frontend serving the same model give the same tokens, "
        "logprobs, finish reasons and MoE routing (or the same error) through renderers.generate().",
    )
    p.add_argument("--vllm", required=True, help="vLLM base URL (root or .../v1)")
    p.add_argument("--dynamo", required=True, help="Dynamo frontend base URL (root or .../v1)")
    p.add_argument("--model", required=True, help="served model name (the same on both)")
    p.add_argument("--examples", type=int, default=50, help="single-call examples (default: %(default)s)")
    p.add_argument("--multi-turn-examples", type=int, default=10, help="two-turn examples (default: %(default)s)")
    p.add_argument("--vocab-size", type=int, default=2304, help="prompt ids are drawn in [0, N) (default: %(default)s)")
    p.add_argument("--eos-id", type=int, default=None, help="the model's EOS id, sometimes added to the stop ids")
    p.add_argument("--max-prompt-len", type=int, default=1024, help="longest prompt drawn (default: %(default)s)")
    p.add_argument("--max-tokens", type=int, default=32, help="largest max_tokens drawn (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=120.0, help="per-request timeout, seconds (default: %(default)s)")
    p.add_argument("--api-key", default=None, help="sent as a bearer token to both servers")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed: same seed, same examples (default: 0)")
    p.add_argument("--no-moe", action="store_true", help="dense model: routed experts must be absent on both")
    return p


def _run(args: argparse.Namespace, table: Table) -> None:
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st

    from renderers.client import EngineClient
    from renderers.testing.equivalence import compare, routing_stitch_checks, run_case, run_multi_turn
    from renderers.testing.strategies import Case, cases

    loop = asyncio.new_event_loop()
    vllm = EngineClient(args.vllm, api_key=args.api_key, timeout=args.timeout)
    dynamo = EngineClient(args.dynamo, api_key=args.api_key, timeout=args.timeout)
    common: dict[str, Any] = {"model": args.model, "timeout": args.timeout}
    case_st = cases(vocab_size=args.vocab_size, max_prompt_len=args.max_prompt_len, max_tokens=args.max_tokens,
                    eos_id=args.eos_id)  # fmt: skip
    run_settings = settings(
        max_examples=max(args.examples, 1),
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )

    def single(case: Case) -> None:
        a = loop.run_until_complete(run_case(vllm, transport="vllm", case=case, **common))
        b = loop.run_until_complete(run_case(dynamo, transport="dynamo", case=case, **common))
        table.outcomes[f"{a.kind} / {b.kind}"] = table.outcomes.get(f"{a.kind} / {b.kind}", 0) + 1
        for check in compare(a, b):
            table.add(check.name, check.ok, check.detail, case.short())
        if args.no_moe and a.result is not None:
            dense = a.result["routed_experts"] is None
            table.add("dense_no_routing", dense, "routing returned by a dense model", case.short())

    def multi(case: Case, follow_up: list[int]) -> None:
        per_transport = []
        for client, transport in ((vllm, "vllm"), (dynamo, "dynamo")):
            turns, whole = loop.run_until_complete(
                run_multi_turn(client, transport=transport, first=case, follow_up=follow_up, **common)
            )
            per_transport.append(turns)
            if whole is None or whole.result is None or any(t.result is None for t in turns):
                failed = next((t for t in [*turns, whole] if t is not None and t.error is not None), None)
                why = failed.describe() if failed is not None else "no result"
                table.add(f"multi_turn_prefix[{transport}]", None)
                table.add(f"multi_turn_routing[{transport}]", None, why)
                continue
            results = [t.result for t in turns if t.result is not None]
            for check in routing_stitch_checks(results, whole.result):
                if args.no_moe and check.name == "multi_turn_routing":
                    continue
                table.add(f"{check.name}[{transport}]", check.ok, check.detail, case.short())
        if len(per_transport[0]) == len(per_transport[1]):
            for i, (a, b) in enumerate(zip(*per_transport, strict=True)):
                bad = [c for c in compare(a, b) if c.ok is False]
                detail = "; ".join(f"{c.name}: {c.detail}" for c in bad)
                table.add("multi_turn_equal", not bad, f"turn {i + 1}: {detail}", case.short())
        else:
            table.add("multi_turn_equal", False, "one transport failed a turn the other did not", case.short())

    try:
        if args.examples > 0:
            seed(args.seed)(run_settings(given(case_st)(single)))()
        if args.multi_turn_examples > 0:
            follow_ups = st.lists(st.integers(0, args.vocab_size - 1), min_size=1, max_size=16)
            multi_settings = settings(run_settings, max_examples=args.multi_turn_examples)
            seed(args.seed)(multi_settings(given(case_st, follow_ups)(multi)))()
    finally:
        loop.run_until_complete(vllm.aclose())
        loop.run_until_complete(dynamo.aclose())
        loop.close()


def _reachable(url: str, timeout: float) -> str | None:
    """``None`` when ``GET /v1/models`` answers, else why not."""
    import httpx

    from renderers.client._http import root_url

    try:
        httpx.get(root_url(url) + "/v1/models", timeout=timeout).raise_for_status()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        print(f"renderers-conformance: {HYPOTHESIS_MISSING}", file=sys.stderr)
        return 2
    if args.examples < 0 or args.multi_turn_examples < 0 or args.vocab_size < 1 or args.max_prompt_len < 1:
        print("renderers-conformance: counts and sizes must be positive", file=sys.stderr)
        return 2
    if args.max_tokens < 1:
        print("renderers-conformance: --max-tokens must be >= 1", file=sys.stderr)
        return 2
    for name, url in (("vllm", args.vllm), ("dynamo", args.dynamo)):
        problem = _reachable(url, min(args.timeout, 30.0))
        if problem is not None:
            print(f"renderers-conformance: --{name} {url}: GET /v1/models failed: {problem}", file=sys.stderr)
            return 2
    table = Table()
    t0 = time.perf_counter()
    _run(args, table)
    elapsed = time.perf_counter() - t0
    print(table.render())
    outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(table.outcomes.items()))
    print(f"\n{args.examples} single-call and {args.multi_turn_examples} multi-turn examples in {elapsed:.1f} s "
          f"(seed {args.seed}); outcomes vllm / dynamo: {outcomes or 'none'}")  # fmt: skip
    verdict = "FAIL" if table.failed else "PASS"
    print(f"renderers-conformance: {verdict}")
    return 1 if table.failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
