"""Start a real NVIDIA Dynamo stack on loopback (ZMQ relay, a worker, frontend) and always stop it.

This module installs nothing. It needs the path of a Python interpreter that has ``ai-dynamo`` and
``ai-dynamo-runtime`` 1.6.1 (see ``dynamo-runtime.txt``) and a model folder from ``make_tiny_model.py``.

The stack runs without etcd and NATS: file discovery (``DYN_DISCOVERY_BACKEND=file``, state in the work folder),
the TCP request plane, and the ZMQ event plane in broker mode through ``zmq_relay.py``, because in direct mode
each publisher binds ``0.0.0.0``. Every listener is on 127.0.0.1; the ports are picked free at start.

The worker is ``dynamo.mocker`` (default: no weights, no engine) or the real ``dynamo.vllm`` (``worker="vllm"``,
used by ``nox -s real_dynamo_vllm``). Process handling (own process group, ``<workdir>/<name>.log``, SIGTERM then
SIGKILL on every way out) is ``tools/real_servers.py``. Caches the servers write (``XDG_CACHE_HOME``, ``TMPDIR``)
are pointed into the work folder, so removing it removes everything.

Use from Python::

    with dynamo_stack(python=venv / "bin" / "python", model_dir=model, workdir=tmp) as stack:
        ...  # stack.url, stack.model

or by hand (runs until Ctrl-C)::

    python tools/real_dynamo/launch.py --python .nox/dynamo-runtime/bin/python --model-dir /tmp/tiny
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``tools`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.real_servers import (
    HOST,
    Process,
    RunningProcesses,
    StackError,
    free_loopback_ports,
    listed_models,
    port_open,
    python_path,
    serve_until_interrupted,
    spawn,
    stop_all,
    terminate_on_signals,
    wait_until,
)

__all__ = ["DEFAULT_MODEL_NAME", "DynamoStack", "StackError", "dynamo_stack", "free_loopback_ports"]

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL_NAME = "tiny-qwen3"


@dataclass
class DynamoStack(RunningProcesses):
    """A running stack. ``url`` is the frontend's base URL (no trailing slash, no ``/v1``)."""

    url: str
    model: str
    workdir: Path
    ports: Mapping[str, int]
    processes: list[Process] = field(default_factory=list)


def _stack_env(workdir: Path, xsub: int, xpub: int, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYN_")}
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    env.update(
        {
            "DYN_DISCOVERY_BACKEND": "file",
            "DYN_FILE_KV": str(workdir / "kv"),
            "DYN_REQUEST_PLANE": "tcp",
            "DYN_EVENT_PLANE": "zmq",
            "DYN_ZMQ_BROKER_URL": f"xsub=tcp://{HOST}:{xsub} , xpub=tcp://{HOST}:{xpub}",
            "DYN_EVENT_PLANE_HOST": HOST,
            "DYN_TCP_RPC_HOST": HOST,
            "DYN_TCP_RESPONSE_STREAM_HOST": HOST,
            "DYN_SYSTEM_HOST": HOST,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HOME": str(workdir / "cache" / "huggingface"),
            "XDG_CACHE_HOME": str(workdir / "cache"),
            "TMPDIR": str(workdir / "tmp"),
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
            "DYN_SDK_DISABLE_ANSI_LOGGING": "1",
        }
    )
    if extra:
        env.update(extra)
    return env


@contextlib.contextmanager
def dynamo_stack(
    *,
    python: Path | str,
    model_dir: Path | str,
    workdir: Path | str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    ready_timeout: float = 90.0,
    stop_grace: float = 5.0,
    max_model_len: int = 1024,
    extra_env: Mapping[str, str] | None = None,
    worker: str = "mocker",
    worker_args: Sequence[str] = (),
    worker_env: Mapping[str, str] | None = None,
) -> Iterator[DynamoStack]:
    """Start relay, worker and frontend; yield once ``GET /v1/models`` lists ``model_name``; always stop them.

    ``worker`` is ``"mocker"`` (``dynamo.mocker``, no weights), ``"sample"`` (Dynamo's Python sample backend) or
    ``"vllm"`` (the real ``dynamo.vllm`` worker: the venv must have vLLM, and the model folder weights);
    ``worker_args`` are appended to the worker's command line and ``worker_env`` to its environment only.

    ``workdir`` holds logs, the discovery state and the servers' caches; a temporary folder (removed on exit)
    when not given. Raises ``StackError`` (with log tails) when a process dies or readiness takes longer than
    ``ready_timeout`` seconds.
    """
    with contextlib.ExitStack() as cleanup:
        if workdir is None:
            workdir = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="renderers-dynamo-"))
        work = Path(workdir).resolve()
        for sub in ("kv", "cache", "tmp"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        py = python_path(python)
        model = str(Path(model_dir).resolve())
        http, xsub, xpub = free_loopback_ports(3)
        env = _stack_env(work, xsub, xpub, extra_env)
        stack = DynamoStack(
            url=f"http://{HOST}:{http}",
            model=model_name,
            workdir=work,
            ports={"http": http, "xsub": xsub, "xpub": xpub},
        )
        cleanup.enter_context(terminate_on_signals())
        cleanup.callback(stop_all, stack.processes, stop_grace)
        deadline = time.monotonic() + ready_timeout

        relay = [py, str(HERE / "zmq_relay.py"), str(xsub), str(xpub)]
        stack.processes.append(spawn("relay", relay, env=env, workdir=work))
        wait_until(stack.processes, "the ZMQ relay", lambda: port_open(xsub) and port_open(xpub), deadline)

        if worker == "mocker":
            argv = [py, "-m", "dynamo.mocker", "--model-path", model, "--model-name", model_name]
            argv += ["--speedup-ratio", "0", "--max-model-len", str(max_model_len)]
        elif worker == "sample":
            # Dynamo's Python sample backend (deterministic ids 1, 2, 3, ... and synthetic logprobs). It takes the
            # model as ``--model-name`` only, a path relative to the work folder or absolute.
            argv = [py, "-m", "dynamo.common.backend.sample_main", "--model-name", model_name, "--delay", "0"]
            argv += ["--discovery-backend", "file", "--request-plane", "tcp", "--event-plane", "zmq"]
        elif worker == "vllm":
            argv = [py, "-m", "dynamo.vllm", "--model", model, "--served-model-name", model_name]
            argv += ["--max-model-len", str(max_model_len)]
        else:
            raise ValueError(f"unknown worker {worker!r} (mocker, sample or vllm)")
        argv += list(worker_args)
        stack.processes.append(spawn(worker, argv, env={**env, **(worker_env or {})}, workdir=work))
        frontend = [py, "-m", "dynamo.frontend", "--http-host", HOST, "--http-port", str(http)]
        stack.processes.append(spawn("frontend", frontend, env=env, workdir=work))
        wait_until(
            stack.processes,
            f"{stack.url}/v1/models to list {model_name!r}",
            lambda: model_name in listed_models(stack.url),
            deadline,
        )
        yield stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a loopback Dynamo 1.6.1 stack (relay, mocker, frontend).")
    parser.add_argument("--python", required=True, help="python of a venv with ai-dynamo 1.6.1")
    parser.add_argument("--model-dir", required=True, help="folder written by make_tiny_model.py")
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    parser.add_argument("--workdir", default=None, help="logs and state (default: a temporary folder)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with dynamo_stack(
        python=args.python, model_dir=args.model_dir, model_name=args.model_name, workdir=args.workdir
    ) as s:
        serve_until_interrupted(s, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
