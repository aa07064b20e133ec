"""Hypothesis strategies for ``generate()`` calls that every conforming vLLM / Dynamo pair must answer alike.

Everything drawn here is valid on both servers (values inside the intersection of what vLLM and Dynamo accept),
so any difference in the outcome is a transport difference, never a validation difference:

- ``prompt_ids``: lengths 1 to ``max_len`` (short explicit lists that shrink well, and long pseudo-random ones),
  ids across ``[0, vocab_size)`` with both ends of the vocabulary included;
- ``sampling_params``: ``max_tokens`` (always set: a conformance run must stay cheap on a real server),
  ``min_tokens``, ``temperature`` (0 included, as int and float), ``seed``, ``ignore_eos``, ``top_logprobs`` and
  passthrough keys both servers accept (``top_p``, ``top_k``, penalties, ``min_p``, ``detokenize``...);
- ``cache_salt`` (non-empty, without the characters vLLM refuses), ``priority`` (the negation must fit Dynamo's
  i32), a caller ``nvext`` (``greed_sampling`` only
  with temperature 0: vLLM has no such knob, so it would change the tokens on one side only);
- ``routed_experts_prompt_start``: absent, 0, inside the prompt, or at the end of a previous turn;
- ``moe_settings``: MoE shapes for servers the caller starts (uint8 and uint16 expert ids, dense).

Needs the ``testing`` extra (``pip install 'renderers[testing]'``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    from renderers.testing import HYPOTHESIS_MISSING

    raise ImportError(HYPOTHESIS_MISSING) from exc

__all__ = [
    "INT32_MAX",
    "PASSTHROUGH_KEYS",
    "Case",
    "MoeSettings",
    "caller_nvext",
    "cases",
    "moe_settings",
    "priorities",
    "prompt_ids",
    "prompt_starts",
    "sampling_params",
    "stop_token_ids",
]

INT32_MAX = 2**31 - 1
#: Short prompts are drawn element by element (they shrink to a minimal example); longer ones from a seed.
SHORT_PROMPT = 32


@dataclass(frozen=True)
class Case:
    """One ``generate()`` call: the same on every transport.

    ``stop_token_ids`` are the renderer's stop ids (``generate()`` sends the renderer's list as
    ``stop_token_ids``, whatever the caller put in ``sampling_params``). ``sampling_params`` carries
    ``routed_experts_prompt_start`` and the caller ``nvext`` when drawn.
    """

    prompt_ids: list[int]
    sampling_params: dict[str, Any]
    stop_token_ids: list[int] = field(default_factory=list)
    cache_salt: str | None = None
    priority: int | None = None

    @property
    def prompt_start(self) -> int | None:
        value = self.sampling_params.get("routed_experts_prompt_start")
        return value if isinstance(value, int) else None

    def short(self) -> str:
        """A one-line description (the prompt abbreviated) for tables and failure messages."""
        ids = self.prompt_ids
        shown = repr(ids) if len(ids) <= 8 else f"[{ids[0]}, {ids[1]}, ... {ids[-1]}] (len {len(ids)})"
        extra = {k: v for k, v in (("cache_salt", self.cache_salt), ("priority", self.priority)) if v is not None}
        return f"prompt_ids={shown} sampling_params={self.sampling_params} stop={self.stop_token_ids} {extra}"


@dataclass(frozen=True)
class MoeSettings:
    """Server-side MoE shape: ``layers`` = 0 is a dense model (no routed experts)."""

    layers: int
    top_k: int
    num_experts: int

    def server_config(self) -> dict[str, int]:
        """The mock servers' ``MockConfig`` fields."""
        return {"moe_layers": self.layers, "moe_top_k": self.top_k, "num_experts": self.num_experts}


def moe_settings() -> st.SearchStrategy[MoeSettings]:
    """Dense, uint8 ids (64 and exactly 256 experts) and uint16 ids (300 experts)."""
    return st.sampled_from(
        [MoeSettings(0, 8, 128), MoeSettings(2, 2, 64), MoeSettings(1, 8, 256), MoeSettings(3, 4, 300)]
    )


def _long_prompt(length: int, seed: int, vocab_size: int) -> list[int]:
    rng = random.Random(seed)
    ids = [rng.randrange(vocab_size) for _ in range(length)]
    # both ends of the vocabulary, at pseudo-random positions
    ids[rng.randrange(length)] = 0
    ids[rng.randrange(length)] = vocab_size - 1
    return ids


def prompt_ids(vocab_size: int, *, max_len: int = 4096) -> st.SearchStrategy[list[int]]:
    """Prompts of 1..``max_len`` ids in ``[0, vocab_size)``."""
    if vocab_size < 1 or max_len < 1:
        raise ValueError("vocab_size and max_len must be >= 1")
    short = st.lists(st.integers(0, vocab_size - 1), min_size=1, max_size=min(SHORT_PROMPT, max_len))
    if max_len <= SHORT_PROMPT:
        return short
    long = st.builds(
        _long_prompt, st.integers(SHORT_PROMPT + 1, max_len), st.integers(0, 2**32 - 1), st.just(vocab_size)
    )
    return st.one_of(short, long)


PASSTHROUGH_KEYS: Final[Mapping[str, st.SearchStrategy[Any]]] = MappingProxyType(
    {
        "top_p": st.floats(0.05, 1.0),
        "top_k": st.sampled_from([-1, 0, 1, 2, 5, 50]),
        "min_p": st.floats(0.0, 0.5),
        "presence_penalty": st.floats(-2.0, 2.0),
        "frequency_penalty": st.floats(-2.0, 2.0),
        "repetition_penalty": st.floats(0.5, 2.0),
        "detokenize": st.booleans(),
        "skip_special_tokens": st.booleans(),
    }
)
"""Keys both servers accept, each with values both accept (vLLM SamplingParams / Dynamo top level)."""

temperatures = st.one_of(st.just(0), st.just(0.0), st.sampled_from([0.5, 1.0, 2.0]), st.floats(0.01, 2.0))


cache_salts = st.text(st.characters(codec="utf-8", exclude_characters="@/\\\x00"), min_size=1, max_size=16)
"""Salts both servers take: vLLM 0.32 refuses an empty salt, and one with ``@``, ``/``, ``\\`` or NUL."""


@st.composite
def sampling_params(draw: st.DrawFn, *, max_tokens: int = 64) -> dict[str, Any]:
    """``max_tokens`` always, the rest optional (absent keys test the servers' defaults)."""
    n = draw(st.integers(1, max_tokens))
    sp: dict[str, Any] = {"max_tokens": n}
    optional: dict[str, st.SearchStrategy[Any]] = {
        "min_tokens": st.integers(0, n),
        "temperature": temperatures,
        "seed": st.integers(0, INT32_MAX),
        "ignore_eos": st.booleans(),
        "top_logprobs": st.integers(0, 20),
        **PASSTHROUGH_KEYS,
    }
    sp.update(draw(st.fixed_dictionaries({}, optional=optional)))
    return sp


def stop_token_ids(vocab_size: int, *, eos_id: int | None = None) -> st.SearchStrategy[list[int]]:
    """The renderer's stop ids: a few ids of the vocabulary, with or without the model's EOS."""
    ids = st.lists(st.integers(0, vocab_size - 1), max_size=3, unique=True)
    if eos_id is None:
        return ids
    return st.tuples(ids, st.booleans()).map(lambda t: [eos_id, *t[0]] if t[1] else t[0])


def priorities() -> st.SearchStrategy[int | None]:
    """vLLM priorities whose negation (Dynamo's ``agent_hints.priority``) is an i32 too."""
    return st.none() | st.integers(-INT32_MAX, INT32_MAX)


def caller_nvext(*, greedy: bool) -> st.SearchStrategy[dict[str, Any]]:
    """A caller ``nvext`` that does not change the tokens (``greed_sampling`` only when already greedy)."""
    optional: dict[str, st.SearchStrategy[Any]] = {
        "annotations": st.lists(st.sampled_from(["conformance", "rollout:1"]), max_size=2),
        "extra_fields": st.lists(st.sampled_from(["timing", "worker_id", "routed_experts", "engine_data"]), max_size=3),
        "agent_hints": st.fixed_dictionaries({}, optional={"osl": st.integers(0, 4096)}),
    }
    if greedy:
        optional["greed_sampling"] = st.just(True)
    return st.fixed_dictionaries({}, optional=optional)


def prompt_starts(prompt_len: int) -> st.SearchStrategy[int | None]:
    """``routed_experts_prompt_start``: absent, 0, inside the prompt, or at the end of a previous turn
    (the last completion token of a turn whose follow-up of 1-32 tokens ends the prompt)."""
    options: list[st.SearchStrategy[int | None]] = [st.none(), st.just(0)]
    if prompt_len > 1:
        options.append(st.integers(1, prompt_len - 1))
    if prompt_len > 2:
        options.append(st.integers(1, min(32, prompt_len - 2)).map(lambda f: prompt_len - 1 - f))
    return st.one_of(options)


@st.composite
def cases(
    draw: st.DrawFn,
    *,
    vocab_size: int,
    max_prompt_len: int = 4096,
    max_tokens: int = 64,
    eos_id: int | None = None,
) -> Case:
    """A full ``generate()`` call (see the module docstring)."""
    ids = draw(prompt_ids(vocab_size, max_len=max_prompt_len))
    sp = draw(sampling_params(max_tokens=max_tokens))
    start = draw(prompt_starts(len(ids)))
    if start is not None:
        sp["routed_experts_prompt_start"] = start
    if draw(st.booleans()):
        sp["nvext"] = draw(caller_nvext(greedy=sp.get("temperature", 1.0) == 0))
    return Case(
        prompt_ids=ids,
        sampling_params=sp,
        stop_token_ids=draw(stop_token_ids(vocab_size, eos_id=eos_id)),
        cache_salt=draw(st.none() | cache_salts),
        priority=draw(priorities()),
    )
