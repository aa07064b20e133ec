"""One settings object shared by the CLI, the pytest plugin and both applications."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mockservers.faults import FaultSpec

VllmProfile = Literal["prime-rl", "vllm-0.32"]
RoutedExpertsMode = Literal["full", "trimmed", "absent"]
DynamoBackend = Literal["vllm", "mocker", "sample"]

BUILTIN_TOKENIZER = Path(__file__).parent / "data" / "tiny-qwen3"
VLLM_PROFILES: tuple[str, ...] = ("prime-rl", "vllm-0.32")
ROUTED_EXPERTS_MODES: tuple[str, ...] = ("full", "trimmed", "absent")
DYNAMO_BACKENDS: tuple[str, ...] = ("vllm", "mocker", "sample")


@dataclass(frozen=True)
class MockConfig:
    """Every knob of a mock server. Field names match the CLI flags (``max_model_len`` is ``--max-model-len``)."""

    host: str = "127.0.0.1"
    """Interface to bind. Loopback by default."""
    port: int = 0
    """TCP port; 0 picks a free ephemeral port."""
    model: str = "tiny-qwen3"
    """Served model name: the only name accepted in ``model`` and listed by ``GET /v1/models``."""
    tokenizer: Path = BUILTIN_TOKENIZER
    """Folder with ``tokenizer.json`` (+ optional ``tokenizer_config.json``). Default: the built-in tiny tokenizer."""
    max_model_len: int | None = None
    """Context length (prompt + completion). None: ``model_max_length`` from the tokenizer config, else 2048."""
    seed: int = 0
    """Sampling seed used when a request carries none. Greedy decoding does not depend on it."""
    eos_period: int = 128
    """The model emits its EOS token at positions whose prefix hash is 0 modulo this (mean length); 0 = never."""

    moe_layers: int = 0
    """MoE layers whose routing is returned; 0 = dense model, no routed experts."""
    moe_top_k: int = 8
    """Experts chosen per token and layer."""
    num_experts: int = 128
    """Experts per layer; ids are uint8 when <= 256, else uint16."""

    ttft_s: float = 0.0
    """Simulated time to first token, seconds."""
    per_token_s: float = 0.0
    """Simulated time per generated token after the first, seconds."""

    vllm_profile: VllmProfile = "prime-rl"
    """Mock vLLM wire profile: ``prime-rl`` (what RL stacks run) or ``vllm-0.32`` (the recorded upstream shape)."""
    routed_experts_mode: RoutedExpertsMode = "full"
    """Mock Dynamo: ``full`` (1.6.1: start 0; ``nvext.routed_experts_prompt_start`` rejected), ``trimmed``, ``absent``.
    """
    dynamo_backend: DynamoBackend = "vllm"
    """Mock Dynamo worker behind the frontend: ``vllm`` (engine_data, logprobs), ``mocker`` (neither), ``sample``."""
    lax_validation: bool = False
    """Mock Dynamo: drop unsupported top-level keys instead of 400 (``DYN_IGNORE_OPENAI_FE_UNSUPPORTED_FIELDS=1``)."""
    choice_logprobs_f32: bool = True
    """Mock Dynamo: print ``choices[].logprobs`` values at float32 precision, as the real frontend does."""

    faults: FaultSpec = field(default_factory=FaultSpec)
    """Fault applied to every request (a request's ``x-mock-fault`` header overrides it)."""
    admin: bool = False
    """Enable ``POST/GET/DELETE /_mock/faults`` (the journal at ``/_mock/requests`` is always served)."""
    journal_size: int = 1000
    """Requests kept in the journal (a ring buffer)."""
    max_body_bytes: int = 64 * 1024 * 1024
    """Request bodies above this get 413."""
    hang_max_s: float = 600.0
    """Upper bound of a ``hang`` fault, so a forgotten hang cannot pin a server forever."""
    access_log: bool = False
    """aiohttp access log (off: it costs CPU under load)."""

    def __post_init__(self) -> None:
        problems = []
        if self.vllm_profile not in VLLM_PROFILES:
            problems.append(f"vllm_profile must be one of {', '.join(VLLM_PROFILES)}, got {self.vllm_profile!r}")
        if self.routed_experts_mode not in ROUTED_EXPERTS_MODES:
            modes = ", ".join(ROUTED_EXPERTS_MODES)
            problems.append(f"routed_experts_mode must be one of {modes}, got {self.routed_experts_mode!r}")
        if self.dynamo_backend not in DYNAMO_BACKENDS:
            problems.append(f"dynamo_backend must be one of {', '.join(DYNAMO_BACKENDS)}, got {self.dynamo_backend!r}")
        if self.moe_layers < 0:
            problems.append("moe_layers must be >= 0")
        if self.moe_layers and not 1 <= self.moe_top_k <= self.num_experts:
            problems.append("moe_top_k must be between 1 and num_experts")
        if self.moe_layers and not 1 <= self.num_experts <= 65536:
            problems.append("num_experts must be between 1 and 65536")
        if self.max_model_len is not None and self.max_model_len < 1:
            problems.append("max_model_len must be >= 1")
        if self.eos_period < 0:
            problems.append("eos_period must be >= 0")
        if min(self.ttft_s, self.per_token_s) < 0:
            problems.append("latencies must be >= 0")
        if self.journal_size < 1 or self.max_body_bytes < 1:
            problems.append("journal_size and max_body_bytes must be >= 1")
        if not 0 <= self.port <= 65535:
            problems.append("port must be in 0..65535")
        if problems:
            raise ValueError("; ".join(problems))

    def replace(self, **changes: Any) -> MockConfig:
        """A copy with some fields changed (validated again). ``tokenizer`` accepts a str path."""
        if "tokenizer" in changes and changes["tokenizer"] is not None:
            changes["tokenizer"] = Path(changes["tokenizer"])
        if isinstance(changes.get("faults"), dict):
            changes["faults"] = FaultSpec.from_mapping(changes["faults"])
        return dataclasses.replace(self, **changes)
