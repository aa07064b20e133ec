"""The deterministic engine both mocks share: a fake causal language model with MoE routing.

Each position ``i`` of a sequence has two prefix states, both functions of ``tokens[:i]`` only:

* ``H_i``, a 64-bit polynomial hash (``H_{i+1} = H_i * P + t_i + 1 mod 2**64``). It fixes the logprob level of the
  position, whether it is an "EOS position" (``mix(H ^ salt) % eos_period == 0``) and the MoE routing row;
* ``B_i``, a small linear state mod ``V`` (the number of ordinary tokens): ``B_{i+1} = m*B_i + (1-m)*o(t_i) + k_i``
  with ``o(t)`` the token's index in the ordinary vocabulary and ``k_i`` a per-position constant. It fixes the
  ranking of the vocabulary: rank ``r`` is the ordinary token ``(B_i + A*(r-1)) mod V``.

The raw logprob of rank ``r`` is ``base - 0.8 * sqrt((r-1)/(V-1))`` rounded to float32 (finite, <= 0, strictly
decreasing in rank), with ``base`` in ``[-7.5, -7.0]`` from ``H_i``. At EOS positions the distribution is peaked on
the EOS token, which is then emitted whatever the temperature (unless ``ignore_eos`` or ``min_tokens`` masks it).

Sampling draws ``u`` from the seed and the absolute position and maps it to a rank (``temperature`` sharpens towards
rank 1, ``top_k`` and ``top_p`` shrink the candidate set); greedy picks rank 1 and never looks at the seed. So
everything at a position depends only on the tokens before it (plus the seed and parameters): shared prefixes
route identically, and multi-turn routing stitches exactly.

Why this shape: the sampled rank does not depend on the prefix, and a sampled token moves ``B`` by
``(1-m)*A*(r-1) + k_i`` whatever ``B`` was, so a whole completion is a few cumulative sums (numpy), not a Python
loop per token. ``H`` of the completion is one more cumulative sum once the tokens are known.
"""

from __future__ import annotations

import functools
import math
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

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
_POS_SALT = 0x8EBC6AF09C88C6E3
_LOGPROB_SPREAD = 0.8
_EOS_LOGPROB = -0.02
_PEAK_PENALTY = 4.0
_LOW32 = 0xFFFFFFFF
_HIGH32 = MASK64 ^ _LOW32
_ROUTE_TABLE_BITS = 16  # routing rows are drawn from a table of 2**16 distinct-expert rows per (experts, top_k)

_F32 = struct.Struct("<f")
Experts = npt.NDArray[np.uint8] | npt.NDArray[np.uint16]
_U64 = np.uint64


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
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def step_state(h: int, token: int) -> int:
    """The prefix state after appending ``token``."""
    return (h * _P + token + 1) & MASK64


def _units(n: int) -> list[int]:
    return [x for x in range(1, n) if math.gcd(x, n) == 1] or [1]


class _Tables:
    """Per-position arrays (P**k, Q**k mod 2**64 and the position keys), grown on demand; thread-safe by replacement."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.p = np.ones(1, dtype=np.uint64)
        self.q = np.ones(1, dtype=np.uint64)
        self.pos = _mix64_np(np.zeros(1, dtype=np.uint64) ^ _U64(_POS_SALT))

    def ensure(self, n: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        p, q, pos = self.p, self.q, self.pos
        if len(p) > n:
            return p, q, pos
        with self._lock:
            size = max(n + 1, 2 * len(self.p), 4096)
            p = np.empty(size, dtype=np.uint64)
            q = np.empty(size, dtype=np.uint64)
            p[0] = q[0] = 1
            p[1:] = np.cumprod(np.full(size - 1, _P, dtype=np.uint64), dtype=np.uint64)
            q[1:] = np.cumprod(np.full(size - 1, _Q, dtype=np.uint64), dtype=np.uint64)
            pos = _mix64_np(np.arange(size, dtype=np.uint64) ^ _U64(_POS_SALT))
            self.p, self.q, self.pos = p, q, pos
        return p, q, pos


_TABLES = _Tables()


def prefix_states(ids: Sequence[int] | npt.NDArray[np.integer[Any]], h0: int = _H0) -> npt.NDArray[np.uint64]:
    """``H_0 .. H_n`` for a token sequence (``H_i`` hashes ``ids[:i]``, starting from ``h0``), vectorised.

    ``H_n = P**n * (H_0 + sum_{j<n} (t_j + 1) * Q**(j+1))`` with ``Q = P**-1`` (all mod 2**64), so the recurrence
    ``H_{i+1} = H_i * P + t_i + 1`` becomes one cumulative sum.
    """
    t = np.asarray(ids, dtype=np.uint64)
    n = len(t)
    p, q, _ = _TABLES.ensure(n)
    out = np.empty(n + 1, dtype=np.uint64)
    out[0] = h0
    if n:
        acc = np.cumsum((t + _U64(1)) * q[1 : n + 1], dtype=np.uint64)
        out[1:] = p[1 : n + 1] * (acc + _U64(h0))
    return out


def final_state(ids: Sequence[int]) -> int:
    if len(ids) > 64:
        return int(prefix_states(ids)[-1])
    h = _H0
    for t in ids:
        h = step_state(h, t)
    return h


@functools.lru_cache(maxsize=64)
def _thresholds(size: int, temperature: float) -> npt.NDArray[np.float64]:
    """``u`` thresholds of ranks 2..size: rank ``r`` is sampled when ``thr[r-2] <= u < thr[r-1]``.

    ``thr[r-1] = (r/size) ** temperature``, i.e. rank ``1 + floor(u**(1/T) * size)``, computed once per
    ``(size, temperature)`` in Python so the comparison is exact and the same on every path.
    """
    return np.array([(r / size) ** temperature for r in range(1, size)], dtype=np.float64)


@functools.lru_cache(maxsize=16)
def _route_table(num_experts: int, top_k: int) -> Experts:
    """``2**16`` rows of ``top_k`` distinct experts: row ``q`` is ``(a*j + b) mod E`` with ``a`` a unit mod ``E``."""
    dtype = np.uint8 if num_experts <= 256 else np.uint16
    h = _mix64_np(np.arange(1 << _ROUTE_TABLE_BITS, dtype=np.uint64) ^ _U64(_ROUTE_SALT))
    units = np.asarray(_units(num_experts), dtype=np.uint64)
    e = _U64(num_experts)
    a = units[h % _U64(len(units))]
    b = (h >> _U64(32)) % e
    j = np.arange(top_k, dtype=np.uint64)
    table: Experts = ((a[:, None] * j[None, :] + b[:, None]) % e).astype(dtype)
    table.flags.writeable = False
    return table


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
    """One generated sequence, with what is needed to describe each position's distribution.

    ``keys[i]`` / ``peaks[i]`` describe position ``i`` for ``Engine.candidates`` and ``Engine.score``.
    """

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
        self.v = v = len(self.ordinary)
        self.eos_id = eos_id
        self.eos_period = eos_period
        self._index = {t: i for i, t in enumerate(self.ordinary)}
        self._scale = 1.0 / (v - 1) if v > 1 else 0.0
        units = _units(v)
        # A: the stride between consecutive ranks (a unit near V/phi, so neighbouring ranks are far apart).
        self._stride = min(units, key=lambda u: abs(u - v * 0.6180339887))
        self._stride_inv = pow(self._stride, -1, v) if v > 1 else 0
        # m: the B multiplier (a unit other than 1 when there is one); c = 1 - m makes a sampled token's step
        # independent of B.
        self._m = next((u for u in units if u >= 2), 1)
        self._c = (1 - self._m) % v
        self._b0 = _H0 % v
        self._ordinary_np = np.asarray(self.ordinary, dtype=np.int64)
        top = max(self.ordinary) + 1
        lookup = np.arange(top, dtype=np.int64) % v
        lookup[self._ordinary_np] = np.arange(v, dtype=np.int64)
        self._o_lookup = lookup
        self._pow_m = np.ones(1, dtype=np.int64)
        self._lock = threading.Lock()

    # ---- the linear ranking state B -------------------------------------------------------------------
    def _o(self, token: int) -> int:
        idx = self._index.get(token)
        return idx if idx is not None else token % self.v

    def _kappa(self, pos: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        return (pos % _U64(self.v)).astype(np.int64)

    def _powers_m(self, n: int) -> npt.NDArray[np.int64]:
        pw = self._pow_m
        if len(pw) > n:
            return pw
        with self._lock:
            size = max(n + 1, 2 * len(self._pow_m), 4096)
            out = np.empty(size, dtype=np.int64)
            x, m, v = 1, self._m, self.v
            for k in range(size):
                out[k] = x
                x = x * m % v
            self._pow_m = out
        return out

    def prefix_b(self, ids: Sequence[int] | npt.NDArray[np.integer[Any]]) -> int:
        """``B_n`` after ``ids`` (one dot product with the powers of ``m``)."""
        n = len(ids)
        v = self.v
        if n == 0:
            return self._b0
        t = np.asarray(ids, dtype=np.int64)
        lookup = self._o_lookup
        top = len(lookup)
        o = lookup[t] if int(t.max()) < top else np.where(t < top, lookup[np.minimum(t, top - 1)], t % v)
        _, _, pos = _TABLES.ensure(n)
        x = (self._c * o + self._kappa(pos[:n])) % v
        pw = self._powers_m(n)
        total = int(np.dot(pw[n - 1 :: -1], x))
        return (int(pw[n]) * self._b0 + total) % v

    def prefix_bs(self, ids: Sequence[int]) -> list[int]:
        """``B_0 .. B_n`` (a Python loop: only for per-position outputs such as prompt logprobs)."""
        _, _, pos = _TABLES.ensure(len(ids))
        b, m, c, v = self._b0, self._m, self._c, self.v
        out = [b]
        for i, t in enumerate(ids):
            b = (m * b + c * self._o(t) + int(pos[i]) % v) % v
            out.append(b)
        return out

    # ---- the distribution at one position -------------------------------------------------------------
    def _is_peak(self, h: int) -> bool:
        return self.eos_id is not None and self.eos_period > 0 and mix64(h ^ _EOS_SALT) % self.eos_period == 0

    def _token_at(self, key: int, rank: int, peak: bool) -> int:
        if peak:
            if rank == 1:
                assert self.eos_id is not None
                return self.eos_id
            rank -= 1
        return self.ordinary[((key & _LOW32) + self._stride * (rank - 1)) % self.v]

    def _logprob_at(self, key: int, rank: int, peak: bool) -> float:
        if peak:
            if rank == 1:
                return f32(_EOS_LOGPROB - ((key >> 40) & 0xFF) / 25600.0)
            rank -= 1
        base = -(7.0 + ((key >> 44) & 0xFFFFF) / float(1 << 20) * 0.5)
        value = base - _LOGPROB_SPREAD * math.sqrt((rank - 1) * self._scale)
        return f32(value - _PEAK_PENALTY if peak else value)

    def position(self, h: int, b: int) -> tuple[int, bool]:
        """The key and EOS-peak flag of the position whose prefix states are ``h`` (hash) and ``b`` (ranking)."""
        key = (mix64(h ^ _MODEL_SALT) & _HIGH32) | b
        return key, self._is_peak(h)

    def score(self, key: int, peak: bool, token: int) -> tuple[int, float, int]:
        """``(token, logprob, rank)`` of a given token at a position (special tokens rank after all others)."""
        if peak and token == self.eos_id:
            return token, self._logprob_at(key, 1, peak), 1
        shift = 1 if peak else 0
        idx = self._index.get(token)
        if idx is None:
            last = self.v + shift
            return token, f32(self._logprob_at(key, last, peak) - 2.0), last + 1
        rank = ((idx - (key & _LOW32)) * self._stride_inv) % self.v + 1 + shift
        return token, self._logprob_at(key, rank, peak), rank

    def candidates(self, key: int, peak: bool, count: int) -> list[tuple[int, float, int]]:
        """The ``count`` most likely tokens at a position: ``(token_id, logprob, rank)``, rank 1 first."""
        size = self.v + (1 if peak else 0)
        return [
            (self._token_at(key, r, peak), self._logprob_at(key, r, peak), r) for r in range(1, min(count, size) + 1)
        ]

    # ---- generation -----------------------------------------------------------------------------------
    def _ranks(self, pos: npt.NDArray[np.uint64], params: SamplingParams, seed_key: int) -> npt.NDArray[np.int64]:
        """Sampled ranks (ordinary, no EOS peak) at absolute positions with keys ``pos``: independent of the prefix."""
        if params.greedy:
            return np.ones(len(pos), dtype=np.int64)
        size_cap = self.v
        if params.top_k > 0:
            size_cap = min(size_cap, params.top_k)
        if params.top_p < 1.0:
            size_cap = max(1, math.ceil(params.top_p * size_cap))
        if size_cap == 1:
            return np.ones(len(pos), dtype=np.int64)
        u = (_mix64_np(pos ^ _U64(seed_key)) >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))
        return np.searchsorted(_thresholds(size_cap, params.temperature), u, side="right").astype(np.int64) + 1

    def generate(self, prompt_ids: Sequence[int], params: SamplingParams) -> Completion:
        n0 = len(prompt_ids)
        h = final_state(prompt_ids)
        b = self.prefix_b(prompt_ids)
        seed_key = mix64((params.seed & MASK64) ^ _SEED_SALT ^ mix64(params.choice_index + 1))
        v, eos = self.v, self.eos_id
        stops = params.stop_token_ids
        stop_arr = np.fromiter(stops, dtype=np.int64, count=len(stops)) if stops else None
        peaks_on = eos is not None and self.eos_period > 0 and not params.ignore_eos
        step_c = self._c * self._stride % v
        tokens: list[int] = []
        logprobs: list[float] = []
        ranks: list[int] = []
        keys: list[int] = []
        peaks: list[bool] = []
        finish, stop_reason = "length", None
        done = 0
        chunk = params.max_tokens if (params.ignore_eos and not stops) else 64
        while done < params.max_tokens:
            size = min(chunk, params.max_tokens - done)
            chunk *= 4
            start = n0 + done
            _, _, pos_all = _TABLES.ensure(start + size)
            pos = pos_all[start : start + size]
            rank = self._ranks(pos, params, seed_key)
            rho = rank - 1
            # B at each position: B_{i+1} = B_i + (1-m)*A*rho_i + k_i (mod V), independent of B itself.
            steps = (step_c * rho + self._kappa(pos)) % v
            bs = np.empty(size, dtype=np.int64)
            bs[0] = b
            if size > 1:
                np.cumsum(steps[:-1], out=bs[1:])
                bs[1:] += b
            bs %= v
            o = (bs + self._stride * rho) % v
            tok = self._ordinary_np[o]
            hs = prefix_states(tok, h)
            hk = hs[:-1]
            key_arr = (_mix64_np(hk ^ _U64(_MODEL_SALT)) & _U64(_HIGH32)) | bs.astype(np.uint64)
            n_idx = np.arange(done, done + size)
            unmasked = n_idx >= params.min_tokens
            event = np.zeros(size, dtype=bool)
            if peaks_on:
                peak_arr = (_mix64_np(hk ^ _U64(_EOS_SALT)) % _U64(self.eos_period) == 0) & unmasked
                event |= peak_arr
            else:
                peak_arr = np.zeros(size, dtype=bool)
            if eos is not None and not params.ignore_eos:
                event |= (tok == eos) & unmasked
            hit = np.zeros(size, dtype=bool)
            bump = np.zeros(size, dtype=bool)
            if stop_arr is not None:
                hit = np.isin(tok, stop_arr)
                event |= hit & unmasked
                bump = hit & ~unmasked & ~peak_arr
            first_event = int(np.argmax(event)) if event.any() else size
            first_bump = int(np.argmax(bump)) if bump.any() else size
            cut = min(first_event, first_bump)
            # Positions before the cut are ordinary samples.
            base = -(7.0 + ((key_arr[:cut] >> _U64(44)) & _U64(0xFFFFF)).astype(np.float64) / float(1 << 20) * 0.5)
            lp = (base - _LOGPROB_SPREAD * np.sqrt(rho[:cut] * self._scale)).astype(np.float32)
            tokens += tok[:cut].tolist()
            logprobs += lp.astype(np.float64).tolist()
            ranks += rank[:cut].tolist()
            key_list = key_arr[:cut].tolist()
            keys += key_list
            peaks += [False] * cut
            if cut == size:
                done += size
                h, b = int(hs[-1]), int((bs[-1] + steps[-1]) % v)
                continue
            # The cut position, one at a time: an EOS peak, a stop, or a masked stop token (take the next rank).
            key = int(key_arr[cut])
            hc = int(hk[cut])
            bc = int(bs[cut])
            peak = bool(peak_arr[cut])
            r = 1 if peak else int(rank[cut])
            t = self._token_at(key, r, peak)
            masked = done + cut < params.min_tokens
            if masked and t in stops:
                limit = v + 1
                while t in stops and r < limit:
                    r += 1
                    t = self._token_at(key, r, peak)
            tokens.append(t)
            logprobs.append(self._logprob_at(key, r, peak))
            ranks.append(r)
            keys.append(key)
            peaks.append(peak)
            if not masked and eos is not None and t == eos and not params.ignore_eos:
                finish = "stop"
                break
            if not masked and t in stops:
                finish, stop_reason = "stop", t
                break
            done += cut + 1
            h = step_state(hc, t)
            b = (self._m * bc + self._c * self._o(t) + int(pos[cut]) % v) % v
            chunk = max(64, size)
        return Completion(tokens, logprobs, ranks, finish, stop_reason, keys, peaks)

    # ---- MoE routing ----------------------------------------------------------------------------------
    @staticmethod
    def routed_experts(ids: Sequence[int], start: int, layers: int, top_k: int, num_experts: int) -> Experts:
        """Routing rows for positions ``start .. len(ids)-2``: shape ``[len(ids)-1-start, layers, top_k]``.

        Row ``p`` depends only on ``ids[:p+1]`` (through ``H_{p+1}``); each (row, layer) picks one of ``2**16``
        precomputed rows of ``top_k`` distinct experts, at ``(k1 + layer * k2) mod 2**16`` with ``k1``, ``k2``
        (odd) taken from ``mix(H_{p+1})``.
        """
        dtype = np.uint8 if num_experts <= 256 else np.uint16
        total = len(ids)
        start = max(0, min(start, max(total - 1, 0)))
        rows = max(total - 1 - start, 0)
        if rows == 0 or layers == 0:
            return cast(Experts, np.empty((rows, layers, top_k), dtype=dtype))
        states = prefix_states(ids)[start + 1 : total]
        keys = _mix64_np(states ^ _U64(_ROUTE_SALT))
        k1 = keys.astype(np.uint16)
        k2 = (keys >> _U64(32)).astype(np.uint16) | np.uint16(1)
        idx = np.multiply.outer(k2, np.arange(layers, dtype=np.uint16))
        idx += k1[:, None]
        return cast(Experts, np.take(_route_table(num_experts, top_k), idx.astype(np.intp), axis=0))
