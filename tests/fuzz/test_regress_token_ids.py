"""Regression: completion ids beyond uint32 (Dynamo's and vLLM's token id range) were accepted as is."""

from __future__ import annotations

import orjson
import pytest

from renderers.client._parse import parse_completion
from renderers.errors import MalformedResponseError


@pytest.mark.parametrize("bad", [2**32, 2**40, 2**63, 2**64 - 1])
def test_ids_beyond_uint32_are_rejected(bad: int) -> None:
    raw = orjson.dumps({"choices": [{"token_ids": [5, bad], "logprobs": {"content": [{"logprob": -1}] * 2}}]})
    with pytest.raises(MalformedResponseError) as info:
        parse_completion(raw, prompt_len=1)
    assert info.value.field == "choices[0].token_ids[1]"
    assert str(bad) in str(info.value)


def test_largest_uint32_id_is_accepted() -> None:
    raw = orjson.dumps({"choices": [{"token_ids": [2**32 - 1], "logprobs": {"content": [{"logprob": -1}]}}]})
    assert parse_completion(raw, prompt_len=1).completion_ids == [2**32 - 1]
