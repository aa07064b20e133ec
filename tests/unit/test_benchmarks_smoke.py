"""The benchmark pipelines compare like with like: on tiny bodies they all return the same result.

Correctness of the comparison only; nothing here is timed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from benchmarks import bodies, parse, request_body
from benchmarks.harness import Case, interleaved
from benchmarks.peer import load_peer_client, make_peer_parse, peer_dir

TINY = (bodies.Spec("tiny", 7), bodies.Spec("tiny_routed", 5, (9, 3, 2)))


def _peer() -> Callable[[bytes], Any] | None:
    return make_peer_parse(load_peer_client()) if peer_dir() is not None else None


@pytest.mark.parametrize("spec", TINY, ids=lambda s: s.name)
@pytest.mark.parametrize("shape", sorted(bodies.SHAPES))
def test_parse_pipelines_agree(spec: bodies.Spec, shape: str) -> None:
    payload = bodies.make_payload(spec, seed=7)
    raw = bodies.SHAPES[shape](payload, spec.prompt_len)
    # client, floor and the bulk-validation sketch (and the peer when installed) against the generated payload
    parse.check_equal(parse.Body(spec, shape, raw, payload), _peer())
    ids, lps, arr = parse.client_parse(shape, spec.prompt_len)(raw)
    assert (ids, lps) == (payload.ids, payload.logprobs)
    assert (arr is None) == (payload.routed is None)


def test_check_equal_catches_a_difference() -> None:
    spec = TINY[1]
    payload = bodies.make_payload(spec, seed=7)
    other = bodies.Payload([*payload.ids[:-1], payload.ids[-1] + 1], payload.logprobs, payload.routed)
    raw = bodies.vllm_body(other, spec.prompt_len)
    with pytest.raises(AssertionError, match="completion ids differ"):
        parse.check_equal(parse.Body(spec, "vllm", raw, payload), None)


@pytest.mark.parametrize("shape", ["vllm", "dynamo"])
def test_request_bodies_encode_the_same_document(shape: str) -> None:
    ids = bodies.prompt_ids(16)
    doc = request_body.transport_document(shape, ids)
    assert orjson.loads(request_body.client_generate_path(shape, ids)) == doc
    assert orjson.loads(request_body.stdlib_encode(doc)) == doc
    assert orjson.loads(orjson.dumps(doc)) == doc
    if shape == "vllm":
        assert doc == bodies.vllm_request_dict(ids)


def test_harness_runs_every_case_each_round() -> None:
    calls: list[str] = []
    out = interleaved([Case("a", lambda: calls.append("a")), Case("b", lambda: calls.append("b"))], rounds=3,
                      target_s=0.0)  # fmt: skip
    assert {k: len(v.samples) for k, v in out.items()} == {"a": 3, "b": 3}
    assert calls.count("a") == calls.count("b")
