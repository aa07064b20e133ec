"""``renderers-mock <server> [options]`` (also ``python -m mockservers``): run a mock server in the foreground.

Each server is a ``Subcommand`` in ``SUBCOMMANDS``; its flags are generated from the ``MockConfig`` fields that apply
to it (``--moe-layers`` is ``MockConfig.moe_layers``; booleans get ``--x`` / ``--no-x``), so a new setting is a new
field and nothing here. A subcommand that is not a mock HTTP server (another process role) brings its own
``add_arguments`` and ``run``; ``add_config_flags(parser, kind)`` gives it the shared flags if it wants them.

A server prints one line ``renderers-mock <kind> ready: <url> (model <name>)`` when listening and stops cleanly on
SIGINT/SIGTERM.

``dynamo-worker`` and ``dynamo-stack`` run the mock engine behind the real Dynamo frontend
(``mockservers.dynamo_worker``, ``mockservers.dynamo_stack``; Dynamo itself is imported only when they run).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mockservers import dynamo_stack, dynamo_worker
from mockservers.config import MockConfig
from mockservers.faults import FaultError, FaultSpec

_DEFAULTS = MockConfig()


def _flag_type(hint: Any) -> dict[str, Any]:
    """argparse keywords for a field's type annotation."""
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(hint) is typing.Literal:
        return {"choices": typing.get_args(hint)}
    if isinstance(hint, types.UnionType):  # ``int | None``
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _flag_type(inner)
    if hint is FaultSpec:
        return {"type": str, "metavar": "SPEC"}
    return {"type": hint}


def add_config_flags(parser: argparse.ArgumentParser, kind: str) -> None:
    """One flag per ``MockConfig`` field that applies to server ``kind`` (``--field-name``, ``dest`` the field name)."""
    hints = typing.get_type_hints(MockConfig)
    for f in dataclasses.fields(MockConfig):
        if f.metadata["server"] not in (None, kind):
            continue
        default = f.metadata["cli_default"]
        if default is None:
            default = getattr(_DEFAULTS, f.name)
        shown = default.to_dict() or "none" if isinstance(default, FaultSpec) else default
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=default,
            help=f"{f.metadata['help']} (default: {shown})".replace("%", "%%"),
            **_flag_type(hints[f.name]),
        )


def config_from_args(args: argparse.Namespace) -> MockConfig:
    """The ``MockConfig`` of parsed flags (fields without a flag keep their defaults)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(MockConfig) if hasattr(args, f.name)}
    if isinstance(values.get("faults"), str):
        values["faults"] = FaultSpec.parse(values["faults"])
    return MockConfig(**values)


async def serve(kind: str, config: MockConfig) -> None:
    """Run one mock server until SIGINT/SIGTERM."""
    from mockservers.app import bind_site, serve_until_signalled
    from mockservers.server import create_app, format_url

    runner, port = await bind_site(create_app(kind, config), config)
    ready = f"renderers-mock {kind} ready: {format_url(config.host, port)} (model {config.model})"
    await serve_until_signalled(runner, ready)
    print(f"renderers-mock {kind} stopped", flush=True)


def _run_server(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if config.access_log:
        logging.basicConfig(level=logging.INFO)
    asyncio.run(serve(args.kind, config))
    return 0


@dataclass(frozen=True)
class Subcommand:
    """One ``renderers-mock`` subcommand: its flags and what it runs (returning the exit status)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _server(name: str, help: str) -> Subcommand:
    return Subcommand(name, help, lambda p: add_config_flags(p, name), _run_server)


SUBCOMMANDS: list[Subcommand] = [
    _server("vllm", "mock vLLM: POST /inference/v1/generate"),
    _server("dynamo", "mock Dynamo 1.6.1 frontend: POST /v1/chat/completions with nvext"),
    Subcommand("dynamo-worker", dynamo_worker.HELP, dynamo_worker.add_arguments, dynamo_worker.run),
    Subcommand("dynamo-stack", dynamo_stack.HELP, dynamo_stack.add_arguments, dynamo_stack.run),
]
"""The subcommands in help order; append one to add it."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="renderers-mock", description="Mock vLLM and mock NVIDIA Dynamo servers.", allow_abbrev=False
    )
    sub = parser.add_subparsers(dest="kind", required=True)
    for command in SUBCOMMANDS:
        command.add_arguments(sub.add_parser(command.name, help=command.help, allow_abbrev=False))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    (command,) = [c for c in SUBCOMMANDS if c.name == args.kind]
    try:
        return command.run(args)
    except (ValueError, FaultError) as exc:
        print(f"renderers-mock: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["SUBCOMMANDS", "Subcommand", "add_config_flags", "build_parser", "config_from_args", "main", "serve"]
