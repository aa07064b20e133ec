"""Every fault does what it promises, by flag/handle, by admin endpoint and by header; the journal records it."""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from mockservers.faults import FaultError, FaultSpec
from mockservers.server import MockServer

PROMPT = [5, 6, 7, 8]


def _vllm(prompt: list[int] = PROMPT) -> dict[str, Any]:
    return {"model": "tiny-qwen3", "token_ids": prompt, "sampling_params": {"max_tokens": 4, "logprobs": 1}}


def _dyn(extra: list[str] | None = None) -> dict[str, Any]:
    return {
        "model": "tiny-qwen3",
        "messages": [{"role": "user", "content": ""}],
        "logprobs": True,
        "max_completion_tokens": 6,
        "ignore_eos": True,
        "nvext": {"token_data": PROMPT, "extra_fields": extra or ["engine_data", "completion_token_ids"]},
    }


def raw_post(url: str, body: Any, headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def gen(server: MockServer, headers: dict[str, str] | None = None, **kw: Any) -> tuple[int, bytes]:
    return raw_post(server.url + "/inference/v1/generate", _vllm(), headers, **kw)


def chat(server: MockServer, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    status, body = raw_post(server.url + "/v1/chat/completions", _dyn(), headers)
    return status, json.loads(body)


def test_parse_header_syntax() -> None:
    assert FaultSpec.parse("status=503; fail_first=2") == FaultSpec(status=503, fail_first=2)
    assert FaultSpec.parse("reset") == FaultSpec(reset=True)
    assert FaultSpec.parse('{"status": 429, "body": {"e": 1}}') == FaultSpec(status=429, body={"e": 1})
    assert FaultSpec.parse("completion_ids=missing, logprobs=engine-only").logprobs == "engine-only"
    assert FaultSpec.parse("delay_s=0.5").delay_s == 0.5
    for bad in ("nonsense", "status=abc", "logprobs=sometimes", "status=42", "[1]"):
        with pytest.raises(FaultError):
            FaultSpec.parse(bad)


def test_status_by_header_then_fail_first(mock_vllm: MockServer) -> None:
    header = {"x-mock-fault": "status=503; fail_first=2"}
    assert [gen(mock_vllm, header)[0] for _ in range(4)] == [503, 503, 200, 200]
    body = json.loads(gen(mock_vllm, {"x-mock-fault": "status=500"})[1])
    assert body["error"]["code"] == 500
    assert body["error"]["type"] == "InternalServerError"
    journal = mock_vllm.journal()
    assert [e["status"] for e in journal] == [503, 503, 200, 200, 500]
    assert journal[0]["fault"] == {
        "source": "header",
        "spec": {"status": 503, "fail_first": 2},
        "attempt": 1,
        "applied": True,
    }
    assert journal[2]["fault"]["applied"] is False
    assert journal[0]["body"]["token_ids"] == PROMPT
    assert journal[0]["headers"]["x-mock-fault"] == header["x-mock-fault"]


def test_fail_first_alone_defaults_to_503_and_resets(mock_dynamo: MockServer) -> None:
    mock_dynamo.set_faults(fail_first=1)
    assert chat(mock_dynamo)[0] == 503
    assert chat(mock_dynamo)[0] == 200
    mock_dynamo.clear_faults()
    mock_dynamo.set_faults(fail_first=1)
    status, body = chat(mock_dynamo)
    assert status == 503
    assert body == {"message": "mock fault: HTTP 503", "type": "Service Unavailable", "code": 503}


def test_global_status_with_custom_body(mock_vllm: MockServer) -> None:
    mock_vllm.set_faults(status=429, body={"detail": "slow down"})
    assert gen(mock_vllm) == (429, b'{"detail":"slow down"}')
    mock_vllm.clear_faults()
    assert gen(mock_vllm)[0] == 200


def test_delay(mock_vllm: MockServer) -> None:
    t0 = time.monotonic()
    assert gen(mock_vllm, {"x-mock-fault": "delay_s=0.3"})[0] == 200
    assert time.monotonic() - t0 >= 0.3


def test_hang_until_the_client_gives_up(mock_vllm: MockServer) -> None:
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        gen(mock_vllm, {"x-mock-fault": "hang"}, timeout=0.5)
    deadline = time.monotonic() + 5
    while not mock_vllm.journal() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mock_vllm.journal()[-1]["status"] == "hang"
    assert gen(mock_vllm)[0] == 200  # the server is still fine


def test_connection_reset(mock_dynamo: MockServer) -> None:
    mock_dynamo.set_faults("reset")
    with pytest.raises((ConnectionError, http.client.HTTPException, urllib.error.URLError)):
        chat(mock_dynamo)
    assert mock_dynamo.journal()[-1]["status"] == "reset"


def test_invalid_json_and_truncated_body(mock_vllm: MockServer) -> None:
    status, body = gen(mock_vllm, {"x-mock-fault": "invalid_json"})
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    with pytest.raises((http.client.IncompleteRead, ConnectionError, urllib.error.URLError)):
        gen(mock_vllm, {"x-mock-fault": "truncate"})
    assert gen(mock_vllm)[0] == 200


def test_bad_header_is_a_400_in_the_servers_envelope(mock_vllm: MockServer, mock_dynamo: MockServer) -> None:
    status, body = gen(mock_vllm, {"x-mock-fault": "explode"})
    assert status == 400
    assert "x-mock-fault" in json.loads(body)["error"]["message"]
    status, data = chat(mock_dynamo, {"x-mock-fault": "explode"})
    assert status == 400
    assert data["type"] == "Bad Request"


@pytest.mark.parametrize("mode", ["empty", "missing"])
def test_completion_ids_faults(mock_dynamo: MockServer, mode: str) -> None:
    _, normal = chat(mock_dynamo)
    assert normal["nvext"]["completion_token_ids"] == normal["nvext"]["engine_data"]["completion_token_ids"]
    assert len(normal["nvext"]["completion_token_ids"]) == 6
    _, data = chat(mock_dynamo, {"x-mock-fault": f"completion_ids={mode}"})
    for obj in (data["nvext"], data["nvext"]["engine_data"]):
        if mode == "empty":
            assert obj["completion_token_ids"] == []
        else:
            assert "completion_token_ids" not in obj
    # "empty" is a consistent empty completion (usage counts it too); "missing" only removes the ids.
    assert data["usage"]["completion_tokens"] == (0 if mode == "empty" else 6)


def test_logprobs_faults(mock_dynamo: MockServer) -> None:
    _, data = chat(mock_dynamo, {"x-mock-fault": "logprobs=mismatch"})
    ids = data["nvext"]["engine_data"]["completion_token_ids"]
    assert len(data["nvext"]["engine_data"]["completion_logprobs"]) == len(ids) - 1
    assert len(data["choices"][0]["logprobs"]["content"]) == len(ids) - 1
    _, data = chat(mock_dynamo, {"x-mock-fault": "logprobs=engine-only"})
    assert data["choices"][0]["logprobs"] is None
    assert len(data["nvext"]["engine_data"]["completion_logprobs"]) == 6
    _, data = chat(mock_dynamo, {"x-mock-fault": "logprobs=chat-only"})
    assert "completion_logprobs" not in data["nvext"]["engine_data"]
    assert len(data["choices"][0]["logprobs"]["content"]) == 6


def test_vllm_content_faults(mock_vllm: MockServer) -> None:
    choice = json.loads(gen(mock_vllm, {"x-mock-fault": "completion_ids=missing; logprobs=mismatch"})[1])["choices"][0]
    assert "token_ids" not in choice
    assert len(choice["logprobs"]["content"]) == 3


def test_admin_endpoints(mock_vllm: MockServer) -> None:
    url = mock_vllm.url + "/_mock/faults"
    assert raw_post(url, {"status": 502, "fail_first": 1}) == (200, b'{"status":502,"fail_first":1}')
    with urllib.request.urlopen(url) as resp:
        assert json.loads(resp.read()) == {"status": 502, "fail_first": 1}
    assert [gen(mock_vllm)[0] for _ in range(2)] == [502, 200]
    assert raw_post(url, {"bogus": 1})[0] == 400
    urllib.request.urlopen(urllib.request.Request(url, method="DELETE")).read()
    assert mock_vllm.state.faults.current.is_noop
    with urllib.request.urlopen(mock_vllm.url + "/_mock/requests") as resp:
        entries = json.loads(resp.read())
    assert [e["status"] for e in entries] == [502, 200]
    assert entries[0]["path"] == "/inference/v1/generate"
    urllib.request.urlopen(urllib.request.Request(mock_vllm.url + "/_mock/requests", method="DELETE")).read()
    assert mock_vllm.journal() == []


def test_admin_disabled_by_default_and_journal_is_bounded(mock_server_factory: Any) -> None:
    server = mock_server_factory("vllm", admin=False, journal_size=3)
    status, _ = raw_post(server.url + "/_mock/faults", {"status": 500})
    assert status == 404
    for _ in range(5):
        gen(server)
    entries = server.journal()
    assert len(entries) == 3
    assert [e["seq"] for e in entries] == [3, 4, 5]


def test_configured_fault_applies_from_start(mock_server_factory: Any) -> None:
    server = mock_server_factory("dynamo", faults=FaultSpec(completion_ids="missing"))
    _, data = chat(server)
    assert "completion_token_ids" not in data["nvext"]["engine_data"]
    server.clear_faults()  # back to the configured fault, not to none
    _, data = chat(server)
    assert "completion_token_ids" not in data["nvext"]
