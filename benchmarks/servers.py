"""Servers in subprocesses, so their CPU is never counted as the client's: the mock (``python -m mockservers``)
and the floor (``python -m benchmarks.floor_server``: a minimal aiohttp handler returning pre-encoded bytes).

Each prints one ``... ready: <url> ...`` line when listening; ``ServerProcess`` waits for it, reports the server's
CPU time (``/proc`` via psutil) and stops it with SIGTERM (then SIGKILL after a grace period), by its own pid.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import psutil

ROOT = Path(__file__).resolve().parent.parent
_URL = re.compile(r"ready: (http://\S+)")


class ServerProcess:
    def __init__(self, args: list[str], *, name: str, startup_s: float = 60.0) -> None:
        self.name = name
        self.args = [sys.executable, *args]
        self.startup_s = startup_s
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self._ps: psutil.Process | None = None

    def start(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            self.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.startup_s
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            m = _URL.search(line)
            if m:
                self.url = m.group(1)
                self._ps = psutil.Process(self.proc.pid)
                return self
        self.stop()
        raise RuntimeError(f"{self.name} did not start: {' '.join(self.args)}\n{''.join(seen)[-2000:]}")

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far."""
        if self._ps is None:
            return 0.0
        t = self._ps.cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def mock(kind: str, *options: str) -> ServerProcess:
    """``python -m mockservers <kind> --port 0 <options>`` (the mock's own CLI)."""
    return ServerProcess(["-m", "mockservers", kind, "--port", "0", *options], name=f"mock {kind}")


def floor(body_file: Path, path: str) -> ServerProcess:
    """The floor server answering ``POST <path>`` with the bytes of ``body_file``."""
    return ServerProcess(
        ["-m", "benchmarks.floor_server", "--body-file", str(body_file), "--path", path], name="floor server"
    )
