"""How ``create_renderer`` recognises a model family from a tokenizer: its special tokens, then its template.

A :class:`Family` names the special tokens its vocabulary must hold and a few probe conversations. A tokenizer
is of that family when it has every marker token and, if it carries a chat template, that template renders
every probe to the same ids as the family's native renderer. The folder name is never looked at: a checkpoint
with the family's vocabulary but another template (a fine-tune, an older revision) is not claimed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from renderers.protocol import Renderer
from renderers.types import Message, ToolCall, ToolSpecLike

__all__ = [
    "PROBE_TOOLS",
    "Family",
    "Probe",
    "Verdict",
    "check_options",
    "enable_thinking_kwargs",
    "read_only",
    "reasoning_history_probe",
    "tool_call",
    "tool_results_probe",
]


def read_only(value: Any) -> Any:
    """A read-only deep copy of JSON-like data (mappings as ``MappingProxyType``, lists and tuples as tuples), for
    module-level tables: nothing a caller does to one use of a table reaches the next."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: read_only(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(read_only(v) for v in value)
    return value


def _writable(value: Any) -> Any:
    """A fresh deep copy of ``read_only`` data as dicts and lists, what templates and renderers are given."""
    if isinstance(value, Mapping):
        return {k: _writable(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_writable(v) for v in value]
    return value


@dataclass(frozen=True)
class Probe:
    """A conversation rendered by both the native renderer and the tokenizer's template.

    Kept read-only (see :func:`read_only`); ``conversation()`` and ``tool_list()`` give each use its own copy.
    """

    messages: Sequence[Mapping[str, Any]]
    tools: Sequence[ToolSpecLike] | None = None
    add_generation_prompt: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", read_only(self.messages))
        object.__setattr__(self, "tools", None if self.tools is None else read_only(self.tools))

    def conversation(self) -> list[Message]:
        """The messages, as a new list of new dicts."""
        messages: list[Message] = _writable(self.messages)
        return messages

    def tool_list(self) -> list[ToolSpecLike] | None:
        """The tools, as a new list of new dicts, or ``None``."""
        tools: list[ToolSpecLike] | None = None if self.tools is None else _writable(self.tools)
        return tools


# The tool most probes declare: a name, a description and an empty object schema.
PROBE_TOOLS: Final[tuple[ToolSpecLike, ...]] = read_only(
    ({"type": "function", "function": {"name": "probe", "description": "d", "parameters": {"type": "object"}}},)
)


def tool_call(name: str, arguments: Any) -> ToolCall:
    """A probe assistant's tool call in OpenAI shape (``arguments``: a mapping or a JSON string)."""
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def reasoning_history_probe(*, system: bool = True) -> Probe:
    """Two answered questions, each answer with reasoning, and no generation prompt: it shows which turns a
    template keeps the reasoning of, and how it closes the last one. ``system``: open with a system message."""
    head: list[Message] = [{"role": "system", "content": "S"}] if system else []
    return Probe(
        [
            *head,
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1", "reasoning_content": "R1"},
            {"role": "user", "content": "Q2"},
            {"role": "assistant", "content": "A2", "reasoning_content": "R2"},
        ],
        add_generation_prompt=False,
    )


def tool_results_probe(
    *arguments: Mapping[str, Any],
    system: bool = False,
    content: str = "",
    results: Sequence[str] = ("T1", "T2"),
    tools: Sequence[ToolSpecLike] = PROBE_TOOLS,
) -> Probe:
    """A question answered with reasoning ``R``, ``content`` and one call of the ``probe`` tool for each of
    ``arguments``, then the tool messages ``results``; it ends with the generation prompt. ``system``: open
    with a system message."""
    head: list[Message] = [{"role": "system", "content": "S"}] if system else []
    call: Message = {
        "role": "assistant",
        "content": content,
        "reasoning_content": "R",
        "tool_calls": [tool_call("probe", a) for a in arguments],
    }
    replies: list[Message] = [{"role": "tool", "content": r} for r in results]
    return Probe([*head, {"role": "user", "content": "Q"}, call, *replies], tools=tools)


def enable_thinking_kwargs(thinking: bool) -> Mapping[str, Any]:
    """``Family.template_kwargs`` of templates that read the thinking switch as ``enable_thinking``."""
    return {"enable_thinking": thinking}


def check_options(
    options: Mapping[str, Any], renderer: str, supported: Collection[str] = (), *, bools: Collection[str] = ()
) -> None:
    """Raise ``ValueError`` for ``chat_template_kwargs`` the ``renderer`` does not support, or for a non-bool value
    of one of ``bools``."""
    unknown = sorted(set(options) - set(supported))
    if unknown:
        raise ValueError(
            f"chat_template_kwargs: {renderer} does not support {unknown} (supported: {sorted(supported) or 'none'})"
        )
    for key in bools:
        if key in options and not isinstance(options[key], bool):
            raise ValueError(f"chat_template_kwargs.{key}: expected a bool, got {options[key]!r}")


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
    # False where other models with another format share the vocabulary (DeepSeek V3.2 and V4 ship no Jinja
    # template): a tokenizer without a chat template is then not claimed.
    claims_without_template: bool = True

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
            if not self.claims_without_template:
                return Verdict(self.name, None, "it has no chat template, and other formats share this vocabulary")
            return Verdict(self.name, renderer)  # nothing to disagree with: the native layout is the model's
        # The options the renderer was built with are template variables too (e.g. a date or an identity line).
        kwargs = {**options, **self.template_kwargs(enable_thinking)}
        for n, probe in enumerate(self.probes):
            try:
                expected = tokenizer.apply_chat_template(
                    probe.conversation(),
                    tools=probe.tool_list() or None,
                    add_generation_prompt=probe.add_generation_prompt,
                    tokenize=True,
                    return_dict=False,
                    **kwargs,
                )
            except Exception as exc:  # a template that cannot render the probe is not this family's
                return Verdict(self.name, None, f"its chat template failed on probe {n}: {exc}")
            got = renderer.render_ids(
                probe.conversation(), tools=probe.tool_list(), add_generation_prompt=probe.add_generation_prompt
            )
            if [int(t) for t in expected] != got:
                return Verdict(self.name, None, f"its chat template renders probe {n} differently")
        return Verdict(self.name, renderer)
