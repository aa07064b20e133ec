"""Every native family with its real tokenizer + template, its renderer, and the peer's renderer for it.

One registry for the tests that go family by family (``tests/peer``) and for the render benchmark
(``benchmarks/render.py``): adding a family here adds it to both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from renderers.families.deepseek import DeepSeekRenderer
from renderers.families.glm import Glm45Renderer, Glm47Renderer
from renderers.families.gpt_oss import GptOssRenderer
from renderers.families.llama3 import Llama3Renderer
from renderers.families.minimax_m2 import MiniMaxM2Renderer
from renderers.families.qwen3 import Qwen3Renderer
from renderers.families.qwen3_5 import Qwen35Renderer
from renderers.protocol import Renderer
from tests.helpers.conversations import (
    SPECIAL_FRAGMENTS,
    ArgsForm,
    assistant_messages,
    conversations,
    plain_text,
    render_text,
    text_with,
    tool_specs,
)
from tests.helpers.gpt_oss_tokenizer import gpt_oss_tokenizer
from tests.helpers.llama3_tokenizer import LLAMA_FRAGMENTS, ll_conversations, llama3_tokenizer
from tests.helpers.minimax_tokenizer import (
    MINIMAX_FRAGMENTS,
    minimax_m2_tokenizer,
    mm_assistant,
    mm_conversations,
    mm_tools,
)
from tests.helpers.offline_tokenizers import otc_dir, otc_tokenizer
from tests.helpers.qwen3_tokenizer import qwen3_tokenizer_dir, upstream_qwen3_tokenizer

__all__ = ["FAMILY_CASES", "FamilyCase", "is_query", "peer_renderer", "qwen35_conversations"]


def is_query(m: dict[str, Any]) -> bool:
    """A user turn that is not a tool response written as a user message (the Qwen templates tell them apart)."""
    text = m["content"].strip()
    return m["role"] == "user" and not (text.startswith("<tool_response>") and text.endswith("</tool_response>"))


def with_reasoning(msg: dict[str, Any]) -> dict[str, Any]:
    """The assistant turn with a non-empty thought (added when it has none)."""
    if msg.get("reasoning_content") or "</think>" in (msg.get("content") or ""):
        return msg
    return {**msg, "reasoning_content": "thought"}


def typed_calls(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool calls in the full OpenAI envelope (``"type": "function"``), which some templates print."""
    return [
        {**m, "tool_calls": [{**c, "type": "function"} for c in m["tool_calls"]]} if "tool_calls" in m else m
        for m in msgs
    ]


DEEPSEEK_MARKERS = (
    "<｜User｜>",
    "<｜Assistant｜>",
    "<｜tool▁calls▁begin｜>",
    "<｜tool▁call▁begin｜>",
    "<｜tool▁sep｜>",
    "<｜tool▁call▁end｜>",
    "<｜tool▁outputs▁begin｜>",
    "<｜end▁of▁sentence｜>",
    "<think>",
    "</think>",
)


@st.composite
def qwen35_conversations(draw: st.DrawFn, text: st.SearchStrategy[str] = render_text) -> list[dict[str, Any]]:
    """Conversations the Qwen3.5 template accepts: a system message only first, at least one user query."""
    msgs = draw(conversations(text, args_form="dict"))
    msgs = [m for i, m in enumerate(msgs) if m["role"] != "system" or i == 0]
    if not any(is_query(m) for m in msgs):
        at = draw(st.integers(1 if msgs and msgs[0]["role"] == "system" else 0, len(msgs)))
        msgs.insert(at, {"role": "user", "content": draw(text) + "q"})
    return msgs


@dataclass(frozen=True)
class FamilyCase:
    """A family as the real template, this project and ``renderers==0.1.12`` render it.

    ``tokenizer`` loads the real tokenizer carrying the real template (the truth); ``args_form`` is how the
    template takes tool-call arguments; ``special`` are marker strings worth mixing into generated text;
    ``conversations``, ``tools`` and ``assistants`` draw conversations, tool lists and assistant turns the template
    accepts (default: any, with ``special`` in the text); ``completion_after_prompt`` says a rendered last turn
    starts with the generation prompt, so its completion is what follows that prompt (else: its sampled tokens);
    ``template_kwargs`` go to ``apply_chat_template``; ``peer_module``/``peer_class``/``peer_config`` build the
    peer's renderer (``None`` where the peer has none); ``folder`` is a tokenizer folder the mock servers can load
    (``--tokenizer``) for multi-turn rollouts with this family's ids (``None``: not used there).
    """

    family: str
    tokenizer: Callable[[], Any]
    ours: Callable[[Any], Renderer]
    peer_module: str | None
    peer_class: str | None
    args_form: ArgsForm = "any"
    special: tuple[str, ...] = ()
    template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    peer_config: Mapping[str, Any] = field(default_factory=dict)
    folder: Callable[[], Path] | None = None
    conversations: st.SearchStrategy[list[dict[str, Any]]] | None = None
    tools: st.SearchStrategy[list[dict[str, Any]] | None] = field(default_factory=tool_specs)
    assistants: st.SearchStrategy[dict[str, Any]] | None = None
    completion_after_prompt: bool = True

    def conversation_strategy(self) -> st.SearchStrategy[list[dict[str, Any]]]:
        if self.conversations is not None:
            return self.conversations
        return conversations(text_with(self.special), self.args_form)


FAMILY_CASES: dict[str, FamilyCase] = {
    "qwen3": FamilyCase(
        family="qwen3",
        tokenizer=upstream_qwen3_tokenizer,
        ours=lambda tok: Qwen3Renderer(tok),
        peer_module="qwen3",
        peer_class="Qwen3Renderer",
        special=tuple(SPECIAL_FRAGMENTS),
        template_kwargs={"enable_thinking": True},
        folder=qwen3_tokenizer_dir,
    ),
    "qwen3.5": FamilyCase(
        family="qwen3.5",
        tokenizer=lambda: otc_tokenizer("qwen-3.5"),
        ours=lambda tok: Qwen35Renderer(tok),
        peer_module="qwen35",
        peer_class="Qwen35Renderer",
        args_form="dict",
        special=tuple(SPECIAL_FRAGMENTS),
        template_kwargs={"enable_thinking": True},
        folder=lambda: otc_dir("qwen-3.5"),
        conversations=qwen35_conversations(),
    ),
    # TRL's verbatim deepseekv3.jinja (DeepSeek-R1's template, the layout V3-0324 and later use, with tool calls)
    # on V3's vocabulary: the peer's DeepSeekV3Renderer targets this one.
    "deepseek_r1": FamilyCase(
        family="deepseek_r1",
        tokenizer=lambda: otc_tokenizer("deepseek-v3", "deepseekv3"),
        ours=lambda tok: DeepSeekRenderer(tok, variant="r1"),
        peer_module="deepseek_v3",
        peer_class="DeepSeekV3Renderer",
        args_form="str",
        special=DEEPSEEK_MARKERS,
        folder=lambda: otc_dir("deepseek-v3"),
        conversations=conversations(text_with(DEEPSEEK_MARKERS), "str").map(typed_calls),
        completion_after_prompt=False,
    ),
    # DeepSeek V3.1 (its own tool-call syntax, thinking off by default): no peer renderer; in the multi-turn rollouts.
    "deepseek_v3_1": FamilyCase(
        family="deepseek_v3_1",
        tokenizer=lambda: otc_tokenizer("deepseek-v3.1"),
        ours=lambda tok: DeepSeekRenderer(tok, variant="v3.1"),
        peer_module=None,
        peer_class=None,
        args_form="str",
        special=DEEPSEEK_MARKERS,
        folder=lambda: otc_dir("deepseek-v3.1"),
        completion_after_prompt=False,
    ),
    "minimax_m2": FamilyCase(
        family="minimax_m2",
        tokenizer=minimax_m2_tokenizer,
        ours=lambda tok: MiniMaxM2Renderer(tok),
        peer_module="minimax_m2",
        peer_class="MiniMaxM2Renderer",
        args_form="dict",
        special=tuple(MINIMAX_FRAGMENTS),
        # No mock folder: its bridge re-renders the completion's turn and refuses when the tokens differ, which
        # random mock tokens (that decode and re-encode differently) always do, so no rollout would get a turn 2.
        conversations=mm_conversations(),
        tools=mm_tools,
        # Always a thought: the generation prompt opens one, so a turn without it is no completion of that prompt.
        assistants=mm_assistant(plain_text).map(with_reasoning),
    ),
    "llama3_1": FamilyCase(
        family="llama3_1",
        tokenizer=llama3_tokenizer,
        tools=tool_specs().filter(lambda t: t is None),  # tools go into the first user message, which may be absent
        ours=lambda tok: Llama3Renderer(tok),
        peer_module="llama_3",
        peer_class="Llama3Renderer",
        special=tuple(LLAMA_FRAGMENTS),
        conversations=ll_conversations(),
        # One call at most (the template refuses more); plain text, since content that is a JSON call is a call.
        assistants=assistant_messages(plain_text).filter(lambda m: len(m.get("tool_calls", [])) <= 1),
    ),
    # The peer's gpt-oss renderer matches the template on none of the shapes tried (docs/families/gpt-oss.md), and
    # random mock completions never end in a harmony tool call, after which alone the bridge extends a turn: the
    # family takes part in the render benchmark only.
    "gpt_oss": FamilyCase(
        family="gpt_oss",
        tokenizer=gpt_oss_tokenizer,
        ours=lambda tok: GptOssRenderer(tok),
        peer_module=None,
        peer_class=None,
    ),
    "glm4.5": FamilyCase(
        family="glm4.5",
        tokenizer=lambda: otc_tokenizer("glm-4.5v", trl="glm4moe"),
        ours=lambda tok: Glm45Renderer(tok),
        peer_module="glm45",
        peer_class="GLM45Renderer",
        args_form="dict",
        special=(*SPECIAL_FRAGMENTS, "<|user|>", "<|observation|>", "<arg_key>", "</arg_value>", "/nothink"),
        template_kwargs={"enable_thinking": True},
    ),
    "glm4.7": FamilyCase(
        family="glm4.7",
        tokenizer=lambda: otc_tokenizer("glm-4.7-flash"),
        ours=lambda tok: Glm47Renderer(tok),
        peer_module="glm5",
        peer_class="GLM5Renderer",
        args_form="dict",
        special=(*SPECIAL_FRAGMENTS, "<|user|>", "<|observation|>", "<arg_key>", "</arg_value>"),
        template_kwargs={"enable_thinking": True},
    ),
}


def peer_renderer(case: FamilyCase, tokenizer: Any) -> Any:
    """The peer's renderer for ``case`` on ``tokenizer`` (``RuntimeError`` when the peer is not installed)."""
    from benchmarks.peer import load_peer_module

    if case.peer_module is None or case.peer_class is None:
        raise RuntimeError(f"renderers==0.1.12 has no renderer for {case.family}")
    cls = getattr(load_peer_module(case.peer_module), case.peer_class)
    config_cls = getattr(cls, "_config_cls", None) or getattr(load_peer_module("configs"), case.peer_class + "Config")
    return cls(tokenizer, config_cls(**case.peer_config))
