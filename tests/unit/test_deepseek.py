"""Unit tests for DeepSeekRenderer: known ids, input rules, parse statuses, multi-turn bridges, detection."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest

from renderers import create_renderer
from renderers.chat_template import ChatTemplateRenderer
from renderers.families.deepseek import DeepSeekRenderer
from renderers.protocol import Renderer
from renderers.types import Message, ToolCallParseStatus
from tests.helpers.offline_tokenizers import load_dir, otc_dir, otc_tokenizer, template_ids, trl_template

OK = ToolCallParseStatus.OK


@pytest.fixture(scope="module")
def r1_tok() -> Any:
    return otc_tokenizer("deepseek-r1")


@pytest.fixture(scope="module")
def v31_tok() -> Any:
    return otc_tokenizer("deepseek-v3.1")


@pytest.fixture(scope="module")
def r1(r1_tok: Any) -> DeepSeekRenderer:
    return DeepSeekRenderer(r1_tok, variant="r1")


@pytest.fixture(scope="module")
def v31(v31_tok: Any) -> DeepSeekRenderer:
    return DeepSeekRenderer(v31_tok, variant="v3.1")


@pytest.fixture(scope="module")
def v31_think(v31_tok: Any) -> DeepSeekRenderer:
    return DeepSeekRenderer(v31_tok, variant="v3.1", thinking=True)


def call(name: str, args: Any, **extra: Any) -> Any:
    return {"type": "function", "function": {"name": name, "arguments": args}, **extra}


def enc(tok: Any, text: str) -> list[int]:
    return [int(t) for t in tok.encode(text, add_special_tokens=False)]


def test_is_a_renderer(r1: DeepSeekRenderer, v31: DeepSeekRenderer) -> None:
    assert isinstance(r1, Renderer)
    assert isinstance(v31, Renderer)
    assert r1.supports_tools


def test_special_token_ids(r1_tok: Any, v31_tok: Any, r1: DeepSeekRenderer) -> None:
    for tok in (r1_tok, v31_tok, otc_tokenizer("deepseek-v3")):
        assert tok.convert_tokens_to_ids("<｜User｜>") == 128803
        assert tok.convert_tokens_to_ids("<｜Assistant｜>") == 128804
        assert tok.convert_tokens_to_ids("<｜end▁of▁sentence｜>") == 1
    assert r1.get_stop_token_ids() == [1]


def test_known_prompt_ids_have_one_bos(
    r1: DeepSeekRenderer, v31: DeepSeekRenderer, v31_think: DeepSeekRenderer
) -> None:
    msgs: list[Message] = [{"role": "user", "content": "hi"}]
    # BOS, <｜User｜>, "hi", <｜Assistant｜>, then the variant's prefill.
    assert r1.render_ids(msgs, add_generation_prompt=True) == [0, 128803, 6366, 128804, 128798, 201]
    assert v31.render_ids(msgs, add_generation_prompt=True) == [0, 128803, 6366, 128804, 128799]
    assert v31_think.render_ids(msgs, add_generation_prompt=True) == [0, 128803, 6366, 128804, 128798]


def test_system_messages_are_hoisted_and_joined(r1: DeepSeekRenderer, r1_tok: Any) -> None:
    msgs: list[Message] = [
        {"role": "user", "content": "Q"},
        {"role": "system", "content": "late"},
        {"role": "system", "content": "later"},
    ]
    assert r1.render_text(msgs) == "<｜begin▁of▁sentence｜>late\n\nlater<｜User｜>Q"
    rt = r1.render(msgs)
    assert rt.token_ids == template_ids(r1_tok, msgs)
    assert rt.message_indices[0] == -1
    assert set(rt.message_indices[1:]) == {0, 1, 2}


def test_dict_arguments_raise_naming_the_field(r1: DeepSeekRenderer, v31: DeepSeekRenderer, r1_tok: Any) -> None:
    msgs: list[Message] = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [call("f", {"a": 1})]},
    ]
    with pytest.raises(TypeError):  # what the template does
        template_ids(r1_tok, msgs)
    for r in (r1, v31):
        with pytest.raises(ValueError, match=r"messages\[1\]\.tool_calls\[0\]\.function\.arguments.*JSON string"):
            r.render_ids(msgs)
        with pytest.raises(ValueError, match=r"messages\[1\]\.tool_calls\[0\]\.function\.arguments"):
            r.render(msgs)


@pytest.mark.parametrize(
    ("variant", "message", "match"),
    [
        (
            "r1",
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
            r"tool_calls\[0\]\.type",
        ),
        (
            "r1",
            {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": "{}"}]},
            r"tool_calls\[0\]\.function",
        ),
        (
            "v3.1",
            {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": "{}"}]},
            r"tool_calls\[0\]\.function",
        ),
        ("r1", {"role": "assistant", "content": None}, r"messages\[1\]\.content"),
        ("v3.1", {"role": "assistant"}, r"messages\[1\]\.content"),
        ("r1", {"role": "assistant", "content": "a", "tool_calls": []}, r"messages\[1\]\.tool_calls: empty list"),
        ("v3.1", {"role": "assistant", "content": "a", "tool_calls": []}, r"messages\[1\]\.tool_calls: empty list"),
        ("v3", {"role": "assistant", "content": "a", "tool_calls": [call("f", "{}")]}, r"messages\[1\]\.tool_calls"),
        ("v3.1", {"role": "assistant", "content": "a", "prefix": True}, r"messages\[1\]\.prefix"),
    ],
)
def test_inputs_the_templates_reject(variant: Any, message: Any, match: str) -> None:
    folder = {"r1": "deepseek-r1", "v3": "deepseek-v3", "v3.1": "deepseek-v3.1"}[variant]
    r = DeepSeekRenderer(otc_tokenizer(folder), variant=variant)
    with pytest.raises(ValueError, match=match):
        r.render_ids([{"role": "user", "content": "q"}, message])


def test_none_content_beside_calls_renders_like_empty(r1: DeepSeekRenderer, v31: DeepSeekRenderer) -> None:
    for r in (r1, v31):
        empty: list[Message] = [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": [call("f", "{}")]},
        ]
        none: list[Message] = [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": None, "tool_calls": [call("f", "{}")]},
        ]
        assert r.render_ids(none) == r.render_ids(empty)


def test_r1_only_first_tool_call_turn_gets_its_opener(r1: DeepSeekRenderer, r1_tok: Any) -> None:
    # The R1 template never resets its first-call flag: the second tool-call turn loses <｜Assistant｜>, its content
    # and <｜tool▁calls▁begin｜>; the second round of results loses <｜tool▁outputs▁begin｜>.
    msgs: list[Message] = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "A", "tool_calls": [call("f", '{"x": 1}')]},
        {"role": "tool", "content": "r1"},
        {"role": "assistant", "content": "B", "tool_calls": [call("g", "{}")]},
        {"role": "tool", "content": "r2"},
    ]
    text = r1.render_text(msgs, add_generation_prompt=True)
    assert r1.render_ids(msgs, add_generation_prompt=True) == template_ids(r1_tok, msgs, add_generation_prompt=True)
    assert text.count("<｜tool▁calls▁begin｜>") == 1
    assert "B" not in text
    assert text.count("<｜tool▁outputs▁begin｜>") == 1
    assert text.endswith("<｜tool▁output▁begin｜>r2<｜tool▁output▁end｜><｜tool▁outputs▁end｜>")  # no generation prompt


# ---------------------------------------------------------------------- parsing


def test_parse_r1_completion(r1: DeepSeekRenderer, r1_tok: Any) -> None:
    text = (
        "Let me look.\n</think>\n\nChecking.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get\n"
        '```json\n{"city": "Paris"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>put\n'
        "```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>ignored"
    )
    p = r1.parse_response(enc(r1_tok, text))
    assert p.reasoning_content == "Let me look."
    assert p.content == "\n\nChecking."
    assert [(c.name, c.arguments, c.status) for c in p.tool_calls] == [
        ("get", '{"city": "Paris"}', OK),
        ("put", "{}", OK),
    ]


def test_parse_v31_completion(v31: DeepSeekRenderer, v31_tok: Any) -> None:
    text = (
        'Sure<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get<｜tool▁sep｜>{"city": "日本"}<｜tool▁call▁end｜>'
        "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>"
    )
    p = v31.parse_response(enc(v31_tok, text))
    assert p.reasoning_content is None
    assert p.content == "Sure"
    assert [(c.name, json.loads(str(c.arguments)), c.status) for c in p.tool_calls] == [("get", {"city": "日本"}, OK)]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ('get{"a": 1}', ToolCallParseStatus.MALFORMED_STRUCTURE),  # no <｜tool▁sep｜>
        ('<｜tool▁sep｜>{"a": 1}', ToolCallParseStatus.MISSING_NAME),
        ("get<｜tool▁sep｜>{'a': 1}", ToolCallParseStatus.INVALID_JSON),
        ("get<｜tool▁sep｜>[1, 2]", ToolCallParseStatus.MALFORMED_STRUCTURE),
    ],
)
def test_v31_malformed_calls_get_a_status(v31: DeepSeekRenderer, v31_tok: Any, body: str, status: Any) -> None:
    ids = enc(v31_tok, f"x<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>{body}<｜tool▁call▁end｜><｜tool▁calls▁end｜>")
    (c,) = v31.parse_response(ids).tool_calls
    assert c.status is status
    assert c.raw == body


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ('function<｜tool▁sep｜>get\n{"a": 1}', ToolCallParseStatus.MALFORMED_STRUCTURE),  # no fence
        ('call<｜tool▁sep｜>get\n```json\n{"a": 1}\n```', ToolCallParseStatus.MALFORMED_STRUCTURE),  # not "function"
        ('function<｜tool▁sep｜>\n```json\n{"a": 1}\n```', ToolCallParseStatus.MISSING_NAME),
        ("function<｜tool▁sep｜>get\n```json\n{a: 1}\n```", ToolCallParseStatus.INVALID_JSON),
    ],
)
def test_r1_malformed_calls_get_a_status(r1: DeepSeekRenderer, r1_tok: Any, body: str, status: Any) -> None:
    ids = enc(r1_tok, f"</think><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>{body}<｜tool▁call▁end｜>")
    (c,) = r1.parse_response(ids).tool_calls
    assert c.status is status


def test_truncated_call_is_unclosed(v31: DeepSeekRenderer, v31_tok: Any) -> None:
    ids = enc(
        v31_tok,
        'a<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁call▁begin｜>g<｜tool▁sep｜>{"x',
    )
    p = v31.parse_response(ids)
    assert p.content == "a"
    assert [(c.name, c.status) for c in p.tool_calls] == [("f", OK), (None, ToolCallParseStatus.UNCLOSED_BLOCK)]
    assert p.tool_calls[1].token_span == (ids.index(128808, 5), len(ids))


def test_truncated_thought_is_reasoning(r1: DeepSeekRenderer, v31: DeepSeekRenderer, r1_tok: Any) -> None:
    ids = enc(r1_tok, "still thinking")
    assert r1.parse_response(ids).reasoning_content == "still thinking"
    assert r1.parse_response(ids).content == ""
    assert v31.parse_response(ids).content == "still thinking"  # non-thinking V3.1: no thought was opened
    opened = v31.parse_response([r1_tok.convert_tokens_to_ids("<think>"), *ids])  # the model opened one itself
    assert (opened.reasoning_content, opened.content) == ("still thinking", "")


# ---------------------------------------------------------------------- multi-turn bridges


def _chain(
    r: DeepSeekRenderer, tok: Any, history: list[Any], turns: list[tuple[str, list[Any]]], **kw: Any
) -> list[Any]:
    """Run a multi-turn rollout through bridge_to_next_turn; each bridge must equal the template's full render."""
    prompt = template_ids(tok, history, add_generation_prompt=True, **kw)
    assert r.render_ids(history, add_generation_prompt=True) == prompt
    msgs = list(history)
    results = []
    for completion_text, new in turns:
        completion = enc(tok, completion_text)
        out = r.bridge_to_next_turn(prompt, completion, new)
        results.append(out)
        if out is None:
            break
        parsed = r.parse_response(completion)
        last: dict[str, Any] = {
            "role": "assistant",
            "content": completion_text.split("<｜tool▁calls▁begin｜>")[0].removesuffix("<｜end▁of▁sentence｜>"),
        }
        if parsed.tool_calls:
            last["tool_calls"] = [call(str(c.name), c.arguments) for c in parsed.tool_calls]
        if r.variant == "r1" and tok.decode(prompt[-2:]) == "<think>\n":
            last["content"] = "<think>\n" + last["content"]
        msgs += [last, *new]
        assert out.token_ids == template_ids(tok, msgs, add_generation_prompt=True, **kw)
        assert out.token_ids[: len(prompt) + len(completion)] == prompt + completion
        prompt = out.token_ids
    return results


def test_v31_tool_and_user_follow_ups_bridge(v31: DeepSeekRenderer, v31_tok: Any) -> None:
    results = _chain(
        v31,
        v31_tok,
        [{"role": "system", "content": "S"}, {"role": "user", "content": "Weather?"}],
        [
            (
                'Checking<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get<｜tool▁sep｜>{"c": 1}<｜tool▁call▁end｜>'
                "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>",
                [{"role": "tool", "content": "sunny"}, {"role": "tool", "content": "warm"}],
            ),
            ("It is sunny.<｜end▁of▁sentence｜>", [{"role": "user", "content": "Thanks"}]),
            ("You're welcome.<｜end▁of▁sentence｜>", [{"role": "user", "content": "Bye"}]),
        ],
        thinking=False,
    )
    assert all(out is not None for out in results)


def test_r1_tool_follow_up_bridges_and_thinking_user_follow_up_does_not(r1: DeepSeekRenderer, r1_tok: Any) -> None:
    results = _chain(
        r1,
        r1_tok,
        [{"role": "user", "content": "Weather?"}],
        [
            (
                "Need a tool.\n</think>\n\n<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get\n"
                '```json\n{"c": 1}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>',
                [{"role": "tool", "content": "sunny"}],
            ),
            ("It is sunny.<｜end▁of▁sentence｜>", [{"role": "user", "content": "Thanks"}]),
            # The template drops this thought on re-render: no bridge.
            ("Polite.\n</think>\n\nWelcome.<｜end▁of▁sentence｜>", [{"role": "user", "content": "Bye"}]),
        ],
    )
    assert [out is not None for out in results] == [True, True, False]


def test_bridge_none_cases(
    v31: DeepSeekRenderer, v31_think: DeepSeekRenderer, r1: DeepSeekRenderer, v31_tok: Any
) -> None:
    prompt = v31.render_ids([{"role": "user", "content": "q"}], add_generation_prompt=True)
    done = enc(v31_tok, "a<｜end▁of▁sentence｜>")
    user: list[Message] = [{"role": "user", "content": "u"}]
    assert v31.bridge_to_next_turn(prompt, done, user) is not None
    assert v31.bridge_to_next_turn([], done, user) is None
    assert v31.bridge_to_next_turn(prompt, done, []) is None
    assert v31.bridge_to_next_turn(prompt, done, [{"role": "system", "content": "s"}]) is None  # hoisted
    assert v31.bridge_to_next_turn(prompt, done, [{"role": "assistant", "content": "x"}]) is None
    assert v31.bridge_to_next_turn(prompt, enc(v31_tok, "r</think>a<｜end▁of▁sentence｜>"), user) is None
    think_prompt = v31_think.render_ids([{"role": "user", "content": "q"}], add_generation_prompt=True)
    assert v31_think.bridge_to_next_turn(think_prompt, done, user) is None
    no_gen = v31.render_ids([{"role": "user", "content": "q"}])
    assert v31.bridge_to_next_turn(no_gen, done, user) is None


# ---------------------------------------------------------------------- detection


def _auto(tokenizer_or_dir: Any, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_renderer(tokenizer_or_dir, **kw)


@pytest.mark.parametrize(
    ("folder", "trl", "variant"),
    [
        ("deepseek-r1", None, "r1"),
        ("deepseek-v3", None, "v3"),
        ("deepseek-v3", "deepseekv3", "r1"),
        ("deepseek-v3.1", None, "v3.1"),
    ],
)
def test_real_folders_are_detected(folder: str, trl: str | None, variant: str) -> None:
    source = str(otc_dir(folder)) if trl is None else otc_tokenizer(folder, trl)
    r = create_renderer(source)
    assert isinstance(r, DeepSeekRenderer)
    assert r.variant == variant


def test_v31_thinking_switch_comes_from_its_template_kwarg(v31_tok: Any) -> None:
    assert not create_renderer(v31_tok).thinking  # type: ignore[attr-defined]
    r = create_renderer(v31_tok, chat_template_kwargs={"thinking": True})
    assert isinstance(r, DeepSeekRenderer)
    assert r.thinking
    with pytest.raises(ValueError, match="does not support"):
        create_renderer(v31_tok, renderer="deepseek_v3_1", chat_template_kwargs={"custom": 1})


@pytest.mark.parametrize("folder", ["deepseek-v2.5", "deepseek-r1-distill-qwen-7b"])
def test_neighbours_are_not_claimed(folder: str) -> None:
    # V2.5 has the V3 vocabulary and nearly its template (only the last system message kept); the R1 distill
    # has the DeepSeek chat markers in a Qwen vocabulary.
    with pytest.warns(Warning, match="ChatTemplateRenderer"):
        r = create_renderer(str(otc_dir(folder)))
    assert isinstance(r, ChatTemplateRenderer)


def test_qwen3_is_not_claimed() -> None:
    assert not isinstance(_auto(str(otc_dir("qwen-3"))), DeepSeekRenderer)


def test_template_less_deepseek_folders_are_not_guessed() -> None:
    # DeepSeek V3.2 and V4 share this vocabulary but ship no Jinja template (another tool-call format).
    with pytest.raises(ValueError, match="no chat template"):
        _auto(str(otc_dir("deepseek-v3.2")))
    forced = create_renderer(str(otc_dir("deepseek-v3.2")), renderer="deepseek_v3_1")
    assert isinstance(forced, DeepSeekRenderer)


def test_other_template_on_deepseek_vocab_is_not_claimed() -> None:
    tok = load_dir(otc_dir("deepseek-r1"), chat_template=trl_template("deepseek_r1_distill"))
    r = _auto(tok)
    assert not isinstance(r, DeepSeekRenderer)
