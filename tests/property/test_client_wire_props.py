"""Property tests for the pure transport codecs: body construction invariants and id/logprob alignment."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from renderers.client._call import PRIORITY_BOUND, SETTLED_KEYS, GenerateCall, WireRequest
from renderers.client._parse import parse_completion
from renderers.client._server_info import ServerInfo
from renderers.client._transports import DynamoTransport, VllmTransport
from renderers.client._transports.dynamo import DROP_KEYS, PROMPT_START_FIELD
from renderers.errors import LogprobMismatchError, MissingCompletionIdsError

ids_st = st.lists(st.integers(0, 2**31 - 1), max_size=20)
json_scalar = st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=5)
PASSTHROUGH = ["temperature", "top_p", "top_k", "min_tokens", "stop", "seed", "detokenize", "allowed_token_ids",
               "presence_penalty", "guided_json", "min_p", "stop_token_ids", "skip_special_tokens"]  # fmt: skip
SETTLED = sorted(SETTLED_KEYS)
sp_keys = st.sampled_from(
    [*PASSTHROUGH, *sorted(DROP_KEYS), *SETTLED, "max_tokens", "logprobs", "max_completion_tokens"]
)


def _valid_for_generate(key: str, value: Any) -> bool:
    """generate() rejects these before a transport sees them (tested in test_generate_arguments)."""
    if key == "priority":
        return value is None or (type(value) is int and abs(value) <= PRIORITY_BOUND)
    if key == "routed_experts_prompt_start":
        return value is None or (type(value) is int and value >= 0)
    if key == "cache_salt":
        return value is None or isinstance(value, str)
    return True


sampling_st = st.dictionaries(sp_keys, json_scalar, max_size=10).map(
    lambda d: {k: v for k, v in d.items() if _valid_for_generate(k, v)}
)
caller_nvext_st = st.fixed_dictionaries(
    {},
    optional={
        "extra_fields": st.lists(st.sampled_from(["timing", "worker_id", "engine_data", "routed_experts"]), max_size=3),
        "agent_hints": st.fixed_dictionaries(
            {}, optional={"osl": st.integers(0, 100), "priority": st.integers(-(2**31), 2**31 - 1)}
        ),
        "annotations": st.lists(st.text(max_size=3), max_size=2),
        "token_data": st.lists(st.integers(0, 5), max_size=2),
    },
)
opt_int = st.none() | st.integers(-100, 100)


def settled_request(
    prompt: list[int], sp: dict[str, Any], *, cache_salt: str | None, priority: int | None
) -> tuple[WireRequest, GenerateCall]:
    """The request generate() hands a transport, without the stop ids/logprobs it adds (``GenerateCall`` settles
    the three keys; ``wire_request`` would add the rest)."""
    call = GenerateCall.from_arguments(model="m", sampling_params=sp, cache_salt=cache_salt, priority=priority)
    req = WireRequest("m", prompt, call.sampling_params, call.cache_salt, call.priority, call.prompt_start)
    return req, call


@given(
    prompt=ids_st.filter(bool),
    sp=sampling_st,
    nvext=st.none() | caller_nvext_st,
    salt=st.none() | st.text(max_size=4),
    priority=opt_int,
    send_start=st.booleans(),
)
def test_dynamo_body_invariants(
    prompt: list[int],
    sp: dict[str, Any],
    nvext: dict[str, Any] | None,
    salt: str | None,
    priority: int | None,
    send_start: bool,
) -> None:
    if nvext is not None:
        sp = {**sp, "nvext": nvext}
    req, _call = settled_request(prompt, sp, cache_salt=salt, priority=priority)
    server = ServerInfo("http://x")
    if not send_start:
        server.reject(PROMPT_START_FIELD)
    body = orjson.loads(DynamoTransport().build_body(req, server))
    # what reaches the top level
    assert body["model"] == "m"
    assert body["messages"] == [{"role": "user", "content": ""}]
    assert body["stream"] is False
    assert not (set(body) & (DROP_KEYS | SETTLED_KEYS | {"max_tokens", "tools"}))
    for key, value in sp.items():
        if value is None or key in DROP_KEYS or key in SETTLED_KEYS or key in {"nvext", "max_tokens", "logprobs"}:
            continue
        if key == "max_completion_tokens" and sp.get("max_tokens") is not None:
            assert body[key] == sp["max_tokens"]
        else:
            assert body[key] == value
    if sp.get("logprobs") is not None:
        assert body["logprobs"] is True
    else:
        assert "logprobs" not in body
    if sp.get("max_tokens") is not None:
        assert body["max_completion_tokens"] == sp["max_tokens"]
    # nvext: caller's kept, ours merged
    nv = body["nvext"]
    caller = nvext or {}
    assert nv["token_data"] == prompt
    caller_fields = caller.get("extra_fields", [])
    assert nv["extra_fields"][: len(caller_fields)] == caller_fields
    assert "engine_data" in nv["extra_fields"]
    assert nv["extra_fields"].count("engine_data") == max(1, caller_fields.count("engine_data"))
    for key in ("annotations",):
        if key in caller:
            assert nv[key] == caller[key]
    eff_salt = salt if salt is not None else sp.get("cache_salt")
    assert nv.get("cache_salt") == eff_salt if eff_salt is not None else "cache_salt" not in nv
    eff_prio = priority if priority is not None else sp.get("priority")
    hints = nv.get("agent_hints", {})
    if eff_prio is not None:
        assert hints["priority"] == -eff_prio  # one meaning: lower runs first; Dynamo's is higher = more important
        assert {k: v for k, v in hints.items() if k != "priority"} == {
            k: v for k, v in caller.get("agent_hints", {}).items() if k != "priority"
        }
    else:
        assert hints == caller.get("agent_hints", {})
    start = sp.get("routed_experts_prompt_start")
    if send_start and start is not None:
        assert nv["routed_experts_prompt_start"] == start
    else:
        assert "routed_experts_prompt_start" not in nv


@given(prompt=ids_st.filter(bool), sp=sampling_st, salt=st.none() | st.text(max_size=4), priority=opt_int)
def test_vllm_body_invariants(prompt: list[int], sp: dict[str, Any], salt: str | None, priority: int | None) -> None:
    req, _call = settled_request(prompt, sp, cache_salt=salt, priority=priority)
    body = orjson.loads(VllmTransport().build_body(req))
    assert body["token_ids"] == prompt
    expected_sp = {k: v for k, v in sp.items() if k not in SETTLED_KEYS}
    if sp.get("routed_experts_prompt_start") is not None:
        expected_sp["routed_experts_prompt_start"] = sp["routed_experts_prompt_start"]
    assert body["sampling_params"] == expected_sp
    eff_salt = salt if salt is not None else sp.get("cache_salt")
    eff_prio = priority if priority is not None else sp.get("priority")
    assert body.get("cache_salt") == eff_salt
    assert body.get("priority") == eff_prio
    assert set(body) <= {"model", "token_ids", "sampling_params", "cache_salt", "priority"}


@given(sp=sampling_st.filter(lambda d: bool(SETTLED_KEYS & d.keys())))
def test_a_settled_key_never_reaches_a_transport_inside_sampling_params(sp: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="reached a transport") as info:
        WireRequest("m", [1], sp)
    assert any(repr(k) in str(info.value) for k in SETTLED_KEYS & sp.keys())


logprob_st = st.floats(min_value=-50.0, max_value=0.0, allow_nan=False).filter(lambda x: x != -9999.0)


@given(
    ids=ids_st,
    lps=st.lists(logprob_st, max_size=20),
    shape=st.sampled_from(["new", "old", "engine", "engine_with_chat"]),
)
def test_ids_and_logprobs_stay_aligned(ids: list[int], lps: list[float], shape: str) -> None:
    """Either both lists come back exactly as sent and of equal length, or LogprobMismatchError."""
    content: list[dict[str, Any]]
    if shape == "new":
        content = [{"token_id": t, "logprob": lp} for t, lp in zip(ids, lps, strict=False)] + [
            {"logprob": lp} for lp in lps[len(ids) :]
        ]
        doc: dict[str, Any] = {"choices": [{"token_ids": ids, "logprobs": {"content": content}}]}
    elif shape == "old":
        content = [{"token": f"token_id:{t}", "logprob": lp} for t, lp in zip(ids, lps, strict=False)] + [
            {"token": "x", "logprob": lp} for lp in lps[len(ids) :]
        ]
        doc = {"choices": [{"token_ids": ids, "logprobs": {"content": content}}]}
    else:
        chat = {"content": [{"token": "x", "logprob": -1.0}] * len(ids)} if shape == "engine_with_chat" else None
        doc = {"id": "c", "choices": [{"logprobs": chat}],
               "nvext": {"engine_data": {"completion_token_ids": ids, "completion_logprobs": lps}}}  # fmt: skip
    raw = orjson.dumps(doc)
    if len(ids) != len(lps):
        with pytest.raises(LogprobMismatchError) as info:
            parse_completion(raw, prompt_len=1)
        assert info.value.n_ids == len(ids)
        assert info.value.n_logprobs == len(lps)
        return
    out = parse_completion(raw, prompt_len=1)
    assert out.completion_ids == ids
    assert out.completion_logprobs == lps


@given(ids=ids_st, where=st.sampled_from(["engine", "nvext", "choice", "none"]))
def test_identical_outcome_on_both_transports(ids: list[int], where: str) -> None:
    lps = [-0.5] * len(ids)
    doc: dict[str, Any] = {"choices": [{"logprobs": {"content": [{"logprob": lp} for lp in lps]}}]}
    if where == "engine":
        doc["nvext"] = {"engine_data": {"completion_token_ids": ids}}
    elif where == "nvext":
        doc["nvext"] = {"completion_token_ids": ids}
    elif where == "choice":
        doc["choices"][0]["token_ids"] = ids
    raw = orjson.dumps(doc)
    results: list[Any] = []
    for transport in (VllmTransport(), DynamoTransport()):
        try:
            results.append(transport.parse(raw, prompt_len=2))
        except MissingCompletionIdsError as exc:
            results.append(type(exc))
    assert results[0] == results[1]
    if where == "none":
        assert results[0] is MissingCompletionIdsError
