"""The mock Dynamo's text prompts: NUL characters removed before tokenizing, as the 1.6.1 preprocessor does.

The real frontend's answers are pinned by the recordings ``dyn_chat_nul``, ``dyn_completions_nul`` and
``dyn_completions_empty`` and by the ``real_dynamo`` differential (its message texts carry NULs); these properties
check the rule on generated texts: wherever NULs are put, the prompt is the one of the text without them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockservers.app import MockState
from mockservers.config import MockConfig
from mockservers.dynamo import rules
from mockservers.dynamo.app import dynamo_error
from mockservers.protocol import RequestError

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=20)
nul_runs = st.lists(st.integers(0, 3), min_size=21, max_size=21)


@pytest.fixture(scope="module")
def state() -> MockState:
    return MockState("dynamo", MockConfig(), dynamo_error)


def _with_nuls(text: str, runs: list[int]) -> str:
    """``text`` with ``runs[i]`` NULs before its i-th character (and after the last)."""
    return "".join("\0" * n + c for n, c in zip(runs, [*text, ""], strict=False))


def _chat(contents: list[str]) -> bytes:
    messages: list[dict[str, Any]] = [{"role": "user", "content": c} for c in contents]
    return json.dumps({"model": "tiny-qwen3", "messages": messages, "max_tokens": 1}).encode()


@given(clean=st.lists(texts, min_size=1, max_size=3), runs=st.lists(nul_runs, min_size=3, max_size=3))
def test_nuls_in_chat_contents_cost_nothing(state: MockState, clean: list[str], runs: list[list[int]]) -> None:
    dirty = [_with_nuls(text, r) for text, r in zip(clean, runs, strict=False)]
    assert rules.parse_chat(_chat(dirty), state).prompt == rules.parse_chat(_chat(clean), state).prompt


@given(clean=texts.filter(bool), runs=nul_runs)
def test_nuls_in_a_completions_prompt_cost_nothing(state: MockState, clean: str, runs: list[int]) -> None:
    def prompt(text: str) -> list[int]:
        body = {"model": "tiny-qwen3", "prompt": text, "max_tokens": 1}
        return rules.parse_completion(json.dumps(body).encode(), state).prompt

    assert prompt(_with_nuls(clean, runs)) == prompt(clean) == state.tokenizer.encode(clean)


def test_only_nuls_is_an_empty_prompt_and_no_text_is_refused(state: MockState) -> None:
    nuls = rules.parse_completion(b'{"model":"tiny-qwen3","prompt":"\\u0000\\u0000","max_tokens":1}', state)
    assert nuls.prompt == []
    for prompt, message in (('""', "Prompt string cannot be empty"), ("[]", "Prompt string array cannot be empty")):
        raw = f'{{"model":"tiny-qwen3","prompt":{prompt},"max_tokens":1}}'.encode()
        with pytest.raises(RequestError) as caught:
            rules.parse_completion(raw, state)
        assert caught.value.status == 400
        assert caught.value.message == f"Validation: {message}"
