"""Realistic response and request bodies, built deterministically (seeded RNG) in both wire shapes.

- vLLM (prime-rl profile, ``POST /inference/v1/generate``): ``choices[0].token_ids``, per-token
  ``choices[0].logprobs.content[*] = {token: "token_id:N", logprob, bytes: null, top_logprobs: [...]}`` and
  ``choices[0].routed_experts = {data, shape, start, dtype}``.
- Dynamo (``POST /v1/chat/completions`` + nvext): ``nvext.engine_data.completion_token_ids``,
  ``nvext.engine_data.completion_logprobs`` and ``nvext.engine_data.routed_experts``. ``choices[0].logprobs`` is
  null here, so the Dynamo rows measure the flat-list shape (the per-token chat entries are what the vLLM rows
  measure).

Token ids are uniform in [0, 151936); logprobs are float32 values widened to Python floats (17 significant
digits in JSON, as a torch-based server prints them); routing is uniform uint8 in [0, 128). Bodies are compact
JSON (orjson), with the base64 spliced in after encoding, as the servers do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson
import pybase64

VOCAB: Final = 151_936
MODEL: Final = "bench-model"
_PLACEHOLDER: Final = "\u2063routed\u2063"


@dataclass(frozen=True)
class Spec:
    """A response size: completion tokens, and the routing table shape (``None``: a dense model)."""

    name: str
    tokens: int
    routed: tuple[int, int, int] | None = None

    @property
    def prompt_len(self) -> int:
        """The prompt length that makes ``rows == prompt + completion - 1`` (1 token: the table is the completion's)."""
        return 1 if self.routed is None else self.routed[0] - self.tokens + 1


SPECS: Final = (
    Spec("a_4k", 4096),
    Spec("b_32k", 32768),
    Spec("c_32k_routed", 32768, (32768, 48, 8)),
)


@dataclass(frozen=True)
class Payload:
    """What a response carries, independent of the wire shape."""

    ids: list[int]
    logprobs: list[float]
    routed: npt.NDArray[np.uint8] | None


def make_payload(spec: Spec, seed: int = 1234) -> Payload:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, size=spec.tokens).tolist()
    lp32 = -rng.exponential(0.7, size=spec.tokens).astype(np.float32)
    logprobs = lp32.astype(np.float64).tolist()
    routed = None
    if spec.routed is not None:
        routed = rng.integers(0, 128, size=spec.routed, dtype=np.uint8)
    return Payload(ids, logprobs, routed)


def _routed_object(arr: npt.NDArray[np.uint8] | None) -> dict[str, Any] | None:
    if arr is None:
        return None
    return {"data": _PLACEHOLDER, "shape": list(arr.shape), "start": 0, "dtype": "uint8"}


def _splice(obj: dict[str, Any], arr: npt.NDArray[np.uint8] | None) -> bytes:
    body = orjson.dumps(obj)
    if arr is None:
        return body
    marker = orjson.dumps(_PLACEHOLDER)
    assert body.count(marker) == 1
    return body.replace(marker, b'"' + pybase64.b64encode(arr.data) + b'"')


def vllm_body(p: Payload, prompt_len: int = 1) -> bytes:
    """A prime-rl vLLM ``/inference/v1/generate`` response (``logprobs=1``: one top entry, the sampled token)."""
    content = []
    for tid, lp in zip(p.ids, p.logprobs, strict=True):
        tok = f"token_id:{tid}"
        content.append(
            {"token": tok, "logprob": lp, "bytes": None, "top_logprobs": [{"token": tok, "logprob": lp, "bytes": None}]}
        )
    n = len(p.ids)
    doc = {
        "request_id": "generate-tokens-0123456789abcdef",
        "model": None,
        "created": None,
        "choices": [
            {
                "index": 0,
                "logprobs": {"content": content},
                "finish_reason": "length",
                "token_ids": p.ids,
                "routed_experts": _routed_object(p.routed),
            }
        ],
        "prompt_logprobs": None,
        "kv_transfer_params": None,
        "usage": {"prompt_tokens": prompt_len, "total_tokens": prompt_len + n, "completion_tokens": n},
    }
    return _splice(doc, p.routed)


def dynamo_body(p: Payload, prompt_len: int = 1) -> bytes:
    """A Dynamo chat completion with ``nvext.engine_data`` (ids, flat logprobs, routing)."""
    n = len(p.ids)
    engine: dict[str, Any] = {
        "prompt_token_ids": list(range(prompt_len)),
        "kv_cache_hit": {"prompt_tokens": prompt_len, "reused_tokens": 0},
        "completion_token_ids": p.ids,
        "finished": True,
        "completion_logprobs": p.logprobs,
    }
    if p.routed is not None:
        engine["routed_experts"] = _routed_object(p.routed)
    doc = {
        "id": "chatcmpl-0b6f1f2e-5c57-4a0e-9d43-2f6c3c1f0e11",
        "choices": [
            {
                "index": 0,
                "message": {"content": "lorem ipsum " * (n // 3), "refusal": None, "role": "assistant"},
                "finish_reason": "length",
                "logprobs": None,
            }
        ],
        "created": 1764000000,
        "model": MODEL,
        "object": "chat.completion",
        "usage": {"prompt_tokens": prompt_len, "completion_tokens": n, "total_tokens": prompt_len + n},
        "nvext": {"engine_data": engine},
    }
    return _splice(doc, p.routed)


SHAPES: Final = {"vllm": vllm_body, "dynamo": dynamo_body}


# ---- request bodies -----------------------------------------------------------------------------------------
STOP_IDS: Final = [151645, 151643]


def prompt_ids(n: int, seed: int = 99) -> list[int]:
    ids: list[int] = np.random.default_rng(seed).integers(0, VOCAB, size=n).tolist()
    return ids


def sampling_params() -> dict[str, Any]:
    """What ``generate()`` hands the transport: caller params plus the stop ids, ``logprobs=1`` and the default."""
    return {
        "max_tokens": 4096,
        "temperature": 1.0,
        "top_p": 1.0,
        "stop_token_ids": list(STOP_IDS),
        "logprobs": 1,
        "skip_special_tokens": False,
    }


def vllm_request_dict(ids: list[int]) -> dict[str, Any]:
    """The same document the client's vLLM transport builds for these ids (checked by the smoke test)."""
    return {"model": MODEL, "token_ids": ids, "sampling_params": sampling_params()}
