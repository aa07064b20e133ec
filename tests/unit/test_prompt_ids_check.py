"""``generate()``'s prompt id check: C-speed on the happy path, the offending index named otherwise, and the
pre-encoded ids land in the body unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from renderers.client._call import WireRequest, checked_prompt_ids
from renderers.client._transports import TRANSPORTS


@pytest.mark.parametrize("ids", [[], [0], [1, 2, 151_935], [2**63 - 1], list(range(5000))])
def test_good_ids_come_back_with_their_json(ids: list[int]) -> None:
    out, text = checked_prompt_ids(ids)
    assert out == ids
    assert out is not ids
    assert text is not None
    assert orjson.loads(text) == ids


@pytest.mark.parametrize(
    ("bad", "index"),
    [([1, -1], 1), ([1.0], 0), ([2, True], 1), ([False], 0), (["7"], 0), ([None], 0), ([[1]], 0), ([1, 2, 1.5], 2),
     ([np.int64(3)], 0), ([1, -(2**70)], 1)],
)  # fmt: skip
def test_bad_ids_name_the_index(bad: list[Any], index: int) -> None:
    with pytest.raises(ValueError, match=rf"prompt_ids\[{index}\] must be a non-negative int"):
        checked_prompt_ids(bad)


def test_numpy_arrays() -> None:
    out, text = checked_prompt_ids(np.array([3, 4], dtype=np.int32))
    assert out == [3, 4]
    assert type(out[0]) is int
    assert text == b"[3,4]"
    with pytest.raises(ValueError, match=r"prompt_ids\[1\]"):
        checked_prompt_ids(np.array([3, -4]))
    with pytest.raises(ValueError, match=r"prompt_ids\[0\]"):
        checked_prompt_ids(np.array([3.0]))


def test_ids_beyond_64_bits_are_checked_by_the_loop_and_left_to_the_encoder() -> None:
    out, text = checked_prompt_ids([2**70])
    assert out == [2**70]
    assert text is None


@pytest.mark.parametrize("name", ["vllm", "dynamo"])
def test_the_pre_encoded_ids_give_the_same_body(name: str) -> None:
    ids = list(range(100, 140))
    checked, text = checked_prompt_ids(ids)
    sp = {"max_tokens": 3, "logprobs": 1}
    plain = TRANSPORTS[name].build_body(WireRequest(model="m", prompt_ids=checked, sampling_params=sp))
    pre = TRANSPORTS[name].build_body(
        WireRequest(model="m", prompt_ids=checked, sampling_params=sp, prompt_ids_json=text)
    )
    assert pre == plain
