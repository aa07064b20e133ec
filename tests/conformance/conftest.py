"""Servers for the conformance suite: pairs of in-process mocks (through the mockservers pytest plugin) per MoE
shape and wire variant, started on first use and shared by every hypothesis example of a test."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from mockservers.pytest_plugin import MockServerFactory
from mockservers.server import MockServer
from renderers.testing.strategies import MoeSettings

T = TypeVar("T")

MODEL = "tiny-qwen3"
VOCAB_SIZE = 2304  # the built-in tiny tokenizer
EOS_ID = 2303  # <|im_end|>
MAX_MODEL_LEN = 4096  # prompts of a few thousand ids fit
CLIENT_TIMEOUT = 1.0  # seconds: hangs and delays are judged against this

#: Variants of each server kind: the two vLLM wire profiles, Dynamo with full (1.6.1) and trimmed routing.
VLLM_VARIANTS: dict[str, dict[str, Any]] = {"prime-rl": {"vllm_profile": "prime-rl"},
                                            "vllm-0.32": {"vllm_profile": "vllm-0.32"}}  # fmt: skip
DYNAMO_VARIANTS: dict[str, dict[str, Any]] = {"full": {"routed_experts_mode": "full"},
                                              "trimmed": {"routed_experts_mode": "trimmed"}}  # fmt: skip


class Servers:
    """Mock servers keyed by (kind, variant, MoE shape), started lazily with the plugin's factory."""

    def __init__(self, factory: MockServerFactory, **common: Any) -> None:
        self._factory = factory
        self._common = {"max_model_len": MAX_MODEL_LEN, **common}
        self._started: dict[tuple[str, str, MoeSettings], MockServer] = {}

    def get(self, kind: str, variant: str, moe: MoeSettings) -> MockServer:
        key = (kind, variant, moe)
        server = self._started.get(key)
        if server is None:
            fields = (VLLM_VARIANTS if kind == "vllm" else DYNAMO_VARIANTS)[variant]
            server = self._factory(kind, **self._common, **fields, **moe.server_config())
            self._started[key] = server
        return server


@pytest.fixture
def servers(mock_server_factory: MockServerFactory) -> Servers:
    return Servers(mock_server_factory)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one example's coroutine (hypothesis examples are synchronous; clients live inside the loop)."""
    return asyncio.run(coro)
