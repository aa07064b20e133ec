"""The deterministic engine both mocks share: a fake causal language model with MoE routing.

The "model" is a rolling 64-bit hash of the token prefix. At each position the prefix state ``H`` (the hash of
``tokens[:i]``) fixes a whole next-token distribution without materialising it:

* the ordinary (non-special) vocabulary is ranked by an affine permutation ``rank -> (a*(rank-1) + b) mod V``
  whose ``a`` (a unit mod V) and ``b`` come from ``mix(H)``;
* the raw logprob of rank ``r`` is ``base - 0.8 * sqrt((r-1)/(V-1))`` rounded to float32 (finite, <= 0, strictly
  decreasing in rank), with ``base`` in ``[-7.5, -7.0]`` (about what a random tiny model gives);
* at "EOS positions" (``mix(H ^ salt) % eos_period == 0``) the distribution is peaked on the EOS token, which is then
  emitted whatever the temperature (unless ``ignore_eos`` or ``min_tokens`` masks it).

Sampling draws ``u = mix(H ^ seed_key)`` and maps it to a rank (``temperature`` sharpens towards rank 1, ``top_k``
and ``top_p`` shrink the candidate set); greedy picks rank 1 and never looks at the seed. The routing row of position
``p`` is a function of ``H`` after ``tokens[:p+1]``. So everything at a position depends only on the tokens before
it (plus the seed and parameters): shared prefixes route identically, and multi-turn routing stitches exactly.
"""

from __future__ import annotations

import math
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

MASK64 = (1 << 64) - 1
_P = 0x100000001B3  # odd, so invertible mod 2**64
_Q = pow(_P, -1, 1 << 64)
_H0 = 0xCBF29CE484222325
_MODEL_SALT = 0x9E3779B97F4A7C15
_EOS_SALT = 0xD6E8FEB86659FD93
_SEED_SALT = 0xA0761D6478BD642F
_ROUTE_SALT = 0xE7037ED1A0B428DB
_LOGPROB_SPREAD = 0.8
_EOS_LOGPROB = -0.02
_PEAK_PENALTY = 4.0

_F32 = struct.Struct("<f")


def f32(x: float) -> float:
    """Round a double to the nearest float32 (returned as the exactly equal double)."""
    value: float = _F32.unpack(_F32.pack(x))[0]
    return value


def mix64(z: int) -> int:
    """splitmix64 finaliser: a bijective 64-bit mixer."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def _mix64_np(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def step_state(h: int, token: int) -> int:
    """The prefix state after appending ``token``."""
    return (h * _P + token + 1) & MASK64


def _units(n: int) -> list[int]:
    return [x for x in range(1, n) if math.gcd(x, n) == 1] or [1]


class _Powers:
    """P**k and Q**k mod 2**64 as uint64 arrays, grown on demand (thread-safe by replacement)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.p = np.ones(1, dtype=np.uint64)
        self.q = np.ones(1, dtype=np.uint64)

    def ensure(self, n: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        p, q = self.p, self.q
        if len(p) > n:
            return p, q
        with self._lock:
            size = max(n + 1, 2 * len(self.p), 4096)
            p = np.empty(size, dtype=np.uint64)
            q = np.empty(size, dtype=np.uint64)
            p[0] = q[0] = 1
            p[1:] = np.cumprod(np.full(size - 1, _P, dtype=np.uint64), dtype=np.uint64)
            q[1:] = np.cumprod(np.full(size - 1, _Q, dtype=np.uint64), dtype=np.uint64)
            self.p, self.q = p, q
        return p, q


_POWERS = _Powers()


def prefix_states(ids: Sequence[int] | npt.NDArray[np.integer]) -> npt.NDArray[np.uint64]:
    """``H_0 .. H_n`` for a token sequence (``H_i`` hashes ``ids[:i]``), vectorised.

    ``H_n = P**n * (H_0 + sum_{j<n} (t_j + 1) * Q**(j+1))`` with ``Q = P**-1`` (all mod 2**64), so the recurrence
    ``H_{i+1} = H_i * P + t_i + 1`` becomes one cumulative sum.
    """
    t = np.asarray(ids, dtype=np.uint64)
    n = len(t)
    p, q = _POWERS.ensure(n)
    out = np.empty(n + 1, dtype=np.uint64)
    out[0] = _H0
    if n:
        acc = np.cumsum((t + np.uint64(1)) * q[1 : n + 1], dtype=np.uint64)
        out[1:] = p[1 : n + 1] * (acc + np.uint64(_H0))
    return out


def final_state(ids: Sequence[int]) -> int:
    if len(ids) > 64:
        return int(prefix_states(ids)[-1])
    h = _H0
    for t in ids:
        h = step_state(h, t)
    return h


@dataclass(frozen=True)
class SamplingParams:
    """The sampling knobs the engine honours (already validated and defaulted by the protocol layer)."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    min_tokens: int = 0
    stop_token_ids: frozenset[int] = frozenset()
    ignore_eos: bool = False
    choice_index: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class Completion:
    """One generated sequence, with what is needed to describe each position's distribution."""

    token_ids: list[int]
    logprobs: list[float]
    ranks: list[int]
    finish_reason: str
    stop_reason: int | None
    keys: list[int] = field(repr=False)
    peaks: list[bool] = field(repr=False)


class Engine:
    """The fake model over a vocabulary: ``ordinary_ids`` are sampled, ``eos_id`` ends a sequence."""

    def __init__(self, ordinary_ids: Sequence[int], eos_id: int | None, eos_period: int = 128) -> None:
        if not ordinary_ids:
            raise ValueError("the vocabulary has no ordinary tokens")
        self.ordinary = list(ordinary_ids)
        self.v = len(self.ordinary)
        self.eos_id = eos_id
        self.eos_period = eos_period
        self._units = _units(self.v)
        self._index = {t: i for i, t in enumerate(self.ordinary)}
        self._scale = 1.0 / (self.v - 1) if self.v > 1 else 0.0

    # ---- the distribution at one position -------------------------------------------------------------
    def _is_peak(self, key: int) -> bool:
        return self.eos_id is not None and self.eos_period > 0 and mix64(key ^ _EOS_SALT) % self.eos_period == 0

    def _token_at(self, key: int, rank: int, peak: bool) -> int:
        if peak:
            if rank == 1:
                assert self.eos_id is not None
                return self.eos_id
            rank -= 1
        a = self._units[(key >> 8) % len(self._units)]
        b = (key >> 24) % self.v
        return self.ordinary[(a * (rank - 1) + b) % self.v]

    def _logprob_at(self, key: int, rank: int, peak: bool) -> float:
        if peak:
            if rank == 1:
                return f32(_EOS_LOGPROB - ((key >> 40) & 0xFF) / 25600.0)
            rank -= 1
        base = -(7.0 + ((key >> 44) & 0xFFFFF) / float(1 << 20) * 0.5)
        value = base - _LOGPROB_SPREAD * math.sqrt((rank - 1) * self._scale)
        return f32(value - _PEAK_PENALTY if peak else value)

    def position(self, h: int) -> tuple[int, bool]:
        """The key and EOS-peak flag of the position whose prefix state is ``h``."""
        key = mix64(h ^ _MODEL_SALT)
        return key, self._is_peak(key)

    def score(self, key: int, peak: bool, token: int) -> tuple[int, float, int]:
        """``(token, logprob, rank)`` of a given token at a position (special tokens rank after all others)."""
        if peak and token == self.eos_id:
            return token, self._logprob_at(key, 1, peak), 1
        shift = 1 if peak else 0
        idx = self._index.get(token)
        if idx is None:
            last = self.v + shift
            return token, f32(self._logprob_at(key, last, peak) - 2.0), last + 1
        a = self._units[(key >> 8) % len(self._units)]
        b = (key >> 24) % self.v
        rank = ((idx - b) * pow(a, -1, self.v)) % self.v + 1 + shift
        return token, self._logprob_at(key, rank, peak), rank

    def candidates(self, key: int, peak: bool, count: int) -> list[tuple[int, float, int]]:
        """The ``count`` most likely tokens at a position: ``(token_id, logprob, rank)``, rank 1 first."""
        size = self.v + (1 if peak else 0)
        return [
            (self._token_at(key, r, peak), self._logprob_at(key, r, peak), r) for r in range(1, min(count, size) + 1)
        ]

    # ---- generation -----------------------------------------------------------------------------------
    def generate(self, prompt_ids: Sequence[int], params: SamplingParams) -> Completion:
        h = final_state(prompt_ids)
        seed_key = mix64((params.seed & MASK64) ^ _SEED_SALT ^ mix64(params.choice_index + 1))
        size_cap = self.v
        if params.top_k > 0:
            size_cap = min(size_cap, params.top_k)
        if params.top_p < 1.0:
            size_cap = max(1, math.ceil(params.top_p * size_cap))
        inv_t = 1.0 / params.temperature if not params.greedy else 0.0
        stops = params.stop_token_ids
        tokens: list[int] = []
        logprobs: list[float] = []
        ranks: list[int] = []
        keys: list[int] = []
        peaks: list[bool] = []
        finish, stop_reason = "length", None
        for n in range(params.max_tokens):
            key, is_peak = self.position(h)
            masked = n < params.min_tokens
            peak = is_peak and not params.ignore_eos and not masked
            if peak or params.greedy:
                rank = 1
            else:
                u = (mix64(key ^ seed_key) >> 11) * (1.0 / (1 << 53))
                rank = 1 + min(int((u**inv_t) * size_cap), size_cap - 1)
            token = self._token_at(key, rank, peak)
            if masked and token in stops:  # min_tokens masks the stop tokens: take the next rank
                limit = self.v + 1
                while token in stops and rank < limit:
                    rank += 1
                    token = self._token_at(key, rank, peak)
            tokens.append(token)
            logprobs.append(self._logprob_at(key, rank, peak))
            ranks.append(rank)
            keys.append(key)
            peaks.append(peak)
            if token == self.eos_id and not params.ignore_eos and not masked:
                finish = "stop"
                break
            if token in stops and not masked:
                finish, stop_reason = "stop", token
                break
            h = step_state(h, token)
        return Completion(tokens, logprobs, ranks, finish, stop_reason, keys, peaks)

    # ---- MoE routing ----------------------------------------------------------------------------------
    @staticmethod
    def routed_experts(
        ids: Sequence[int], start: int, layers: int, top_k: int, num_experts: int
    ) -> npt.NDArray[np.uint8] | npt.NDArray[np.uint16]:
        """Routing rows for positions ``start .. len(ids)-2``: shape ``[len(ids)-1-start, layers, top_k]``.

        Row ``p`` depends only on ``ids[:p+1]``; within a row each layer picks ``top_k`` distinct experts.
        """
        dtype = np.uint8 if num_experts <= 256 else np.uint16
        total = len(ids)
        start = max(0, min(start, max(total - 1, 0)))
        rows = max(total - 1 - start, 0)
        out = np.empty((rows, layers, top_k), dtype=dtype)
        if rows == 0:
            return out
        states = prefix_states(ids)[start + 1 : total]
        keys = _mix64_np(states ^ np.uint64(_ROUTE_SALT))
        units = np.asarray(_units(num_experts), dtype=np.uint64)
        j = np.arange(top_k, dtype=np.uint64)
        e = np.uint64(num_experts)
        for layer in range(layers):
            h = _mix64_np(keys ^ np.uint64(mix64(_ROUTE_SALT + layer + 1)))
            a = units[h % np.uint64(len(units))]
            b = (h >> np.uint64(32)) % e
            out[:, layer, :] = ((a[:, None] * j[None, :] + b[:, None]) % e).astype(dtype)
        return out
