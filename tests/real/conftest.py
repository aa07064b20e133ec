"""Fixtures for the tests that talk to real servers (``nox -s real_dynamo``).

The session starts the servers and exports their address. A test that asks for a server which is not there
FAILS with the reason; it is never skipped. Importing this module has no side effects, so the default run
(which deselects the ``real_*`` markers) collects the folder without touching the network.
"""

from __future__ import annotations

import os

import httpx
import pytest

REAL_DYNAMO_URL_ENV = "RENDERERS_REAL_DYNAMO_URL"
REAL_DYNAMO_MODEL_ENV = "RENDERERS_REAL_DYNAMO_MODEL"
DEFAULT_MODEL = "tiny-qwen3"


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
