"""Encode text exactly as the tokenizer does, caching the stretches between added tokens.

A Hugging Face tokenizer first cuts its input at the added tokens whose ``normalized`` flag is off (leftmost-longest
match), then normalizes, pre-tokenizes and encodes each stretch between them on its own. No merge ever crosses such
a cut, so encoding the stretches one by one and joining the results gives the ids of encoding the whole string.
A chat conversation is mostly stretches that repeat from one render to the next (the history of a multi-turn
rollout), so each stretch's encoding is cached: re-rendering a long history costs a regex scan and list joins.

The cut is only taken when it is provably the tokenizer's own: if any such added token has ``single_word``,
``lstrip`` or ``rstrip`` set (its match then depends on the neighbouring text), the whole string is encoded in one
pass instead. ``render_ids`` and ``render`` are checked against ``apply_chat_template`` on generated text in the
property tests of every family, which exercises this module.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["SegmentEncoder"]

DEFAULT_CACHE_SIZE = 4096  # stretches: about 30 forty-turn conversations

_Stretch = tuple[tuple[int, ...], npt.NDArray[np.int64]]


class SegmentEncoder:
    """``encode(text)`` -> (ids, begin offset of each token in characters), with a per-instance stretch cache.

    Stretches not in the cache are encoded together in one ``encode_batch`` call. The cache holds at most
    ``cache_size`` stretches; when full it starts over (cheaper than LRU bookkeeping on every hit, and a rollout
    refills what it uses on its next render).
    """

    def __init__(self, backend: Any, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._backend = backend
        added: dict[int, Any] = backend.get_added_tokens_decoder()
        plain = {tok.content: tid for tid, tok in added.items() if not tok.normalized}
        self.exact_cut = all(
            not (tok.single_word or tok.lstrip or tok.rstrip) for tok in added.values() if not tok.normalized
        )
        self._ids = plain
        self._cut: re.Pattern[str] | None = None
        if plain and self.exact_cut:
            self._cut = re.compile("|".join(re.escape(c) for c in sorted(plain, key=len, reverse=True)))
        self._cache: dict[str, _Stretch] = {}
        self._cache_size = cache_size

    def clear(self) -> None:
        """Forget every cached stretch."""
        self._cache = {}

    @staticmethod
    def _stretch(enc: Any) -> _Stretch:
        begins = np.fromiter((b for b, _ in enc.offsets), dtype=np.int64, count=len(enc.ids))
        return tuple(enc.ids), begins

    def encode_ids(self, text: str) -> list[int]:
        """The token ids of ``text`` (no special tokens added)."""
        return self.encode(text)[0]

    def encode(self, text: str) -> tuple[list[int], npt.NDArray[np.int64]]:
        """The token ids of ``text`` and the character offset where each token starts."""
        if self._cut is None:
            whole, whole_begins = self._stretch(self._backend.encode(text, add_special_tokens=False))
            return list(whole), whole_begins
        # (start, stretch text, -1) for ordinary text, (start, "", id) for an added token.
        layout: list[tuple[int, str, int]] = []
        pos = 0
        for m in self._cut.finditer(text):
            start = m.start()
            if start > pos:
                layout.append((pos, text[pos:start], -1))
            layout.append((start, "", self._ids[m.group()]))
            pos = m.end()
        if pos < len(text):
            layout.append((pos, text[pos:], -1))
        cache = self._cache
        missing = list({piece for _, piece, tid in layout if tid < 0 and piece not in cache})
        if missing:
            if len(cache) + len(missing) > self._cache_size:
                # Start over; this text's stretches that were cached are encoded again with the rest.
                cache = self._cache = {}
                missing = list({piece for _, piece, tid in layout if tid < 0})
            encoded = self._backend.encode_batch(missing, add_special_tokens=False)
            for piece, enc in zip(missing, encoded, strict=True):
                cache[piece] = self._stretch(enc)
        ids: list[int] = []
        parts: list[npt.NDArray[np.int64]] = []
        for start, piece, tid in layout:
            if tid >= 0:
                ids.append(tid)
                parts.append(np.array([start], dtype=np.int64))
            else:
                s_ids, s_begins = cache[piece]
                ids.extend(s_ids)
                parts.append(s_begins + start)
        begins = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return ids, begins
