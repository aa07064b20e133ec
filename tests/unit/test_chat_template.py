"""ChatTemplateRenderer: ids from apply_chat_template, conservative attribution, optional parser."""

from __future__ import annotations

from typing import Any

import pytest

from renderers.chat_template import ChatTemplateRenderer
from renderers.families.qwen3 import Qwen3Renderer
from renderers.protocol import Renderer
from renderers.types import Message
from tests.helpers.qwen3_tokenizer import qwen3_tokenizer, template_ids

TOOLS = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
def tok() -> Any:
    return qwen3_tokenizer()


def test_ids_match_template_and_native(tok: Any) -> None:
    r = ChatTemplateRenderer(tok)
    assert isinstance(r, Renderer)
    msgs: list[Message] = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "r",
            "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}],
        },
        {"role": "tool", "content": "t"},
    ]
    expected = template_ids(tok, msgs, tools=TOOLS, add_generation_prompt=True)
    assert r.render_ids(msgs, tools=TOOLS, add_generation_prompt=True) == expected
    rt = r.render(msgs, tools=TOOLS, add_generation_prompt=True)
    assert rt.token_ids == expected
    native = Qwen3Renderer(tok).render(msgs, tools=TOOLS, add_generation_prompt=True)
    # Prefix-consistent template: attribution and sampled tokens agree with the native renderer.
    assert rt.message_indices == native.message_indices
    assert rt.sampled_mask == native.sampled_mask
    assert rt.is_content == rt.sampled_mask


def test_no_think_prompt_is_not_a_prefix_so_nothing_sampled(tok: Any) -> None:
    # With enable_thinking=False the generation prompt holds an empty thought the message does not have.
    r = ChatTemplateRenderer(tok, chat_template_kwargs={"enable_thinking": False})
    msgs: list[Message] = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "reasoning_content": "r"},
    ]
    rt = r.render(msgs)
    assert rt.token_ids == template_ids(tok, msgs, enable_thinking=False)
    assert not any(rt.sampled_mask)


def test_rerendered_history_is_not_marked_sampled(tok: Any) -> None:
    # The assistant's thought disappears once a later user query exists, so its render is not a prefix.
    r = ChatTemplateRenderer(tok)
    msgs: list[Message] = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1", "reasoning_content": "t1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2", "reasoning_content": "t2"},
    ]
    rt = r.render(msgs)
    assert rt.token_ids == template_ids(tok, msgs)
    spans = rt.message_token_spans()
    assert spans[0] is not None
    assert spans[3] is not None
    first_assistant = [p for p, i in enumerate(rt.message_indices) if i == 1]
    assert not any(rt.sampled_mask[p] for p in first_assistant)
    last = [p for p in range(*spans[3]) if rt.sampled_mask[p]]
    assert tok.decode([rt.token_ids[p] for p in last]) == "<think>\nt2\n</think>\n\na2<|im_end|>"
    assert len(rt.token_ids) == len(rt.message_indices) == len(rt.sampled_mask)


def test_parser_none_and_supports_tools(tok: Any) -> None:
    plain = ChatTemplateRenderer(tok, parser=None)
    assert not plain.supports_tools
    ids = tok.encode("<think>\nx\n</think>\n\nhi<|im_end|>more")
    assert plain.parse_response(ids).content == "<think>\nx\n</think>\n\nhi"  # no split, cut at the stop
    qwen = ChatTemplateRenderer(tok)
    assert qwen.supports_tools
    parsed = qwen.parse_response(ids)
    assert (parsed.reasoning_content, parsed.content) == ("x", "hi")
    assert qwen.get_stop_token_ids() == [151645, 151643]
    assert qwen.bridge_to_next_turn([1], [2], [{"role": "user", "content": "x"}]) is None


def test_bad_input(tok: Any) -> None:
    r = ChatTemplateRenderer(tok)
    with pytest.raises(ValueError, match=r"messages\[0\]\.role: unknown role 'robot'"):
        r.render([{"role": "robot", "content": "x"}])
    with pytest.raises(ValueError, match="messages: no messages"):
        r.render_ids([])
    with pytest.raises(ValueError, match="parser"):
        ChatTemplateRenderer(tok, parser="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tools"):
        ChatTemplateRenderer(tok, chat_template_kwargs={"tools": []})
