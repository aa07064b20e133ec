"""pytest plugin (entry point ``pytest11: mockservers``): mock vLLM and mock Dynamo servers as fixtures.

* ``mock_vllm`` / ``mock_dynamo``: a server shared by the whole session (background thread, ephemeral loopback
  port), handed to each test with its faults and journal reset. Works in sync and async tests alike.
* ``mock_server_factory``: start servers with custom settings for one test, e.g.
  ``mock_server_factory("dynamo", moe_layers=2, routed_experts_mode="full")``; they stop after the test.

Imports of aiohttp and the apps are deferred to fixture use, so loading the plugin costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
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
