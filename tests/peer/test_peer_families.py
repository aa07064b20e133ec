"""Differential against the released ``renderers==0.1.12``, family by family, with the real template as judge.

For every family both projects ship, generated conversations are rendered by the real chat template (the truth),
by this project's native renderer and by the peer's renderer; assistant turns are rendered, cut to their sampled
tokens and parsed back by both. This project must equal the truth every time (the test fails otherwise); where the
peer differs, the case is counted (and the first example noted) so ``docs/renderers.md`` can list which side matches
the template. The counts are printed after the run (``tests/peer/conftest.py``).

The peer is installed by nox (``pip install --no-deps --target``) and loaded under the name ``renderers_peer``
(``benchmarks/peer.py``); a run without it fails with the reason, it is never skipped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from benchmarks.peer import load_peer_module
from renderers.families.qwen3 import Qwen3Renderer
from renderers.protocol import Renderer
from tests.helpers.conversations import assistant_messages, conversations, plain_text, tool_specs
from tests.helpers.qwen3_tokenizer import template_ids, upstream_qwen3_tokenizer
from tests.peer.conftest import AGREEMENT


@dataclass(frozen=True)
class PeerCase:
    """One family as both projects render it, and how to draw conversations its template accepts."""

    family: str
    tokenizer: Callable[[], Any]
    ours: Callable[[Any], Renderer]
    peer_module: str
    peer_class: str
    conversations: st.SearchStrategy[list[dict[str, Any]]]
    assistants: st.SearchStrategy[dict[str, Any]]
    template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    peer_config: Mapping[str, Any] = field(default_factory=dict)


CASES: dict[str, PeerCase] = {
    "qwen3": PeerCase(
        family="qwen3",
        tokenizer=upstream_qwen3_tokenizer,
        ours=lambda tok: Qwen3Renderer(tok),
        peer_module="qwen3",
        peer_class="Qwen3Renderer",
        conversations=conversations(),
        assistants=assistant_messages(plain_text),
        template_kwargs={"enable_thinking": True},
    ),
}

_built: dict[str, tuple[Any, Renderer, Any]] = {}


def _sides(case: PeerCase) -> tuple[Any, Renderer, Any]:
    if case.family not in _built:
        tok = case.tokenizer()
        module = load_peer_module(case.peer_module)
        peer_cls = getattr(module, case.peer_class)
        config_cls = getattr(peer_cls, "_config_cls", None) or getattr(
            load_peer_module("configs"), case.peer_class + "Config"
        )
        peer = peer_cls(tok, config_cls(**case.peer_config))
        _built[case.family] = (tok, case.ours(tok), peer)
    return _built[case.family]


def _count(family: str, what: str, outcome: str) -> None:
    AGREEMENT.setdefault((family, what), Counter())[outcome] += 1


@pytest.mark.parametrize("name", sorted(CASES))
@given(data=st.data())
def test_render_ids_equal_template_and_compare_peer(name: str, data: st.DataObject) -> None:
    case = CASES[name]
    tok, ours, peer = _sides(case)
    msgs = data.draw(case.conversations, label="messages")
    tools = data.draw(tool_specs(), label="tools")
    gen = data.draw(st.booleans(), label="add_generation_prompt")
    truth = template_ids(tok, msgs, tools=tools, add_generation_prompt=gen, **case.template_kwargs)
    assert ours.render_ids(msgs, tools=tools, add_generation_prompt=gen) == truth  # type: ignore[arg-type]
    try:
        theirs = peer.render_ids(msgs, tools=tools, add_generation_prompt=gen)
    except Exception as exc:
        _count(name, "render", f"peer raised {type(exc).__name__}")
        note(f"peer raised {exc!r}")
        return
    _count(name, "render", "agree" if list(theirs) == truth else "peer differs from the template")


def _calls(parsed: Any) -> list[tuple[str | None, Any, str]]:
    return [(c.name, c.arguments, str(c.status)) for c in parsed.tool_calls]


@pytest.mark.parametrize("name", sorted(CASES))
@given(data=st.data())
def test_parse_round_trip_and_compare_peer(name: str, data: st.DataObject) -> None:
    case = CASES[name]
    _tok, ours, peer = _sides(case)
    msg = data.draw(case.assistants, label="assistant")
    rendered = ours.render([{"role": "user", "content": "q"}, msg])  # type: ignore[list-item]
    sampled = [t for t, s in zip(rendered.token_ids, rendered.sampled_mask, strict=True) if s]
    mine = ours.parse_response(sampled)
    expected = [
        (c["function"]["name"], _json_or_value(c["function"]["arguments"]), "ok") for c in msg.get("tool_calls", [])
    ]
    assert _calls(mine) == expected
    try:
        theirs = peer.parse_response(sampled)
    except Exception as exc:
        _count(name, "parse", f"peer raised {type(exc).__name__}")
        return
    calls = "tool calls agree" if _calls(theirs) == _calls(mine) else "tool calls differ"
    if theirs.content == mine.content:
        content = "content agrees"
    elif theirs.content.strip() == mine.content.strip():
        content = "content differs in surrounding white space"
    else:
        content = "content differs"
    _count(name, "parse", f"{calls}, {content}")


def _json_or_value(value: Any) -> Any:
    """Arguments given as a JSON string come back decoded (the template writes the string verbatim)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value
