"""Pick the right renderer for a tokenizer, and load tokenizers from local folders only."""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

from renderers.chat_template import ChatTemplateRenderer
from renderers.families import FAMILIES, family_named
from renderers.pool import RendererPool
from renderers.protocol import Renderer

__all__ = [
    "NativeRendererUnavailable",
    "create_renderer",
    "create_renderer_pool",
    "is_qwen3_tokenizer",
    "load_tokenizer",
]

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


class NativeRendererUnavailable(UserWarning):
    """``create_renderer(renderer="auto")`` fell back to :class:`ChatTemplateRenderer`; the message says why."""


def create_renderer(
    tokenizer_or_path: Any,
    *,
    enable_thinking: bool = True,
    renderer: str = "auto",
    parser: Literal["qwen"] | None = "qwen",
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> Renderer:
    """Return a renderer for a tokenizer (or a local tokenizer folder).

    ``renderer="auto"`` tries each native family in :data:`renderers.families.FAMILIES`: a family is chosen when
    its special tokens are in the vocabulary and the tokenizer's own chat template (if any) renders the family's
    probe conversations to the same ids as the native renderer. Otherwise the result is a
    :class:`ChatTemplateRenderer` (with ``parser`` and ``chat_template_kwargs``, where ``enable_thinking`` is added
    unless given), and a :class:`NativeRendererUnavailable` warning names why no family matched.
    ``renderer="<family name>"`` (for example ``"qwen3"``) builds that family's renderer without the probes;
    ``renderer="chat_template"`` always uses the template.
    """
    tokenizer = (
        load_tokenizer(tokenizer_or_path) if isinstance(tokenizer_or_path, str | os.PathLike) else tokenizer_or_path
    )
    kwargs = dict(chat_template_kwargs or {})
    thinking = bool(kwargs.pop("enable_thinking", enable_thinking))
    if renderer not in ("auto", "chat_template"):
        return family_named(renderer).build(tokenizer, thinking, kwargs)
    if renderer == "auto":
        reasons: list[str] = []
        for family in FAMILIES:
            if not family.has_vocabulary(tokenizer):
                continue
            verdict = family.check(tokenizer, enable_thinking=thinking, options=kwargs)
            if verdict.renderer is not None:
                return verdict.renderer
            reasons.append(f"{family.name}: {verdict.reason}")
        why = "; ".join(reasons) if reasons else "no native family's special tokens are in its vocabulary"
        warnings.warn(
            f"create_renderer: using ChatTemplateRenderer (no native renderer matched: {why})",
            NativeRendererUnavailable,
            stacklevel=2,
        )
    return ChatTemplateRenderer(tokenizer, parser=parser, chat_template_kwargs={**kwargs, "enable_thinking": thinking})


def create_renderer_pool(
    tokenizer_or_path: Any,
    *,
    size: int,
    enable_thinking: bool = True,
    renderer: str = "auto",
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
