"""Group 7, render: every native family against ``apply_chat_template`` and against ``renderers==0.1.12``.

Per family (``tests/helpers/family_cases.py``), with its real tokenizer and template:

- render a 40-turn conversation of about 32k tokens (system, then rounds of user / assistant with reasoning and a
  tool call / tool result / assistant answer with reasoning): the native ``render()`` (ids with per-token
  attribution) against ``apply_chat_template(tokenize=True)`` (ids only) and the peer's ``render()``. The native
  renderer caches the encoding of each stretch of text between special tokens (``renderers.families.segments``),
  which is what a multi-turn rollout re-renders turn after turn; "cold cache" clears that cache before every call,
  so it pays the same full tokenizer pass as the template;
- parse a completion of about 4k tokens (reasoning and a tool call) with the native ``parse_response`` and the
  peer's;
- ``bridge_to_next_turn`` appending one tool result after a 32k-token history and after a 2k-token one: the cost
  must follow the new tokens, not the history.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from benchmarks.harness import Case, Section, Target, interleaved, md_table, timing_table
from renderers.types import Message

_CORPUS = (
    "the of and to in is was for on that with as by at from his an were are which this be or has had not but first "
    "one their its new after who they have two been also more all other into time can only over state most model "
    "token expert route layer weight value gradient reward policy rollout sample batch 3.14 42 2026 héllo 日本語 "
    "Привет 👍"
)
_WORDS = _CORPUS.split(" ")


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _args(case: Any, rng: random.Random, words: int) -> Any:
    args = {"query": _text(rng, words), "limit": rng.randint(1, 99), "strict": True}
    if case.args_form == "str":
        import json

        return json.dumps(args, ensure_ascii=False)
    return args


def conversation(case: Any, words: int, turns: int = 40, seed: int = 7) -> list[Message]:
    """``turns`` messages after a system prompt: user, assistant (reasoning + tool call), tool, assistant answer, ..."""
    rng = random.Random(seed)
    msgs: list[Message] = [{"role": "system", "content": _text(rng, words)}]
    while len(msgs) < turns + 1:
        # A tool round (reasoning + call, then its result) and an answer round: shapes every family's template takes
        # (gpt-oss refuses content and reasoning both beside a call; Llama 3 takes one call per turn).
        msgs.append({"role": "user", "content": _text(rng, words)})
        msgs.append(
            {
                "role": "assistant",
                "content": "",
                "reasoning_content": _text(rng, words),
                "tool_calls": [
                    {"type": "function", "function": {"name": "search", "arguments": _args(case, rng, words // 4)}}
                ],
            }
        )
        msgs.append({"role": "tool", "content": _text(rng, words)})
        msgs.append({"role": "assistant", "content": _text(rng, words), "reasoning_content": _text(rng, words)})
    msgs = msgs[: turns + 1]
    while msgs[-1]["role"] == "assistant":  # end on a user or tool turn, ready for a generation prompt
        msgs.pop()
    return msgs


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the index.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string"},
                    "limit": {"type": "integer"},
                    "strict": {"type": "boolean"},
                },
                "required": ["query"],
            },
        },
    }
]


def _sized(build: Callable[[int], Any], measure: Callable[[Any], int], target: int) -> tuple[Any, int]:
    """Scale ``words`` so that ``measure(build(words))`` is close to ``target`` tokens."""
    words = 40
    value = build(words)
    for _ in range(3):
        n = measure(value)
        words = max(1, round(words * target / max(n, 1)))
        value = build(words)
    return value, measure(value)


def _one_family(name: str, *, rounds: int, quick: bool, peer_ok: bool) -> tuple[str, list[Target], list[list[str]]]:
    from tests.helpers.family_cases import FAMILY_CASES, peer_renderer

    case = FAMILY_CASES[name]
    tok = case.tokenizer()
    ours = case.ours(tok)
    peer = peer_renderer(case, tok) if peer_ok and case.peer_module else None
    kwargs = dict(case.template_kwargs)
    target_prompt = 4000 if quick else 32000
    target_completion = 500 if quick else 4000

    msgs, n_prompt = _sized(
        lambda w: conversation(case, w),
        lambda m: len(ours.render_ids(m, tools=TOOLS, add_generation_prompt=True)),
        target_prompt,
    )
    expected = tok.apply_chat_template(
        msgs, tools=TOOLS, add_generation_prompt=True, tokenize=True, return_dict=False, **kwargs
    )
    if ours.render_ids(msgs, tools=TOOLS, add_generation_prompt=True) != [int(t) for t in expected]:
        raise AssertionError(f"{name}: the native render differs from the template on the benchmark conversation")

    def completion(words: int) -> list[int]:
        rng = random.Random(11)
        msg: Message = {
            "role": "assistant",
            "content": "",
            "reasoning_content": _text(rng, 3 * words),
            "tool_calls": [
                {"type": "function", "function": {"name": "search", "arguments": _args(case, rng, words // 4)}}
            ],  # one call: Llama 3 and gpt-oss take at most one per turn
        }
        rt = ours.render([{"role": "user", "content": "go"}, msg])
        return [t for t, s in zip(rt.token_ids, rt.sampled_mask, strict=True) if s]

    comp, n_comp = _sized(completion, len, target_completion)

    def cold() -> Any:
        ours.clear_cache()  # type: ignore[attr-defined]
        return ours.render(msgs, tools=TOOLS, add_generation_prompt=True)

    render_cases = [
        Case(f"{name}: native render()", lambda: ours.render(msgs, tools=TOOLS, add_generation_prompt=True)),
        Case(f"{name}: native render(), cold cache", cold),
        Case(
            f"{name}: apply_chat_template",
            lambda: tok.apply_chat_template(
                msgs, tools=TOOLS, add_generation_prompt=True, tokenize=True, return_dict=False, **kwargs
            ),
        ),
    ]
    parse_cases = [Case(f"{name}: native parse", lambda: ours.parse_response(comp))]
    if peer is not None:
        render_cases.append(
            Case(f"{name}: peer render()", lambda: peer.render(msgs, tools=TOOLS, add_generation_prompt=True))
        )
        parse_cases.append(Case(f"{name}: peer parse", lambda: peer.parse_response(comp)))

    # Bridge: a short history and a long one, each followed by the same tool result.
    follow: list[Message] = [{"role": "tool", "content": _text(random.Random(3), 60)}]
    short_msgs = conversation(case, max(4, len(str(msgs[1].get("content")).split()) // 16))
    bridges = []
    for history in (short_msgs, msgs):
        prompt = ours.render_ids(history, tools=TOOLS, add_generation_prompt=True)
        if ours.bridge_to_next_turn(prompt, comp, follow, tools=TOOLS) is None:
            continue

        def bridge(p: list[int] = prompt) -> Any:
            return ours.bridge_to_next_turn(p, comp, follow, tools=TOOLS)

        bridges.append(Case(f"{name}: bridge after {len(prompt)} tokens", bridge))

    timings = interleaved(render_cases, rounds=rounds, target_s=0.2)
    timings.update(interleaved(parse_cases, rounds=rounds, target_s=0.05))
    bridge_t = interleaved(bridges, rounds=rounds, target_s=0.02) if bridges else {}
    timings.update(bridge_t)

    native_r = timings[f"{name}: native render()"].median
    act = timings[f"{name}: apply_chat_template"].median
    targets = [
        Target("render", f"{name}: native render / apply_chat_template ({n_prompt} tokens)", native_r / act, 0.2, "le"),
        Target(
            "render",
            f"{name}: native render with a cold cache / apply_chat_template",
            timings[f"{name}: native render(), cold cache"].median / act,
            1.2,
            "le",
            note="informational: both pay one full tokenizer pass over the same text",
        ),
    ]
    if peer is not None:
        targets.append(
            Target(
                "render",
                f"{name}: native / peer render",
                native_r / timings[f"{name}: peer render()"].median,
                1.0,
                "le",
            )
        )
        targets.append(
            Target(
                "render",
                f"{name}: native / peer parse ({n_comp} tokens)",
                timings[f"{name}: native parse"].median / timings[f"{name}: peer parse"].median,
                1.0,
                "le",
            )
        )
    if len(bridge_t) == 2:
        short, long = bridge_t.values()
        targets.append(
            Target("render", f"{name}: bridge after 32k / after 2k history", long.median / short.median, 2.0, "le")
        )
    baseline = f"{name}: apply_chat_template"
    table = timing_table(timings, baseline)
    rows = [[name, str(n_prompt), str(n_comp), "yes" if peer is not None else "no (the peer has no renderer)"]]
    return table, targets, rows


def run(*, rounds: int, quick: bool, peer_ok: bool) -> Section:
    from tests.helpers.family_cases import FAMILY_CASES

    sec = Section("7. Render: native families vs apply_chat_template and renderers 0.1.12")
    sec.blocks.append(__doc__.split("\n\n", 1)[1].strip())
    sizes: list[list[str]] = []
    for name in FAMILY_CASES:
        table, targets, rows = _one_family(name, rounds=rounds, quick=quick, peer_ok=peer_ok)
        sec.blocks.append(f"**{name}**\n\n{table}")
        sec.targets.extend(targets)
        sizes.extend(rows)
        sec.plot.setdefault("native render / apply_chat_template", {})[name] = targets[0].value
    sec.blocks.insert(1, md_table(["family", "prompt tokens", "completion tokens", "peer"], sizes, "lrrl"))
    sec.plot_units["native render / apply_chat_template"] = "×"
    return sec
