"""Differential on successes: the pure-Python mock Dynamo against real Dynamo code (the 1.6.1 frontend + the mock
engine as its workers), on generated requests, body for body.

Both sides run the same engine, so everything the mock Dynamo adds around it (the response envelope, ``usage``,
the chat echo ``choices[0].logprobs``, the ``nvext`` / ``engine_data`` key sets, the routing payload, the text)
is checked against what the real frontend builds from a worker's chunks. Only ids, timestamps and ``worker_id``
values may differ. The body is the one the client's Dynamo transport sends.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, note, settings

from mockservers.dynamo_stack import DynamoStack
from mockservers.server import MockServer
from renderers.client._call import SETTLED_KEYS, WireRequest
from renderers.client._transports import DynamoTransport
from renderers.testing.strategies import Case, cases

from ..conformance.conftest import EOS_ID, MODEL, VOCAB_SIZE
from .test_dynamo_worker_equivalence import _portable

pytestmark = pytest.mark.real_dynamo

VOLATILE = {"id", "created"}


def _body(case: Case, extra_fields: list[str]) -> bytes:
    sp = {k: v for k, v in case.sampling_params.items() if k not in SETTLED_KEYS}
    sp = {**sp, "logprobs": sp.get("logprobs", 1), "stop_token_ids": case.stop_token_ids}
    nvext = dict(sp.get("nvext") or {})
    nvext["extra_fields"] = extra_fields
    sp["nvext"] = nvext
    request = WireRequest(MODEL, case.prompt_ids, sp, case.cache_salt, case.priority)
    return DynamoTransport().build_body(request)


def _post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    resp = httpx.post(f"{url}/v1/chat/completions", content=body, headers={"content-type": "application/json"},
                      timeout=30.0)  # fmt: skip
    return resp.status_code, resp.json()


def _differences(mock: Any, real: Any, path: str = "") -> list[str]:
    """Every path where the two bodies differ (keys or values), ignoring ``VOLATILE`` keys and worker ids."""
    out: list[str] = []
    if isinstance(mock, dict) and isinstance(real, dict):
        for key in sorted(set(mock) | set(real)):
            if key in VOLATILE or (path == ".nvext" and key == "worker_id"):
                continue
            if key not in mock or key not in real:
                out.append(f"{path}.{key}: only in {'mock' if key in mock else 'real'}")
            else:
                out += _differences(mock[key], real[key], f"{path}.{key}")
    elif isinstance(mock, list) and isinstance(real, list):
        if len(mock) != len(real):
            out.append(f"{path}: {len(mock)} items in mock, {len(real)} in real")
        for i, (a, b) in enumerate(zip(mock, real, strict=False)):
            out += _differences(a, b, f"{path}[{i}]")
    elif mock != real or type(mock) is not type(real):
        out.append(f"{path}: mock {mock!r} != real {real!r}")
    return out


EXTRA_FIELDS = [["engine_data"], ["engine_data", "routed_experts", "worker_id"], ["routed_experts"]]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None,
          max_examples=20)  # fmt: skip
@given(case=cases(vocab_size=VOCAB_SIZE, max_prompt_len=512, max_tokens=32, eos_id=EOS_ID).filter(_portable))
def test_mock_dynamo_body_equals_the_real_frontend_body(
    engine_stack: DynamoStack, mock_dynamo_moe: MockServer, case: Case
) -> None:
    for extra in EXTRA_FIELDS:
        body = _body(case, extra)
        status_mock, mock = _post(mock_dynamo_moe.url, body)
        status_real, real = _post(engine_stack.url, body)
        note(f"{extra}: {orjson.dumps(orjson.loads(body))[:300]!r}")
        assert (status_mock, status_real) == (200, 200), (mock, real)
        assert _differences(mock, real) == [], extra
