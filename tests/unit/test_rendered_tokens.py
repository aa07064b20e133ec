"""RenderedTokens checks its per-token lists on construction and names the first bad entry."""

from __future__ import annotations

import pytest

from renderers.types import RenderedTokens


def _tokens(indices: list[int], roles: list[str]) -> RenderedTokens:
    n = len(indices)
    return RenderedTokens(list(range(n)), indices, [False] * n, [False] * n, roles)


def test_valid_indices_pass() -> None:
    rt = _tokens([-1, 0, 0, 1, -1], ["user", "assistant"])
    assert rt.message_token_spans() == [(1, 3), (3, 4)]


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        ([-1, 0, 2, 1], r"message_indices\[2\] = 2 is outside \[-1, 2\)"),
        ([0, -2, 0], r"message_indices\[1\] = -2 is outside \[-1, 2\)"),
    ],
)
def test_an_index_outside_the_messages_is_named(indices: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _tokens(indices, ["user", "assistant"])


def test_lengths_must_agree() -> None:
    with pytest.raises(ValueError, match=r"sampled_mask has length 1, expected 2"):
        RenderedTokens([1, 2], [0, 0], [False], [False, False], ["user"])
