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
from typing import Any

import pytest
from hypothesis import assume, given, note
from hypothesis import strategies as st

from renderers.protocol import Renderer
from tests.helpers.conversations import assistant_messages, plain_text, schema_tools, tool_specs
from tests.helpers.family_cases import FAMILY_CASES, FamilyCase, peer_renderer
from tests.helpers.offline_tokenizers import template_ids
from tests.peer.conftest import AGREEMENT

_built: dict[str, tuple[Any, Renderer, Any]] = {}


def _sides(case: FamilyCase) -> tuple[Any, Renderer, Any]:
    if case.family not in _built:
        tok = case.tokenizer()
        _built[case.family] = (tok, case.ours(tok), peer_renderer(case, tok))
    return _built[case.family]


WITH_PEER = sorted(name for name, case in FAMILY_CASES.items() if case.peer_module is not None)


def _count(family: str, what: str, outcome: str) -> None:
    AGREEMENT.setdefault((family, what), Counter())[outcome] += 1


@pytest.mark.parametrize("name", WITH_PEER)
@given(data=st.data())
def test_render_ids_equal_template_and_compare_peer(name: str, data: st.DataObject) -> None:
    case = FAMILY_CASES[name]
    tok, ours, peer = _sides(case)
    msgs = data.draw(case.conversation_strategy(), label="messages")
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


@pytest.mark.parametrize("name", WITH_PEER)
@given(data=st.data())
def test_parse_round_trip_and_compare_peer(name: str, data: st.DataObject) -> None:
    case = FAMILY_CASES[name]
    tok, ours, peer = _sides(case)
    msg = data.draw(assistant_messages(plain_text, case.args_form), label="assistant")
    # The completion a model would have produced: the rendered turn after the generation prompt.
    prompt = ours.render_ids([{"role": "user", "content": "q"}], add_generation_prompt=True)
    full = ours.render_ids([{"role": "user", "content": "q"}, msg])  # type: ignore[list-item]
    assume(full[: len(prompt)] == prompt)  # a prompt that closes an empty thought the message does not have
    sampled = full[len(prompt) :]
    tools = schema_tools(msg.get("tool_calls", []))  # which arguments are strings, for formats that cannot tell
    mine = ours.parse_response(sampled, tools=tools)
    expected = [
        (c["function"]["name"], _as_tokenized(tok, c["function"]["arguments"]), "ok") for c in msg.get("tool_calls", [])
    ]
    assert _calls(mine) == expected
    try:
        # The peer learns from the prompt whether the completion starts inside a thought (Qwen3.5's <think>).
        theirs = peer.parse_response(sampled, tools=tools, prompt_ids=prompt)
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


def _as_tokenized(tok: Any, value: Any) -> Any:
    """The arguments a round trip can give back: a JSON string comes back decoded (the template writes it
    verbatim), and text passes through the tokenizer's normalizer (NFC for Qwen), as every rendered text does."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    normalizer = tok.backend_tokenizer.normalizer
    if normalizer is not None:
        text = normalizer.normalize_str(text)
    try:
        return json.loads(text)
    except ValueError:
        return text
