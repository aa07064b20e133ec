"""The shared engine: determinism, causality, sampling knobs, logprob consistency, routed experts."""

from __future__ import annotations

import bisect
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockservers.config import BUILTIN_TOKENIZER
from mockservers.engine import Engine, SamplingParams, final_state, prefix_states, sampled_ranks, step_state
from mockservers.tokenizer import load_tokenizer

EOS = 2303
ENGINE = Engine(list(range(2301)), EOS, eos_period=128)
PROMPT = [2302, 84, 326, 81, 198, 283, 75, 316, 2303, 198, 2302, 64, 2032, 198]


def test_builtin_tokenizer_layout() -> None:
    tok = load_tokenizer(str(BUILTIN_TOKENIZER))
    assert tok.vocab_size == 2304
    assert tok.eos_id == 2303
    assert tok.special_ids == {2301, 2302, 2303}
    ids = tok.encode(tok.render_chat([{"role": "user", "content": "hello world"}]))
    assert ids[0] == 2302
    assert ids[-1] == 198
    assert 2303 in ids


@given(st.lists(st.integers(0, 2303), max_size=300))
def test_vectorised_prefix_states_equal_the_recurrence(ids: list[int]) -> None:
    states = prefix_states(ids)
    h = int(states[0])
    for i, t in enumerate(ids):
        h = step_state(h, t)
        assert int(states[i + 1]) == h
    assert final_state(ids) == h


def test_same_request_same_output_and_greedy_ignores_seed() -> None:
    p = SamplingParams(max_tokens=64, temperature=0.0, ignore_eos=True)
    a = ENGINE.generate(PROMPT, p)
    b = ENGINE.generate(PROMPT, SamplingParams(max_tokens=64, temperature=0.0, seed=999, ignore_eos=True))
    assert a.token_ids == b.token_ids
    assert a.logprobs == b.logprobs
    assert all(r == 1 for r in a.ranks)
    hot = ENGINE.generate(PROMPT, SamplingParams(max_tokens=64, seed=1, ignore_eos=True))
    other = ENGINE.generate(PROMPT, SamplingParams(max_tokens=64, seed=2, ignore_eos=True))
    assert hot.token_ids != other.token_ids
    assert hot.token_ids == ENGINE.generate(PROMPT, SamplingParams(max_tokens=64, seed=1, ignore_eos=True)).token_ids


def test_causal_continuation() -> None:
    """Generating from prompt+first k tokens continues exactly where the long generation went (same seed)."""
    p = SamplingParams(max_tokens=50, seed=7, ignore_eos=True)
    full = ENGINE.generate(PROMPT, p)
    rest = ENGINE.generate(PROMPT + full.token_ids[:20], SamplingParams(max_tokens=30, seed=7, ignore_eos=True))
    assert rest.token_ids == full.token_ids[20:]
    assert rest.logprobs == full.logprobs[20:]


def test_logprobs_are_finite_float32_and_consistent_with_ranks() -> None:
    c = ENGINE.generate(PROMPT, SamplingParams(max_tokens=200, seed=3, ignore_eos=True))
    for i, (tid, lp, rank) in enumerate(zip(c.token_ids, c.logprobs, c.ranks, strict=True)):
        assert math.isfinite(lp)
        assert lp <= 0
        assert float(np.float32(lp)) == lp
        tops = ENGINE.candidates(c.keys[i], c.peaks[i], 5)
        assert [t[2] for t in tops] == [1, 2, 3, 4, 5]
        assert [t[1] for t in tops] == sorted((t[1] for t in tops), reverse=True)
        assert ENGINE.score(c.keys[i], c.peaks[i], tid) == (tid, lp, rank)
        if rank <= 5:
            assert tops[rank - 1] == (tid, lp, rank)
        else:
            assert lp <= tops[-1][1]


def test_eos_stops_at_a_deterministic_position_and_ignore_eos_runs_on() -> None:
    stopped = ENGINE.generate(PROMPT, SamplingParams(max_tokens=2000, seed=0))
    assert stopped.finish_reason == "stop"
    assert stopped.token_ids[-1] == EOS
    assert stopped.stop_reason is None
    again = ENGINE.generate(PROMPT, SamplingParams(max_tokens=2000, seed=0))
    assert again.token_ids == stopped.token_ids
    n = len(stopped.token_ids)
    ran_on = ENGINE.generate(PROMPT, SamplingParams(max_tokens=n + 10, seed=0, ignore_eos=True))
    assert ran_on.finish_reason == "length"
    assert len(ran_on.token_ids) == n + 10
    assert EOS not in ran_on.token_ids
    assert ran_on.token_ids[: n - 1] == stopped.token_ids[: n - 1]
    held = ENGINE.generate(PROMPT, SamplingParams(max_tokens=n + 10, seed=0, min_tokens=n + 5))
    assert len(held.token_ids) > n
    assert EOS not in held.token_ids[: n + 5]


def test_stop_token_ids_and_min_tokens() -> None:
    base = ENGINE.generate(PROMPT, SamplingParams(max_tokens=30, temperature=0, ignore_eos=True))
    target = base.token_ids[5]
    stopped = ENGINE.generate(
        PROMPT, SamplingParams(max_tokens=30, temperature=0, ignore_eos=True, stop_token_ids=frozenset({target}))
    )
    assert stopped.token_ids == base.token_ids[:6]
    assert stopped.finish_reason == "stop"
    assert stopped.stop_reason == target
    masked = ENGINE.generate(
        PROMPT,
        SamplingParams(
            max_tokens=30, temperature=0, ignore_eos=True, stop_token_ids=frozenset({target}), min_tokens=10
        ),
    )
    assert len(masked.token_ids) >= 10
    assert target not in masked.token_ids[:10]


def test_top_k_and_temperature_narrow_the_ranks() -> None:
    p = SamplingParams(max_tokens=300, seed=5, top_k=3, ignore_eos=True)
    assert max(ENGINE.generate(PROMPT, p).ranks) <= 3
    cold = ENGINE.generate(PROMPT, SamplingParams(max_tokens=300, seed=5, temperature=0.05, ignore_eos=True))
    hot = ENGINE.generate(PROMPT, SamplingParams(max_tokens=300, seed=5, temperature=1.0, ignore_eos=True))
    assert sum(cold.ranks) < sum(hot.ranks)


@pytest.mark.parametrize(("experts", "dtype"), [(8, np.uint8), (256, np.uint8), (300, np.uint16)])
def test_routed_experts_shape_dtype_and_distinct_rows(experts: int, dtype: type) -> None:
    ids = list(range(10, 60))
    arr = Engine.routed_experts(ids, 0, 3, 4, experts)
    assert arr.shape == (49, 3, 4)
    assert arr.dtype == dtype
    assert int(arr.max()) < experts
    assert all(len(set(row.tolist())) == 4 for row in arr.reshape(-1, 4))


def test_routed_experts_stitch_across_turns() -> None:
    turn1_prompt = PROMPT
    c1 = ENGINE.generate(turn1_prompt, SamplingParams(max_tokens=12, seed=1, ignore_eos=True))
    seq1 = turn1_prompt + c1.token_ids
    turn2_prompt = [*seq1, 2303, 198, 2302, 84, 198]
    c2 = ENGINE.generate(turn2_prompt, SamplingParams(max_tokens=9, seed=1, ignore_eos=True))
    seq2 = turn2_prompt + c2.token_ids
    r1 = Engine.routed_experts(seq1, 0, 2, 2, 16)
    start = len(seq1) - 1
    r2 = Engine.routed_experts(seq2, start, 2, 2, 16)
    whole = Engine.routed_experts(seq2, 0, 2, 2, 16)
    assert r1.shape[0] == len(seq1) - 1
    assert r2.shape[0] == len(seq2) - 1 - start
    assert np.array_equal(np.concatenate([r1, r2]), whole)
    # A shared prefix routes identically whatever follows it.
    other = Engine.routed_experts([*PROMPT, 1, 2, 3], 0, 2, 2, 16)
    assert np.array_equal(other[: len(PROMPT)], whole[: len(PROMPT)])


def _reference_generate(engine: Engine, prompt: list[int], p: SamplingParams) -> tuple[list[int], list[int], str]:
    """The model of the engine's docstring, one token at a time in plain Python (H, B, u per position)."""
    from mockservers import engine as em

    v = engine.v
    h, b = em._H0, em._H0 % v
    m = engine._m

    def o(t: int) -> int:
        return engine.ordinary.index(t) if t in engine.ordinary else t % v

    def pos_key(i: int) -> int:
        return em.mix64(i ^ em._POS_SALT)

    for i, t in enumerate(prompt):
        h = step_state(h, t)
        b = (m * b + (1 - m) * o(t) + pos_key(i) % v) % v
    seed_key = em.mix64((p.seed & em.MASK64) ^ em._SEED_SALT ^ em.mix64(p.choice_index + 1))
    size = v if p.top_k <= 0 else min(v, p.top_k)
    if p.top_p < 1:
        size = max(1, math.ceil(p.top_p * size))
    out: list[int] = []
    ranks: list[int] = []
    for n in range(p.max_tokens):
        i = len(prompt) + n
        masked = n < p.min_tokens
        peak = (
            not p.ignore_eos
            and not masked
            and engine.eos_period > 0
            and (em.mix64(h ^ em._MODEL_SALT) & 0xFFFFFFFF) % engine.eos_period == 0
        )
        if peak:
            out.append(EOS)
            ranks.append(1)
            return out, ranks, "stop"
        if p.greedy:
            rank = 1
        else:
            u = (em.mix64(pos_key(i) ^ seed_key) >> 11) / float(1 << 53)
            rank = 1 + sum(1 for r in range(1, size) if (r / size) ** p.temperature <= u)
        tok = engine.ordinary[(b + engine._stride * (rank - 1)) % v]
        while masked and tok in p.stop_token_ids:
            rank += 1
            tok = engine.ordinary[(b + engine._stride * (rank - 1)) % v]
        out.append(tok)
        ranks.append(rank)
        if tok in p.stop_token_ids and not masked:
            return out, ranks, "stop"
        h = step_state(h, tok)
        b = (m * b + (1 - m) * o(tok) + pos_key(i) % v) % v
    return out, ranks, "length"


@given(
    st.lists(st.integers(0, 2303), min_size=1, max_size=40),
    st.integers(1, 300),
    st.sampled_from([0.0, 0.3, 1.0, 1.7]),
    st.integers(0, 50),
    st.integers(0, 5),
    st.booleans(),
    st.integers(0, 3),
)
def test_vectorised_generation_equals_the_per_token_model(
    prompt: list[int], max_tokens: int, temperature: float, top_k: int, seed: int, ignore_eos: bool, n_stops: int
) -> None:
    engine = Engine(list(range(2301)), EOS, eos_period=16)
    base = engine.generate(prompt, SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed))
    stops = frozenset(base.token_ids[:n_stops])
    p = SamplingParams(
        max_tokens=max_tokens,
        temperature=temperature,
        top_k=top_k,
        seed=seed,
        ignore_eos=ignore_eos,
        stop_token_ids=stops,
        min_tokens=min(max_tokens, seed * 7),
    )
    c = engine.generate(prompt, p)
    tokens, ranks, finish = _reference_generate(engine, prompt, p)
    assert (c.token_ids, c.ranks, c.finish_reason) == (tokens, ranks, finish)
    for i, (tid, lp, rank) in enumerate(zip(c.token_ids, c.logprobs, c.ranks, strict=True)):
        assert engine.score(c.keys[i], c.peaks[i], tid) == (tid, lp, rank)


@given(st.lists(st.integers(0, 5000), max_size=100))
def test_prompt_states_by_dot_product_equal_the_recurrences(ids: list[int]) -> None:
    assert ENGINE.prefix(ids) == (final_state(ids), ENGINE.prefix_bs(ids)[-1])


def test_top_p_is_applied_as_float32() -> None:
    # 2301 ordinary ids: 1/3 of them is 767 exactly, where a double top_p and its float32 rounding (what a Dynamo
    # frontend forwards) fall on either side of the ceiling. Both must sample alike, as the real engines' float32 do.
    third = 1 / 3
    rounded = float(np.float32(third))
    assert math.ceil(third * 2301) != math.ceil(rounded * 2301)
    a = ENGINE.generate(PROMPT, SamplingParams(max_tokens=32, top_p=third, seed=5, ignore_eos=True))
    b = ENGINE.generate(PROMPT, SamplingParams(max_tokens=32, top_p=rounded, seed=5, ignore_eos=True))
    assert (a.token_ids, a.logprobs) == (b.token_ids, b.logprobs)


@pytest.mark.parametrize(("size", "temperature"), [(2301, 1.0), (2301, 0.3), (767, 1.7), (50, 0.05), (2, 1.0)])
def test_sampled_rank_lookup_equals_counting_the_thresholds(size: int, temperature: float) -> None:
    """Rank ``1 + #{r in 1..size-1 : (r/size)**T <= u}`` for ``u = k / 2**53``: random ``k`` and ``k`` at, just
    below and just above every threshold (where a bucket lookup could be off by one)."""
    thresholds = [(r / size) ** temperature for r in range(1, size)]
    at = [math.ceil(t * 2**53) for t in thresholds]
    rng = np.random.default_rng(size)
    ks = [*at, *(x - 1 for x in at), *(x + 1 for x in at), 0, 2**53 - 1, *rng.integers(0, 2**53, 5000).tolist()]
    ks = [x for x in ks if 0 <= x < 2**53]
    got = sampled_ranks(np.asarray(ks, dtype=np.uint64), size, temperature).tolist()
    expected = [1 + bisect.bisect_right(thresholds, x / 2**53) for x in ks]
    assert got == expected


@pytest.mark.parametrize(
    ("top_k", "experts"),
    [(1, 16), (2, 16), (4, 64), (8, 256), (3, 16), (2, 300), (4, 300), (3, 300)],  # rows of 1-8 bytes, 2 and 4 not
)
def test_routed_experts_follow_the_documented_rows(top_k: int, experts: int) -> None:
    """Row ``p``, layer ``l`` is route-table row ``(k1 + l*k2) mod 2**16`` with ``k1`` the low 16 bits of
    ``mix(H_{p+1} ^ salt)`` and ``k2`` its bits 32..47 made odd (the docstring of ``Engine.routed_experts``), for
    rows copied whole (1, 2, 4, 8 bytes) and rows of other sizes."""
    from mockservers import engine as em

    ids = [(13 * i + 5) % 2304 for i in range(40)]
    start, layers = 3, 4
    table = em._route_table(experts, top_k)
    got = Engine.routed_experts(ids, start, layers, top_k, experts)
    assert got.shape == (len(ids) - 1 - start, layers, top_k)
    for p in range(start, len(ids) - 1):
        key = em.mix64(final_state(ids[: p + 1]) ^ em._ROUTE_SALT)
        k1, k2 = key & 0xFFFF, ((key >> 32) & 0xFFFF) | 1
        for layer in range(layers):
            assert got[p - start, layer].tolist() == table[(k1 + layer * k2) % (1 << 16)].tolist()
