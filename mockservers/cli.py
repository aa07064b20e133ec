"""``renderers-mock vllm|dynamo [options]`` (also ``python -m mockservers``): run a mock server in the foreground.

``renderers-mock dynamo-worker|dynamo-stack`` run the mock engine behind the real Dynamo frontend instead; they have
parsers of their own (``mockservers.dynamo_worker``, ``mockservers.dynamo_stack``) and are dispatched before this
parser runs.

Prints one line ``renderers-mock <kind> ready: <url> ...`` when listening; stops cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from mockservers.config import DYNAMO_BACKENDS, ROUTED_EXPERTS_MODES, VLLM_PROFILES, MockConfig
from mockservers.faults import COMPLETION_IDS_MODES, LOGPROBS_MODES, FaultError, FaultSpec


def _common(p: argparse.ArgumentParser) -> None:
    d = MockConfig()
    p.add_argument("--host", default=d.host, help="interface to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="TCP port, 0 = any free port (default: %(default)s)")
    p.add_argument("--model", default=d.model, help="served model name (default: %(default)s)")
    p.add_argument("--tokenizer", type=Path, default=None, help="tokenizer folder (default: the built-in tiny-qwen3)")
    p.add_argument("--max-model-len", type=int, default=None, help="context length (default: tokenizer's, else 2048)")
    p.add_argument("--seed", type=int, default=d.seed, help="sampling seed for requests without one")
    p.add_argument("--eos-period", type=int, default=d.eos_period, help="mean tokens before EOS; 0 = never")
    p.add_argument("--moe-layers", type=int, default=d.moe_layers, help="MoE layers with routing (0 = dense)")
    p.add_argument("--moe-top-k", type=int, default=d.moe_top_k, help="experts per token and layer")
    p.add_argument("--num-experts", type=int, default=d.num_experts, help="experts per layer (>256: uint16 ids)")
    p.add_argument("--ttft-s", type=float, default=0.0, help="simulated time to first token, seconds")
    p.add_argument("--per-token-s", type=float, default=0.0, help="simulated time per further token, seconds")
    p.add_argument("--fault", default="", help='global fault, header syntax: "status=503; fail_first=2", "reset"')
    p.add_argument("--completion-ids", choices=COMPLETION_IDS_MODES, default=None, help="completion-ids fault")
    p.add_argument("--logprobs-fault", choices=LOGPROBS_MODES, default=None, help="logprobs fault")
    p.add_argument("--admin", action="store_true", help="serve POST/GET/DELETE /_mock/faults")
    p.add_argument("--journal-size", type=int, default=d.journal_size, help="requests kept by /_mock/requests")
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, help="larger request bodies get 413")
    p.add_argument("--access-log", action="store_true", help="log every request (off by default)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="renderers-mock", description="Mock vLLM and mock NVIDIA Dynamo servers.")
    sub = parser.add_subparsers(dest="kind", required=True)
    v = sub.add_parser("vllm", help="mock vLLM: POST /inference/v1/generate")
    _common(v)
    v.add_argument("--profile", choices=VLLM_PROFILES, default="prime-rl", help="wire profile (default: %(default)s)")
    dyn = sub.add_parser("dynamo", help="mock Dynamo 1.6.1 frontend: POST /v1/chat/completions with nvext")
    _common(dyn)
    dyn.add_argument("--routed-experts-mode", choices=ROUTED_EXPERTS_MODES, default="full")
    dyn.add_argument("--backend", choices=DYNAMO_BACKENDS, default="vllm", help="worker behind the frontend")
    dyn.add_argument("--lax-validation", action="store_true", help="like DYN_IGNORE_OPENAI_FE_UNSUPPORTED_FIELDS=1")
    dyn.add_argument("--choice-logprobs-f64", action="store_true", help="print choices[].logprobs as doubles")
    for name, text in REAL_DYNAMO_COMMANDS.items():  # listed in --help; main() hands their arguments over
        sub.add_parser(name, help=text, add_help=False)
    return parser


REAL_DYNAMO_COMMANDS = {
    "dynamo-worker": "the mock engine as a worker of the real Dynamo 1.6.1 frontend (needs renderers[dynamo])",
    "dynamo-stack": "ZMQ relay + real Dynamo frontend + N mock-engine workers on 127.0.0.1 (needs renderers[dynamo])",
}


def _real_dynamo_main(command: str, argv: list[str]) -> int:
    if command == "dynamo-worker":
        from mockservers.dynamo_worker import main as worker_main

        return worker_main(argv)
    from mockservers.dynamo_stack import main as stack_main

    return stack_main(argv)


def config_from_args(args: argparse.Namespace) -> MockConfig:
    fault = FaultSpec.parse(args.fault)
    extra: dict[str, Any] = {}
    if args.completion_ids:
        extra["completion_ids"] = args.completion_ids
    if args.logprobs_fault:
        extra["logprobs"] = args.logprobs_fault
    if extra:
        fault = FaultSpec.from_mapping({**fault.to_dict(), **extra})
    kwargs: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "model": args.model,
        "max_model_len": args.max_model_len,
        "seed": args.seed,
        "eos_period": args.eos_period,
        "moe_layers": args.moe_layers,
        "moe_top_k": args.moe_top_k,
        "num_experts": args.num_experts,
        "ttft_s": args.ttft_s,
        "per_token_s": args.per_token_s,
        "faults": fault,
        "admin": args.admin,
        "journal_size": args.journal_size,
        "max_body_bytes": args.max_body_bytes,
        "access_log": args.access_log,
    }
    if args.tokenizer is not None:
        kwargs["tokenizer"] = args.tokenizer
    if args.kind == "vllm":
        kwargs["vllm_profile"] = args.profile
    else:
        kwargs["routed_experts_mode"] = args.routed_experts_mode
        kwargs["dynamo_backend"] = args.backend
        kwargs["lax_validation"] = args.lax_validation
        kwargs["choice_logprobs_f32"] = not args.choice_logprobs_f64
    return MockConfig(**kwargs)


async def serve(kind: str, config: MockConfig) -> None:
    from aiohttp import web

    from mockservers.server import create_app, format_url

    app = create_app(kind, config)
    access_log = logging.getLogger("aiohttp.access") if config.access_log else None
    runner = web.AppRunner(app, handle_signals=False, access_log=access_log)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else config.port
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"renderers-mock {kind} ready: {format_url(config.host, port)} (model {config.model})", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    print(f"renderers-mock {kind} stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in REAL_DYNAMO_COMMANDS:
        return _real_dynamo_main(argv[0], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        if args.access_log:
            logging.basicConfig(level=logging.INFO)
        asyncio.run(serve(args.kind, config))
    except (ValueError, FaultError) as exc:
        print(f"renderers-mock: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
