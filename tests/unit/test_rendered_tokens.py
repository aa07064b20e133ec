"""RenderedTokens checks its per-token lists on construction and names the first bad entry; ``_after_history`` (the
bridges' constructor) builds the same instance while checking only the new part."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


# ---- _after_history: the bridge's constructor, which checks only the new part --------------------------------------

_IDS = st.lists(st.integers(0, 200_000), max_size=40)


@given(history=_IDS, data=st.data(), roles=st.lists(st.sampled_from(["user", "tool", "system"]), max_size=4))
def test_after_history_is_what_the_constructor_builds(
    history: list[int], data: st.DataObject, roles: list[str]
) -> None:
    new = data.draw(_IDS)
    top = len(roles) if roles else 50  # any index is allowed when there are no roles
    indices = data.draw(st.lists(st.integers(-1, top - 1), min_size=len(new), max_size=len(new)))
    content = data.draw(st.lists(st.booleans(), min_size=len(new), max_size=len(new)))
    k = len(history)
    expected = RenderedTokens(
        history + new, [-1] * k + indices, [False] * (k + len(new)), [False] * k + content, list(roles)
    )
    assert RenderedTokens._after_history(list(history), new, indices, content, list(roles)) == expected


@given(history=_IDS, before=st.lists(st.integers(-1, 1), max_size=5), bad=st.sampled_from([-2, -7, 2, 9]))
def test_after_history_names_a_bad_new_index_at_its_place_in_the_whole_list(
    history: list[int], before: list[int], bad: int
) -> None:
    indices = [*before, bad]
    with pytest.raises(ValueError, match=rf"message_indices\[{len(history) + len(before)}\] = {bad} is outside"):
        RenderedTokens._after_history(
            history, list(range(len(indices))), indices, [False] * len(indices), ["user", "tool"]
        )


def test_after_history_refuses_new_lists_of_different_lengths() -> None:
    with pytest.raises(ValueError, match=r"2 new ids with 1 message indices and 2 content flags"):
        RenderedTokens._after_history([5], [1, 2], [0], [False, True], ["user"])
