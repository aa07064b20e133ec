"""The equivalence check: one call on both transports must give the same tokens, logprobs, finish reason and
routing, or the same error. Also the multi-turn routing check (turns stitch into the whole sequence).

No hypothesis here: the functions take a ``Case`` (or plain ids) and HTTP clients, so they work with any
endpoints. ``compare`` returns a list of ``Check`` (one per property); ``assert_equivalent`` raises on failure.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from renderers.client import GenerateResult, RoutedExperts, generate
from renderers.errors import RenderersError
from renderers.types import Message, ParsedResponse, RenderedTokens, ToolSpecLike

if TYPE_CHECKING:
    from renderers.testing.strategies import Case

__all__ = [
    "PROPERTIES",
    "Check",
    "EquivalenceError",
    "Outcome",
    "TokenRenderer",
    "assert_equivalent",
    "compare",
    "routing_stitch_checks",
    "run_case",
    "run_multi_turn",
]

#: Properties ``compare`` reports, in table order.
PROPERTIES: Final = ("outcome", "completion_ids", "completion_logprobs", "finish_reason", "routed_experts",
                     "request_id")  # fmt: skip


class TokenRenderer:
    """A renderer for prompts given as ids: fixed stop ids, no template, completions parsed to empty content.

    ``generate(prompt_ids=...)`` only asks a renderer for its stop ids and to parse the completion.
    """

    def __init__(self, stop_token_ids: Sequence[int] = ()) -> None:
        self._stop = [int(t) for t in stop_token_ids]

    @property
    def supports_tools(self) -> bool:
        return False

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpecLike] | None = None,
        add_generation_prompt: bool = False,
    ) -> RenderedTokens:
        raise NotImplementedError("TokenRenderer renders nothing: pass prompt_ids to generate()")

    def parse_response(
        self, token_ids: Sequence[int], *, tools: Sequence[ToolSpecLike] | None = None
    ) -> ParsedResponse:
        return ParsedResponse(content="")

    def get_stop_token_ids(self) -> list[int]:
        return list(self._stop)


@dataclass(frozen=True)
class Outcome:
    """What one transport gave: a result or an error of this package's error tree."""

    transport: str
    result: GenerateResult | None
    error: RenderersError | None
    elapsed_s: float

    @property
    def kind(self) -> str:
        return "ok" if self.error is None else type(self.error).__name__

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.transport}: {type(self.error).__name__}: {self.error}"
        assert self.result is not None
        r = self.result
        return (
            f"{self.transport}: {len(r['completion_ids'])} tokens, finish {r['finish_reason']!r}, "
            f"routed_experts {r['routed_experts']!r}"
        )


@dataclass(frozen=True)
class Check:
    """One property of one comparison. ``ok`` is ``None`` when it does not apply (e.g. both sides errored)."""

    name: str
    ok: bool | None
    detail: str = ""


class EquivalenceError(AssertionError):
    """The transports disagree; the message lists every failed property."""

    def __init__(self, checks: Sequence[Check], context: str = "") -> None:
        self.checks = list(checks)
        failed = "\n".join(f"  {c.name}: {c.detail}" for c in self.checks if c.ok is False)
        super().__init__(f"transports disagree{f' ({context})' if context else ''}:\n{failed}")


async def run_case(
    client: Any,
    *,
    transport: str,
    model: str,
    case: Case,
    timeout: float | None = None,  # noqa: ASYNC109 (passed to generate)
    extra_headers: Mapping[str, str] | None = None,
    renderer: Any = None,
) -> Outcome:
    """``generate()`` the case on one transport; errors of the package's tree become the outcome."""
    t0 = time.perf_counter()
    try:
        result = await generate(
            client=client,
            renderer=renderer if renderer is not None else TokenRenderer(case.stop_token_ids),
            messages=[],
            model=model,
            prompt_ids=case.prompt_ids,
            sampling_params=dict(case.sampling_params),
            transport=transport,
            cache_salt=case.cache_salt,
            priority=case.priority,
            extra_headers=extra_headers,
            timeout=timeout,
        )
    except RenderersError as exc:
        return Outcome(transport, None, exc, time.perf_counter() - t0)
    return Outcome(transport, result, None, time.perf_counter() - t0)


def _first_difference(a: Sequence[Any], b: Sequence[Any]) -> str:
    if len(a) != len(b):
        return f"lengths {len(a)} != {len(b)}"
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y:
            return f"first difference at {i}: {x!r} != {y!r}"
    return "equal"


def _routing_check(a: RoutedExperts | None, b: RoutedExperts | None) -> Check:
    if a is None or b is None:
        ok = a is None and b is None
        return Check("routed_experts", ok, "" if ok else f"{a!r} vs {b!r}")
    for name in ("shape", "start", "dtype"):
        if getattr(a, name) != getattr(b, name):
            return Check("routed_experts", False, f"{name}: {getattr(a, name)!r} != {getattr(b, name)!r}")
    x, y = a.to_numpy(), b.to_numpy()
    if x.dtype != y.dtype or not np.array_equal(x, y):
        rows = np.nonzero((x != y).reshape(len(x), -1).any(axis=1))[0]
        return Check("routed_experts", False, f"decoded arrays differ in rows {rows[:8].tolist()}")
    return Check("routed_experts", True)


def compare(a: Outcome, b: Outcome) -> list[Check]:
    """Every property in ``PROPERTIES`` for two outcomes of the same case."""
    same_kind = a.kind == b.kind
    checks = [Check("outcome", same_kind, "" if same_kind else f"{a.describe()} | {b.describe()}")]
    ra, rb = a.result, b.result
    if ra is None or rb is None:
        checks.extend(Check(name, None) for name in PROPERTIES[1:])
        return checks
    ids_ok = ra["completion_ids"] == rb["completion_ids"]
    checks.append(
        Check("completion_ids", ids_ok, "" if ids_ok else _first_difference(ra["completion_ids"], rb["completion_ids"]))
    )
    la, lb = ra["completion_logprobs"], rb["completion_logprobs"]
    lp_ok = la == lb  # exact floats: the engine's values, not a rounding of them
    checks.append(Check("completion_logprobs", lp_ok, "" if lp_ok else _first_difference(la, lb)))
    fa, fb = ra["finish_reason"], rb["finish_reason"]
    checks.append(Check("finish_reason", fa == fb, "" if fa == fb else f"{fa!r} != {fb!r}"))
    checks.append(_routing_check(ra["routed_experts"], rb["routed_experts"]))
    ida, idb = ra["request_id"], rb["request_id"]
    id_ok = bool(ida) and bool(idb) and isinstance(ida, str) and isinstance(idb, str)
    checks.append(Check("request_id", id_ok, "" if id_ok else f"{ida!r}, {idb!r}"))
    return checks


def assert_equivalent(a: Outcome, b: Outcome, context: str = "") -> list[Check]:
    """``compare`` and raise ``EquivalenceError`` when any property fails; returns the checks otherwise."""
    checks = compare(a, b)
    if any(c.ok is False for c in checks):
        raise EquivalenceError(checks, context)
    return checks


def routing_stitch_checks(turns: Sequence[GenerateResult], whole: GenerateResult) -> list[Check]:
    """Multi-turn: each turn's prompt extends the previous prompt + completion, and the routing of the turns,
    concatenated, equals the routing of ``whole`` (one request over the final sequence minus its last token).

    Turn 1 must carry full routing (start 0); turn ``n`` must start at len(previous prompt + completion) - 1.
    """
    checks: list[Check] = []
    prefix_ok, prefix_detail = True, ""
    starts_ok, starts_detail = True, ""
    tables = []
    expected_start = 0
    for i, turn in enumerate(turns):
        if i:
            prev = turns[i - 1]
            seq = [*prev["prompt_ids"], *prev["completion_ids"]]
            if turn["prompt_ids"][: len(seq)] != seq:
                prefix_ok = False
                prefix_detail = f"turn {i + 1} prompt does not start with turn {i} prompt + completion"
            expected_start = len(seq) - 1
        routed = turn["routed_experts"]
        if routed is None:
            return [Check("multi_turn_prefix", prefix_ok, prefix_detail),
                    Check("multi_turn_routing", False, f"turn {i + 1} has no routed experts")]  # fmt: skip
        if routed.start != expected_start:
            starts_ok, starts_detail = False, f"turn {i + 1} routing starts at {routed.start}, not {expected_start}"
        tables.append(routed.to_numpy())
    checks.append(Check("multi_turn_prefix", prefix_ok, prefix_detail))
    if not starts_ok:
        checks.append(Check("multi_turn_routing", False, starts_detail))
        return checks
    whole_routed = whole["routed_experts"]
    if whole_routed is None or whole_routed.start != 0:
        checks.append(Check("multi_turn_routing", False, f"whole-sequence routing is {whole_routed!r}"))
        return checks
    stitched = np.concatenate(tables) if tables else np.empty((0,))
    ref = whole_routed.to_numpy()
    last = turns[-1]
    n_rows = len(last["prompt_ids"]) + len(last["completion_ids"]) - 1
    if stitched.shape[0] != n_rows or ref.shape[0] < n_rows:
        detail = f"stitched {stitched.shape[0]} rows, whole {ref.shape[0]} rows, sequence needs {n_rows}"
        checks.append(Check("multi_turn_routing", False, detail))
    elif not np.array_equal(stitched, ref[:n_rows]):
        rows = np.nonzero((stitched != ref[:n_rows]).reshape(n_rows, -1).any(axis=1))[0]
        checks.append(Check("multi_turn_routing", False, f"rows differ: {rows[:8].tolist()}"))
    else:
        checks.append(Check("multi_turn_routing", True))
    return checks


async def run_multi_turn(
    client: Any,
    *,
    transport: str,
    model: str,
    first: Case,
    follow_up: Sequence[int],
    timeout: float | None = None,  # noqa: ASYNC109
) -> tuple[list[Outcome], Outcome | None]:
    """Token-level two-turn rollout: turn 1 is ``first`` (without a routing start), turn 2 extends its prompt +
    completion with ``follow_up`` and asks routing from the last completion token of turn 1; then one request
    over the final sequence minus its last token (``max_tokens`` 1) gives the reference routing.

    Returns the two turn outcomes and the whole-sequence outcome (``None`` when a turn failed).
    """
    from renderers.testing.strategies import Case as CaseType

    sp = {k: v for k, v in first.sampling_params.items() if k != "routed_experts_prompt_start"}
    turn1_case = CaseType(first.prompt_ids, sp, first.stop_token_ids, first.cache_salt, first.priority)
    turn1 = await run_case(client, transport=transport, model=model, case=turn1_case, timeout=timeout)
    if turn1.result is None:
        return [turn1], None
    seq = [*turn1.result["prompt_ids"], *turn1.result["completion_ids"]]
    turn2_case = CaseType([*seq, *follow_up], {**sp, "routed_experts_prompt_start": len(seq) - 1},
                          first.stop_token_ids, first.cache_salt, first.priority)  # fmt: skip
    turn2 = await run_case(client, transport=transport, model=model, case=turn2_case, timeout=timeout)
    if turn2.result is None:
        return [turn1, turn2], None
    final = [*turn2.result["prompt_ids"], *turn2.result["completion_ids"]]
    whole_case = CaseType(final[:-1], {"max_tokens": 1, "temperature": 0}, [])
    whole = await run_case(client, transport=transport, model=model, case=whole_case, timeout=timeout)
    return [turn1, turn2], whole
