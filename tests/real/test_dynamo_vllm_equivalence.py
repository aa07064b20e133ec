"""Transport equivalence on real engines (``nox -s real_dynamo_vllm``).

The same tiny random-weight Qwen3 is served twice by the same vLLM build: by Dynamo 1.6.1's frontend with its real
``dynamo.vllm`` worker (``/v1/chat/completions`` + ``nvext``, the ids and logprobs from ``nvext.engine_data``), and
by a plain vLLM server (``/inference/v1/generate``). Greedy ``generate()`` through ``transport="dynamo"`` and
through ``transport="vllm"`` must give identical completion ids, the same finish reason, and logprobs equal within
``LOGPROB_TOLERANCE`` (the Dynamo path carries them as float32 through the chat response). The largest difference
seen is printed at the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from renderers.client import generate
from tests.real.conftest import REPORT
from tests.real.test_dynamo_generate import IM_END, IM_START, ByteRenderer, Recorder, make_http

pytestmark = pytest.mark.real_dynamo_vllm

LOGPROB_TOLERANCE = 1e-4
HELLO = [IM_START, 84, 326, 81, 198, 283, 75, 316, 454, 81, 75, 67, IM_END, 198, IM_START, 64, 2032, 198]
PROMPTS = {
    "chatml-hello": HELLO,
    "four-ids": [5, 6, 7, 8],
    "one-id": [1000],
    "long": [(17 * i + 3) % 2300 for i in range(300)],
}


@pytest.fixture(scope="module")
def max_diffs(request: pytest.FixtureRequest) -> Iterator[dict[str, float]]:
    diffs: dict[str, float] = {}
    yield diffs
    if diffs:
        worst = max(diffs.items(), key=lambda kv: kv[1])
        request.config.stash[REPORT]["dynamo vs vllm transport, max |logprob difference|"] = (
            f"{worst[1]:.3g} (in {worst[0]}; {len(diffs)} cases, tolerance {LOGPROB_TOLERANCE:g})"
        )


async def _run(url: str, model: str, transport: str, kind: str, prompt: list[int], sp: dict[str, Any]) -> Any:
    inner, closer = make_http(kind, url)
    http = Recorder(inner)
    try:
        result = await generate(
            client=http,
            renderer=ByteRenderer(),
            messages=[{"role": "user", "content": "ignored: prompt_ids win"}],
            model=model,
            prompt_ids=prompt,
            sampling_params=sp,
            transport=transport,
        )
    finally:
        await closer.aclose()
    return result, http


@pytest.mark.parametrize("kind", ["engine", "httpx"])
@pytest.mark.parametrize("max_tokens", [1, 8, 40])
@pytest.mark.parametrize("prompt_name", list(PROMPTS))
async def test_greedy_generate_is_the_same_through_both_transports(
    real_vllm_url: str,
    real_dynamo_vllm_url: str,
    real_vllm_model: str,
    max_diffs: dict[str, float],
    prompt_name: str,
    max_tokens: int,
    kind: str,
) -> None:
    prompt = PROMPTS[prompt_name]
    sp = {"max_tokens": max_tokens, "temperature": 0.0}
    via_vllm, vllm_http = await _run(real_vllm_url, real_vllm_model, "vllm", kind, prompt, sp)
    via_dynamo, dynamo_http = await _run(real_dynamo_vllm_url, real_vllm_model, "dynamo", kind, prompt, sp)
    transcript = f"--- vllm\n{vllm_http.transcript()}\n--- dynamo\n{dynamo_http.transcript()}"

    assert via_dynamo["completion_ids"] == via_vllm["completion_ids"], transcript
    assert via_dynamo["finish_reason"] == via_vllm["finish_reason"], transcript
    assert via_dynamo["prompt_ids"] == via_vllm["prompt_ids"] == prompt
    assert len(via_dynamo["completion_logprobs"]) == len(via_vllm["completion_logprobs"])
    diff = max(
        (abs(a - b) for a, b in zip(via_dynamo["completion_logprobs"], via_vllm["completion_logprobs"], strict=True)),
        default=0.0,
    )
    max_diffs[f"{prompt_name}/{max_tokens}/{kind}"] = diff
    assert diff <= LOGPROB_TOLERANCE, transcript

    # What the Dynamo worker itself reported: the prompt it ran and the ids the client returned.
    final = [e for e in dynamo_http.exchanges if e.path == "/v1/chat/completions"][-1]
    engine_data = orjson.loads(final.response)["nvext"]["engine_data"]
    assert engine_data["prompt_token_ids"] == prompt, transcript
    assert engine_data["completion_token_ids"] == via_dynamo["completion_ids"], transcript


async def test_seeded_sampling_is_the_same_through_both_transports(
    real_vllm_url: str, real_dynamo_vllm_url: str, real_vllm_model: str
) -> None:
    """Not only greedy: with a seed, the same build samples the same ids behind either front end."""
    sp = {"max_tokens": 12, "temperature": 1.0, "seed": 42}
    via_vllm, vllm_http = await _run(real_vllm_url, real_vllm_model, "vllm", "engine", HELLO, sp)
    via_dynamo, dynamo_http = await _run(real_dynamo_vllm_url, real_vllm_model, "dynamo", "engine", HELLO, sp)
    transcript = f"--- vllm\n{vllm_http.transcript()}\n--- dynamo\n{dynamo_http.transcript()}"
    assert via_dynamo["completion_ids"] == via_vllm["completion_ids"], transcript
    for a, b in zip(via_dynamo["completion_logprobs"], via_vllm["completion_logprobs"], strict=True):
        assert abs(a - b) <= LOGPROB_TOLERANCE, transcript
