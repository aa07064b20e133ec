"""pytest plugin (entry point ``pytest11: mockservers``): mock vLLM and mock Dynamo servers as fixtures.

* ``mock_vllm`` / ``mock_dynamo``: a server shared by the whole session (background thread, ephemeral loopback
  port), handed to each test with its faults and journal reset. Works in sync and async tests alike.
* ``mock_server_factory``: start servers with custom settings for one test, e.g.
  ``mock_server_factory("dynamo", moe_layers=2, routed_experts_mode="full")``; they stop after the test.
* ``dynamo_stack_factory``: the real Dynamo 1.6.1 frontend with N mock-engine workers
  (``renderers-mock dynamo-stack``); needs ``ai-dynamo`` in ``$RENDERERS_DYNAMO_PYTHON`` or the current Python.

Imports of aiohttp and the apps are deferred to fixture use, so loading the plugin costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mockservers.dynamo_stack import DynamoStack
    from mockservers.server import MockServer

MockServerFactory = Callable[..., "MockServer"]


def _start(kind: str, **overrides: Any) -> MockServer:
    from mockservers.server import MockServer

    overrides.setdefault("admin", True)
    return MockServer(kind, **overrides).start()


@pytest.fixture(scope="session")
def _mockservers_vllm_session() -> Iterator[MockServer]:
    server = _start("vllm")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _mockservers_dynamo_session() -> Iterator[MockServer]:
    server = _start("dynamo")
    yield server
    server.stop()


@pytest.fixture
def mock_vllm(_mockservers_vllm_session: MockServer) -> Iterator[MockServer]:
    """The session's mock vLLM (profile ``prime-rl``, built-in tokenizer), faults and journal reset for this test."""
    _mockservers_vllm_session.reset()
    yield _mockservers_vllm_session
    _mockservers_vllm_session.reset()


@pytest.fixture
def mock_dynamo(_mockservers_dynamo_session: MockServer) -> Iterator[MockServer]:
    """The session's mock Dynamo (``dynamo.vllm`` backend, strict validation), faults and journal reset."""
    _mockservers_dynamo_session.reset()
    yield _mockservers_dynamo_session
    _mockservers_dynamo_session.reset()


@pytest.fixture
def mock_server_factory() -> Iterator[MockServerFactory]:
    """Start servers with custom ``MockConfig`` fields: ``factory("vllm", vllm_profile="vllm-0.32")``."""
    started: list[MockServer] = []

    def factory(kind: str, **overrides: Any) -> MockServer:
        server = _start(kind, **overrides)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


# ---- the real Dynamo frontend with the mock engine as its workers ------------------------------------------------
DYNAMO_PYTHON_ENV = "RENDERERS_DYNAMO_PYTHON"
"""Path of a Python with ``ai-dynamo`` 1.6.1 for ``dynamo_stack_factory`` (default: the one running pytest)."""


def dynamo_python() -> str:
    """The interpreter the stacks run with: ``$RENDERERS_DYNAMO_PYTHON``, else the current one."""
    import os
    import sys

    return os.environ.get(DYNAMO_PYTHON_ENV) or sys.executable


@pytest.fixture
def dynamo_stack_factory(tmp_path: Any) -> Iterator[Callable[..., DynamoStack]]:
    """Start real Dynamo stacks for one test: ``dynamo_stack_factory(workers=2, worker_args=["--moe-layers", "2"])``
    (keyword arguments of ``mockservers.dynamo_stack.dynamo_stack``; by default the mock-engine worker, the
    interpreter of ``dynamo_python()`` and a work folder under the test's ``tmp_path``). Stopped after the test; a
    stack that cannot start fails the test with the processes' log tails."""
    import contextlib

    from mockservers.dynamo_stack import dynamo_stack

    with contextlib.ExitStack() as stacks:
        count = 0

        def factory(**kwargs: Any) -> DynamoStack:
            nonlocal count
            count += 1
            kwargs.setdefault("python", dynamo_python())
            kwargs.setdefault("worker", "mock")
            kwargs.setdefault("workdir", tmp_path / f"dynamo-stack-{count}")
            return stacks.enter_context(dynamo_stack(**kwargs))

        yield factory
