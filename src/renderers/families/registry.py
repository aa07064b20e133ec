"""How ``create_renderer`` recognises a model family from a tokenizer: its special tokens, then its template.

A :class:`Family` names the special tokens its vocabulary must hold and a few probe conversations. A tokenizer
is of that family when it has every marker token and, if it carries a chat template, that template renders
every probe to the same ids as the family's native renderer. The folder name is never looked at: a checkpoint
with the family's vocabulary but another template (a fine-tune, an older revision) is not claimed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from renderers.protocol import Renderer
from renderers.types import Message, ToolSpecLike

__all__ = ["Family", "Probe", "Verdict"]


@dataclass(frozen=True)
class Probe:
    """A conversation rendered by both the native renderer and the tokenizer's template."""

    messages: Sequence[Message]
    tools: Sequence[ToolSpecLike] | None = None
    add_generation_prompt: bool = True


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one family: ``renderer`` when it matched, else ``reason`` says why not."""

    family: str
    renderer: Renderer | None
    reason: str = ""


@dataclass(frozen=True)
class Family:
    """A model family with a native renderer.

    ``build(tokenizer, enable_thinking, options)`` makes the renderer; ``options`` are the
    ``chat_template_kwargs`` the caller gave besides ``enable_thinking``; a builder raises ``ValueError`` for one
    it does not support. ``template_kwargs`` are passed to ``apply_chat_template`` on the probes (for example
    the thinking switch under the name the template reads).
    """

    name: str
    marker_tokens: tuple[str, ...]
    build: Callable[[Any, bool, Mapping[str, Any]], Renderer]
    probes: tuple[Probe, ...]
    template_kwargs: Callable[[bool], Mapping[str, Any]] = field(default=lambda thinking: {})

    def has_vocabulary(self, tokenizer: Any) -> bool:
        """Every marker token is a single token of the vocabulary."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            return False
        return all(backend.token_to_id(tok) is not None for tok in self.marker_tokens)

    def check(self, tokenizer: Any, *, enable_thinking: bool, options: Mapping[str, Any]) -> Verdict:
        """Build the native renderer and compare it with the tokenizer's own template on the probes."""
        if not self.has_vocabulary(tokenizer):
            missing = [t for t in self.marker_tokens if tokenizer.backend_tokenizer.token_to_id(t) is None]
            return Verdict(self.name, None, f"the vocabulary lacks {missing}")
        try:
            renderer = self.build(tokenizer, enable_thinking, options)
        except ValueError as exc:
            return Verdict(self.name, None, str(exc))
        if not getattr(tokenizer, "chat_template", None):
            return Verdict(self.name, renderer)  # nothing to disagree with: the native layout is the model's
        kwargs = {**options, **self.template_kwargs(enable_thinking)}  # the template sees what the renderer got
        for n, probe in enumerate(self.probes):
            try:
                expected = tokenizer.apply_chat_template(
                    [dict(m) for m in probe.messages],
                    tools=[dict(t) for t in probe.tools] if probe.tools else None,
                    add_generation_prompt=probe.add_generation_prompt,
                    tokenize=True,
                    return_dict=False,
                    **kwargs,
                )
            except Exception as exc:  # a template that cannot render the probe is not this family's
                return Verdict(self.name, None, f"its chat template failed on probe {n}: {exc}")
            got = renderer.render_ids(
                probe.messages, tools=probe.tools, add_generation_prompt=probe.add_generation_prompt
            )
            if [int(t) for t in expected] != got:
                return Verdict(self.name, None, f"its chat template renders probe {n} differently")
        return Verdict(self.name, renderer)
