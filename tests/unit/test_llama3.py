"""Unit tests for Llama3Renderer: ids, dates, tools, built-in tools, errors, parsing statuses, bridge, detection."""

from __future__ import annotations

import time
from typing import Any

import pytest

from renderers.chat_template import ChatTemplateRenderer
from renderers.factory import NativeRendererUnavailable, create_renderer
from renderers.families.llama3 import Llama3Renderer
from renderers.protocol import Renderer
from renderers.types import ToolCallParseStatus
from tests.helpers.llama3_tokenizer import llama3_dir, llama3_tokenizer
from tests.helpers.offline_tokenizers import load_dir, template_ids, trl_template

TOOLS = [{"type": "function", "function": {"name": "w", "description": "weather", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
def tok() -> Any:
    return llama3_tokenizer("llama3_1")


@pytest.fixture(scope="module")
def r(tok: Any) -> Llama3Renderer:
    return Llama3Renderer(tok)


def enc(tok: Any, text: str) -> list[int]:
    return [int(t) for t in tok.encode(text, add_special_tokens=False)]


def call(name: str, arguments: Any) -> Any:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}],
    }


def test_is_a_renderer_with_llama_ids(r: Llama3Renderer) -> None:
    assert isinstance(r, Renderer)
    assert (r.bos_id, r.eom_id, r.eot_id, r.python_tag_id) == (128000, 128008, 128009, 128010)
    assert r.get_stop_token_ids() == [128009, 128008, 128001]


def test_known_prompt_ids(r: Llama3Renderer) -> None:
    ids = r.render_ids([{"role": "user", "content": "hi"}], add_generation_prompt=True)
    # <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n ... <|eot_id|> ... assistant header
    assert ids[:5] == [128000, 128006, 9125, 128007, 271]
    assert ids[-4:] == [128006, 78191, 128007, 271]
    assert ids.count(128000) == 1  # no second <|begin_of_text|> from the tokenizer's post-processor


def test_dates(tok: Any) -> None:
    msgs: list[Any] = [{"role": "user", "content": "hi"}]
    assert "Today Date: 26 Jul 2024\n" in Llama3Renderer(tok).render_text(msgs)
    fixed = Llama3Renderer(tok, date_string="01 Feb 2025")
    assert fixed.render_ids(msgs) == template_ids(tok, msgs, date_string="01 Feb 2025")
    tok32 = llama3_tokenizer("llama3_2")
    today = Llama3Renderer(tok32, variant="3.2")
    assert f"Today Date: {time.strftime('%d %b %Y')}\n" in today.render_text(msgs)
    assert today.render_ids(msgs) == template_ids(tok32, msgs)


def test_tools_in_first_user_message_or_system(tok: Any) -> None:
    msgs: list[Any] = [{"role": "system", "content": " S "}, {"role": "user", "content": " q "}]
    in_user = Llama3Renderer(tok)
    text = in_user.render_text(msgs, tools=TOOLS)
    assert "Environment: ipython\nCutting Knowledge Date" in text
    assert "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions" in text
    assert text.endswith('"type": "object"\n        }\n    }\n}\n\nq<|eot_id|>')
    assert in_user.render_ids(msgs, tools=TOOLS) == template_ids(tok, msgs, tools=TOOLS)
    in_system = Llama3Renderer(tok, tools_in_user_message=False)
    assert in_system.render_ids(msgs, tools=TOOLS) == template_ids(tok, msgs, tools=TOOLS, tools_in_user_message=False)
    # tools=[] is not tools=None: the template still announces the ipython environment.
    assert "Environment: ipython" in in_user.render_text(msgs, tools=[])
    assert in_user.render_ids(msgs, tools=[]) == template_ids(tok, msgs, tools=[])
    with pytest.raises(ValueError, match="first message after the system message"):
        in_user.render_ids([{"role": "system", "content": "s"}], tools=TOOLS)


def test_tool_calls_and_results(r: Llama3Renderer, tok: Any) -> None:
    msgs: list[Any] = [
        {"role": "user", "content": "weather?"},
        call("w", {"city": "Zürich"}),
        {"role": "tool", "content": "sunny"},
        call("w", '{"city": "Bern"}'),
        {"role": "ipython", "content": "rain"},
    ]
    text = r.render_text(msgs, add_generation_prompt=True)
    assert '{"name": "w", "parameters": {"city": "Zürich"}}<|eot_id|>' in text
    assert '{"name": "w", "parameters": "{\\"city\\": \\"Bern\\"}"}<|eot_id|>' in text  # tojson of a string
    assert '<|start_header_id|>ipython<|end_header_id|>\n\n"sunny"<|eot_id|>' in text  # tojson of a string
    assert r.render_ids(msgs, add_generation_prompt=True) == template_ids(tok, msgs, add_generation_prompt=True)
    rt = r.render(msgs)
    assert rt.message_roles == ["user", "assistant", "tool", "assistant", "ipython"]


def test_builtin_tools(tok: Any) -> None:
    r = Llama3Renderer(tok, builtin_tools=["brave_search", "code_interpreter"])
    msgs: list[Any] = [{"role": "user", "content": "find"}, call("brave_search", {"query": "llamas"})]
    text = r.render_text(msgs)
    assert "Environment: ipython\nTools: brave_search\n\n" in text
    assert text.endswith('<|python_tag|>brave_search.call(query="llamas")<|eom_id|>')
    kwargs = {"builtin_tools": ["brave_search", "code_interpreter"]}
    assert r.render_ids(msgs) == template_ids(tok, msgs, **kwargs)
    json_call = [msgs[0], call("w", {"a": 1})]
    assert r.render_text(json_call).endswith('{"name": "w", "parameters": {"a": 1}}<|eom_id|>')
    assert r.render_ids(json_call) == template_ids(tok, json_call, **kwargs)
    with pytest.raises(ValueError, match=r"messages\[1\]\.tool_calls\[0\]\.function\.arguments: .*brave_search"):
        r.render_ids([msgs[0], call("brave_search", {"query": 1})])
    with pytest.raises(ValueError, match=r"builtin_tools: only the Llama 3\.1 template"):
        Llama3Renderer(tok, variant="3.2", builtin_tools=["brave_search"])


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        (
            [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"function": {"name": "a", "arguments": {}}},
                        {"function": {"name": "b", "arguments": {}}},
                    ],
                },
            ],
            r"messages\[1\]\.tool_calls: .*exactly one tool call .*got 2",
        ),
        (
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": []}],
            r"messages\[1\]\.tool_calls: .*got 0",
        ),
        (
            [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "", "tool_calls": [{"name": "a", "arguments": {}}]},
            ],
            r"messages\[1\]\.tool_calls\[0\]\.function",
        ),
        (
            [{"role": "user", "content": "q", "tool_calls": [{"function": {"name": "a", "arguments": {}}}]}],
            r"messages\[0\]\.tool_calls",
        ),
        ([{"role": "robot", "content": "q"}], r"messages\[0\]\.role"),
        ([], r"messages: no messages"),
    ],
)
def test_bad_input_names_index_and_field(r: Llama3Renderer, messages: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        r.render_ids(messages)


def test_bad_options(tok: Any) -> None:
    with pytest.raises(ValueError, match="variant"):
        Llama3Renderer(tok, variant="3.3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="date_string"):
        Llama3Renderer(tok, date_string=20240726)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"does not support \['custom'\]"):
        create_renderer(tok, renderer="llama3_1", chat_template_kwargs={"custom": 1})


def test_parse_content_and_calls(r: Llama3Renderer, tok: Any) -> None:
    plain = r.parse_response(enc(tok, "Hello there.<|eot_id|>ignored"))
    assert (plain.content, plain.reasoning_content, plain.tool_calls) == ("Hello there.", None, ())
    ids = enc(tok, '{"name": "w", "parameters": {"city": "Paris"}}<|eot_id|>')
    parsed = r.parse_response(ids)
    assert parsed.content == ""
    (c,) = parsed.tool_calls
    assert (c.name, c.arguments, c.status, c.token_span) == (
        "w",
        {"city": "Paris"},
        ToolCallParseStatus.OK,
        (0, len(ids)),
    )
    json_content = r.parse_response(enc(tok, '{"answer": 42}<|eot_id|>'))
    assert (json_content.content, json_content.tool_calls) == ('{"answer": 42}', ())


@pytest.mark.parametrize(
    ("text", "status", "name", "arguments"),
    [
        ('{"name": "w", "parameters": {"a": 1}<|eot_id|>', ToolCallParseStatus.INVALID_JSON, None, None),
        ('{"name": "w", "parameters": {"a": 1', ToolCallParseStatus.UNCLOSED_BLOCK, None, None),
        ('{"name": 3, "parameters": {}}<|eot_id|>', ToolCallParseStatus.MISSING_NAME, None, {}),
        ('{"name": "w", "parameters": [1]}<|eot_id|>', ToolCallParseStatus.MALFORMED_STRUCTURE, "w", None),
        ('{"name": "w", "arguments": "{}"}<|eot_id|>', ToolCallParseStatus.OK, "w", "{}"),
        (
            '<|python_tag|>brave_search.call(query="a, b", n="2")<|eom_id|>',
            ToolCallParseStatus.OK,
            "brave_search",
            {"query": "a, b", "n": "2"},
        ),
        (
            "<|python_tag|>brave_search.call(query=oops)<|eom_id|>",
            ToolCallParseStatus.MALFORMED_STRUCTURE,
            "brave_search",
            None,
        ),
        ('<|python_tag|>{"name": "w", "parameters": {}}<|eom_id|>', ToolCallParseStatus.OK, "w", {}),
        ('<|python_tag|>{"name": "w"<|eom_id|>', ToolCallParseStatus.INVALID_JSON, None, None),
        ("<|python_tag|>print(1 + 1)<|eom_id|>", ToolCallParseStatus.OK, "code_interpreter", {"code": "print(1 + 1)"}),
        ('<|python_tag|>brave_search.call(query="a', ToolCallParseStatus.UNCLOSED_BLOCK, None, None),
    ],
)
def test_parse_statuses(
    r: Llama3Renderer, tok: Any, text: str, status: ToolCallParseStatus, name: Any, arguments: Any
) -> None:
    parsed = r.parse_response(enc(tok, text))
    (c,) = parsed.tool_calls
    assert (c.status, c.name, c.arguments) == (status, name, arguments)


def test_parse_text_before_python_tag_is_content(r: Llama3Renderer, tok: Any) -> None:
    parsed = r.parse_response(enc(tok, 'Let me search.<|python_tag|>brave_search.call(query="x")<|eom_id|>'))
    assert parsed.content == "Let me search."
    assert parsed.tool_calls[0].token_span is not None
    assert parsed.tool_calls[0].name == "brave_search"


def test_bridge_tool_followup_equals_rerender(r: Llama3Renderer, tok: Any) -> None:
    msgs: list[Any] = [{"role": "user", "content": "weather?"}]
    prompt = r.render_ids(msgs, tools=TOOLS, add_generation_prompt=True)
    completion = enc(tok, '{"name": "w", "parameters": {"city": "Paris"}}<|eot_id|>')
    new: list[Any] = [{"role": "ipython", "content": "sunny"}, {"role": "user", "content": "thanks"}]
    out = r.bridge_to_next_turn(prompt, completion, new, tools=TOOLS)
    assert out is not None
    full = template_ids(tok, [*msgs, call("w", {"city": "Paris"}), *new], tools=TOOLS, add_generation_prompt=True)
    assert out.token_ids == full
    assert out.message_roles == ["ipython", "user"]
    cut = r.bridge_to_next_turn(prompt, completion[:-1], new, tools=TOOLS)  # <|eot_id|> synthesised
    assert cut is not None
    assert cut.token_ids == full


def test_bridge_refusals(r: Llama3Renderer, tok: Any) -> None:
    msgs: list[Any] = [{"role": "user", "content": "q"}]
    prompt = r.render_ids(msgs, add_generation_prompt=True)
    completion = enc(tok, "answer<|eot_id|>")
    new: list[Any] = [{"role": "user", "content": "x"}]
    assert r.bridge_to_next_turn(prompt, completion, new) is not None
    assert r.bridge_to_next_turn([], completion, new) is None
    assert r.bridge_to_next_turn(prompt, completion, []) is None
    assert r.bridge_to_next_turn(prompt, completion, [{"role": "assistant", "content": "x"}]) is None
    assert r.bridge_to_next_turn(prompt[:-1], completion, new) is None
    # The template trims content and writes its own JSON spacing and end token: these re-render differently.
    assert r.bridge_to_next_turn(prompt, enc(tok, " answer <|eot_id|>"), new) is None
    assert r.bridge_to_next_turn(prompt, enc(tok, '{"name":"w","parameters":{}}<|eot_id|>'), new) is None
    assert r.bridge_to_next_turn(prompt, enc(tok, '{"name": "w", "parameters": {}}<|eom_id|>'), new) is None
    assert r.bridge_to_next_turn(prompt, enc(tok, '{"name": "w", "parameters": {<|eot_id|>'), new) is None


def test_detection_by_template() -> None:
    folder = llama3_dir()
    for template, variant in (("llama3_1", "3.1"), ("llama3_2", "3.2")):
        found = create_renderer(llama3_tokenizer(template))
        assert isinstance(found, Llama3Renderer)
        assert found.variant == variant
    # A pinned date is a template variable: the probes are rendered with it, so the family still matches. With the
    # date pinned and no built-in tools the 3.1 and 3.2 templates write the same text, so 3.1 (first) is chosen.
    tok32 = llama3_tokenizer("llama3_2")
    dated = create_renderer(tok32, chat_template_kwargs={"date_string": "01 Jan 2025"})
    assert isinstance(dated, Llama3Renderer)
    assert dated.date_string == "01 Jan 2025"
    msgs: list[Any] = [{"role": "user", "content": "q"}, call("w", {"a": 1}), {"role": "tool", "content": "t"}]
    assert dated.render_ids(msgs, tools=TOOLS) == template_ids(tok32, msgs, tools=TOOLS, date_string="01 Jan 2025")
    # The folder as shipped has no template: the native 3.1 layout is used.
    plain = create_renderer(folder)
    assert isinstance(plain, Llama3Renderer)
    assert plain.variant == "3.1"
    # Llama 3.0's template on the same vocabulary is another layout (no date header): not claimed.
    with pytest.warns(NativeRendererUnavailable, match="llama3_1: its chat template renders probe 0 differently"):
        other = create_renderer(load_dir(folder, chat_template=trl_template("llama3")))
    assert isinstance(other, ChatTemplateRenderer)


def test_bridge_after_builtin_call_equals_rerender(tok: Any) -> None:
    r = Llama3Renderer(tok, builtin_tools=["brave_search"])
    msgs: list[Any] = [{"role": "user", "content": "find llamas"}]
    prompt = r.render_ids(msgs, add_generation_prompt=True)
    completion = enc(tok, '<|python_tag|>brave_search.call(query="llamas")<|eom_id|>')
    new: list[Any] = [{"role": "ipython", "content": "results"}]
    out = r.bridge_to_next_turn(prompt, completion, new)
    assert out is not None
    full = template_ids(
        tok,
        [*msgs, call("brave_search", {"query": "llamas"}), *new],
        add_generation_prompt=True,
        builtin_tools=["brave_search"],
    )
    assert out.token_ids == full
    # The same call ended with <|eot_id|>: the template writes <|eom_id|> in ipython mode, so no bridge.
    assert r.bridge_to_next_turn(prompt, [*completion[:-1], r.eot_id], new) is None
