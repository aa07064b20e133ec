"""Start a real NVIDIA Dynamo stack on loopback (ZMQ relay, mocker worker, frontend) and always stop it.

This module installs nothing. It needs the path of a Python interpreter that has ``ai-dynamo`` and
``ai-dynamo-runtime`` 1.6.1 (see ``dynamo-runtime.txt``) and a model folder from ``make_tiny_model.py``.

The stack runs without etcd and NATS: file discovery (``DYN_DISCOVERY_BACKEND=file``, state in the work folder),
the TCP request plane, and the ZMQ event plane in broker mode through ``zmq_relay.py``, because in direct mode
each publisher binds ``0.0.0.0``. Every listener is on 127.0.0.1; the ports are picked free at start.

Each process gets its own session (process group), its stdout and stderr go to ``<workdir>/<name>.log``, and
on the way out (normal exit, exception, Ctrl-C, SIGTERM) each group gets SIGTERM, then SIGKILL after a grace
period. Caches the servers write (``XDG_CACHE_HOME``, ``TMPDIR``) are pointed into the work folder, so removing
it removes everything.

Use from Python::

    with dynamo_stack(python=venv / "bin" / "python", model_dir=model, workdir=tmp) as stack:
        ...  # stack.url, stack.model

or by hand (runs until Ctrl-C)::

    python tools/real_dynamo/launch.py --python .nox/dynamo-runtime/bin/python --model-dir /tmp/tiny
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

__all__ = ["DEFAULT_MODEL_NAME", "DynamoStack", "StackError", "dynamo_stack", "free_loopback_ports"]

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL_NAME = "tiny-qwen3"
HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """The stack could not be started: a process exited early or readiness was not reached in time."""


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def log_tail(self, max_chars: int = 4000) -> str:
        self.log_file.flush()
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"<cannot read {self.log_path}: {exc}>"
        return text[-max_chars:]


@dataclass
class DynamoStack:
    """A running stack. ``url`` is the frontend's base URL (no trailing slash, no ``/v1``)."""

    url: str
    model: str
    workdir: Path
    ports: Mapping[str, int]
    processes: list[_Process] = field(default_factory=list)

    @property
    def pids(self) -> dict[str, int]:
        return {p.name: p.popen.pid for p in self.processes}

    def check_alive(self) -> None:
        """Raise ``StackError`` with the log tail if any process has exited."""
        for proc in self.processes:
            code = proc.popen.poll()
            if code is not None:
                raise StackError(f"{proc.name} exited with code {code}; last log lines:\n{proc.log_tail()}")


def free_loopback_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free on 127.0.0.1 a moment ago (held together, then released)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux to SIGKILL it if the launcher dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


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


def _spawn(name: str, argv: list[str], *, env: Mapping[str, str], workdir: Path) -> _Process:
    log_path = workdir / f"{name}.log"
    log_file = log_path.open("wb")
    try:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=workdir,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    except OSError as exc:
        log_file.close()
        raise StackError(f"cannot start {name} ({argv[0]}): {exc}") from exc
    except BaseException:
        log_file.close()
        raise
    return _Process(name=name, popen=popen, log_path=log_path, log_file=log_file)


def _stop(processes: list[_Process], grace: float) -> None:
    """SIGTERM every process group (newest first), wait up to ``grace`` seconds, then SIGKILL what is left."""
    for proc in reversed(processes):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.popen.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in reversed(processes):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
    for proc in reversed(processes):
        # Also after the leader has exited: a child left in its group must not outlive the stack.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=5.0)
        proc.log_file.close()


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def _listed_models(url: str) -> list[str]:
    try:
        with urllib.request.urlopen(f"{url}/v1/models", timeout=2.0) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError):
        return []
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return []
    return [str(m.get("id")) for m in data if isinstance(m, dict)]


def _wait(stack: DynamoStack, what: str, ready: Callable[[], bool], deadline: float) -> None:
    while not ready():
        stack.check_alive()
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}.log ---\n{p.log_tail(2000)}" for p in stack.processes)
            raise StackError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.1)


@contextlib.contextmanager
def _terminate_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into ``KeyboardInterrupt`` (main thread only), so they take the same path as Ctrl-C:
    a runner waiting on a child (nox's ``session.run``) stops that child first, then every ``finally`` runs."""
    if sys.platform == "win32" or not _in_main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


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
) -> Iterator[DynamoStack]:
    """Start relay, mocker and frontend; yield once ``GET /v1/models`` lists ``model_name``; always stop them.

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
        # Absolute (the processes run in ``work``) but not resolved: a venv's python must keep its own path.
        py = os.path.abspath(python) if os.sep in str(python) else str(python)
        model = str(Path(model_dir).resolve())
        http, xsub, xpub = free_loopback_ports(3)
        env = _stack_env(work, xsub, xpub, extra_env)
        stack = DynamoStack(
            url=f"http://{HOST}:{http}",
            model=model_name,
            workdir=work,
            ports={"http": http, "xsub": xsub, "xpub": xpub},
        )
        cleanup.enter_context(_terminate_on_signals())
        cleanup.callback(_stop, stack.processes, stop_grace)
        deadline = time.monotonic() + ready_timeout

        relay = [py, str(HERE / "zmq_relay.py"), str(xsub), str(xpub)]
        stack.processes.append(_spawn("relay", relay, env=env, workdir=work))
        _wait(stack, "the ZMQ relay", lambda: _port_open(xsub) and _port_open(xpub), deadline)

        mocker = [py, "-m", "dynamo.mocker", "--model-path", model, "--model-name", model_name]
        mocker += ["--speedup-ratio", "0", "--max-model-len", str(max_model_len)]
        stack.processes.append(_spawn("mocker", mocker, env=env, workdir=work))
        frontend = [py, "-m", "dynamo.frontend", "--http-host", HOST, "--http-port", str(http)]
        stack.processes.append(_spawn("frontend", frontend, env=env, workdir=work))
        _wait(
            stack,
            f"{stack.url}/v1/models to list {model_name!r}",
            lambda: model_name in _listed_models(stack.url),
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
        print(f"ready after {time.monotonic() - started:.1f}s: {s.url} model={s.model} pids={s.pids} work={s.workdir}")
        print("Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                s.check_alive()
                time.sleep(1.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
