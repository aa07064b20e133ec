"""Hypothesis strategies for chat conversations (roles, tricky unicode/whitespace, thinking, tools)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from hypothesis import strategies as st

SPECIAL_FRAGMENTS = [
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<|im_start|>",
    "<|im_end|>",
]
_PLAIN_FRAGMENTS = [
    " ",
    "  ",
    "\n",
    "\n\n",
    "\r\n",
    "\t",
    " \n",
    "\u00a0",
    "\u3000",
    "e\u0301",  # decomposed é (NFC-normalised by the tokenizer)
    "\u200d",
    "👍🏽",
    "👨‍👩‍👧",
    "日本語",
    "Привет",
    "مرحبا",
    "'s",
    "'ll",
    "123",
    '{"a": 1}',
    "hello",
    " world",
    ".",
    "!?",
]


def text_with(special: Sequence[str]) -> st.SearchStrategy[str]:
    """Text mixing tricky plain fragments with a family's ``special`` marker strings."""
    return st.lists(st.one_of(st.sampled_from(_PLAIN_FRAGMENTS + list(special)), st.text(max_size=6)), max_size=6).map(
        "".join
    )


# Text that the renderer must place exactly where the template does, special-token strings included.
render_text = text_with(SPECIAL_FRAGMENTS)
# Text without marker strings, for round trips through the parser.
plain_text = st.lists(
    st.one_of(
        st.sampled_from(_PLAIN_FRAGMENTS),
        st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="<>"), max_size=6),
    ),
    max_size=6,
).map("".join)

tool_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), plain_text)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(plain_text, inner, max_size=3)),
    max_leaves=6,
)
arg_dicts = st.dictionaries(tool_names, json_values, max_size=3)


# How tool-call arguments are given: as a mapping, as a JSON string, or either (templates differ on what they take).
ArgsForm = Literal["any", "dict", "str"]


@st.composite
def tool_calls(draw: st.DrawFn, args_form: ArgsForm = "any") -> list[dict[str, Any]]:
    calls = []
    for _ in range(draw(st.integers(1, 3))):
        args: Any = draw(arg_dicts)
        if args_form == "str" or (args_form == "any" and draw(st.booleans())):
            args = json.dumps(args, ensure_ascii=draw(st.booleans()))
        fn = {"name": draw(tool_names), "arguments": args}
        calls.append({"type": "function", "function": fn} if draw(st.booleans()) else {"function": fn})
    return calls


@st.composite
def assistant_messages(
    draw: st.DrawFn, text: st.SearchStrategy[str] = render_text, args_form: ArgsForm = "any"
) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": draw(text)}
    if draw(st.booleans()):
        msg["reasoning_content"] = draw(text)
    elif draw(st.integers(0, 3)) == 0:
        msg["content"] = "<think>\n" + draw(text) + "\n</think>\n\n" + msg["content"]
    if draw(st.booleans()):
        msg["tool_calls"] = draw(tool_calls(args_form))
    return msg


@st.composite
def tool_specs(draw: st.DrawFn) -> list[dict[str, Any]] | None:
    if draw(st.booleans()):
        return None
    specs: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 2))):
        flat = {
            "name": draw(tool_names),
            "description": draw(plain_text),
            "parameters": {"type": "object", "properties": {draw(tool_names): {"type": "string"}}},
        }
        specs.append({"type": "function", "function": flat} if draw(st.booleans()) else flat)
    return specs


@st.composite
def conversations(
    draw: st.DrawFn, text: st.SearchStrategy[str] = render_text, args_form: ArgsForm = "any"
) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if draw(st.booleans()):
        msgs.append({"role": "system", "content": draw(text)})
    for _ in range(draw(st.integers(1, 6))):
        role = draw(st.sampled_from(["user", "user", "assistant", "assistant", "tool", "system"]))
        if role == "assistant":
            msgs.append(draw(assistant_messages(text, args_form)))
        elif role == "user" and draw(st.integers(0, 4)) == 0:
            msgs.append({"role": "user", "content": "<tool_response>\n" + draw(text) + "\n</tool_response>"})
        else:
            msgs.append({"role": role, "content": draw(text)})
    return msgs


def schema_tools(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool specs saying which arguments are strings, for formats that write strings and numbers alike (XML)."""
    specs: dict[str, dict[str, Any]] = {}
    for call in calls:
        fn = call["function"]
        props = specs.setdefault(fn["name"], {})
        args = fn["arguments"]
        if isinstance(args, str):
            args = json.loads(args)
        for key, value in args.items():
            props[key] = {"type": "string"} if isinstance(value, str) else {}
    return [{"name": name, "parameters": {"type": "object", "properties": props}} for name, props in specs.items()]
