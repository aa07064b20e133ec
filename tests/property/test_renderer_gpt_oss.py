"""Property tests: GptOssRenderer against gpt-oss's real template and o200k_harmony tokenizer, and openai-harmony.

The template is TRL's verbatim copy of the upstream ``chat_template.jinja``; the tokenizer is rebuilt offline from
quicktok's o200k ranks (tests/helpers/gpt_oss_tokenizer.py). Both the renderer (``date=None``) and the template
read today's date at render time.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from renderers.families.gpt_oss import GptOssRenderer
from renderers.types import ToolCallParseStatus
from tests.helpers.conversations import arg_dicts, plain_text, text_with, tool_names
from tests.helpers.gpt_oss_tokenizer import gpt_oss_tokenizer, harmony_encoding
from tests.helpers.offline_tokenizers import template_ids

HARMONY_FRAGMENTS = [
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|channel|>",
    "<|return|>",
    "<|call|>",
    "<|constrain|>",
    "<|endoftext|>",
    "analysis",
    "final",
    " to=functions.x",
    "commentary json",
]
render_text = text_with(HARMONY_FRAGMENTS)
EFFORTS = ("low", "medium", "high")

# ---------------------------------------------------------------------------------------------------------------------
# Strategies: JSON-schema tool specs with everything the template's TypeScript rendering branches on.

scalar_schemas: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["string", "number", "integer", "boolean", "object", "array"])}),
    st.fixed_dictionaries({"type": st.just("string"), "enum": st.lists(tool_names, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"type": st.lists(st.sampled_from(["string", "null", "object"]), min_size=1, max_size=2)}),
    st.just({}),
)


def _with_extras(base: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(
        base, st.booleans(), st.none() | plain_text, st.none() | st.sampled_from([None, 3, "a", [1], {"k": True}])
    ).map(
        lambda t: {
            **t[0],
            **({"nullable": True} if t[1] else {}),
            **({"description": t[2]} if t[2] is not None else {}),
            **({"default": t[3]} if t[3] is not None and "enum" not in t[0] and "oneOf" not in t[0] else {}),
        }
    )


schemas = st.recursive(
    _with_extras(scalar_schemas),
    lambda inner: st.one_of(
        st.fixed_dictionaries({"type": st.just("array"), "items": inner}),
        st.fixed_dictionaries(
            {"type": st.just("object"), "properties": st.dictionaries(tool_names, inner, max_size=3)},
            optional={"required": st.lists(tool_names, max_size=2)},
        ),
        st.fixed_dictionaries({"oneOf": st.lists(inner, min_size=1, max_size=3)}),
    ),
    max_leaves=5,
)


@st.composite
def gpt_oss_tools(draw: st.DrawFn) -> list[dict[str, Any]] | None:
    if draw(st.booleans()):
        return None
    out = []
    for _ in range(draw(st.integers(1, 2))):
        fn: dict[str, Any] = {"name": draw(tool_names), "description": draw(plain_text)}
        if draw(st.integers(0, 4)):
            props = draw(st.dictionaries(tool_names, schemas, max_size=3))
            fn["parameters"] = {"type": "object", "properties": props}
            if draw(st.booleans()):
                fn["parameters"]["required"] = draw(st.lists(st.sampled_from([*props, "zz"]), max_size=2))
        out.append({"type": "function", "function": fn})
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Strategies: conversations in the shapes the template renders (its raising shapes are in the unit tests).


def _call(name: str, args: Any) -> dict[str, Any]:
    fn = {"name": name, "arguments": args}
    return {"type": "function", "function": fn}


@st.composite
def tool_call_lists(draw: st.DrawFn, args_form: str = "any") -> list[dict[str, Any]]:
    args: Any = draw(arg_dicts)
    if args_form == "str" or (args_form == "any" and draw(st.booleans())):
        args = json.dumps(args, ensure_ascii=draw(st.booleans()))
    return [_call(draw(tool_names), args)]


@st.composite
def gpt_oss_assistant(
    draw: st.DrawFn, text: st.SearchStrategy[str] = render_text, *, call: bool | None = None, args_form: str = "any"
) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": draw(text)}
    if draw(st.booleans()):
        msg[draw(st.sampled_from(["reasoning_content", "thinking"]))] = draw(text)
    with_call = draw(st.booleans()) if call is None else call
    if with_call:
        msg["tool_calls"] = draw(tool_call_lists(args_form))
        reasoning_key = "reasoning_content" if "reasoning_content" in msg else "thinking"
        if msg["content"] and msg.get(reasoning_key):
            del msg[draw(st.sampled_from(["content", reasoning_key]))]
    return msg


def _channel_tags(msg: dict[str, Any]) -> bool:
    tags = ("<|channel|>analysis<|message|>", "<|channel|>final<|message|>")
    texts = [msg.get("content") or "", msg.get("reasoning_content") or "", msg.get("thinking") or ""]
    return any(tag in t for tag in tags for t in texts)


@st.composite
def gpt_oss_conversations(draw: st.DrawFn, text: st.SearchStrategy[str] = render_text) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if draw(st.booleans()):
        msgs.append({"role": "system", "content": draw(text)})
    called = False
    for _ in range(draw(st.integers(1, 6))):
        role = draw(st.sampled_from(["user", "assistant", "assistant", "tool"]))
        if role == "tool" and not called:
            role = "user"
        if role == "assistant":
            msg = draw(gpt_oss_assistant(text))
            assume(not _channel_tags(msg))
            msgs.append(msg)
            called = "tool_calls" in msg
        else:
            msgs.append({"role": role, "content": draw(text)})
    return msgs


# ---------------------------------------------------------------------------------------------------------------------


class _Tok:
    """The tokenizer behind a short repr (hypothesis prints every argument of a failing example)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __repr__(self) -> str:
        return "<gpt-oss tokenizer>"


@pytest.fixture(scope="module")
def tok_holder() -> _Tok:
    return _Tok(gpt_oss_tokenizer())


@pytest.fixture(scope="module")
def renderers(tok_holder: _Tok) -> dict[str, GptOssRenderer]:
    return {effort: GptOssRenderer(tok_holder.tokenizer, reasoning_effort=effort) for effort in EFFORTS}


@given(msgs=gpt_oss_conversations(), tools=gpt_oss_tools(), gen=st.booleans(), effort=st.sampled_from(EFFORTS))
def test_render_ids_equal_chat_template(
    tok_holder: _Tok, renderers: dict[str, GptOssRenderer], msgs: Any, tools: Any, gen: bool, effort: str
) -> None:
    tok = tok_holder.tokenizer
    expected = template_ids(tok, msgs, tools=tools, add_generation_prompt=gen, reasoning_effort=effort)
    r = renderers[effort]
    assert r.render_ids(msgs, tools=tools, add_generation_prompt=gen) == expected
    assert r.render(msgs, tools=tools, add_generation_prompt=gen).token_ids == expected


@given(msgs=gpt_oss_conversations(), tools=gpt_oss_tools(), gen=st.booleans())
def test_attribution_invariants(
    tok_holder: _Tok, renderers: dict[str, GptOssRenderer], msgs: Any, tools: Any, gen: bool
) -> None:
    tok = tok_holder.tokenizer
    r = renderers["medium"]
    rt = r.render(msgs, tools=tools, add_generation_prompt=gen)
    assert rt.message_roles == [m["role"] for m in msgs]
    seen = [i for i in rt.message_indices if i >= 0]
    assert seen == sorted(seen)

    def decode(ids: list[int]) -> str:
        return str(tok.decode(ids, skip_special_tokens=False))

    assert decode(rt.token_ids).startswith("<|start|>system<|message|>")
    assert rt.message_indices[0] == -1
    spans = rt.message_token_spans()
    for i, m in enumerate(msgs):
        span = spans[i]
        if i == 0 and m["role"] == "system":
            if m["content"] or tools:
                assert span is not None
                assert decode(rt.token_ids[span[0] : span[1]]).startswith("<|start|>developer<|message|>")
            continue
        assert span is not None, f"message {i} got no tokens"
        text = decode(rt.token_ids[span[0] : span[1]])
        if m["role"] == "user":
            assert text == f"<|start|>user<|message|>{m['content']}<|end|>"
        elif m["role"] == "tool":
            assert text.startswith("<|start|>functions.")
            assert text.endswith(f"<|message|>{json.dumps(m['content'], ensure_ascii=False)}<|end|>")
        else:
            sampled = [p for p in range(span[0], span[1]) if rt.sampled_mask[p]]
            # The model writes everything after the generation prompt's <|start|>assistant, up to the terminator.
            assert sampled == list(range(sampled[0], span[1]))
            assert decode(rt.token_ids[span[0] : sampled[0]]) == "<|start|>assistant"
            assert rt.token_ids[span[1] - 1] in (r.end_id, r.call_id, r.return_id)
            assert all(rt.is_content[p] == rt.sampled_mask[p] for p in range(span[0], span[1]))
    for pos, idx in enumerate(rt.message_indices):
        if rt.sampled_mask[pos]:
            assert msgs[idx]["role"] == "assistant"
        if idx == -1:
            assert not rt.is_content[pos]
        elif rt.is_content[pos] and msgs[idx]["role"] != "assistant":
            piece = decode([rt.token_ids[pos]])
            source = msgs[idx]["content"]
            if msgs[idx]["role"] == "tool":
                source = json.dumps(source, ensure_ascii=False)
            if "\ufffd" not in piece:
                # A token may run on into the scaffolding after the text (the "\n\n" after the instructions, the
                # closing quote of a tool result).
                assert piece in source or piece.rstrip('\n"') in source
    if gen:
        assert decode(rt.token_ids[-2:]) == "<|start|>assistant"
        assert rt.message_indices[-2:] == [-1, -1]


@given(
    history=gpt_oss_conversations(),
    last=gpt_oss_assistant(plain_text, args_form="dict"),
    query=plain_text,
    tools=gpt_oss_tools(),
)
def test_parse_recovers_rendered_assistant_turn(
    tok_holder: _Tok, renderers: dict[str, GptOssRenderer], history: Any, last: Any, query: str, tools: Any
) -> None:
    tok = tok_holder.tokenizer
    r = renderers["medium"]
    prior = [*history, {"role": "user", "content": query}]
    prompt = template_ids(tok, prior, tools=tools, add_generation_prompt=True)
    full = template_ids(tok, [*prior, last], tools=tools)
    # An answer drops the analysis of earlier tool-call turns: then the prompt is not a prefix.
    assume(full[: len(prompt)] == prompt)
    completion = full[len(prompt) :]
    parsed = r.parse_response(completion)
    reasoning = last.get("reasoning_content", last.get("thinking"))
    if "tool_calls" in last:
        assert parsed.content == ""
        assert parsed.reasoning_content == ((last.get("content") or reasoning) or None)
        [call] = parsed.tool_calls
        fn = last["tool_calls"][0]["function"]
        assert call.status is ToolCallParseStatus.OK
        assert (call.name, call.arguments) == (fn["name"], fn["arguments"])
        assert call.token_span is not None
        assert call.token_span[1] == len(completion)
        assert tok.decode(completion[call.token_span[0] : call.token_span[1]]).endswith("<|call|>")
    else:
        assert parsed.content == last["content"]
        assert parsed.reasoning_content == reasoning
        assert parsed.tool_calls == ()
    assert completion[-1] in r.get_stop_token_ids()


@given(
    history=gpt_oss_conversations(),
    query=plain_text,
    last=gpt_oss_assistant(plain_text),
    new=st.lists(
        st.builds(lambda role, c: {"role": role, "content": c}, st.sampled_from(["tool", "tool", "user"]), render_text),
        min_size=1,
        max_size=3,
    ),
    tools=gpt_oss_tools(),
    tail=st.sampled_from(["as_sampled", "extra_after_stop", "endoftext", "truncated"]),
)
def test_bridge_extends_and_matches_rerender(
    tok_holder: _Tok,
    renderers: dict[str, GptOssRenderer],
    history: Any,
    query: str,
    last: Any,
    new: Any,
    tools: Any,
    tail: str,
) -> None:
    tok = tok_holder.tokenizer
    r = renderers["medium"]
    prior = [*history, {"role": "user", "content": query}]
    prompt = template_ids(tok, prior, tools=tools, add_generation_prompt=True)
    full = template_ids(tok, [*prior, last], tools=tools)
    assume(full[: len(prompt)] == prompt)
    body = full[len(prompt) :]
    completion = {
        "as_sampled": body,
        "extra_after_stop": [*body, *tok.encode("junk", add_special_tokens=False)],
        "endoftext": [*body[:-1], r.endoftext_id],
        "truncated": body[:-1],
    }[tail]
    given_lists = (prompt.copy(), completion.copy())
    out = r.bridge_to_next_turn(prompt, completion, new, tools=tools)
    assert (prompt, completion) == given_lists  # the caller's lists are left as they were
    is_call = "tool_calls" in last
    if not is_call or tail in ("endoftext", "truncated"):
        assert out is None  # an answer is re-rendered with <|end|> and without analysis; the rest is not a call
        return
    assert out is not None, "a tool call followed by results is an extension of the template's text"
    rerender = template_ids(tok, [*prior, last, *new], tools=tools, add_generation_prompt=True)
    assert out.token_ids == rerender
    assert out.token_ids[: len(full)] == full
    assert out.message_indices[: len(full)] == [-1] * len(full)
    assert len(out.message_roles) == len(new)
    assert not any(out.sampled_mask)
    assert out.message_indices[-1] == -1
    assert sorted({i for i in out.message_indices if i >= 0}) == list(range(len(new)))


# ---------------------------------------------------------------------------------------------------------------------
# openai-harmony, an independent renderer: compared where it and the template agree (system and developer messages,
# the tool namespace for flat parameter types, user turns, answers, the last turn's analysis). They differ on tool
# results (the template JSON-quotes them), on a call's content type (`json` vs `<|constrain|>json`) and on string
# arguments (the template JSON-quotes them).

simple_params = st.dictionaries(
    tool_names,
    st.one_of(
        st.fixed_dictionaries({"type": st.sampled_from(["string", "number", "integer", "boolean"])}),
        st.fixed_dictionaries({"type": st.just("string"), "enum": st.lists(tool_names, min_size=1, max_size=3)}),
    ),
    min_size=1,
    max_size=3,
)


def _harmony_ids(msgs: list[dict[str, Any]], tools: list[dict[str, Any]] | None, effort: str, date: str) -> list[int]:
    import openai_harmony as oh

    enc = harmony_encoding()
    system = (
        oh.SystemContent.new()
        .with_conversation_start_date(date)
        .with_reasoning_effort(oh.ReasoningEffort[effort.upper()])
    )
    conv: list[Any] = [oh.Message.from_role_and_content(oh.Role.SYSTEM, system)]
    rest = msgs
    instructions = ""
    if msgs and msgs[0]["role"] == "system":
        instructions, rest = msgs[0]["content"], msgs[1:]
    if instructions or tools:
        dev = oh.DeveloperContent.new()
        if instructions:
            dev = dev.with_instructions(instructions)
        if tools:
            dev = dev.with_function_tools(
                [
                    oh.ToolDescription.new(
                        t["function"]["name"], t["function"]["description"], t["function"]["parameters"]
                    )
                    for t in tools
                ]
            )
        conv.append(oh.Message.from_role_and_content(oh.Role.DEVELOPER, dev))
    for k, m in enumerate(rest):
        if m["role"] == "user":
            conv.append(oh.Message.from_role_and_content(oh.Role.USER, m["content"]))
        elif k == len(rest) - 1 and m.get("reasoning_content") is not None:
            conv.append(
                oh.Message.from_role_and_content(oh.Role.ASSISTANT, m["reasoning_content"]).with_channel("analysis")
            )
            conv.append(oh.Message.from_role_and_content(oh.Role.ASSISTANT, m["content"]).with_channel("final"))
        else:
            conv.append(oh.Message.from_role_and_content(oh.Role.ASSISTANT, m["content"]).with_channel("final"))
    convo = oh.Conversation.from_messages(conv)
    if rest[-1]["role"] == "assistant":
        # The template keeps the last turn's analysis; harmony drops it unless told not to.
        return list(enc.render_conversation_for_training(convo, oh.RenderConversationConfig(auto_drop_analysis=False)))
    return list(enc.render_conversation_for_completion(convo, oh.Role.ASSISTANT))


@given(
    # Harmony trims the developer instructions (the template does not).
    system=st.none() | plain_text.filter(lambda s: s == s.strip() != ""),
    turns=st.lists(st.tuples(plain_text, plain_text), min_size=1, max_size=3),
    last_reasoning=st.none() | plain_text,
    answered=st.booleans(),
    # Harmony writes no `// ` line for an empty description (the template does) and splits multi-line ones.
    params=st.lists(
        st.tuples(tool_names, st.from_regex(r"[A-Za-z][A-Za-z ,.]{0,20}", fullmatch=True), simple_params), max_size=2
    ),
    effort=st.sampled_from(EFFORTS),
)
def test_render_equals_openai_harmony(
    tok_holder: _Tok,
    system: str | None,
    turns: list[tuple[str, str]],
    last_reasoning: str | None,
    answered: bool,
    params: list[tuple[str, str, dict[str, Any]]],
    effort: str,
) -> None:
    tok = tok_holder.tokenizer
    # Without tools, the template ends the instructions with "\n\n" and harmony does not.
    assume(system is None or params)
    msgs: list[dict[str, Any]] = [{"role": "system", "content": system}] if system is not None else []
    for q, a in turns:
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    if answered:
        msgs[-1]["reasoning_content"] = last_reasoning
    else:
        msgs.pop()
    tools = [
        {
            "type": "function",
            "function": {"name": n, "description": d, "parameters": {"type": "object", "properties": p}},
        }
        for n, d, p in params
    ] or None
    r = GptOssRenderer(tok, reasoning_effort=effort, date="2025-01-02")
    got = r.render_ids(cast(Any, msgs), tools=tools, add_generation_prompt=not answered)
    assert got == _harmony_ids(msgs, tools, effort, "2025-01-02")


# ---------------------------------------------------------------------------------------------------------------------
# Inputs the template refuses, and arbitrary completions.


@st.composite
def loose_conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Any role anywhere, tool messages without a call, several calls, content and reasoning beside a call."""
    msgs: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 5))):
        role = draw(st.sampled_from(["system", "user", "assistant", "tool"]))
        if role != "assistant":
            msgs.append({"role": role, "content": draw(render_text)})
            continue
        msg: dict[str, Any] = {"role": "assistant", "content": draw(render_text)}
        if draw(st.booleans()):
            msg["reasoning_content"] = draw(render_text)
        if draw(st.booleans()):
            msg["tool_calls"] = [_call(draw(tool_names), draw(arg_dicts)) for _ in range(draw(st.integers(1, 2)))]
        msgs.append(msg)
    return msgs


@given(msgs=loose_conversations(), gen=st.booleans())
def test_errors_where_the_template_fails_or_drops_input(
    tok_holder: _Tok, renderers: dict[str, GptOssRenderer], msgs: Any, gen: bool
) -> None:
    tok = tok_holder.tokenizer
    try:
        expected: list[int] | None = template_ids(tok, msgs, add_generation_prompt=gen)
    except Exception:
        expected = None
    try:
        got: list[int] | None = renderers["medium"].render_ids(msgs, add_generation_prompt=gen)
        error = ""
    except ValueError as exc:
        got, error = None, str(exc)
    if expected is None:
        assert got is None, "the template raises on this input; the renderer must raise a ValueError"
        assert error.startswith("messages[")
    elif got is None:
        # Where the template renders but silently drops input, the renderer refuses it.
        assert "would be dropped" in error or "renders only the first" in error, error
    else:
        assert got == expected


special_ids = st.sampled_from([200006, 200007, 200008, 200005, 200003, 200002, 200012, 199999])


@given(
    parts=st.lists(
        st.one_of(special_ids.map(lambda t: [t]), st.sampled_from([*HARMONY_FRAGMENTS, "assistant", "{", '{"a": 1}'])),
        max_size=20,
    )
)
def test_parse_never_raises_and_spans_stay_inside(
    tok_holder: _Tok, renderers: dict[str, GptOssRenderer], parts: list[Any]
) -> None:
    tok = tok_holder.tokenizer
    completion: list[int] = []
    for part in parts:
        completion += part if isinstance(part, list) else tok.encode(part, add_special_tokens=False)
    parsed = renderers["medium"].parse_response(completion)
    assert isinstance(parsed.content, str)
    for call in parsed.tool_calls:
        assert call.token_span is not None
        assert 0 <= call.token_span[0] < call.token_span[1] <= len(completion)
        assert (call.status is ToolCallParseStatus.OK) == (call.arguments is not None)
