"""Unit tests for Qwen3Renderer: input validation, parsing statuses, stop ids, upstream template."""

from __future__ import annotations

from typing import Any

import pytest

from renderers.families.qwen3 import Qwen3Renderer
from renderers.protocol import Renderer
from renderers.types import Message, ToolCallParseStatus
from tests.helpers.qwen3_tokenizer import qwen3_tokenizer, template_ids, upstream_qwen3_tokenizer


@pytest.fixture(scope="module")
def tok() -> Any:
    return qwen3_tokenizer()


@pytest.fixture(scope="module")
def r(tok: Any) -> Qwen3Renderer:
    return Qwen3Renderer(tok)


def enc(tok: Any, text: str) -> list[int]:
    return [int(t) for t in tok.encode(text, add_special_tokens=False)]


def test_is_a_renderer(r: Qwen3Renderer) -> None:
    assert isinstance(r, Renderer)
    assert r.supports_tools


def test_stop_ids_are_im_end_and_endoftext(r: Qwen3Renderer, tok: Any) -> None:
    assert r.get_stop_token_ids() == [
        tok.convert_tokens_to_ids("<|im_end|>"),
        tok.convert_tokens_to_ids("<|endoftext|>"),
    ]
    assert r.get_stop_token_ids() == [151645, 151643]


def test_known_qwen_prompt_ids(r: Qwen3Renderer) -> None:
    # The well-known Qwen id sequence for this system prompt.
    ids = r.render_ids([{"role": "system", "content": "You are a helpful assistant."}])
    assert ids == [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198]


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([], r"messages: no messages"),
        (
            [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}],
            r"messages\[1\]\.role: unknown role 'robot'",
        ),
        ([{"content": "a"}], r"messages\[0\]\.role: unknown role None"),
        ([{"role": "user", "content": None}], r"messages\[0\]\.content"),
        ([{"role": "user", "content": [{"type": "text", "text": "x"}]}], r"messages\[0\]\.content"),
        ([{"role": "tool"}], r"messages\[0\]\.content"),
        (
            [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "", "tool_calls": [{"function": {"arguments": {}}}]},
            ],
            r"messages\[1\]\.tool_calls\[0\]\.function\.name",
        ),
        (
            [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": 3}}]}],
            r"messages\[0\]\.tool_calls\[0\]\.function\.arguments",
        ),
        ([{"role": "assistant", "content": "x", "reasoning_content": 5}], r"messages\[0\]\.reasoning_content"),
        (["hello"], r"messages\[0\]: expected a mapping"),
    ],
)
def test_bad_input_names_index_and_field(r: Qwen3Renderer, messages: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        r.render(messages)
    with pytest.raises(ValueError, match=match):
        r.render_ids(messages)


def test_bad_tool_spec_raises(r: Qwen3Renderer) -> None:
    with pytest.raises(ValueError, match=r"tools\[1\]"):
        r.render_ids([{"role": "user", "content": "x"}], tools=[{"name": "a"}, {"description": "no name"}])


def test_enable_thinking_false_generation_prompt(tok: Any) -> None:
    msgs: list[Message] = [{"role": "user", "content": "hi"}]
    r = Qwen3Renderer(tok, enable_thinking=False)
    got = r.render(msgs, add_generation_prompt=True)
    assert got.token_ids == template_ids(tok, msgs, add_generation_prompt=True, enable_thinking=False)
    assert tok.decode(got.token_ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    gen_len = len(enc(tok, "<|im_start|>assistant\n<think>\n\n</think>\n\n"))
    assert got.message_indices[-gen_len:] == [-1] * gen_len
    assert not any(got.sampled_mask)


def test_thinking_retention_follows_last_query(r: Qwen3Renderer, tok: Any) -> None:
    msgs: list[Message] = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1", "reasoning_content": "old thought"},
        {"role": "user", "content": "q2"},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "new thought",
            "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}],
        },
        {"role": "tool", "content": "r1"},
        {"role": "tool", "content": "r2"},
        {"role": "assistant", "content": "done"},
    ]
    ids = r.render_ids(msgs)
    assert ids == template_ids(tok, msgs)
    text = tok.decode(ids)
    assert "old thought" not in text
    assert "new thought" in text
    assert text.count("<|im_start|>user") == 3  # two tool messages share one block


def test_assistant_none_content_matches_upstream_template() -> None:
    up = upstream_qwen3_tokenizer()
    r = Qwen3Renderer(up)
    msgs: list[Message] = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": [1, "é"]}}}],
        },
        {"role": "tool", "content": "ok"},
    ]
    for gen in (False, True):
        assert r.render_ids(msgs, add_generation_prompt=gen) == template_ids(up, msgs, add_generation_prompt=gen)


def test_parse_statuses_and_spans(r: Qwen3Renderer, tok: Any) -> None:
    text = (
        "<think>\nI should call <tool_call>{draft}</tool_call> maybe\n</think>\n\nSure.\n"
        '<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n'
        "<tool_call>\nnot json\n</tool_call>\n"
        '<tool_call>\n{"arguments": {}}\n</tool_call>\n'
        '<tool_call>\n["list"]\n</tool_call>\n'
        '<tool_call>\n{"name": "b", "arguments": "raw"}\n</tool_call>\n'
        '<tool_call>\n{"name": "c", "argu'
    )
    ids = enc(tok, text)
    parsed = r.parse_response(ids)
    assert parsed.reasoning_content == "I should call <tool_call>{draft}</tool_call> maybe"
    assert parsed.content == "Sure."
    statuses = [c.status for c in parsed.tool_calls]
    assert statuses == [
        ToolCallParseStatus.OK,
        ToolCallParseStatus.INVALID_JSON,
        ToolCallParseStatus.MISSING_NAME,
        ToolCallParseStatus.MALFORMED_STRUCTURE,
        ToolCallParseStatus.OK,
        ToolCallParseStatus.UNCLOSED_BLOCK,
    ]
    first = parsed.tool_calls[0]
    assert (first.name, first.arguments) == ("a", {"x": 1})
    assert parsed.tool_calls[4].arguments == "raw"
    for call in parsed.tool_calls:
        assert call.token_span is not None
        start, end = call.token_span
        assert ids[start] == tok.convert_tokens_to_ids("<tool_call>")
        if call.status is not ToolCallParseStatus.UNCLOSED_BLOCK:
            assert ids[end - 1] == tok.convert_tokens_to_ids("</tool_call>")
    assert parsed.tool_calls[-1].token_span == (parsed.tool_calls[-1].token_span[0], len(ids))  # type: ignore[index]


def test_parse_stops_at_first_stop_token(r: Qwen3Renderer, tok: Any) -> None:
    ids = enc(tok, "hello<|im_end|>ignored <tool_call>\n{}\n</tool_call>")
    parsed = r.parse_response(ids)
    assert parsed.content == "hello"
    assert parsed.reasoning_content is None
    assert parsed.tool_calls == ()
    assert r.parse_response(enc(tok, "a<|endoftext|>b")).content == "a"


def test_parse_unclosed_thought_is_reasoning(r: Qwen3Renderer, tok: Any) -> None:
    parsed = r.parse_response(enc(tok, "<think>\nstill thinking <tool_call>"))
    assert parsed.reasoning_content == "still thinking <tool_call>"
    assert parsed.content == ""
    assert parsed.tool_calls == ()


def test_bridge_refusals(r: Qwen3Renderer, tok: Any) -> None:
    msgs: list[Message] = [{"role": "user", "content": "q"}]
    prompt = r.render_ids(msgs, add_generation_prompt=True)
    completion = enc(tok, "<think>\nhm\n</think>\n\nanswer<|im_end|>")
    assert r.bridge_to_next_turn([], completion, [{"role": "user", "content": "x"}]) is None
    assert r.bridge_to_next_turn(prompt, completion, []) is None
    assert r.bridge_to_next_turn(prompt, completion, [{"role": "assistant", "content": "x"}]) is None
    # The template drops this thought once a new user query follows, so no provable extension.
    assert r.bridge_to_next_turn(prompt, completion, [{"role": "user", "content": "next"}]) is None
    # A prompt that does not end with the generation prompt.
    assert r.bridge_to_next_turn(prompt[:-1], completion, [{"role": "tool", "content": "x"}]) is None
    with pytest.raises(ValueError, match=r"messages\[0\]\.role"):
        r.bridge_to_next_turn(prompt, completion, [{"role": "robot", "content": "x"}])


def test_bridge_tool_followup_equals_rerender(r: Qwen3Renderer, tok: Any) -> None:
    msgs: list[Any] = [{"role": "user", "content": "weather?"}]
    prompt = r.render_ids(msgs, add_generation_prompt=True)
    completion = enc(
        tok, '<think>\nlook it up\n</think>\n\n<tool_call>\n{"name": "w", "arguments": {}}\n</tool_call><|im_end|>'
    )
    new: list[Message] = [{"role": "tool", "content": "sunny"}]
    out = r.bridge_to_next_turn(prompt, completion, new)
    assert out is not None
    assistant = {
        "role": "assistant",
        "content": "",
        "reasoning_content": "look it up",
        "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": {}}}],
    }
    assert out.token_ids == template_ids(tok, [*msgs, assistant, *new], add_generation_prompt=True)
    assert out.token_ids[: len(prompt) + len(completion)] == prompt + completion
    # Truncated completion: <|im_end|> is synthesised.
    cut = r.bridge_to_next_turn(prompt, completion[:-1], new)
    assert cut is not None
    assert cut.token_ids == out.token_ids
