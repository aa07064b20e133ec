"""The Dynamo transport's cross-check of ``engine_data`` against ``usage`` and the chat echo
(``renderers.client._migration``): a migrated answer is rebuilt exactly, anything it cannot explain is refused.

The migrated bodies come from the mock Dynamo's ``migrated_after`` fault, which reproduces what the real 1.6.1
frontend returned after a worker was killed (tests/real/test_dynamo_worker_migration.py checks the real one).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from mockservers.server import MockServer
from renderers.client._parse import WireResult
from renderers.client._transports import DynamoTransport
from renderers.errors import LogprobMismatchError, PartialCompletionError

PROMPT = [5, 6, 7, 8, 9]
BODY: dict[str, Any] = {
    "model": "tiny-qwen3",
    "messages": [{"role": "user", "content": ""}],
    "max_completion_tokens": 50,
    "ignore_eos": True,
    "logprobs": True,
    "seed": 3,
    "nvext": {"token_data": PROMPT, "extra_fields": ["engine_data"]},
}


@pytest.fixture(scope="module")
def dynamo_moe() -> Iterator[MockServer]:
    with MockServer("dynamo", moe_layers=2, moe_top_k=2, num_experts=64) as server:
        yield server


def _answer(server: MockServer, fault: str | None = None) -> dict[str, Any]:
    headers = {"x-mock-fault": fault} if fault else {}
    resp = httpx.post(f"{server.url}/v1/chat/completions", json=BODY, headers=headers, timeout=10)
    resp.raise_for_status()
    doc: dict[str, Any] = resp.json()
    return doc


def _parse(doc: dict[str, Any], prompt_start: int | None = None) -> WireResult:
    return DynamoTransport().parse(orjson.dumps(doc), prompt_len=len(PROMPT), prompt_start=prompt_start)


@pytest.mark.parametrize("cut", [1, 16, 49])
def test_migrated_answer_is_rebuilt_to_the_whole_completion(dynamo_moe: MockServer, cut: int) -> None:
    whole = _parse(_answer(dynamo_moe))
    migrated = _answer(dynamo_moe, f"migrated_after={cut}")
    engine = migrated["nvext"]["engine_data"]
    assert len(engine["completion_token_ids"]) == 50 - cut  # the shape the real frontend returns
    assert migrated["usage"]["prompt_tokens"] == len(PROMPT) + cut
    rebuilt = _parse(migrated)
    assert rebuilt.completion_ids == whole.completion_ids
    assert rebuilt.completion_logprobs == whole.completion_logprobs
    assert rebuilt.routed_experts is not None
    assert whole.routed_experts is not None
    assert np.array_equal(rebuilt.routed_experts.to_numpy(), whole.routed_experts.to_numpy())
    trimmed = _parse(migrated, prompt_start=4)
    assert trimmed.routed_experts is not None
    assert trimmed.routed_experts.start == 4
    assert trimmed.routed_experts.rows == len(PROMPT) + 50 - 1 - 4


def test_whole_answer_is_unchanged(dynamo_moe: MockServer) -> None:
    doc = _answer(dynamo_moe)
    result = _parse(doc)
    assert result.completion_ids == doc["nvext"]["engine_data"]["completion_token_ids"]


Mutation = Callable[[dict[str, Any]], None]


def _drop_echo(doc: dict[str, Any]) -> None:
    doc["choices"][0]["logprobs"] = None


def _shorter_echo(doc: dict[str, Any]) -> None:
    doc["choices"][0]["logprobs"]["content"].pop(0)


def _wrong_prompt_count(doc: dict[str, Any]) -> None:
    doc["usage"]["prompt_tokens"] = len(PROMPT)


def _engine_ids_not_the_tail(doc: dict[str, Any]) -> None:
    ids = doc["nvext"]["engine_data"]["completion_token_ids"]
    ids[0] = (ids[0] + 1) % 2000


def _engine_logprob_differs(doc: dict[str, Any]) -> None:
    doc["nvext"]["engine_data"]["completion_logprobs"][-1] -= 0.5


def _engine_prompt_differs(doc: dict[str, Any]) -> None:
    doc["nvext"]["engine_data"]["prompt_token_ids"][-1] += 1


def _table_covers_only_the_continuation(doc: dict[str, Any]) -> None:
    routed = doc["nvext"]["engine_data"]["routed_experts"]
    rows = len(doc["nvext"]["engine_data"]["completion_token_ids"])
    raw = base64.b64decode(routed["data"])
    row_bytes = routed["shape"][1] * routed["shape"][2]
    routed["data"] = base64.b64encode(raw[-rows * row_bytes :]).decode()
    routed["shape"] = [rows, *routed["shape"][1:]]


REFUSED: list[tuple[str, Mutation, str]] = [
    ("no echo", _drop_echo, "choices[0].logprobs.content"),
    ("echo shorter than usage", _shorter_echo, "choices[0].logprobs.content"),
    ("usage prompt count", _wrong_prompt_count, "usage.prompt_tokens"),
    ("engine ids not the echo's tail", _engine_ids_not_the_tail, "nvext.engine_data.completion_token_ids"),
    ("engine logprobs differ", _engine_logprob_differs, "nvext.engine_data.completion_logprobs"),
    ("engine prompt differs", _engine_prompt_differs, "nvext.engine_data.prompt_token_ids"),
    ("table covers the continuation only", _table_covers_only_the_continuation, "nvext.engine_data.routed_experts"),
]


@pytest.mark.parametrize(("name", "mutate", "field"), REFUSED, ids=[r[0] for r in REFUSED])
def test_unexplained_partial_answer_is_refused(dynamo_moe: MockServer, name: str, mutate: Mutation,
                                               field: str) -> None:  # fmt: skip
    doc = _answer(dynamo_moe, "migrated_after=16")
    mutate(doc)
    with pytest.raises(PartialCompletionError) as info:
        _parse(doc)
    assert (info.value.field or "").startswith(field), info.value
    assert "not rebuilt" in str(info.value)
    assert info.value.engine_data_ids == len(doc["nvext"]["engine_data"]["completion_token_ids"])


def test_whole_answer_breaking_the_rules_keeps_its_own_error(dynamo_moe: MockServer) -> None:
    """usage agrees with engine_data, the logprobs are one short: the parser's error, not a migration story."""
    doc = _answer(dynamo_moe, "logprobs=mismatch")
    with pytest.raises(LogprobMismatchError):
        _parse(doc)


def test_dense_migrated_answer_is_not_returned_truncated() -> None:
    """Without routing nothing else fails: only the usage cross-check stands between the client and a truncated
    completion."""
    with MockServer("dynamo") as server:
        whole = _parse(_answer(server))
        migrated = _answer(server, "migrated_after=20")
        assert len(migrated["nvext"]["engine_data"]["completion_token_ids"]) == 30
        assert _parse(migrated).completion_ids == whole.completion_ids
        _wrong_prompt_count(migrated)
        with pytest.raises(PartialCompletionError, match=r"usage\.prompt_tokens is 5"):
            _parse(migrated)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":0}},'
            b'"nvext":{}}',
            (5, 7),
        ),
        (b'{"usage": {"prompt_tokens": 2, "completion_tokens": 3}}', (2, 3)),
        # Twice (a nested "usage" too): the whole body is decoded for the top-level key.
        (
            b'{"nvext":{"x":{"usage":{"prompt_tokens":1,"completion_tokens":1}}},"usage":{"prompt_tokens":9,'
            b'"completion_tokens":4}}',
            (9, 4),
        ),
        (
            b'{"choices":[{"message":{"content":"say \\"usage\\": {"}}],"usage":{"prompt_tokens":6,'
            b'"completion_tokens":1}}',
            (6, 1),
        ),
        (b'{"usage":null}', None),
        (b'{"choices":[]}', None),
        (b'{"usage":{"prompt_tokens":"5"}}', None),  # not integers: nothing to check
    ],
)
def test_usage_is_read_from_the_top_level(body: bytes, expected: tuple[int, int] | None) -> None:
    from renderers.client._migration import _usage

    usage = _usage(body)
    got = None if usage is None else (usage.prompt_tokens, usage.completion_tokens)
    assert got == expected
