"""Every check of this project is a nox session. ``nox -l`` lists them.

The default run (``nox``) is what CI runs: lint, typecheck and tests.
Opt-in sessions (``default=False``) need more time or real servers.
"""

from __future__ import annotations

import os

import nox

nox.needs_version = ">=2025.02.09"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHON = "3.11"

# Markers of tests that need something the default run does not have.
OPT_IN_MARKERS = ("real_dynamo", "real_vllm", "real_dynamo_vllm", "bench", "fuzz")
DEFAULT_SELECTION = " and ".join(f"not {m}" for m in OPT_IN_MARKERS)


def install_project(session: nox.Session, *groups: str) -> None:
    """Install the project (editable, all extras) and the named dependency groups."""
    deps: list[str] = []
    for group in groups:
        deps.extend(nox.project.dependency_groups(PYPROJECT, group))
    session.install("-e", ".[openai,testing]", *deps)


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
