"""A real NVIDIA Dynamo 1.6.1 stack on loopback (ZMQ relay, N workers, frontend), always stopped on the way out.

``renderers-mock dynamo-stack --workers N`` runs it from the command line (until Ctrl-C); ``dynamo_stack()`` is the
context manager behind it, ``nox -s real_dynamo`` and the ``real_dynamo_stack`` pytest fixture
(``mockservers.pytest_plugin``). Nothing is installed here: it needs the path of a Python interpreter with
``ai-dynamo`` and ``ai-dynamo-runtime`` 1.6.1 (the ``renderers[dynamo]`` extra, or the runtime venv that
``nox -s real_dynamo`` builds from ``tools/real_dynamo/dynamo-runtime.txt``).

The stack runs without etcd and NATS: file discovery (``DYN_DISCOVERY_BACKEND=file``, state in the work folder),
the TCP request plane, and the ZMQ event plane in broker mode through ``zmq_relay.py``, because in direct mode
each publisher binds ``0.0.0.0``. Every listener is on 127.0.0.1; the ports are picked free at start. ``HOME``,
``XDG_CACHE_HOME`` and ``TMPDIR`` point into the work folder (the frontend writes a model-card cache under
``$HOME/.cache/dynamo``), so removing it removes everything.

Workers: ``mock`` (``renderers-mock dynamo-worker``: the mock engine with ``engine_data``, logprobs and routing;
the frontend also serves ``/inference/v1/generate``), ``mocker`` (Dynamo's ``dynamo.mocker``, no weights),
``sample`` (Dynamo's Python sample backend) or ``vllm`` (the real ``dynamo.vllm``: the venv must have vLLM).
Process handling (own process group, ``<workdir>/<name>.log``, SIGTERM then SIGKILL) is ``mockservers.processes``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mockservers
from mockservers.model_folder import write_model
from mockservers.processes import (
    HOST,
    Process,
    RunningProcesses,
    StackError,
    free_loopback_ports,
    isolated_env,
    listed_models,
    port_open,
    python_path,
    serve_until_interrupted,
    spawn,
    stop_all,
    terminate_on_signals,
    wait_until,
)

__all__ = ["DEFAULT_MODEL_NAME", "WORKER_KINDS", "DynamoStack", "StackError", "dynamo_stack", "main"]

PACKAGE_DIR = Path(mockservers.__file__).resolve().parent
DEFAULT_MODEL_NAME = "tiny-qwen3"
WORKER_KINDS = ("mock", "mocker", "sample", "vllm")


@dataclass
class DynamoStack(RunningProcesses):
    """A running stack. ``url`` is the frontend's base URL (no trailing slash, no ``/v1``)."""

    url: str
    model: str
    workdir: Path
    ports: Mapping[str, int]
    processes: list[Process] = field(default_factory=list)
    worker_argv: list[str] = field(default_factory=list)
    worker_env: dict[str, str] = field(default_factory=dict)

    def workers(self) -> list[Process]:
        """The worker processes (named ``worker0``, ``worker1``...; a restarted one keeps its name)."""
        return [p for p in self.processes if p.name.startswith("worker")]

    def worker(self, index: int) -> Process:
        name = f"worker{index}"
        for proc in reversed(self.processes):
            if proc.name == name:
                return proc
        raise KeyError(name)

    def kill_worker(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL: no deregistration, like a crash) to worker ``index``'s process group."""
        proc = self.worker(index)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, sig)
        proc.popen.wait(timeout=10.0)

    def restart_worker(self, index: int, extra_args: Sequence[str] = ()) -> Process:
        """Start worker ``index`` again (after ``kill_worker``); returns at once, before it registers."""
        old = self.worker(index)
        if old.popen.poll() is None:
            raise StackError(f"worker{index} is still running")
        old.log_file.close()
        self.processes.remove(old)
        with contextlib.suppress(OSError):  # keep the dead worker's log beside the new one
            old.log_path.rename(old.log_path.with_name(f"{old.name}-{old.popen.pid}.log"))
        proc = spawn(f"worker{index}", [*self.worker_argv, *extra_args], env=self.worker_env, workdir=self.workdir)
        self.processes.append(proc)
        return proc

    def instances(self) -> int:
        """How many worker instances the frontend's ``/health`` lists for the ``generate`` endpoint."""
        return count_generate_instances(self.url)

    def check_alive(self) -> None:
        """Raise ``StackError`` if the relay or the frontend has exited (workers may be killed on purpose)."""
        for proc in self.processes:
            if not proc.name.startswith("worker"):
                proc.check_alive()


def count_generate_instances(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2.0) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError):
        return 0
    instances = body.get("instances") if isinstance(body, dict) else None
    if not isinstance(instances, list):
        return 0
    return len({i.get("instance_id") for i in instances if isinstance(i, dict) and i.get("endpoint") == "generate"})


def stack_env(workdir: Path, xsub: int, xpub: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every process of the stack shares: loopback planes, file discovery, scratch caches."""
    settings = {
        "DYN_DISCOVERY_BACKEND": "file",
        "DYN_FILE_KV": str(workdir / "kv"),
        "DYN_REQUEST_PLANE": "tcp",
        "DYN_EVENT_PLANE": "zmq",
        "DYN_ZMQ_BROKER_URL": f"xsub=tcp://{HOST}:{xsub} , xpub=tcp://{HOST}:{xpub}",
        "DYN_EVENT_PLANE_HOST": HOST,
        "DYN_TCP_RPC_HOST": HOST,
        "DYN_TCP_RESPONSE_STREAM_HOST": HOST,
        "DYN_SYSTEM_HOST": HOST,
        "HOME": str(workdir / "home"),
        "DYN_SDK_DISABLE_ANSI_LOGGING": "1",
    }
    return isolated_env(workdir, ("DYN_",), settings, extra)


def _mock_worker_env() -> dict[str, str]:
    """Make ``mockservers`` importable by the worker's interpreter when it runs from a source checkout (the runtime
    venv of ``nox -s real_dynamo``); an installed ``renderers[dynamo]`` needs nothing."""
    root = PACKAGE_DIR.parent
    env = {"DYN_GRACEFUL_SHUTDOWN_GRACE_PERIOD_SECS": "0"}
    if (root / "pyproject.toml").is_file():
        env["PYTHONPATH"] = str(root)
    return env


def worker_command(python: str, worker: str, model: str, model_name: str, max_model_len: int) -> list[str]:
    if worker == "mock":
        argv = [python, "-m", "mockservers", "dynamo-worker", "--model-dir", model, "--served-model-name", model_name]
        return [*argv, "--max-model-len", str(max_model_len)]
    if worker == "mocker":
        argv = [python, "-m", "dynamo.mocker", "--model-path", model, "--model-name", model_name]
        return [*argv, "--speedup-ratio", "0", "--max-model-len", str(max_model_len)]
    if worker == "sample":
        # Dynamo's Python sample backend (deterministic ids 1, 2, 3, ... and synthetic logprobs). It takes the
        # model as ``--model-name`` only, a path relative to the work folder or absolute.
        argv = [python, "-m", "dynamo.common.backend.sample_main", "--model-name", model_name, "--delay", "0"]
        return [*argv, "--discovery-backend", "file", "--request-plane", "tcp", "--event-plane", "zmq"]
    if worker == "vllm":
        argv = [python, "-m", "dynamo.vllm", "--model", model, "--served-model-name", model_name]
        return [*argv, "--max-model-len", str(max_model_len)]
    raise ValueError(f"unknown worker {worker!r} ({', '.join(WORKER_KINDS)})")


@contextlib.contextmanager
def dynamo_stack(
    *,
    python: Path | str,
    model_dir: Path | str | None = None,
    workdir: Path | str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    ready_timeout: float = 90.0,
    stop_grace: float = 5.0,
    max_model_len: int = 1024,
    extra_env: Mapping[str, str] | None = None,
    worker: str = "mocker",
    workers: int = 1,
    worker_args: Sequence[str] = (),
    worker_env: Mapping[str, str] | None = None,
    frontend_env: Mapping[str, str] | None = None,
) -> Iterator[DynamoStack]:
    """Start relay, ``workers`` workers and the frontend; yield once ``GET /v1/models`` lists ``model_name`` and
    ``/health`` lists every worker; always stop them.

    ``model_dir``: the model folder (tokenizer, config); by default the tiny one of ``mockservers/model_folder.py``
    is written into the work folder. ``worker_args`` are appended to each worker's command line, ``worker_env`` to
    the workers' environment, ``frontend_env`` to the frontend's (e.g. ``DYN_MIGRATION_LIMIT``). With
    ``worker="mock"`` the frontend gets ``DYN_VLLM_ENABLE_INFERENCE_V1_GENERATE=1``.

    ``workdir`` holds logs, the discovery state and the servers' caches; a temporary folder (removed on exit)
    when not given. Raises ``StackError`` (with log tails) when a process dies or readiness takes longer than
    ``ready_timeout`` seconds.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    with contextlib.ExitStack() as cleanup:
        if workdir is None:
            workdir = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="renderers-dynamo-"))
        work = Path(workdir).resolve()
        for sub in ("kv", "cache", "tmp", "home"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        if model_dir is None:
            model_dir = work / "model"
            write_model(Path(model_dir))
        py = python_path(python)
        model = str(Path(model_dir).resolve())
        http, xsub, xpub = free_loopback_ports(3)
        env = stack_env(work, xsub, xpub, extra_env)
        w_env = {**env, **(_mock_worker_env() if worker == "mock" else {}), **(worker_env or {})}
        f_env = {**env, **({"DYN_VLLM_ENABLE_INFERENCE_V1_GENERATE": "1"} if worker == "mock" else {})}
        f_env.update(frontend_env or {})
        stack = DynamoStack(
            url=f"http://{HOST}:{http}",
            model=model_name,
            workdir=work,
            ports={"http": http, "xsub": xsub, "xpub": xpub},
            worker_argv=[*worker_command(py, worker, model, model_name, max_model_len), *worker_args],
            worker_env=w_env,
        )
        cleanup.enter_context(terminate_on_signals())
        cleanup.callback(stop_all, stack.processes, stop_grace)
        deadline = time.monotonic() + ready_timeout

        relay = [py, str(PACKAGE_DIR / "zmq_relay.py"), str(xsub), str(xpub)]
        stack.processes.append(spawn("relay", relay, env=env, workdir=work))
        wait_until(stack.processes, "the ZMQ relay", lambda: port_open(xsub) and port_open(xpub), deadline)

        for i in range(workers):
            stack.processes.append(spawn(f"worker{i}", stack.worker_argv, env=w_env, workdir=work))
        frontend = [py, "-m", "dynamo.frontend", "--http-host", HOST, "--http-port", str(http)]
        stack.processes.append(spawn("frontend", frontend, env=f_env, workdir=work))
        wait_until(
            stack.processes,
            f"{stack.url}/v1/models to list {model_name!r} and /health {workers} worker(s)",
            lambda: model_name in listed_models(stack.url) and (workers == 1 or stack.instances() >= workers),
            deadline,
        )
        yield stack


HELP = "ZMQ relay + real Dynamo frontend + N mock-engine workers on 127.0.0.1 (needs renderers[dynamo])"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The stack's flags (``renderers-mock dynamo-stack``); arguments after ``--`` go to every worker."""
    p.description = (
        "Run a loopback Dynamo 1.6.1 stack: ZMQ relay, the real frontend and N workers (default: the mock engine, "
        "renderers-mock dynamo-worker). Arguments after -- go to every worker."
    )
    p.add_argument("--workers", type=int, default=1, help="number of workers (default: %(default)s)")
    p.add_argument("--worker", choices=WORKER_KINDS, default="mock", help="worker kind (default: %(default)s)")
    p.add_argument("--python", default=sys.executable, help="python with ai-dynamo 1.6.1 (default: this one)")
    p.add_argument("--model-dir", default=None, help="model folder (default: the tiny one, written for the run)")
    p.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    p.add_argument("--max-model-len", type=int, default=4096)
    p.add_argument("--migration-limit", type=int, default=0, help="the frontend's DYN_MIGRATION_LIMIT")
    p.add_argument("--workdir", default=None, help="logs and state (default: a temporary folder)")
    p.add_argument("worker_args", nargs="*", metavar="-- WORKER_ARG", help="arguments for every worker, after --")


def main(argv: Sequence[str] | None = None) -> int:
    """``renderers-mock dynamo-stack``: run the stack until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="renderers-mock dynamo-stack")
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the stack from parsed ``add_arguments`` flags until Ctrl-C; 1 when it does not come up."""
    rest = list(args.worker_args)
    # A shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT: restore Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    try:
        with dynamo_stack(
            python=args.python,
            model_dir=args.model_dir,
            model_name=args.model_name,
            workdir=args.workdir,
            worker=args.worker,
            workers=args.workers,
            max_model_len=args.max_model_len,
            worker_args=rest,
            frontend_env={"DYN_MIGRATION_LIMIT": str(args.migration_limit)},
        ) as stack:
            serve_until_interrupted(stack, started)
    except StackError as exc:
        print(f"renderers-mock dynamo-stack: {exc}", file=sys.stderr)
        return 1
    return 0
