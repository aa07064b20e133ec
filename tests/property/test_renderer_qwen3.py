"""Property tests: Qwen3Renderer against the real Qwen3 chat template and tokenizer."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from renderers.families.qwen3 import Qwen3Renderer
from renderers.types import ToolCallParseStatus
from tests.helpers.conversations import (
    assistant_messages,
    conversations,
    plain_text,
    render_text,
    tool_specs,
)
from tests.helpers.qwen3_tokenizer import qwen3_tokenizer, template_ids


@pytest.fixture(scope="module")
def tok() -> Any:
    return qwen3_tokenizer()


@pytest.fixture(scope="module")
def renderers(tok: Any) -> dict[bool, Qwen3Renderer]:
    return {True: Qwen3Renderer(tok), False: Qwen3Renderer(tok, enable_thinking=False)}


@given(msgs=conversations(), tools=tool_specs(), gen=st.booleans(), thinking=st.booleans())
def test_render_ids_equal_chat_template(
    tok: Any, renderers: dict[bool, Qwen3Renderer], msgs: Any, tools: Any, gen: bool, thinking: bool
) -> None:
    expected = template_ids(tok, msgs, tools=tools, add_generation_prompt=gen, enable_thinking=thinking)
    r = renderers[thinking]
    assert r.render_ids(msgs, tools=tools, add_generation_prompt=gen) == expected
    rendered = r.render(msgs, tools=tools, add_generation_prompt=gen)
    assert rendered.token_ids == expected


@given(msgs=conversations(), tools=tool_specs(), gen=st.booleans())
def test_attribution_invariants(
    tok: Any, renderers: dict[bool, Qwen3Renderer], msgs: Any, tools: Any, gen: bool
) -> None:
    r = renderers[True]
    rt = r.render(msgs, tools=tools, add_generation_prompt=gen)
    assert rt.message_roles == [m["role"] for m in msgs]
    # Attribution only ever moves forward through the messages.
    seen = [i for i in rt.message_indices if i >= 0]
    assert seen == sorted(seen)
    spans = rt.message_token_spans()
    # Consecutive tool messages share one block; every other message owns a block that decodes to its
    # role line and content.
    for i, m in enumerate(msgs):
        span = spans[i]
        assert span is not None, f"message {i} got no tokens"
        text = tok.decode(rt.token_ids[span[0] : span[1]], skip_special_tokens=False)
        if m["role"] in ("user", "system") and not (i == 0 and m["role"] == "system" and tools):
            assert text == unicodedata.normalize("NFC", f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n")
        if m["role"] == "tool":
            assert unicodedata.normalize("NFC", f"\n<tool_response>\n{m['content']}\n</tool_response>") in text
        if m["role"] == "assistant":
            assert text.startswith("<|im_start|>assistant\n")
            assert text.endswith("<|im_end|>\n")
            sampled = [p for p in range(span[0], span[1]) if rt.sampled_mask[p]]
            # Sampled tokens are one contiguous run ending with <|im_end|>; what precedes them in the
            # block is the role line (plus leading whitespace of the content when one BPE token straddles
            # the role line's newline and the content: the model could not have sampled that token).
            assert sampled == list(range(sampled[0], span[1] - 1))
            assert rt.token_ids[sampled[-1]] == r.im_end_id
            head = tok.decode(rt.token_ids[span[0] : sampled[0]], skip_special_tokens=False)
            assert head.startswith("<|im_start|>assistant\n")
            assert head[len("<|im_start|>assistant") :].strip() == ""
            assert all(rt.is_content[p] == rt.sampled_mask[p] for p in range(span[0], span[1]))
    # Only assistant tokens are sampled; scaffolding outside messages is never content.
    for pos, idx in enumerate(rt.message_indices):
        if rt.sampled_mask[pos]:
            assert idx >= 0
            assert msgs[idx]["role"] == "assistant"
        if idx == -1:
            assert not rt.is_content[pos]
    # Non-assistant content tokens decode to text found in that message's content.
    for pos, idx in enumerate(rt.message_indices):
        if idx >= 0 and rt.is_content[pos] and msgs[idx]["role"] != "assistant":
            piece = tok.decode([rt.token_ids[pos]], skip_special_tokens=False)
            if "\ufffd" not in piece:
                assert piece.strip("\n") in unicodedata.normalize("NFC", msgs[idx]["content"])
    if gen:
        assert rt.message_indices[-1] == -1


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


@given(
    history=conversations(),
    last=assistant_messages(plain_text),
    query=plain_text,
    tools=tool_specs(),
)
def test_parse_recovers_rendered_assistant_turn(
    tok: Any, renderers: dict[bool, Qwen3Renderer], history: Any, last: Any, query: str, tools: Any
) -> None:
    r = renderers[True]
    prior = [*history, {"role": "user", "content": query}]
    assume(not (query.startswith("<tool_response>") and query.endswith("</tool_response>")))
    prompt = template_ids(tok, prior, tools=tools, add_generation_prompt=True)
    full = template_ids(tok, [*prior, last], tools=tools)
    assert full[: len(prompt)] == prompt
    parsed = r.parse_response(full[len(prompt) :])

    content, reasoning = last["content"], last.get("reasoning_content")
    if reasoning is None and "</think>" in content:
        reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
        content = content.split("</think>")[-1]
    assert parsed.reasoning_content == nfc((reasoning or "").strip("\n"))
    assert parsed.content == nfc(content.lstrip("\n"))
    calls = last.get("tool_calls", [])
    assert len(parsed.tool_calls) == len(calls)
    for got, want in zip(parsed.tool_calls, calls, strict=True):
        fn = want["function"]
        # The template writes string arguments verbatim and dict arguments with json.dumps; the tokenizer
        # NFC-normalises that text.
        raw = fn["arguments"] if isinstance(fn["arguments"], str) else json.dumps(fn["arguments"], ensure_ascii=False)
        assert got.status is ToolCallParseStatus.OK
        assert got.name == fn["name"]
        assert got.arguments == json.loads(nfc(raw))
        assert got.token_span is not None
        assert tok.decode(full[len(prompt) :][got.token_span[0] : got.token_span[1]]).startswith("<tool_call>")


_followup = st.one_of(
    st.lists(st.builds(lambda c: {"role": "tool", "content": c}, render_text), min_size=1, max_size=3),
    st.lists(
        st.builds(
            lambda role, c: {"role": role, "content": c}, st.sampled_from(["user", "system", "tool"]), render_text
        ),
        min_size=1,
        max_size=3,
    ),
)


@given(
    history=conversations(),
    last=assistant_messages(plain_text),  # a real completion holds no <|im_end|> before its end
    new=_followup,
    tools=tool_specs(),
    thinking=st.booleans(),
    tail=st.sampled_from(["im_end", "im_end_newline", "endoftext", "truncated"]),
)
def test_bridge_extends_and_matches_rerender(
    tok: Any,
    renderers: dict[bool, Qwen3Renderer],
    history: Any,
    last: Any,
    new: Any,
    tools: Any,
    thinking: bool,
    tail: str,
) -> None:
    r = renderers[thinking]
    kw: dict[str, Any] = {"tools": tools, "enable_thinking": thinking}
    prompt = template_ids(tok, history, add_generation_prompt=True, **kw)
    full = template_ids(tok, [*history, last], **kw)
    assume(full[: len(prompt)] == prompt)  # enable_thinking=False prompts hold a <think> the message may lack
    body = full[len(prompt) :]
    assert body[-2:] == [r.im_end_id, *tok.encode("\n", add_special_tokens=False)]
    completion = {
        "im_end": body[:-1],
        "im_end_newline": body,
        "endoftext": [*body[:-2], r.endoftext_id],
        "truncated": body[:-2],
    }[tail]
    given_lists = (prompt.copy(), completion.copy())
    out = r.bridge_to_next_turn(prompt, completion, new, tools=tools)
    assert (prompt, completion) == given_lists  # the caller's lists are left as they were
    rerender = template_ids(tok, [*history, last, *new], add_generation_prompt=True, **kw)
    has_query = any(
        m["role"] == "user"
        and not (m["content"].startswith("<tool_response>") and m["content"].endswith("</tool_response>"))
        for m in new
    )
    if out is not None:
        assert out.token_ids[: len(full) - 1] == full[:-1]
        assert out.token_ids == rerender
        assert len(out.message_roles) == len(new)
        assert out.message_indices[: len(full) - 1] == [-1] * (len(full) - 1)
        assert not any(out.sampled_mask)
        assert out.message_indices[-1] == -1
    elif not has_query and thinking and tok.convert_tokens_to_ids("</think>") in body:
        # A tool/system follow-up after a thought with non-empty reasoning must bridge.
        reasoning = r.parse_response(body).reasoning_content
        assert not reasoning, "bridge refused a follow-up the template renders as an extension"
