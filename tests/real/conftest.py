"""Fixtures for the tests that talk to real servers (``nox -s real_dynamo``, ``real_vllm``, ``real_dynamo_vllm``).

The session starts the servers and exports their address. A test that asks for a server which is not there
FAILS with the reason; it is never skipped. Importing this module has no side effects, so the default run
(which deselects the ``real_*`` markers) collects the folder without touching the network.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mockservers.dynamo_stack import DynamoStack, dynamo_stack
from mockservers.pytest_plugin import dynamo_python
from mockservers.server import MockServer
from renderers.testing.strategies import MoeSettings

REAL_DYNAMO_URL_ENV = "RENDERERS_REAL_DYNAMO_URL"
REAL_DYNAMO_MODEL_ENV = "RENDERERS_REAL_DYNAMO_MODEL"
DEFAULT_MODEL = "tiny-qwen3"
REAL_VLLM_URL_ENV = "RENDERERS_REAL_VLLM_URL"
REAL_VLLM_MODEL_ENV = "RENDERERS_REAL_VLLM_MODEL"
REAL_DYNAMO_VLLM_URL_ENV = "RENDERERS_REAL_DYNAMO_VLLM_URL"
DEFAULT_VLLM_MODEL = "tiny"


# Measurements tests want shown at the end of the run (name -> text), e.g. the largest logprob difference seen.
REPORT: pytest.StashKey[dict[str, str]] = pytest.StashKey()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[REPORT] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    report = config.stash.get(REPORT, {})
    if report:
        terminalreporter.section("real-server measurements")
        for name, text in report.items():
            terminalreporter.write_line(f"{name}: {text}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this folder needs a real server: refuse one that forgot its ``real_*`` marker."""
    for item in items:
        if "tests/real/" in item.nodeid.replace("\\", "/") and not any(
            m.name.startswith("real_") for m in item.iter_markers()
        ):
            raise pytest.UsageError(f"{item.nodeid} is in tests/real but has no real_* marker")


@pytest.fixture(scope="session")
def real_dynamo_model() -> str:
    """The model name the real Dynamo worker registered."""
    return os.environ.get(REAL_DYNAMO_MODEL_ENV) or DEFAULT_MODEL


@pytest.fixture(scope="session")
def real_dynamo_url(real_dynamo_model: str) -> str:
    """Base URL of a running real Dynamo frontend whose ``/v1/models`` lists the model; fails otherwise."""
    url = os.environ.get(REAL_DYNAMO_URL_ENV, "").rstrip("/")
    if not url:
        pytest.fail(
            f"{REAL_DYNAMO_URL_ENV} is not set. These tests need a real Dynamo frontend: run `nox -s real_dynamo`, "
            f"or start one with tools/real_dynamo/launch.py and export {REAL_DYNAMO_URL_ENV}.",
            pytrace=False,
        )
    try:
        resp = httpx.get(f"{url}/v1/models", timeout=10.0)
        resp.raise_for_status()
        listed = [m.get("id") for m in resp.json().get("data", [])]
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        pytest.fail(f"the real Dynamo frontend at {url} is unreachable or broken: {exc!r}", pytrace=False)
    if real_dynamo_model not in listed:
        pytest.fail(f"the real Dynamo frontend at {url} does not list {real_dynamo_model!r} (it lists {listed})")
    return url


def _server_url(env: str, what: str, how: str, model: str) -> str:
    """The base URL in ``env`` of a server whose ``/v1/models`` lists ``model``; fails (never skips) otherwise."""
    url = os.environ.get(env, "").rstrip("/")
    if not url:
        pytest.fail(f"{env} is not set. These tests need {what}: {how}.", pytrace=False)
    try:
        resp = httpx.get(f"{url}/v1/models", timeout=10.0)
        resp.raise_for_status()
        listed = [m.get("id") for m in resp.json().get("data", [])]
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        pytest.fail(f"{what} at {url} is unreachable or broken: {exc!r}", pytrace=False)
    if model not in listed:
        pytest.fail(f"{what} at {url} does not list {model!r} (it lists {listed})", pytrace=False)
    return url


@pytest.fixture(scope="session")
def real_vllm_model() -> str:
    """The served model name of the real vLLM server."""
    return os.environ.get(REAL_VLLM_MODEL_ENV) or DEFAULT_VLLM_MODEL


@pytest.fixture(scope="session")
def real_vllm_url(real_vllm_model: str) -> str:
    """Base URL of a running real vLLM server (``--enable-scale-out``) serving the tiny model; fails otherwise."""
    return _server_url(
        REAL_VLLM_URL_ENV,
        "a real vLLM server",
        f"run `nox -s real_vllm`, or start one with tools/real_vllm/launch.py and export {REAL_VLLM_URL_ENV}",
        real_vllm_model,
    )


@pytest.fixture(scope="session")
def real_dynamo_vllm_url(real_vllm_model: str) -> str:
    """Base URL of a real Dynamo frontend whose worker is the real ``dynamo.vllm`` over the same weights."""
    return _server_url(
        REAL_DYNAMO_VLLM_URL_ENV,
        "a real Dynamo frontend with the dynamo.vllm worker",
        "run `nox -s real_dynamo_vllm`",
        real_vllm_model,
    )


# ---- the real Dynamo frontend with the mock engine as its workers (tests that start their own stacks) -----------
ENGINE_MOE = MoeSettings(2, 4, 300)  # uint16 expert ids: the widest payload
ENGINE_MOE_CONFIG: dict[str, Any] = ENGINE_MOE.server_config()
"""The same shape as ``MockConfig`` fields for the pure-Python mocks."""
ENGINE_MAX_MODEL_LEN = 4096


@pytest.fixture(scope="session")
def engine_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DynamoStack]:
    """The real frontend with two mock-engine workers (MoE ``ENGINE_MOE``), ``/inference/v1/generate`` on.
    Runs with ``$RENDERERS_DYNAMO_PYTHON`` (``nox -s real_dynamo`` sets it to its runtime venv)."""
    args = ["--moe-layers", "2", "--moe-top-k", "4", "--num-experts", "300"]
    with dynamo_stack(python=dynamo_python(), worker="mock", workers=2, workdir=tmp_path_factory.mktemp("engine"),
                      max_model_len=ENGINE_MAX_MODEL_LEN, worker_args=args) as stack:  # fmt: skip
        yield stack


@pytest.fixture(scope="session")
def mock_vllm_moe() -> Iterator[MockServer]:
    """The pure-Python mock vLLM with the engine stack's MoE shape and context."""
    with MockServer("vllm", max_model_len=ENGINE_MAX_MODEL_LEN, **ENGINE_MOE_CONFIG) as server:
        yield server


@pytest.fixture(scope="session")
def mock_dynamo_moe() -> Iterator[MockServer]:
    """The pure-Python mock Dynamo (``dynamo.vllm`` backend, full routing) with the engine stack's MoE shape."""
    with MockServer("dynamo", max_model_len=ENGINE_MAX_MODEL_LEN, **ENGINE_MOE_CONFIG) as server:
        yield server
