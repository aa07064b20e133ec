"""GptOssRenderer on specific shapes: the tokenizer's identity, template options, errors, harmony parsing, bridge
refusals and detection. The conversations generated at random are in tests/property/test_renderer_gpt_oss.py."""

from __future__ import annotations

import datetime
import hashlib
import json
import warnings
from typing import Any

import pytest

from renderers.factory import NativeRendererUnavailable, create_renderer
from renderers.families.gpt_oss import GptOssRenderer
from renderers.families.qwen3 import Qwen3Renderer
from renderers.types import ParsedToolCall, ToolCallParseStatus
from tests.helpers.gpt_oss_tokenizer import (
    O200K_BASE_SHA256,
    gpt_oss_tokenizer,
    gpt_oss_tokenizer_dir,
    harmony_encoding,
    tiktoken_dir,
)
from tests.helpers.offline_tokenizers import load_dir, template_ids, trl_template
from tests.helpers.qwen3_tokenizer import qwen3_tokenizer

TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name"},
                    "unit": {"type": "string", "enum": ["c", "f"], "default": "c"},
                },
                "required": ["city"],
            },
        },
    }
]
CALL: Any = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}


@pytest.fixture(scope="module")
def tok() -> Any:
    return gpt_oss_tokenizer()


@pytest.fixture(scope="module")
def r(tok: Any) -> GptOssRenderer:
    return GptOssRenderer(tok)


def ids(tok: Any, text: str) -> list[int]:
    return list(tok.encode(text, add_special_tokens=False))


# ---------------------------------------------------------------------------------------------------------- tokenizer


def test_o200k_file_is_openais() -> None:
    data = (tiktoken_dir() / "o200k_base.tiktoken").read_bytes()
    assert hashlib.sha256(data).hexdigest() == O200K_BASE_SHA256
    assert len(data.splitlines()) == 199998


def test_tokenizer_matches_openai_harmony(tok: Any) -> None:
    """openai-harmony's own o200k_harmony encoder (Rust tiktoken, its own split pattern) gives the same ids."""
    enc = harmony_encoding()
    corpus = [
        "Hello, world! don't I'll WE'RE",
        "  leading\n\ttabs and  spaces   \r\n windows \r\n\n\n",
        "日本語のトークナイザー 中文 한국어 Привет مرحبا हिन्दी",
        "emoji 👍🏽 👨‍👩‍👧 e\u0301 \u00a0\u3000\u200d",
        'def f(x):\n    return {"a": [1, 2.5e-3, null]}  # 1234567 0xDEADBEEF',
        "<|start|>assistant<|channel|>analysis<|message|>x<|end|><|return|><|call|><|constrain|>json<|endoftext|>",
    ]
    for text in corpus:
        assert ids(tok, text) == list(enc.encode(text, allowed_special="all")), text
    assert len(tok) == 201088


def test_special_token_ids(r: GptOssRenderer, tok: Any) -> None:
    enc = harmony_encoding()
    for name in ("<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>", "<|call|>", "<|endoftext|>"):
        assert tok.convert_tokens_to_ids(name) == enc.encode(name, allowed_special="all")[0]
    assert (r.start_id, r.end_id, r.return_id, r.call_id, r.endoftext_id) == (200006, 200007, 200002, 200012, 199999)


def test_stop_ids_are_harmonys_assistant_action_stops_and_endoftext(r: GptOssRenderer) -> None:
    enc = harmony_encoding()
    assert set(r.get_stop_token_ids()) == {*enc.stop_tokens_for_assistant_actions(), r.endoftext_id}
    assert r.end_id not in r.get_stop_token_ids()  # <|end|> closes an analysis message; the model goes on


# ------------------------------------------------------------------------------------------------------ template kwargs


def test_date_parameter_matches_template_at_that_date(tok: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers.utils.chat_template_utils as ctu

    class FixedNow(datetime.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> FixedNow:
            return cls(2025, 1, 2, 12, 0)

    monkeypatch.setattr(ctu, "datetime", FixedNow)
    msgs: Any = [{"role": "user", "content": "hi"}]
    expected = template_ids(tok, msgs, add_generation_prompt=True)
    assert "Current date: 2025-01-02\n" in tok.decode(expected)
    for date in (datetime.date(2025, 1, 2), "2025-01-02"):
        assert GptOssRenderer(tok, date=date).render_ids(msgs, add_generation_prompt=True) == expected
    assert GptOssRenderer(tok, date="2025-01-03").render_ids(msgs, add_generation_prompt=True) != expected


def test_default_date_is_today(r: GptOssRenderer) -> None:
    text = r.render_text([{"role": "user", "content": "hi"}])
    assert f"Current date: {datetime.date.today():%Y-%m-%d}\n" in text


@pytest.mark.parametrize(
    "options", [{"reasoning_effort": "high"}, {"reasoning_effort": "low", "model_identity": "You are a pirate."}]
)
def test_template_options(tok: Any, options: dict[str, str]) -> None:
    msgs: Any = [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}]
    expected = template_ids(tok, msgs, tools=TOOLS, add_generation_prompt=True, **options)
    assert GptOssRenderer(tok, **options).render_ids(msgs, tools=TOOLS, add_generation_prompt=True) == expected


def test_tool_call_turn_layout(tok: Any, r: GptOssRenderer) -> None:
    msgs: Any = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "reasoning_content": "Need the tool.", "tool_calls": [CALL]},
        {"role": "tool", "content": '{"temp_c": 21}'},
    ]
    text = r.render_text(msgs, tools=TOOLS, add_generation_prompt=True)
    assert text.endswith(
        "<|start|>assistant<|channel|>analysis<|message|>Need the tool.<|end|>"
        '<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Paris"}<|call|>'
        '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>"{\\"temp_c\\": 21}"<|end|>'
        "<|start|>assistant"
    )
    assert r.render_ids(msgs, tools=TOOLS, add_generation_prompt=True) == template_ids(
        tok, msgs, tools=TOOLS, add_generation_prompt=True
    )
    # A later answer drops the call's analysis, as the template does.
    done: Any = [*msgs, {"role": "assistant", "content": "21 C", "reasoning_content": "Easy."}]
    assert "Need the tool." not in r.render_text(done, tools=TOOLS)
    assert r.render_ids(done, tools=TOOLS) == template_ids(tok, done, tools=TOOLS)
    assert r.render_text(done, tools=TOOLS).endswith(
        "<|start|>assistant<|channel|>analysis<|message|>Easy.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>21 C<|return|>"
    )


def test_string_arguments_are_json_quoted_like_the_template(tok: Any, r: GptOssRenderer) -> None:
    call: Any = {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    msgs: Any = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [call]}]
    assert '<|message|>"{\\"city\\": \\"Paris\\"}"<|call|>' in r.render_text(msgs)
    assert r.render_ids(msgs) == template_ids(tok, msgs)
    completion = r.render_ids(msgs)[len(r.render_ids(msgs[:1], add_generation_prompt=True)) :]
    [parsed] = r.parse_response(completion).tool_calls
    assert parsed.arguments == '{"city": "Paris"}'


# --------------------------------------------------------------------------------------------------------------- errors


def _template_raises(tok: Any, msgs: Any, tools: Any = None) -> bool:
    try:
        template_ids(tok, msgs, tools=tools)
    except Exception:
        return True
    return False


@pytest.mark.parametrize(
    ("msgs", "field"),
    [
        ([{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}], "messages[1]"),
        (
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "c", "thinking": "t", "tool_calls": [CALL]}],  # noqa: E501
            "messages[1]",
        ),
        (
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<|channel|>final<|message|>x"}],
            "messages[1].content",
        ),
        (
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "thinking": "<|channel|>analysis<|message|>"}],  # noqa: E501
            "messages[1].reasoning_content",
        ),
    ],
)  # fmt: skip
def test_errors_where_the_template_raises(tok: Any, r: GptOssRenderer, msgs: Any, field: str) -> None:
    assert _template_raises(tok, msgs)
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        r.render_ids(msgs)


def test_errors_where_the_template_drops_input(tok: Any, r: GptOssRenderer) -> None:
    late_system: Any = [{"role": "user", "content": "q"}, {"role": "system", "content": "LATE"}]
    assert "LATE" not in tok.decode(template_ids(tok, late_system))
    with pytest.raises(ValueError, match=r"messages\[1\]\.role"):
        r.render_ids(late_system)
    second: Any = {"type": "function", "function": {"name": "other", "arguments": {}}}
    two_calls: Any = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [CALL, second]},
    ]
    assert "other" not in tok.decode(template_ids(tok, two_calls))
    with pytest.raises(ValueError, match=r"messages\[1\]\.tool_calls"):
        r.render_ids(two_calls)


def test_tool_spec_errors(tok: Any, r: GptOssRenderer) -> None:
    msgs: Any = [{"role": "user", "content": "q"}]
    no_description: Any = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    assert _template_raises(tok, msgs, no_description)
    with pytest.raises(ValueError, match=r"tools\[0\]\.description"):
        r.render_ids(msgs, tools=no_description)
    enum_default: Any = [
        {
            "type": "function",
            "function": {
                "name": "f",
                "description": "d",
                "parameters": {"type": "object", "properties": {"u": {"type": "string", "enum": [1, 2], "default": 1}}},
            },
        }
    ]
    assert _template_raises(tok, msgs, enum_default)
    with pytest.raises(ValueError, match=r"tools\[0\]\.parameters\.properties\.u\.default"):
        r.render_ids(msgs, tools=enum_default)


def test_flat_tool_specs_render_like_the_envelope(r: GptOssRenderer) -> None:
    msgs: Any = [{"role": "user", "content": "q"}]
    flat: Any = [TOOLS[0]["function"]]
    assert r.render_ids(msgs, tools=flat) == r.render_ids(msgs, tools=TOOLS)


def test_bad_options(tok: Any) -> None:
    with pytest.raises(ValueError, match="reasoning_effort"):
        GptOssRenderer(tok, reasoning_effort=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="builtin_tools"):
        create_renderer(tok, renderer="gpt-oss", chat_template_kwargs={"builtin_tools": ["python"]})


# --------------------------------------------------------------------------------------------------------------- parser


def test_parses_harmonys_own_header_order(tok: Any, r: GptOssRenderer) -> None:
    """The model writes the recipient after the channel and `<|constrain|>json`; openai-harmony agrees."""
    text = (
        "<|channel|>analysis<|message|>Need the weather.<|end|>"
        '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}'
        "<|call|>"
    )
    completion = ids(tok, text)
    parsed = r.parse_response(completion)
    assert parsed.reasoning_content == "Need the weather."
    assert parsed.content == ""
    start = completion.index(r.start_id)
    assert parsed.tool_calls == (
        ParsedToolCall(
            raw='{"city":"Paris"}', name="get_weather", arguments={"city": "Paris"}, token_span=(start, len(completion))
        ),
    )
    import openai_harmony as oh

    harmony = harmony_encoding().parse_messages_from_completion_tokens(completion, oh.Role.ASSISTANT)
    assert [(m.channel, m.recipient, m.content[0].text) for m in harmony] == [
        ("analysis", None, "Need the weather."),
        ("commentary", "functions.get_weather", '{"city":"Paris"}'),
    ]


def test_parses_answer_and_ignores_what_follows_the_stop(tok: Any, r: GptOssRenderer) -> None:
    completion = ids(
        tok,
        "<|channel|>analysis<|message|>hmm<|end|><|start|>assistant<|channel|>final<|message|>Hi!<|return|>junk<|end|>",
    )
    parsed = r.parse_response(completion)
    assert (parsed.content, parsed.reasoning_content, parsed.tool_calls) == ("Hi!", "hmm", ())


_HEAD = "<|channel|>commentary to=functions.f json<|message|>"
_OK = ToolCallParseStatus.OK


@pytest.mark.parametrize(
    ("text", "status", "name", "arguments"),
    [
        (_HEAD + '{"a": 1', ToolCallParseStatus.UNCLOSED_BLOCK, "f", None),
        ("<|channel|>commentary to=functions.f", ToolCallParseStatus.UNCLOSED_BLOCK, "f", None),
        (_HEAD + "{not json}<|call|>", ToolCallParseStatus.INVALID_JSON, "f", None),
        (_HEAD + "[1, 2]<|call|>", ToolCallParseStatus.MALFORMED_STRUCTURE, "f", None),
        (_HEAD.replace(".f", ".") + '{"a": 1}<|call|>', ToolCallParseStatus.MISSING_NAME, None, None),
        (' to=functions.f<|channel|>commentary json<|message|>"{\\"a\\": 1}"<|call|>', _OK, "f", '{"a": 1}'),
        (_HEAD.replace("functions.f", "browser.search") + '{"q": "x"}<|call|>', _OK, "browser.search", {"q": "x"}),
        (_HEAD.replace(" json", " <|constrain|>json") + "{}<|call|>", _OK, "f", {}),
    ],
)
def test_tool_call_statuses(
    tok: Any, r: GptOssRenderer, text: str, status: ToolCallParseStatus, name: str | None, arguments: Any
) -> None:
    [call] = r.parse_response(ids(tok, text)).tool_calls
    assert (call.status, call.name, call.arguments) == (status, name, arguments)


def test_truncated_reasoning_and_preamble(tok: Any, r: GptOssRenderer) -> None:
    cut = r.parse_response(ids(tok, "<|channel|>analysis<|message|>still thinking"))
    assert (cut.content, cut.reasoning_content) == ("", "still thinking")
    preamble = r.parse_response(
        ids(
            tok,
            "<|channel|>commentary<|message|>Checking.<|end|><|start|>assistant to=functions.f<|channel|>"
            "commentary json<|message|>{}<|call|>",
        )
    )
    assert preamble.content == "Checking."
    assert [c.name for c in preamble.tool_calls] == ["f"]
    other_role = r.parse_response(
        ids(tok, "<|channel|>final<|message|>A<|end|><|start|>user<|channel|>final<|message|>B<|end|>")
    )
    assert other_role.content == "A"
    eot = r.parse_response(ids(tok, "<|channel|>final<|message|>A<|endoftext|>B"))
    assert eot.content == "A"


# --------------------------------------------------------------------------------------------------------------- bridge


def _call_turn(tok: Any, r: GptOssRenderer) -> tuple[list[int], list[int]]:
    msgs: Any = [{"role": "user", "content": "Weather in Paris?"}]
    prompt = r.render_ids(msgs, tools=TOOLS, add_generation_prompt=True)
    full = r.render_ids([*msgs, {"role": "assistant", "content": "Need it.", "tool_calls": [CALL]}], tools=TOOLS)
    return prompt, full[len(prompt) :]


def test_bridge_refusals(tok: Any, r: GptOssRenderer) -> None:
    prompt, completion = _call_turn(tok, r)
    tool: Any = [{"role": "tool", "content": "21"}]
    assert r.bridge_to_next_turn(prompt, completion, tool) is not None
    assert r.bridge_to_next_turn([], completion, tool) is None
    assert r.bridge_to_next_turn(prompt, completion, []) is None
    assert r.bridge_to_next_turn(prompt[:-1], completion, tool) is None
    assert r.bridge_to_next_turn(prompt, completion, [{"role": "assistant", "content": "x"}]) is None
    assert r.bridge_to_next_turn(prompt, completion[:-1], tool) is None  # cut off before <|call|>
    assert r.bridge_to_next_turn(prompt, [r.call_id], tool) is None
    answer = ids(tok, "<|channel|>final<|message|>Sunny.<|return|>")
    assert r.bridge_to_next_turn(prompt, answer, [{"role": "user", "content": "thanks"}]) is None
    two_thoughts = ids(
        tok,
        "<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>analysis<|message|>b"
        "<|end|><|start|>assistant to=functions.f<|channel|>commentary json<|message|>{}<|call|>",
    )
    assert r.bridge_to_next_turn(prompt, two_thoughts, tool) is None
    builtin = ids(tok, "<|channel|>commentary to=browser.search json<|message|>{}<|call|>")
    assert r.bridge_to_next_turn(prompt, builtin, tool) is None
    with pytest.raises(ValueError, match=r"messages\[1\]\.role"):
        r.bridge_to_next_turn(prompt, completion, [*tool, {"role": "system", "content": "late"}])


def test_bridge_keeps_the_models_own_header_verbatim(tok: Any, r: GptOssRenderer) -> None:
    prompt, _ = _call_turn(tok, r)
    sampled = ids(tok, "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{}<|call|>")
    out = r.bridge_to_next_turn(prompt, [*sampled, *ids(tok, "junk")], [{"role": "tool", "content": "21"}])
    assert out is not None
    assert out.token_ids[: len(prompt) + len(sampled)] == [*prompt, *sampled]
    tail = tok.decode(out.token_ids[len(prompt) + len(sampled) :])
    assert (
        tail
        == '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>"21"<|end|><|start|>assistant'
    )
    assert out.message_indices[len(prompt) + len(sampled)] == 0


# ------------------------------------------------------------------------------------------------------------ detection


def test_create_renderer_detects_gpt_oss_from_the_folder() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", NativeRendererUnavailable)
        renderer = create_renderer(gpt_oss_tokenizer_dir())
    assert isinstance(renderer, GptOssRenderer)


def test_create_renderer_passes_template_options(tok: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", NativeRendererUnavailable)
        renderer = create_renderer(tok, chat_template_kwargs={"reasoning_effort": "high"})
    assert isinstance(renderer, GptOssRenderer)
    assert renderer.reasoning_effort == "high"
    with pytest.warns(NativeRendererUnavailable, match="gpt-oss"):
        create_renderer(tok, chat_template_kwargs={"builtin_tools": ["python"]})


def test_gpt_oss_vocabulary_with_another_template_is_not_claimed() -> None:
    other = load_dir(
        gpt_oss_tokenizer_dir(), chat_template=trl_template("gptoss").replace("Knowledge cutoff", "Cutoff")
    )
    with pytest.warns(NativeRendererUnavailable, match="gpt-oss: its chat template renders probe 0 differently"):
        renderer = create_renderer(other)
    assert not isinstance(renderer, GptOssRenderer)


def test_neighbouring_family_is_not_claimed() -> None:
    renderer = create_renderer(qwen3_tokenizer())
    assert isinstance(renderer, Qwen3Renderer)
    with pytest.raises(ValueError, match="not a gpt-oss tokenizer"):
        GptOssRenderer(qwen3_tokenizer())


def test_forced_family_name(tok: Any) -> None:
    assert isinstance(create_renderer(tok, renderer="gpt-oss"), GptOssRenderer)


def test_tool_result_content_is_json(r: GptOssRenderer) -> None:
    msgs: Any = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "tool", "content": 'line1\nline2 "q" é'},
    ]
    rt = r.render(msgs)
    span = rt.message_token_spans()[2]
    assert span is not None
    content = [t for p, t in enumerate(rt.token_ids) if rt.is_content[p] and rt.message_indices[p] == 2]
    assert r.tokenizer.decode(content) == json.dumps('line1\nline2 "q" é', ensure_ascii=False)[1:-1]
