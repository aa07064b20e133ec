"""SegmentEncoder: cutting at added tokens and caching the stretches gives the tokenizer's own ids and offsets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from renderers.families.segments import SegmentEncoder
from tests.helpers.conversations import SPECIAL_FRAGMENTS, text_with
from tests.helpers.offline_tokenizers import otc_tokenizer
from tests.helpers.qwen3_tokenizer import qwen3_tokenizer

# Qwen3 (every added token un-normalized, NFC normalizer) and DeepSeek V3 (some normalized added tokens, which the
# tokenizer matches only after normalizing each stretch).
TOKENIZERS: dict[str, Callable[[], Any]] = {
    "qwen3": qwen3_tokenizer,
    "deepseek-v3": lambda: otc_tokenizer("deepseek-v3"),
}
DEEPSEEK_MARKERS = ["<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>", "<think>", "</think>", "<｜tool▁sep｜>"]


@pytest.fixture(scope="module", params=sorted(TOKENIZERS))
def backend(request: pytest.FixtureRequest) -> Any:
    return TOKENIZERS[request.param]().backend_tokenizer


def _reference(backend: Any, text: str) -> tuple[list[int], list[int]]:
    enc = backend.encode(text, add_special_tokens=False)
    return list(enc.ids), [b for b, _ in enc.offsets]


@given(texts=st.lists(text_with([*SPECIAL_FRAGMENTS, *DEEPSEEK_MARKERS]), min_size=1, max_size=4))
def test_encode_equals_one_pass(backend: Any, texts: list[str]) -> None:
    enc = SegmentEncoder(backend, cache_size=8)
    assert enc.exact_cut
    # Several texts through one encoder: later ones hit stretches cached by earlier ones (and the cache overflows).
    for text in [*texts, "".join(texts), texts[0]]:
        ids, begins = enc.encode(text)
        assert (ids, begins.tolist()) == _reference(backend, text)


def test_a_stripping_added_token_turns_the_cut_off() -> None:
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1, "b": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens([AddedToken("<s>", lstrip=True, rstrip=True, normalized=False)])
    enc = SegmentEncoder(tok)
    assert not enc.exact_cut
    for text in ["a <s> b", "a<s>b", "  <s>  "]:
        ids, begins = enc.encode(text)
        assert (ids, begins.tolist()) == _reference(tok, text)
