"""``renderers-mock dynamo-worker`` without Dynamo: the request dicts the real frontend sends (recorded shapes) are
read into the engine's parameters, and the chunks carry what the pure-Python mocks answer for the same request.

The worker behind the real frontend is checked in tests/real (``nox -s real_dynamo``); here the pieces that do not
need ``ai-dynamo``: ``plan_request``, ``chunks`` and the faults.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mockservers.dynamo_worker import (
    MockWorkerCore,
    WorkerError,
    WorkerSettings,
    add_arguments,
    chunks,
    plan_request,
    settings_from_args,
)
from mockservers.faults import FaultSpec
from mockservers.server import MockServer

MOE: dict[str, Any] = {"moe_layers": 2, "moe_top_k": 4, "num_experts": 300}
SETTINGS = WorkerSettings(max_model_len=4096, **MOE)
PROMPT = [5, 6, 7, 8, 9, 100, 200]


def chat_request(prompt: list[int], *, max_tokens: int | None = None, logprobs: bool = True,
                 annotations: list[str] | None = None, **sampling: Any) -> dict[str, Any]:  # fmt: skip
    """A request dict shaped like the one Dynamo 1.6.1's frontend sends for a chat request (token_data)."""
    stop = {"max_tokens": max_tokens, "stop": None, "stop_token_ids": sampling.pop("stop_token_ids", None),
            "stop_token_ids_visible": None, "stop_token_ids_hidden": [2303, 2301],
            "min_tokens": sampling.pop("min_tokens", None), "ignore_eos": sampling.pop("ignore_eos", None),
            "max_thinking_tokens": None}  # fmt: skip
    options = {k: sampling.get(k) for k in ("temperature", "top_p", "top_k", "seed")}
    return {
        "model": "tiny-qwen3",
        "token_ids": prompt,
        "stop_conditions": stop,
        "sampling_options": options,
        "output_options": {"logprobs": 1 if logprobs else None},
        "eos_token_ids": [2303, 2301],
        "annotations": annotations or [],
        "routing": {},
        "extra_args": {"nvext": {"extra_fields": ["engine_data"], "token_in": True}},
    }


def generate_request(prompt: list[int], sampling_params: dict[str, Any]) -> dict[str, Any]:
    """A request dict as the frontend sends it for ``POST /inference/v1/generate``: vLLM's body in vllm_tito."""
    return {
        "model": "tiny-qwen3",
        "token_ids": prompt,
        "stop_conditions": {"max_tokens": sampling_params.get("max_tokens"), "ignore_eos": False},
        "sampling_options": {"n": 1},
        "output_options": {"logprobs": sampling_params.get("logprobs")},
        "extra_args": {
            "vllm_tito": {"request_id": "r", "model": "tiny-qwen3", "stream": False, "sampling_params": sampling_params}
        },
    }


@pytest.fixture(scope="module")
def core() -> MockWorkerCore:
    return MockWorkerCore(SETTINGS)


@pytest.fixture(scope="module")
def mocks() -> Iterator[tuple[MockServer, MockServer]]:
    with MockServer("dynamo", max_model_len=4096, **MOE) as dyn, MockServer("vllm", max_model_len=4096, **MOE) as vl:
        yield dyn, vl


def _final(core: MockWorkerCore, request: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    plan = plan_request(request, max_model_len=4096, default_seed=0, vocab_size=core.tokenizer.vocab_size)
    out = list(chunks(core.engine, plan, SETTINGS))
    return out, out[-1]


CHAT_CASES: list[dict[str, Any]] = [
    {"max_tokens": 4},
    {"max_tokens": 40, "temperature": 0, "stop_token_ids": [2303]},
    {"max_tokens": 60, "temperature": 0.7, "seed": 5, "top_k": 30},
    {"max_tokens": 300, "seed": 3, "stop_token_ids": [2303]},
    {"max_tokens": 20, "min_tokens": 10, "stop_token_ids": [1001, 2303], "seed": 9},
    {"max_tokens": 8, "top_p": 0.5, "seed": 11},
]


@pytest.mark.parametrize("sampling", CHAT_CASES, ids=[str(c) for c in CHAT_CASES])
def test_chat_route_engine_data_equals_the_mock_dynamo(
    core: MockWorkerCore, mocks: tuple[MockServer, MockServer], sampling: dict[str, Any]
) -> None:
    sampling = dict(sampling)
    max_tokens = sampling.pop("max_tokens")
    out, last = _final(core, chat_request(PROMPT, max_tokens=max_tokens, **sampling))
    body = {"model": "tiny-qwen3", "messages": [{"role": "user", "content": ""}], "max_completion_tokens": max_tokens,
            "logprobs": True, "nvext": {"token_data": PROMPT, "extra_fields": ["engine_data"]}, **sampling}  # fmt: skip
    mock = httpx.post(f"{mocks[0].url}/v1/chat/completions", json=body, timeout=10).json()
    assert last["engine_data"] == mock["nvext"]["engine_data"]
    assert last["finish_reason"] == mock["choices"][0]["finish_reason"]
    assert last["completion_usage"] == mock["usage"]
    assert [c["token_ids"][0] for c in out] == last["engine_data"]["completion_token_ids"]
    assert [c["log_probs"][0] for c in out] == last["engine_data"]["completion_logprobs"]
    assert all("finish_reason" not in c for c in out[:-1])


@pytest.mark.parametrize("start", [0, 3, 6])
def test_generate_route_honours_the_prompt_start_like_the_mock_vllm(
    core: MockWorkerCore, mocks: tuple[MockServer, MockServer], start: int
) -> None:
    sp = {"max_tokens": 40, "logprobs": 1, "seed": 4, "routed_experts_prompt_start": start, "stop_token_ids": [2303]}
    _, last = _final(core, generate_request(PROMPT, sp))
    mock = httpx.post(f"{mocks[1].url}/inference/v1/generate", json={"model": "tiny-qwen3", "token_ids": PROMPT,
                      "sampling_params": sp}, timeout=10).json()["choices"][0]  # fmt: skip
    data = last["engine_data"]
    assert data["completion_token_ids"] == mock["token_ids"]
    assert data["routed_experts"] == mock["routed_experts"]
    assert data["routed_experts"]["start"] == start


def test_without_logprobs_no_log_probs_and_no_engine_logprobs(core: MockWorkerCore) -> None:
    out, last = _final(core, chat_request(PROMPT, max_tokens=5, logprobs=False))
    assert all("log_probs" not in c for c in out)
    assert "completion_logprobs" not in last["engine_data"]


def _faulty(core: MockWorkerCore, fault: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
    req = request or chat_request(PROMPT, max_tokens=6, annotations=[f"mock-fault:{fault}"])
    plan = plan_request(req, max_model_len=4096, default_seed=0, vocab_size=core.tokenizer.vocab_size)
    return list(chunks(core.engine, plan, SETTINGS))[-1]


def test_engine_faults(core: MockWorkerCore) -> None:
    assert "completion_token_ids" not in _faulty(core, "completion_ids=missing")["engine_data"]
    empty = _faulty(core, "completion_ids=empty")["engine_data"]
    assert empty["completion_token_ids"] == []
    assert empty["completion_logprobs"] == []
    assert len(_faulty(core, "logprobs=mismatch")["engine_data"]["completion_logprobs"]) == 5
    assert "completion_logprobs" not in _faulty(core, "logprobs=chat-only")["engine_data"]
    sp = {"max_tokens": 6, "logprobs": 1, "routed_experts_prompt_start": 4}
    full = _faulty(core, "", generate_request(PROMPT, {**sp, "mock_fault": "routing=full"}))["engine_data"]
    assert full["routed_experts"]["start"] == 0
    assert full["routed_experts"]["shape"][0] == len(PROMPT) + 6 - 1
    pre = _faulty(core, "", generate_request(PROMPT, {**sp, "mock_fault": "routing=pre-trimmed"}))["engine_data"]
    assert pre["routed_experts"]["start"] == 0
    assert pre["routed_experts"]["shape"][0] == len(PROMPT) + 6 - 1 - 4


def test_global_fault_and_request_fault_combine(core: MockWorkerCore) -> None:
    req = chat_request(PROMPT, max_tokens=3, annotations=["mock-fault:crash_after=2"])
    plan = plan_request(req, max_model_len=4096, default_seed=0, faults=FaultSpec(completion_ids="missing"))
    assert plan.fault.crash_after == 2
    plan = plan_request(chat_request(PROMPT, max_tokens=3), max_model_len=4096, default_seed=0,
                        faults=FaultSpec(completion_ids="missing"))  # fmt: skip
    assert plan.fault.completion_ids == "missing"


@pytest.mark.parametrize(
    ("request_dict", "message"),
    [
        (chat_request([], max_tokens=2), "at least one token id"),
        (chat_request([1, 2304], max_tokens=2), "Token id 2304 is out of vocabulary"),
        (chat_request(list(range(100)) * 41, max_tokens=2), "leaves no room"),
        (generate_request(PROMPT, {"max_tokens": 2, "routed_experts_prompt_start": 7}), "must be in \\[0, 7\\)"),
        (generate_request(PROMPT, {"max_tokens": "2"}), "sampling_params.max_tokens must be an integer"),
        (chat_request(PROMPT, max_tokens=2, annotations=["mock-fault:routing=sideways"]), "bad fault spec"),
    ],
)
def test_bad_requests_are_refused_by_name(core: MockWorkerCore, request_dict: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkerError, match=message):
        plan_request(request_dict, max_model_len=4096, default_seed=0, vocab_size=core.tokenizer.vocab_size)


def test_cli_lists_the_real_dynamo_commands_and_explains_a_missing_dynamo() -> None:
    help_text = subprocess.run([sys.executable, "-m", "mockservers", "--help"], capture_output=True, text=True,
                               check=True).stdout  # fmt: skip
    assert "dynamo-worker" in help_text
    assert "dynamo-stack" in help_text
    worker_help = subprocess.run([sys.executable, "-m", "mockservers", "dynamo-worker", "--help"],
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "--moe-layers" in worker_help
    assert "--faults" in worker_help
    try:
        import dynamo  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        run = subprocess.run([sys.executable, "-m", "mockservers", "dynamo-worker"], capture_output=True, text=True)
        assert run.returncode != 0
        assert "needs ai-dynamo 1.6.1" in run.stderr


def test_worker_flags_set_the_settings_fields_of_their_names() -> None:
    """Every flag lands in the ``WorkerSettings`` field of its name; no flags give the defaults."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert settings_from_args(parser.parse_args([])) == WorkerSettings()
    argv = ["--model-dir", "/m", "--served-model-name", "x", "--max-model-len", "512", "--seed", "3",
            "--eos-period", "7", "--moe-layers", "2", "--moe-top-k", "4", "--num-experts", "300",
            "--per-token-s", "0.5", "--faults", "completion_ids=missing", "--ignore-crash-faults",
            "--log-requests", "--namespace", "ns", "--component", "comp"]  # fmt: skip
    got = settings_from_args(parser.parse_args(argv))
    assert got == WorkerSettings(
        model_dir=Path("/m"),
        served_model_name="x",
        max_model_len=512,
        seed=3,
        eos_period=7,
        moe_layers=2,
        moe_top_k=4,
        num_experts=300,
        per_token_s=0.5,
        faults=FaultSpec.parse("completion_ids=missing"),
        ignore_crash_faults=True,
        log_requests=True,
        namespace="ns",
        component="comp",
    )
