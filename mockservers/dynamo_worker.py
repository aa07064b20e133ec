"""``renderers-mock dynamo-worker``: the mock engine as a worker behind the real NVIDIA Dynamo 1.6.1 frontend.

The same deterministic engine as the pure-Python mocks (``mockservers.engine``): for the same prompt ids, sampling
parameters and seed it emits the same completion ids, the same float32 logprobs and the same MoE routing as
``renderers-mock vllm`` and ``renderers-mock dynamo``. What differs is who serves HTTP: here it is Dynamo's own
frontend (``python -m dynamo.frontend``), which finds this worker through Dynamo's discovery and sends it
pre-tokenized requests.

The worker is a ``dynamo.common.backend.LLMEngine`` subclass run by ``dynamo.common.backend.run.run`` (the
Python backend API of ``ai-dynamo`` 1.6.1). It:

- streams one chunk per token with per-token ``log_probs`` (the frontend builds ``choices[0].logprobs`` from them);
- ends with ``finish_reason``, ``completion_usage`` and ``engine_data`` with the keys of the real ``dynamo.vllm``
  worker: ``prompt_token_ids``, ``kv_cache_hit``, ``completion_token_ids``, ``finished``, ``completion_logprobs``
  (when logprobs were asked) and ``routed_experts`` ``{data: base64 of the raw bytes, shape, start, dtype}`` (MoE);
- advertises ``vllm_inference_v1_generate`` so a frontend started with ``DYN_VLLM_ENABLE_INFERENCE_V1_GENERATE=1``
  serves ``POST /inference/v1/generate``; requests from that route carry vLLM's whole body under
  ``extra_args.vllm_tito``, and the worker takes the sampling parameters (``routed_experts_prompt_start`` included)
  from there, as the mock vLLM reads them.

Faults (``mockservers.faults.FaultSpec``): global with ``--faults``, or per request in the spec's short syntax,
``nvext.annotations: ["mock-fault:completion_ids=missing"]`` on the chat route, ``sampling_params.mock_fault`` on
``/inference/v1/generate``. The worker honours ``completion_ids`` (empty, missing), ``logprobs`` (mismatch,
chat-only, engine-only), ``routing`` (full, pre-trimmed) and ``crash_after`` (the process exits mid-generation,
unless started with ``--ignore-crash-faults``).

``ai-dynamo`` is imported only by ``run_worker`` (the optional extra ``renderers[dynamo]``); everything that turns
a request dict into chunks is plain Python, testable without Dynamo.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mockservers.config import BUILTIN_TOKENIZER
from mockservers.engine import Completion, Engine, SamplingParams
from mockservers.faults import NO_FAULT, FaultError, FaultSpec, apply_content_fault
from mockservers.tokenizer import MockTokenizer, load_tokenizer

__all__ = ["FAULT_ANNOTATION", "WorkerError", "WorkerSettings", "add_arguments", "main", "plan_request", "run"]

FAULT_ANNOTATION = "mock-fault:"
"""Prefix of an ``nvext.annotations`` entry that carries a fault spec for one chat request."""
TITO_FAULT_KEY = "mock_fault"
"""``sampling_params`` key that carries a fault spec for one ``/inference/v1/generate`` request."""
CRASH_EXIT_CODE = 70


class WorkerError(ValueError):
    """A request the worker refuses (the frontend turns the exception into a 500)."""


@dataclass(frozen=True)
class WorkerSettings:
    """Everything ``renderers-mock dynamo-worker`` takes on its command line."""

    model_dir: Path = BUILTIN_TOKENIZER
    """The folder the frontend reads the tokenizer and chat template from (``tokenizer.json``); the worker reads
    its vocabulary and EOS from the same files."""
    served_model_name: str = "tiny-qwen3"
    max_model_len: int | None = None
    """Context length (prompt + completion). None: the tokenizer's ``model_max_length``, else 2048."""
    seed: int = 0
    eos_period: int = 128
    moe_layers: int = 0
    moe_top_k: int = 8
    num_experts: int = 128
    per_token_s: float = 0.0
    """Pause between streamed tokens (keeps requests in flight for kill and migration tests)."""
    faults: FaultSpec = field(default_factory=FaultSpec)
    ignore_crash_faults: bool = False
    log_requests: bool = False
    """Print every request dict the frontend sends (one JSON line on stderr)."""
    namespace: str = "dynamo"
    component: str = "backend"
    endpoint: str = "generate"


@dataclass(frozen=True)
class RequestPlan:
    """What one request asks of the engine, read from the frontend's request dict."""

    prompt: list[int]
    params: SamplingParams
    want_logprobs: bool
    top_n: int
    """Alternatives per position (``output_options.logprobs``): each token's ``top_logprobs`` list is the sampled
    token, then the ``top_n`` most likely others (vLLM's ``logprobs=N``; 0: the sampled token alone)."""
    prompt_start: int
    """Routing rows start here (0 on the chat route: Dynamo 1.6.1 cannot carry a start there)."""
    fault: FaultSpec


def _int(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise WorkerError(f"{name} must be an integer, got {value!r}")
    return value


def _float(value: Any, name: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WorkerError(f"{name} must be a number, got {value!r}")
    return float(value)


def _ids(value: Any, name: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        raise WorkerError(f"{name} must be a list of token ids, got {value!r}")
    return value


def _request_fault(request: Mapping[str, Any], tito: Mapping[str, Any] | None, default: FaultSpec) -> FaultSpec:
    specs: list[str] = []
    for note in request.get("annotations") or ():
        if isinstance(note, str) and note.startswith(FAULT_ANNOTATION):
            specs.append(note[len(FAULT_ANNOTATION) :])
    if tito is not None:
        sp = tito.get("sampling_params")
        text = sp.get(TITO_FAULT_KEY) if isinstance(sp, Mapping) else None
        if isinstance(text, str):
            specs.append(text)
    if not specs:
        return default
    try:
        return FaultSpec.parse("; ".join(specs))
    except FaultError as exc:
        raise WorkerError(f"bad fault spec {specs!r}: {exc}") from None


def plan_request(
    request: Mapping[str, Any],
    *,
    max_model_len: int,
    default_seed: int,
    vocab_size: int | None = None,
    faults: FaultSpec = NO_FAULT,
) -> RequestPlan:
    """Read a request dict as the frontend sends it (``token_ids``, ``stop_conditions``, ``sampling_options``,
    ``output_options``, ``extra_args``) into the engine's parameters, with the defaults of the pure-Python mocks.

    Requests from ``/inference/v1/generate`` carry vLLM's body in ``extra_args.vllm_tito``; the frontend projects
    only a few keys of it, so the sampling parameters are read from its ``sampling_params``, like the mock vLLM.
    """
    prompt = _ids(request.get("token_ids"), "token_ids")
    if not prompt:
        raise WorkerError("token_ids must contain at least one token id")
    if vocab_size is not None and (min(prompt) < 0 or max(prompt) >= vocab_size):
        bad = next(t for t in prompt if not 0 <= t < vocab_size)
        raise WorkerError(f"Token id {bad} is out of vocabulary")  # the frontend passes them on /inference/v1/generate
    room = max_model_len - len(prompt)
    if room < 1:
        raise WorkerError(f"prompt of {len(prompt)} ids leaves no room in the context of {max_model_len}")
    extra = request.get("extra_args") or {}
    tito = extra.get("vllm_tito") if isinstance(extra, Mapping) else None
    if isinstance(tito, Mapping):
        sp = tito.get("sampling_params") or {}
        if not isinstance(sp, Mapping):
            raise WorkerError(f"sampling_params must be an object, got {sp!r}")
        asked = _int(sp.get("max_tokens"), "sampling_params.max_tokens", room)
        budget = min(asked, room)
        seed = sp.get("seed")
        params = SamplingParams(
            max_tokens=budget,
            temperature=_float(sp.get("temperature"), "sampling_params.temperature", 1.0),
            top_p=_float(sp.get("top_p"), "sampling_params.top_p", 1.0),
            top_k=max(_int(sp.get("top_k"), "sampling_params.top_k", 0), 0),
            seed=_int(seed, "sampling_params.seed", default_seed),
            min_tokens=min(_int(sp.get("min_tokens"), "sampling_params.min_tokens", 0), budget),
            stop_token_ids=frozenset(_ids(sp.get("stop_token_ids"), "sampling_params.stop_token_ids")),
            ignore_eos=sp.get("ignore_eos") is True,
        )
        start = _int(sp.get("routed_experts_prompt_start"), "sampling_params.routed_experts_prompt_start", 0)
        if not 0 <= start < len(prompt):
            # What dynamo/vllm/engine_generate.py does for the real worker (a start past the prompt has no rows).
            raise WorkerError(f"routed_experts_prompt_start {start} must be in [0, {len(prompt)})")
        top_n = max(_int(sp.get("logprobs"), "sampling_params.logprobs", 0), 0)
        fault = _request_fault(request, tito, faults)
        return RequestPlan(prompt, params, sp.get("logprobs") is not None, top_n, start, fault)
    sc = request.get("stop_conditions") or {}
    so = request.get("sampling_options") or {}
    oo = request.get("output_options") or {}
    asked = _int(sc.get("max_tokens"), "stop_conditions.max_tokens", room)
    budget = min(asked, room)
    params = SamplingParams(
        max_tokens=budget,
        temperature=_float(so.get("temperature"), "sampling_options.temperature", 1.0),
        top_p=_float(so.get("top_p"), "sampling_options.top_p", 1.0),
        top_k=max(_int(so.get("top_k"), "sampling_options.top_k", 0), 0),
        seed=_int(so.get("seed"), "sampling_options.seed", default_seed),
        min_tokens=min(_int(sc.get("min_tokens"), "stop_conditions.min_tokens", 0), budget),
        stop_token_ids=frozenset(_ids(sc.get("stop_token_ids"), "stop_conditions.stop_token_ids")),
        ignore_eos=sc.get("ignore_eos") is True,
    )
    top_n = max(_int(oo.get("logprobs"), "output_options.logprobs", 0), 0)
    return RequestPlan(prompt, params, oo.get("logprobs") is not None, top_n, 0, _request_fault(request, None, faults))


def routed_experts_object(
    engine: Engine, ids: Sequence[int], start: int, settings: WorkerSettings, routing: str
) -> dict[str, Any] | None:
    """``{data, shape, start, dtype}`` for the whole sequence ``ids`` from ``start`` (``None`` for a dense model)."""
    if not settings.moe_layers:
        return None
    asked = 0 if routing == "full" else start
    arr = engine.routed_experts(ids, asked, settings.moe_layers, settings.moe_top_k, settings.num_experts)
    label = 0 if routing == "pre-trimmed" else min(asked, max(len(ids) - 1, 0))
    data = base64.b64encode(arr.tobytes()).decode("ascii")
    return {"data": data, "shape": list(arr.shape), "start": label, "dtype": str(arr.dtype)}


def engine_data(plan: RequestPlan, c: Completion, routed: dict[str, Any] | None, fault: FaultSpec) -> dict[str, Any]:
    """The final chunk's ``engine_data`` (the keys the real ``dynamo.vllm`` worker sends), faults applied."""
    data: dict[str, Any] = {
        "prompt_token_ids": plan.prompt,
        "kv_cache_hit": {"prompt_tokens": len(plan.prompt), "reused_tokens": 0},
        "completion_token_ids": list(c.token_ids),
        "finished": True,
    }
    if plan.want_logprobs:
        data["completion_logprobs"] = list(c.logprobs)
    if routed is not None:
        data["routed_experts"] = routed
    # ``migrated_after`` is the mock Dynamo frontend's fault (a migrated answer), not a worker's.
    worker_fault = dataclasses.replace(fault, migrated_after=None) if fault.migrated_after is not None else fault
    apply_content_fault(
        worker_fault, data, ids_key="completion_token_ids", logprobs_key="completion_logprobs", source="engine"
    )
    return data


def top_logprobs(engine: Engine, c: Completion, i: int, n: int, piece: Callable[[int], str]) -> list[dict[str, Any]]:
    """Position ``i``'s alternatives as the Dynamo wire has them: the sampled token first, then the ``n`` most
    likely other tokens (the order and set of the mocks' chat echo)."""
    tops = [(c.token_ids[i], c.logprobs[i], c.ranks[i])]
    tops += [(t, lp, r) for t, lp, r in engine.candidates(c.keys[i], c.peaks[i], n) if r != c.ranks[i]]
    return [{"rank": r, "token_id": t, "token": piece(t), "logprob": lp} for t, lp, r in tops]


def chunks(
    engine: Engine, plan: RequestPlan, settings: WorkerSettings, piece: Callable[[int], str] | None = None
) -> Iterator[dict[str, Any]]:
    """The chunks the worker streams for one request: one per token, the last one with the finish reason,
    ``completion_usage`` and ``engine_data``. ``piece`` (a token's text) enables ``top_logprobs``."""
    c = engine.generate(plan.prompt, plan.params)
    fault = plan.fault
    per_token_lp = plan.want_logprobs and fault.logprobs != "engine-only"
    routed = routed_experts_object(engine, [*plan.prompt, *c.token_ids], plan.prompt_start, settings, fault.routing)
    n = len(c.token_ids)
    for i, tid in enumerate(c.token_ids):
        out: dict[str, Any] = {"token_ids": [tid], "index": 0}
        if per_token_lp:
            out["log_probs"] = [c.logprobs[i]]
            if piece is not None:
                out["top_logprobs"] = [top_logprobs(engine, c, i, plan.top_n, piece)]
        if i == n - 1:
            out["finish_reason"] = c.finish_reason
            out["completion_usage"] = {
                "prompt_tokens": len(plan.prompt),
                "completion_tokens": n,
                "total_tokens": len(plan.prompt) + n,
                "prompt_tokens_details": {"cached_tokens": 0},
            }
            out["engine_data"] = engine_data(plan, c, routed, fault)
        yield out


class MockWorkerCore:
    """The worker without Dynamo: settings, tokenizer, engine, and the async stream of chunks for a request."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.tokenizer: MockTokenizer = load_tokenizer(str(settings.model_dir))
        tok = self.tokenizer
        self.engine = Engine(tok.ordinary_ids, tok.eos_id, settings.eos_period, tok.vocab_size)
        self.max_model_len = settings.max_model_len or tok.model_max_length

    async def stream(self, request: Mapping[str, Any], is_stopped: Any = None) -> AsyncIterator[dict[str, Any]]:
        if self.settings.log_requests:
            print(f"request {json.dumps(request, default=str)}", file=sys.stderr, flush=True)
        plan = plan_request(
            request,
            max_model_len=self.max_model_len,
            default_seed=self.settings.seed,
            vocab_size=self.tokenizer.vocab_size,
            faults=self.settings.faults,
        )
        crash = None if self.settings.ignore_crash_faults else plan.fault.crash_after
        for sent, chunk in enumerate(chunks(self.engine, plan, self.settings, self.tokenizer.piece)):
            if is_stopped is not None and is_stopped():
                yield {"token_ids": [], "index": 0, "finish_reason": "cancelled"}
                return
            if crash is not None and sent >= crash:
                await asyncio.sleep(0.05)  # let the frontend receive the tokens already sent
                os._exit(CRASH_EXIT_CODE)
            if sent and self.settings.per_token_s > 0:
                await asyncio.sleep(self.settings.per_token_s)
            yield chunk


def settings_from_args(args: argparse.Namespace) -> WorkerSettings:
    """The settings ``add_arguments``' flags give: each flag sets the field of its name (``--moe-top-k`` ->
    ``moe_top_k``); a field without a flag keeps its default."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(WorkerSettings) if hasattr(args, f.name)}
    given["model_dir"] = Path(given["model_dir"])
    given["faults"] = FaultSpec.parse(given["faults"])
    return WorkerSettings(**given)


HELP = "the mock engine as a worker of the real Dynamo 1.6.1 frontend (needs renderers[dynamo])"
DESCRIPTION = (
    "The mock engine as a Dynamo 1.6.1 worker (needs renderers[dynamo]). Discovery, request and event planes come "
    "from Dynamo's DYN_* environment (see docs/mockservers.md)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The worker's flags (``renderers-mock dynamo-worker``)."""
    d = WorkerSettings()
    p.description = DESCRIPTION
    p.add_argument("--model-dir", default=str(d.model_dir), help="tokenizer folder the frontend reads")
    p.add_argument("--served-model-name", default=d.served_model_name)
    p.add_argument("--max-model-len", type=int, default=None, help="context length (default: the tokenizer's)")
    p.add_argument("--seed", type=int, default=d.seed, help="sampling seed for requests without one")
    p.add_argument("--eos-period", type=int, default=d.eos_period, help="mean tokens before EOS; 0 = never")
    p.add_argument("--moe-layers", type=int, default=d.moe_layers, help="MoE layers with routing (0 = dense)")
    p.add_argument("--moe-top-k", type=int, default=d.moe_top_k)
    p.add_argument("--num-experts", type=int, default=d.num_experts)
    p.add_argument("--per-token-s", type=float, default=0.0, help="pause between streamed tokens, seconds")
    p.add_argument("--faults", default="", help='fault for every request, e.g. "completion_ids=missing"')
    p.add_argument("--ignore-crash-faults", action="store_true", help="never exit on a crash_after fault")
    p.add_argument("--log-requests", action="store_true", help="print each request dict the frontend sends")
    p.add_argument("--namespace", default=d.namespace)
    p.add_argument("--component", default=d.component)


def run_worker(settings: WorkerSettings) -> None:
    """Register with Dynamo and serve until SIGTERM (imports ``dynamo``: the ``renderers[dynamo]`` extra)."""
    try:
        from dynamo.common.backend import (  # type: ignore[import-not-found, unused-ignore]
            EngineConfig,
            LLMEngine,
            LlmRegistration,
            WorkerConfig,
        )
        from dynamo.common.backend.run import run  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise SystemExit(
            f"renderers-mock dynamo-worker needs ai-dynamo 1.6.1 ({exc}); see docs/mockservers.md for the install"
        ) from None

    core = MockWorkerCore(settings)

    class MockDynamoEngine(LLMEngine):  # type: ignore[misc, unused-ignore]
        @classmethod
        async def from_args(cls, argv: Sequence[str] | None = None) -> tuple[Any, Any]:
            config = WorkerConfig(
                namespace=settings.namespace,
                component=settings.component,
                endpoint=settings.endpoint,
                model_name=str(settings.model_dir),
                served_model_name=settings.served_model_name,
                discovery_backend=os.environ.get("DYN_DISCOVERY_BACKEND", "file"),
                request_plane=os.environ.get("DYN_REQUEST_PLANE", "tcp"),
                event_plane=os.environ.get("DYN_EVENT_PLANE", "zmq"),
                enable_kv_routing=False,
            )
            return cls(), config

        async def start(self, worker_id: int) -> Any:
            return EngineConfig(
                model=str(settings.model_dir),
                served_model_name=settings.served_model_name,
                runtime_data={"vllm_inference_v1_generate": True},
                llm=LlmRegistration(context_length=core.max_model_len, kv_cache_block_size=16),
            )

        async def generate(self, request: dict[str, Any], context: Any) -> AsyncIterator[dict[str, Any]]:
            async for chunk in core.stream(request, context.is_stopped):
                yield chunk

        async def cleanup(self) -> None:
            return None

    run(MockDynamoEngine)


def run(args: argparse.Namespace) -> int:
    """Run the worker from parsed ``add_arguments`` flags until SIGTERM; 2 for a bad fault spec."""
    try:
        settings = settings_from_args(args)
    except FaultError as exc:
        print(f"renderers-mock dynamo-worker: {exc}", file=sys.stderr)
        return 2
    sys.argv = [sys.argv[0]]  # Dynamo's run() parses no arguments of ours
    run_worker(settings)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="renderers-mock dynamo-worker")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
