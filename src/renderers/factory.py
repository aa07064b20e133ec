"""Pick the right renderer for a tokenizer, and load tokenizers from local folders only."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

from renderers.chat_template import ChatTemplateRenderer
from renderers.pool import RendererPool
from renderers.protocol import Renderer
from renderers.qwen3 import Qwen3Renderer

__all__ = ["create_renderer", "create_renderer_pool", "is_qwen3_tokenizer", "load_tokenizer"]

# Token -> id in every Qwen3 (text) checkpoint.
QWEN3_TOKEN_IDS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "<|endoftext|>": 151643,
        "<|im_start|>": 151644,
        "<|im_end|>": 151645,
        "<tool_call>": 151657,
        "</tool_call>": 151658,
        "<tool_response>": 151665,
        "</tool_response>": 151666,
        "<think>": 151667,
        "</think>": 151668,
    }
)

# Probe conversations: a Qwen3 tokenizer whose own chat template disagrees with Qwen3Renderer on any
# of these (e.g. QwQ or Qwen3-2507, which share the vocabulary) gets the ChatTemplateRenderer instead.
_PROBE_TOOLS: Final[tuple[dict[str, Any], ...]] = (
    {"type": "function", "function": {"name": "probe", "description": "d", "parameters": {"type": "object"}}},
)
_PROBES: Final[tuple[tuple[list[dict[str, Any]], bool, bool], ...]] = (
    (
        [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1", "reasoning_content": "R1"},
            {"role": "user", "content": "Q2"},
            {"role": "assistant", "content": "A2", "reasoning_content": "R2"},
        ],
        False,
        False,
    ),
    (
        [
            {"role": "user", "content": "Q"},
            {
                "role": "assistant",
                "content": "",
                "reasoning_content": "R",
                "tool_calls": [{"type": "function", "function": {"name": "probe", "arguments": {"x": 1}}}],
            },
            {"role": "tool", "content": "T1"},
            {"role": "tool", "content": "T2"},
        ],
        True,
        True,
    ),
)

PathLike = str | os.PathLike[str]


def load_tokenizer(path: PathLike) -> Any:
    """Load a Hugging Face tokenizer from a local folder (never from the network)."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"tokenizer folder {str(path)!r} does not exist or is not a directory")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise OSError(f"could not load a tokenizer from {str(path)!r}: {exc}") from exc


def is_qwen3_tokenizer(tokenizer: Any) -> bool:
    """True when the vocabulary has Qwen3's chat and reasoning tokens at Qwen3's ids."""
    convert = getattr(tokenizer, "convert_tokens_to_ids", None)
    if convert is None:
        return False
    try:
        return all(convert(tok) == tid for tok, tid in QWEN3_TOKEN_IDS.items())
    except Exception:
        return False


def _template_matches_qwen3(tokenizer: Any, renderer: Qwen3Renderer) -> bool:
    if not getattr(tokenizer, "chat_template", None):
        return True  # nothing to disagree with: the native layout is the model's
    kwargs = {"enable_thinking": renderer.enable_thinking}
    try:
        for msgs, with_tools, gen in _PROBES:
            tools = _PROBE_TOOLS if with_tools else None
            expected = tokenizer.apply_chat_template(
                msgs, tools=tools, add_generation_prompt=gen, tokenize=True, return_dict=False, **kwargs
            )
            if [int(t) for t in expected] != renderer.render_ids(msgs, tools=tools, add_generation_prompt=gen):  # type: ignore[arg-type]
                return False
    except Exception:
        return False
    return True


def create_renderer(
    tokenizer_or_path: Any,
    *,
    enable_thinking: bool = True,
    renderer: Literal["auto", "qwen3", "chat_template"] = "auto",
    parser: Literal["qwen"] | None = "qwen",
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> Renderer:
    """Return a renderer for a tokenizer (or a local tokenizer folder).

    ``renderer="auto"`` picks :class:`Qwen3Renderer` when the vocabulary is Qwen3's and the tokenizer's
    own chat template (if any) renders a few probe conversations to the same ids; otherwise
    :class:`ChatTemplateRenderer` (with ``parser`` and ``chat_template_kwargs``, where ``enable_thinking``
    is added unless given). For Qwen3, ``chat_template_kwargs`` may only hold ``enable_thinking``.
    """
    tokenizer = (
        load_tokenizer(tokenizer_or_path) if isinstance(tokenizer_or_path, str | os.PathLike) else tokenizer_or_path
    )
    kwargs = dict(chat_template_kwargs or {})
    if renderer not in ("auto", "qwen3", "chat_template"):
        raise ValueError(f"renderer: unknown renderer {renderer!r} (expected 'auto', 'qwen3' or 'chat_template')")
    if renderer in ("auto", "qwen3") and (renderer == "qwen3" or is_qwen3_tokenizer(tokenizer)):
        extra = set(kwargs) - {"enable_thinking"}
        if extra:
            if renderer == "qwen3":
                raise ValueError(f"chat_template_kwargs: Qwen3Renderer does not support {sorted(extra)}")
        else:
            thinking = bool(kwargs.get("enable_thinking", enable_thinking))
            qwen = Qwen3Renderer(tokenizer, enable_thinking=thinking)
            if renderer == "qwen3" or _template_matches_qwen3(tokenizer, qwen):
                return qwen
    kwargs.setdefault("enable_thinking", enable_thinking)
    return ChatTemplateRenderer(tokenizer, parser=parser, chat_template_kwargs=kwargs)


def create_renderer_pool(
    tokenizer_or_path: Any,
    *,
    size: int,
    enable_thinking: bool = True,
    renderer: Literal["auto", "qwen3", "chat_template"] = "auto",
    parser: Literal["qwen"] | None = "qwen",
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> RendererPool:
    """A :class:`RendererPool` of ``size`` renderers, each with its own tokenizer.

    A path is loaded once per renderer; a tokenizer object is deep-copied per renderer.
    """

    def factory() -> Renderer:
        if isinstance(tokenizer_or_path, str | os.PathLike):
            tok = load_tokenizer(tokenizer_or_path)
        else:
            tok = copy.deepcopy(tokenizer_or_path)
        return create_renderer(
            tok,
            enable_thinking=enable_thinking,
            renderer=renderer,
            parser=parser,
            chat_template_kwargs=chat_template_kwargs,
        )

    return RendererPool(factory, size)
