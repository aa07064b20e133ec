"""Property tests: MiniMaxM2Renderer against the real MiniMax M2 chat template and tokenizer."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from jinja2.exceptions import TemplateError

from renderers.families.minimax_m2 import MiniMaxM2Renderer
from renderers.types import ToolCallParseStatus
from tests.helpers.conversations import plain_text, tool_names
from tests.helpers.minimax_tokenizer import (
    minimax_m2_tokenizer,
    mm_conversations,
    mm_text,
    mm_tools,
)
from tests.helpers.offline_tokenizers import template_ids


@pytest.fixture(scope="module")
def tok() -> Any:
    return minimax_m2_tokenizer()


@pytest.fixture(scope="module")
def renderer(tok: Any) -> MiniMaxM2Renderer:
    return MiniMaxM2Renderer(tok)


@given(msgs=mm_conversations(), tools=mm_tools, gen=st.booleans())
def test_render_ids_equal_chat_template(
    tok: Any, renderer: MiniMaxM2Renderer, msgs: Any, tools: Any, gen: bool
) -> None:
    expected = template_ids(tok, msgs, tools=tools, add_generation_prompt=gen)
    assert renderer.render_ids(msgs, tools=tools, add_generation_prompt=gen) == expected
    assert renderer.render(msgs, tools=tools, add_generation_prompt=gen).token_ids == expected


@given(msgs=mm_conversations(), tools=mm_tools, gen=st.booleans())
def test_attribution_invariants(tok: Any, renderer: MiniMaxM2Renderer, msgs: Any, tools: Any, gen: bool) -> None:
    rt = renderer.render(msgs, tools=tools, add_generation_prompt=gen)
    assert rt.message_roles == [m["role"] for m in msgs]
    seen = [i for i in rt.message_indices if i >= 0]
    assert seen == sorted(seen)
    spans = rt.message_token_spans()
    for i, m in enumerate(msgs):
        span = spans[i]
        if m["role"] == "system" and i > 0:
            assert span is None  # the template renders later system messages as nothing
            continue
        assert span is not None, f"message {i} got no tokens"
        text = tok.decode(rt.token_ids[span[0] : span[1]], skip_special_tokens=False)
        if m["role"] == "user":
            assert text == unicodedata.normalize("NFC", f"]~b]user\n{m['content']}[e~[\n")
        if m["role"] == "tool":
            # the newline before <response> may sit in the previous tool message's token (">\n" is one token)
            assert unicodedata.normalize("NFC", f"<response>{m['content']}</response>") in text
        if m["role"] == "assistant":
            assert text.startswith("]~b]ai\n")
            assert text.endswith("[e~[\n")
            sampled = [p for p in range(span[0], span[1]) if rt.sampled_mask[p]]
            assert sampled == list(range(sampled[0], span[1] - 1))
            assert rt.token_ids[sampled[-1]] == renderer.eot_id
            head = tok.decode(rt.token_ids[span[0] : sampled[0]], skip_special_tokens=False)
            # the role line, the <think> opener, and white space that one token shares with them
            assert head.startswith("]~b]ai\n")
            assert head[len("]~b]ai") :].replace("<think>", "", 1).strip() == ""
            assert all(rt.is_content[p] == rt.sampled_mask[p] for p in range(span[0], span[1]))
    for p, idx in enumerate(rt.message_indices):
        if rt.sampled_mask[p]:
            assert msgs[idx]["role"] == "assistant"
        if idx < 0:
            assert not rt.is_content[p]


# Round trip: reasoning and content as the parser returns them (no surrounding newlines the template would eat).
rt_text = plain_text.map(lambda s: s.strip("\n"))


@st.composite
def round_trip_messages(draw: st.DrawFn) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": draw(rt_text), "reasoning_content": draw(rt_text)}
    if draw(st.booleans()):
        calls = []
        for _ in range(draw(st.integers(1, 3))):
            args = draw(st.dictionaries(tool_names, plain_text, max_size=3))
            calls.append({"type": "function", "function": {"name": draw(tool_names), "arguments": args}})
        msg["tool_calls"] = calls
    return msg


def _no_special_strings(tok: Any, msg: dict[str, Any]) -> bool:
    """Text holding a special token's string (e.g. "[e~[") is encoded as that token, which no sampled text holds."""
    texts = [msg["reasoning_content"], msg["content"]]
    for c in msg.get("tool_calls", []):
        texts += [*c["function"]["arguments"], *c["function"]["arguments"].values()]
    return not any(special in t for special in tok.get_added_vocab() for t in texts)


def _string_schema_tools(msg: dict[str, Any]) -> list[dict[str, Any]]:
    """One tool per called name whose parameters (over all its calls) are all strings."""
    props: dict[str, dict[str, Any]] = {}
    for call in msg.get("tool_calls", []):
        fn = call["function"]
        props.setdefault(fn["name"], {}).update({k: {"type": "string"} for k in fn["arguments"]})
    return [
        {"type": "function", "function": {"name": name, "parameters": {"properties": p}}} for name, p in props.items()
    ]


@given(msg=round_trip_messages())
def test_parse_round_trip(tok: Any, renderer: MiniMaxM2Renderer, msg: dict[str, Any]) -> None:
    # Empty reasoning is not rendered (the model never sampled it that way); reasoning that starts with white space
    # merges with the prompt's newline into one token the model could not have sampled after the prompt.
    assume(msg["reasoning_content"] and not msg["reasoning_content"][0].isspace())
    assume(_no_special_strings(tok, msg))
    convo: Any = [{"role": "user", "content": "q"}, msg]
    rt = renderer.render(convo)
    sampled = [t for t, s in zip(rt.token_ids, rt.sampled_mask, strict=True) if s]
    tools = _string_schema_tools(msg)
    parsed = renderer.parse_response(sampled, tools=tools)
    assert parsed.reasoning_content == unicodedata.normalize("NFC", msg["reasoning_content"])
    assert parsed.content == unicodedata.normalize("NFC", msg["content"])
    want = [(c["function"]["name"], c["function"]["arguments"]) for c in msg.get("tool_calls", [])]
    got = [(c.name, c.arguments) for c in parsed.tool_calls]
    nfc = [
        (n, {unicodedata.normalize("NFC", k): unicodedata.normalize("NFC", v) for k, v in a.items()}) for n, a in want
    ]
    assert got == nfc
    assert all(c.status is ToolCallParseStatus.OK for c in parsed.tool_calls)
    # The prompt the model saw, plus what it sampled, is the rendered history.
    prompt = renderer.render_ids(convo[:1], add_generation_prompt=True)
    assert prompt + sampled == rt.token_ids[: len(prompt) + len(sampled)]


def _sampled_text(msg: dict[str, Any]) -> str:
    """What the model writes after the generation prompt ``]~b]ai\\n<think>\\n`` for ``msg`` (MiniMax's format)."""
    calls = ""
    if msg.get("tool_calls"):
        invokes = []
        for call in msg["tool_calls"]:
            fn = call["function"]
            params = "".join(f'<parameter name="{k}">{v}</parameter>\n' for k, v in fn["arguments"].items())
            invokes.append(f'<invoke name="{fn["name"]}">\n{params}</invoke>\n')
        calls = "\n<minimax:tool_call>\n" + "".join(invokes) + "</minimax:tool_call>"
    return str(msg["reasoning_content"]) + "\n</think>\n\n" + str(msg["content"]) + calls + "[e~["


@given(
    msgs=mm_conversations(),
    tools=mm_tools,
    completion=round_trip_messages(),
    follow=st.lists(st.sampled_from(["user", "tool", "system"]), min_size=1, max_size=3),
    text=mm_text,
)
def test_bridge_equals_full_render_or_none(
    tok: Any,
    renderer: MiniMaxM2Renderer,
    msgs: Any,
    tools: Any,
    completion: dict[str, Any],
    follow: list[str],
    text: str,
) -> None:
    assume(_no_special_strings(tok, completion))
    if msgs[-1]["role"] == "assistant":
        msgs = [*msgs, {"role": "user", "content": text}]
    prompt = renderer.render_ids(msgs, tools=tools, add_generation_prompt=True)
    sampled = tok.encode(_sampled_text(completion), add_special_tokens=False)
    new: Any = [{"role": r, "content": text} for r in follow]
    parsed = renderer.parse_response(sampled, tools=_string_schema_tools(completion))
    assistant: dict[str, Any] = {"role": "assistant", "content": parsed.content}
    assistant["reasoning_content"] = parsed.reasoning_content
    if parsed.tool_calls:
        assistant["tool_calls"] = [{"function": {"name": c.name, "arguments": c.arguments}} for c in parsed.tool_calls]
    if "tool" in follow and not parsed.tool_calls:  # the template refuses tool results after a turn without calls
        with pytest.raises(TemplateError, match="no previous assistant message with a tool call"):
            template_ids(tok, [*msgs, assistant, *new], tools=tools, add_generation_prompt=True)
        with pytest.raises(ValueError, match="tool message must follow"):
            renderer.bridge_to_next_turn(prompt, sampled, new, tools=tools)
        return
    full = template_ids(tok, [*msgs, assistant, *new], tools=tools, add_generation_prompt=True)
    given_lists = (prompt.copy(), sampled.copy())
    bridged = renderer.bridge_to_next_turn(prompt, sampled, new, tools=tools)
    assert (prompt, sampled) == given_lists  # the caller's lists are left as they were
    prior = prompt + sampled
    # None exactly where the template rewrites the history (dropped or unrendered reasoning, re-tokenized text)
    assert (bridged is None) == (full[: len(prior)] != prior)
    if bridged is None:
        return
    assert bridged.token_ids == full
    assert bridged.message_roles == follow
    assert not any(bridged.sampled_mask)
