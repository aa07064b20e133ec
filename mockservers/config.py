"""``MockConfig``: every setting of a mock server, under one name each.

A field's name is its name everywhere: the keyword of ``MockServer(...)`` and of the pytest fixtures
(``mock_server_factory("dynamo", moe_layers=2)``), and the command-line flag (``--moe-layers``), which
``mockservers.cli`` generates from the fields below (their ``help`` and ``server`` metadata). The fault fields inside
``faults`` have the same names in ``--faults``, the ``x-mock-fault`` header and ``POST /_mock/faults``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from mockservers.faults import FaultError, FaultSpec

ServerKind = Literal["vllm", "dynamo"]
VllmProfile = Literal["prime-rl", "vllm-0.32"]
RoutedExpertsMode = Literal["full", "trimmed", "absent"]
DynamoBackend = Literal["vllm", "mocker", "sample"]

BUILTIN_TOKENIZER = Path(__file__).parent / "data" / "tiny-qwen3"
SERVER_KINDS: tuple[str, ...] = get_args(ServerKind)
VLLM_PROFILES: tuple[str, ...] = get_args(VllmProfile)
ROUTED_EXPERTS_MODES: tuple[str, ...] = get_args(RoutedExpertsMode)
DYNAMO_BACKENDS: tuple[str, ...] = get_args(DynamoBackend)


def setting(default: Any, help: str, *, server: ServerKind | None = None, cli_default: Any = None) -> Any:
    """A ``MockConfig`` field: its default, the one-line help the CLI shows, and the server it applies to (None:
    both). ``cli_default`` is the command line's default when it differs (``port``: 8000 rather than "any")."""
    meta = {"help": help, "server": server, "cli_default": cli_default}
    if isinstance(default, FaultSpec):
        return field(default_factory=FaultSpec, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class MockConfig:
    """Every knob of a mock server (see the module docstring for where each name is used)."""

    host: str = setting("127.0.0.1", "interface to bind (loopback by default)")
    port: int = setting(0, "TCP port; 0 picks a free port", cli_default=8000)
    model: str = setting("tiny-qwen3", "served model name: the only name accepted in `model`, listed by /v1/models")
    tokenizer: Path = setting(BUILTIN_TOKENIZER, "folder with tokenizer.json (+ tokenizer_config.json)")
    max_model_len: int | None = setting(None, "context length; default: the tokenizer config's, else 2048")
    seed: int = setting(0, "sampling seed of requests without one (greedy decoding ignores it)")
    eos_period: int = setting(128, "mean tokens before the model emits EOS; 0 = never")
    max_num_seqs: int = setting(256, "sequences the engine runs at once: the largest `n` vLLM accepts", server="vllm")

    moe_layers: int = setting(2, "MoE layers whose routing is returned; 0 = a dense model, no routed experts")
    moe_top_k: int = setting(8, "experts chosen per token and layer")
    num_experts: int = setting(128, "experts per layer (ids are uint8 up to 256, else uint16)")

    ttft_s: float = setting(0.0, "simulated time to first token, seconds")
    per_token_s: float = setting(0.0, "simulated time per further generated token, seconds")

    vllm_profile: VllmProfile = setting(
        "prime-rl",
        "wire profile: prime-rl (what RL stacks run) or vllm-0.32 (the recorded upstream shape)",
        server="vllm",
    )
    routed_experts_mode: RoutedExpertsMode = setting(
        "full",
        "full (1.6.1: start 0, nvext.routed_experts_prompt_start rejected), trimmed (honours it), absent",
        server="dynamo",
    )
    dynamo_backend: DynamoBackend = setting(
        "vllm", "worker behind the frontend: vllm (engine_data, logprobs), mocker (neither), sample", server="dynamo"
    )
    lax_validation: bool = setting(
        False,
        "drop unsupported top-level keys instead of 400 (DYN_IGNORE_OPENAI_FE_UNSUPPORTED_FIELDS=1)",
        server="dynamo",
    )
    choice_logprobs_f32: bool = setting(
        True, "print choices[].logprobs at float32 precision, as the real frontend does", server="dynamo"
    )

    faults: FaultSpec = setting(FaultSpec(), 'fault of every request, header syntax: "status=503; fail_first=2"')
    admin: bool = setting(False, "serve POST/GET/DELETE /_mock/faults (the journal /_mock/requests is always served)")
    journal_size: int = setting(256, "requests kept by the journal (a ring buffer)")
    max_body_bytes: int = setting(64 * 1024 * 1024, "larger request bodies get 413")
    hang_max_s: float = setting(600.0, "upper bound of a `hang` fault, seconds")
    access_log: bool = setting(False, "log every request (off: it costs CPU under load)")

    def __post_init__(self) -> None:
        problems = []
        for name, allowed in (
            ("vllm_profile", VLLM_PROFILES),
            ("routed_experts_mode", ROUTED_EXPERTS_MODES),
            ("dynamo_backend", DYNAMO_BACKENDS),
        ):
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.moe_layers < 0:
            problems.append(f"moe_layers must be >= 0, got {self.moe_layers}")
        if self.moe_layers and not 1 <= self.num_experts <= 65536:
            problems.append(f"num_experts must be between 1 and 65536, got {self.num_experts}")
        elif self.moe_layers and not 1 <= self.moe_top_k <= self.num_experts:
            problems.append(f"moe_top_k must be between 1 and num_experts={self.num_experts}, got {self.moe_top_k}")
        if self.max_model_len is not None and self.max_model_len < 1:
            problems.append(f"max_model_len must be >= 1, got {self.max_model_len}")
        if self.max_num_seqs < 1:
            problems.append(f"max_num_seqs must be >= 1, got {self.max_num_seqs}")
        if self.eos_period < 0:
            problems.append(f"eos_period must be >= 0, got {self.eos_period}")
        for name in ("ttft_s", "per_token_s", "hang_max_s"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("journal_size", "max_body_bytes"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            problems.append(f"port must be in 0..65535, got {self.port}")
        if problems:
            raise ValueError("; ".join(problems))

    def replace(self, **changes: Any) -> MockConfig:
        """A copy with some fields changed (validated again). ``tokenizer`` accepts a str path, ``faults`` a
        ``FaultSpec``, a mapping of fault fields or the header syntax."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(
                f"unknown MockConfig setting(s) {', '.join(map(repr, unknown))}; known: {', '.join(FIELDS)}"
            )
        if changes.get("tokenizer") is not None:
            changes["tokenizer"] = Path(changes["tokenizer"])
        faults = changes.get("faults")
        if isinstance(faults, dict):
            changes["faults"] = FaultSpec.from_mapping(faults)
        elif isinstance(faults, str):
            changes["faults"] = FaultSpec.parse(faults)
        elif faults is None and "faults" in changes:
            changes["faults"] = FaultSpec()
        return dataclasses.replace(self, **changes)


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(MockConfig))

__all__ = ["BUILTIN_TOKENIZER", "FIELDS", "FaultError", "MockConfig", "ServerKind"]
