"""Every check of this project is a nox session. ``nox -l`` lists them.

The default run (``nox``) is what CI runs: lint, typecheck and tests.
Opt-in sessions (``default=False``) need more time or real servers.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nox

nox.needs_version = ">=2025.02.09"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHON = "3.11"
TRL = "trl==1.16.0"

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
        # trl only for its verbatim upstream chat templates (read as files, never imported); its own
        # dependencies (torch, datasets, ...) are not wanted.
        session.install("--no-deps", TRL)


def run_pytest(session: nox.Session, *args: str) -> None:
    """Run pytest; exit 5 (nothing collected) is a failure with its own message, never a silent pass."""
    env = {"HYPOTHESIS_PROFILE": os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")}
    try:
        session.run("pytest", *args, env=env)
    except nox.command.CommandFailed as exc:
        if getattr(exc, "reason", None) == "Returned code 5":
            session.error("pytest collected no tests: the selection is wrong or the tests are missing")
        raise


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the library, the mock servers and the noxfile."""
    install_project(session, "typecheck")
    session.run("mypy", "src/renderers", "mockservers", "noxfile.py")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit, property and conformance tests against the in-process mocks (no real servers)."""
    install_project(session, "test")
    run_pytest(session, "-m", DEFAULT_SELECTION, *session.posargs)


# ---------------------------------------------------------------------------------------------------------------------
# Real servers. `real_dynamo` is light (about a minute with a cached runtime venv) and CI runs it by name
# (`.ci/run`); it is not in `nox.options.sessions`, so a bare `nox` does not start servers.

ROOT = Path(__file__).resolve().parent
DYNAMO_RUNTIME_PINS = ROOT / "tools" / "real_dynamo" / "dynamo-runtime.txt"
DYNAMO_RUNTIME_VENV = ROOT / ".nox" / "dynamo-runtime"
REAL_DYNAMO_URL_ENV = "RENDERERS_REAL_DYNAMO_URL"
REAL_DYNAMO_MODEL_ENV = "RENDERERS_REAL_DYNAMO_MODEL"


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
    """Tests against a real Dynamo 1.6.1 frontend + mocker worker on loopback (tests marked real_dynamo)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tools.real_dynamo.launch import DEFAULT_MODEL_NAME, StackError, dynamo_stack

    install_project(session, "test")
    python = dynamo_runtime(session)
    with tempfile.TemporaryDirectory(prefix="renderers-real-dynamo-") as tmp:
        model_dir = Path(tmp) / "tiny-qwen3"
        session.run(
            str(python), str(ROOT / "tools" / "real_dynamo" / "make_tiny_model.py"), str(model_dir), external=True
        )
        try:
            with dynamo_stack(python=python, model_dir=model_dir, workdir=Path(tmp) / "stack") as stack:
                session.log(f"Dynamo is up at {stack.url} (pids {stack.pids})")
                session.env[REAL_DYNAMO_URL_ENV] = stack.url
                session.env[REAL_DYNAMO_MODEL_ENV] = DEFAULT_MODEL_NAME
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
# Conformance: the same suite the default `tests` session runs (tests/conformance, the conformance property tests),
# with the `long` hypothesis profile (1000 examples per property; the property file draws 4x that).

CONFORMANCE_PATHS = ("tests/conformance", "tests/property/test_conformance_props.py")


@nox.session(python=PYTHON, default=False)
def conformance(session: nox.Session) -> None:
    """vLLM vs Dynamo conformance against the mocks, long hypothesis profile (about 3 minutes on 2 cores)."""
    install_project(session, "test")
    env = {"HYPOTHESIS_PROFILE": os.environ.get("RENDERERS_CONFORMANCE_PROFILE", "long")}
    session.run("pytest", "-m", DEFAULT_SELECTION, "--hypothesis-show-statistics", *CONFORMANCE_PATHS,
                *session.posargs, env=env)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# Benchmarks (opt-in; a few minutes of both cores: run it on a machine nobody else is measuring on).

PEER_RENDERERS = "renderers==0.1.12"


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: writes docs/benchmarks.md and docs/benchmarks.png (about 3-5 minutes).

    ``nox -s bench -- --quick`` is a smoke run (writes under /tmp); ``nox -s bench -- parse memory`` runs a selection.
    The published peer (``renderers==0.1.12``, same distribution name as this project) goes into a separate
    ``--target`` directory of this session and is loaded from there under another module name, never on sys.path.
    """
    install_project(session, "test")
    session.install("matplotlib", "psutil")
    peer_dir = Path(session.create_tmp()) / "peer-renderers-0.1.12"
    if not (peer_dir / "renderers" / "client.py").is_file():
        shutil.rmtree(peer_dir, ignore_errors=True)
        session.run("python", "-m", "pip", "install", "--no-deps", "--target", str(peer_dir), PEER_RENDERERS)
    session.run("python", "-m", "benchmarks.run", *session.posargs, env={"RENDERERS_BENCH_PEER_DIR": str(peer_dir)})


# ---------------------------------------------------------------------------------------------------------------------
# Fuzzing and reliability (opt-in; about 10 minutes of both cores).

FUZZ_PATHS = ("tests/fuzz", "tests/reliability")
FUZZ_SELECTION = " and ".join(f"not {m}" for m in OPT_IN_MARKERS if m != "fuzz")


@nox.session(python=PYTHON, default=False)
def fuzz(session: nox.Session) -> None:
    """Client and server fuzzing, the fault table and the 10,000 x 256 load test: over 100,000 generated examples.

    Runs every test under tests/fuzz and tests/reliability, the ``fuzz``-marked long ones included, and prints the
    example counts at the end. ``RENDERERS_WRITE_RELIABILITY_DOC=1 nox -s fuzz`` also writes the measured fault
    table into docs/reliability.md.
    """
    install_project(session, "test")
    session.run("pytest", "-m", FUZZ_SELECTION, "-p", "no:cacheprovider", *FUZZ_PATHS, *session.posargs)
