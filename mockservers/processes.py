"""Process plumbing shared by the real-server launchers (``mockservers.dynamo_stack``, ``tools/real_vllm``).

Each server process gets its own session (process group); its stdout and stderr go to ``<workdir>/<name>.log``; on
the way out (normal exit, exception, Ctrl-C, SIGTERM) each group gets SIGTERM, then SIGKILL after a grace period,
and Linux kills a child whose launcher died without cleaning up (``PR_SET_PDEATHSIG``). Nothing here installs or
imports a server: the launchers pass the interpreter of a runtime venv.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Protocol

__all__ = [
    "HOST",
    "Process",
    "RunningProcesses",
    "StackError",
    "free_loopback_ports",
    "isolated_env",
    "listed_models",
    "port_open",
    "python_path",
    "serve_until_interrupted",
    "spawn",
    "stop_all",
    "terminate_on_signals",
    "wait_until",
]

HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """A server could not be started: a process exited early or readiness was not reached in time."""


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def log_tail(self, max_chars: int = 4000) -> str:
        with contextlib.suppress(ValueError):  # already closed
            self.log_file.flush()
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"<cannot read {self.log_path}: {exc}>"
        return text[-max_chars:]

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise StackError(f"{self.name} exited with code {code}; last log lines:\n{self.log_tail()}")


def python_path(python: Path | str) -> str:
    """Absolute (the processes run in their work folder) but not resolved: a venv's python must keep its path."""
    return os.path.abspath(python) if os.sep in str(python) else str(python)


def isolated_env(
    workdir: Path, drop_prefixes: tuple[str, ...], settings: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """This process's environment for a server whose files all go under ``workdir``: without the variables that
    start with one of ``drop_prefixes`` or name a Python environment (``VIRTUAL_ENV``, ``PYTHONPATH``,
    ``PYTHONHOME``: the server runs its own venv), with the model hub offline, caches and temporary files under
    ``workdir`` and plain unbuffered output; then the server's ``settings``, then the caller's ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HOME": str(workdir / "cache" / "huggingface"),
            "XDG_CACHE_HOME": str(workdir / "cache"),
            "TMPDIR": str(workdir / "tmp"),
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
        }
    )
    env.update(settings)
    env.update(extra or {})
    return env


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


def spawn(name: str, argv: list[str], *, env: Mapping[str, str], workdir: Path) -> Process:
    """Start ``argv`` in its own process group, output to ``workdir/name.log``."""
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
    return Process(name=name, popen=popen, log_path=log_path, log_file=log_file)


def stop_all(processes: list[Process], grace: float) -> None:
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


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def listed_models(url: str) -> list[str]:
    """The ids ``GET {url}/v1/models`` lists; empty while the server does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/v1/models", timeout=2.0) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError):
        return []
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return []
    return [str(m.get("id")) for m in data if isinstance(m, dict)]


def wait_until(processes: Iterable[Process], what: str, ready: Callable[[], bool], deadline: float) -> None:
    """Poll ``ready`` until it is true; raise ``StackError`` (with log tails) if a process dies or time runs out."""
    procs = list(processes)
    while not ready():
        for proc in procs:
            proc.check_alive()
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}.log ---\n{p.log_tail(2000)}" for p in procs)
            raise StackError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.1)


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into ``KeyboardInterrupt`` (main thread only), so they take the same path as Ctrl-C:
    a runner waiting on a child (nox's ``session.run``) stops that child first, then every ``finally`` runs."""
    if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
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


class RunningProcesses:
    """What the launchers' running-server records share: their processes, their pids, a liveness check."""

    processes: list[Process]

    @property
    def pids(self) -> dict[str, int]:
        return {p.name: p.popen.pid for p in self.processes}

    def check_alive(self) -> None:
        """Raise ``StackError`` with the log tail if any process has exited."""
        for proc in self.processes:
            proc.check_alive()


class _Running(Protocol):
    url: str
    model: str
    workdir: Path

    @property
    def pids(self) -> dict[str, int]: ...

    def check_alive(self) -> None: ...


def serve_until_interrupted(server: _Running, started: float) -> None:
    """For the launchers' command lines: report readiness, then keep the server up until Ctrl-C."""
    ready = time.monotonic() - started
    print(f"ready after {ready:.1f}s: {server.url} model={server.model} pids={server.pids} work={server.workdir}")
    print("Ctrl-C to stop", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            server.check_alive()
            time.sleep(1.0)
