"""Property tests: Llama3Renderer against the real Llama 3.1 / 3.2 chat templates and the Llama 3 tokenizer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2.exceptions import TemplateError

from renderers.families.llama3 import Llama3Renderer
from renderers.types import ToolCallParseStatus
from tests.helpers.conversations import arg_dicts, plain_text, tool_names, tool_specs
from tests.helpers.llama3_tokenizer import (
    BUILTINS,
    DATE,
    ll_conversations,
    ll_text,
    llama3_tokenizer,
)
from tests.helpers.offline_tokenizers import template_ids


@st.composite
def options(draw: st.DrawFn) -> dict[str, Any]:
    opts: dict[str, Any] = {"date_string": DATE} if draw(st.booleans()) else {}
    if draw(st.booleans()):
        opts["tools_in_user_message"] = False
    return opts


@pytest.fixture(scope="module")
def toks() -> dict[str, Any]:
    return {"3.1": llama3_tokenizer("llama3_1"), "3.2": llama3_tokenizer("llama3_2")}


@given(data=st.data(), variant=st.sampled_from(["3.1", "3.2"]), opts=options(), gen=st.booleans())
def test_render_ids_equal_chat_template(
    toks: dict[str, Any], data: st.DataObject, variant: Any, opts: dict[str, Any], gen: bool
) -> None:
    tok = toks[variant]
    if variant == "3.2":
        opts = {**opts, "date_string": DATE}  # 3.2's default is today's date; fixed here for determinism
    builtin = variant == "3.1" and data.draw(st.booleans())
    if builtin:
        opts["builtin_tools"] = data.draw(st.lists(st.sampled_from(BUILTINS), min_size=1, max_size=3, unique=True))
    msgs: Any = data.draw(ll_conversations(builtin))
    tools = data.draw(st.one_of(tool_specs(), st.just([])))
    r = Llama3Renderer(tok, variant=variant, **opts)
    nothing_after_system = len(msgs) == (1 if msgs[0]["role"] == "system" else 0)
    if tools is not None and opts.get("tools_in_user_message", True) and nothing_after_system:
        with pytest.raises(TemplateError, match="no first user message"):
            template_ids(tok, msgs, tools=tools, add_generation_prompt=gen, **opts)
        with pytest.raises(ValueError, match="first message after the system message"):
            r.render_ids(msgs, tools=tools, add_generation_prompt=gen)
        return
    expected = template_ids(tok, msgs, tools=tools, add_generation_prompt=gen, **opts)
    assert r.render_ids(msgs, tools=tools, add_generation_prompt=gen) == expected
    rendered = r.render(msgs, tools=tools, add_generation_prompt=gen)
    assert rendered.token_ids == expected
    assert rendered.message_roles == [m["role"] for m in msgs]
    seen = [i for i in rendered.message_indices if i >= 0]
    assert seen == sorted(seen)
    spans = rendered.message_token_spans()
    for i in range(len(msgs)):
        assert spans[i] is not None, f"message {i} got no tokens"
    for p, idx in enumerate(rendered.message_indices):
        if rendered.sampled_mask[p]:
            assert msgs[idx]["role"] == "assistant"
            assert rendered.is_content[p]
        if idx < 0:
            assert not rendered.is_content[p]
    # Each assistant turn's sampled tokens follow its header and end with the end-of-turn token.
    for i, m in enumerate(msgs):
        span = spans[i]
        if (
            m["role"] != "assistant"
            or span is None
            or (
                i == (1 if msgs[0]["role"] == "system" else 0)
                and tools is not None
                and opts.get("tools_in_user_message", True)
            )
        ):
            continue
        sampled = [p for p in range(span[0], span[1]) if rendered.sampled_mask[p]]
        assert sampled == list(range(span[0] + 4, span[1]))  # <|start_header_id|> assistant <|end_header_id|> \n\n
        assert rendered.token_ids[sampled[-1]] in (r.eot_id, r.eom_id)


rt_text = plain_text.map(str.strip)


@st.composite
def round_trip_messages(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"role": "assistant", "content": draw(rt_text)}
    args: Any = draw(arg_dicts)
    if draw(st.booleans()):
        args = json.dumps(args, ensure_ascii=draw(st.booleans()))
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"function": {"name": draw(tool_names), "arguments": args}}],
    }


@given(msg=round_trip_messages())
def test_parse_round_trip(toks: dict[str, Any], msg: dict[str, Any]) -> None:
    r = Llama3Renderer(toks["3.1"])
    convo: Any = [{"role": "user", "content": "q"}, msg]
    rt = r.render(convo)
    sampled = [t for t, s in zip(rt.token_ids, rt.sampled_mask, strict=True) if s]
    parsed = r.parse_response(sampled)
    if "tool_calls" in msg:
        fn = msg["tool_calls"][0]["function"]
        assert parsed.content == ""
        assert [(c.name, c.arguments, c.status) for c in parsed.tool_calls] == [
            (fn["name"], fn["arguments"], ToolCallParseStatus.OK)
        ]
    else:
        assert parsed.tool_calls == ()
        # Plain content that is itself a JSON call object would be read as a call; plain_text never is one.
        assert parsed.content == msg["content"]
    prompt = r.render_ids([{"role": "user", "content": "q"}], add_generation_prompt=True)
    assert prompt + sampled == rt.token_ids


@given(
    data=st.data(),
    completion=round_trip_messages(),
    pad=st.sampled_from(["", " ", "\n"]),
    follow=st.lists(st.sampled_from(["user", "tool", "ipython", "system"]), min_size=1, max_size=3),
    text=ll_text,
)
def test_bridge_equals_full_render_or_none(
    toks: dict[str, Any], data: st.DataObject, completion: dict[str, Any], pad: str, follow: list[str], text: str
) -> None:
    tok = toks["3.1"]
    r = Llama3Renderer(tok, date_string=DATE)
    msgs: Any = data.draw(ll_conversations())
    tools = data.draw(tool_specs())
    if msgs[-1]["role"] == "assistant" or len(msgs) == 1:  # a lone system message leaves no place for the tools
        msgs.append({"role": "user", "content": text})
    prompt = r.render_ids(msgs, tools=tools, add_generation_prompt=True)
    full_convo: Any = [*msgs, completion]
    rt = r.render(full_convo, tools=tools)
    sampled = [
        t for t, s, i in zip(rt.token_ids, rt.sampled_mask, rt.message_indices, strict=True) if s and i == len(msgs)
    ]
    if pad:  # white space the template trims on a re-render: the bridge must notice
        sampled = tok.encode(pad, add_special_tokens=False) + sampled
    new: Any = [{"role": role, "content": text} for role in follow]
    given_lists = (prompt.copy(), sampled.copy())
    bridged = r.bridge_to_next_turn(prompt, sampled, new, tools=tools)
    assert (prompt, sampled) == given_lists  # the caller's lists are left as they were
    parsed = r.parse_response(sampled)
    assistant: dict[str, Any] = {"role": "assistant", "content": parsed.content}
    if parsed.tool_calls:
        call = parsed.tool_calls[0]
        assistant["tool_calls"] = [{"function": {"name": call.name, "arguments": call.arguments}}]
    full = template_ids(tok, [*msgs, assistant, *new], tools=tools, add_generation_prompt=True, date_string=DATE)
    prior = prompt + sampled
    assert (bridged is None) == (full[: len(prior)] != prior)
    if bridged is not None:
        assert bridged.token_ids == full
        assert bridged.message_roles == follow
        assert not any(bridged.sampled_mask)
