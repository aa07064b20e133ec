"""Dynamo answers whose ``engine_data`` covers only part of the completion (a migrated request): caught, then
rebuilt exactly or refused with ``PartialCompletionError``. Never returned truncated.

What Dynamo 1.6.1 does (observed on the real frontend with two workers, ``DYN_MIGRATION_LIMIT`` > 0, one worker
killed mid-generation): the frontend resends the request to another worker with the tokens generated so far
appended to the prompt, and streams that worker's tokens after the first ones. The final answer then mixes two
sources:

- ``usage.completion_tokens`` and the chat echo ``choices[0].logprobs.content`` count **every** token;
- ``usage.prompt_tokens`` is the **last** worker's prompt: the original prompt plus the tokens generated before;
- ``nvext.engine_data`` is the **last** worker's alone: its ``completion_token_ids`` / ``completion_logprobs`` are
  only the continuation, its ``prompt_token_ids`` the extended prompt, and its ``routed_experts`` were computed
  over that extended prompt plus the continuation, i.e. over the whole sequence.

The rule (``check_dynamo_answer``), applied after the shared parser:

1. If ``usage.completion_tokens`` equals the number of completion ids the parser returned (or ``usage`` has no
   such count), the answer is whole: it is returned as parsed.
2. Otherwise it is rebuilt only when every part of it is explained by the migration above, with ``C`` =
   ``usage.completion_tokens``, ``E`` = ``engine_data.completion_token_ids`` and ``m = C - len(E)``:
   the echo has exactly ``C`` entries, each with its ``token_id`` and ``logprob``; its last ``len(E)`` ids are
   ``E``; ``usage.prompt_tokens`` is ``prompt length + m``; ``engine_data.prompt_token_ids`` (when present) ends
   with the echo's first ``m`` ids; ``engine_data.completion_logprobs`` (when present) equals the echo's last
   ``len(E)`` logprobs at float32. The rebuilt completion takes its ids and logprobs from the echo (logprobs
   rounded back to float32, which recovers the engine's values exactly) and its routing from the table, which
   must then cover the whole sequence (prompt + ``C`` - 1 rows from its start; the usual trim rule applies).
3. Anything else raises ``PartialCompletionError`` naming what disagrees.

The rule is sound because every rebuilt value is one the engine produced and the frontend relayed unchanged (the
echo's ids and float32 logprobs, the last worker's full-sequence table), and every count is cross-checked; a
routing table that covers only the continuation fails the row check and is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import numpy as np
import orjson

from renderers.client._parse import WireResult, decode_full, split_body
from renderers.errors import LogprobMismatchError, PartialCompletionError, RoutedExpertsError

__all__ = ["check_dynamo_answer"]


class _Usage(msgspec.Struct, gc=False):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Head(msgspec.Struct, gc=False):
    usage: _Usage | None = None


_HEAD: Any = msgspec.json.Decoder(_Head)
_USAGE: Any = msgspec.json.Decoder(_Usage | None)
_USAGE_KEY = b'"usage":'
_USAGE_MAX = 4096  # a usage object is a few hundred bytes


def _usage(raw: bytes) -> _Usage | None:
    """The ``usage`` counts, or ``None`` when absent or not plain integers (then there is nothing to check).

    Fast path: when ``"usage":`` occurs exactly once in the body (a quote inside a JSON string is escaped, so the
    key cannot hide in one), only its object is decoded: a few hundred bytes instead of a body of megabytes.
    Anything else decodes the whole body (routed-experts text cut out) for the top-level key.
    """
    at = raw.find(_USAGE_KEY)
    if at >= 0 and raw.find(_USAGE_KEY, at + 1) < 0:
        start = at + len(_USAGE_KEY)
        end = raw.find(b"}", start, start + _USAGE_MAX)
        # The object may hold one nested object (``prompt_tokens_details``): close on the brace after it.
        while end >= 0 and raw.count(b"{", start, end + 1) != raw.count(b"}", start, end + 1):
            end = raw.find(b"}", end + 1, start + _USAGE_MAX)
        if end >= 0:
            try:
                usage: _Usage | None = _USAGE.decode(raw[start : end + 1])
                return usage
            except (msgspec.DecodeError, RecursionError):
                pass
    rest, _ = split_body(raw)
    try:
        head: _Head = _HEAD.decode(rest)
    except (msgspec.DecodeError, RecursionError):
        return None
    return head.usage


def check_dynamo_answer(raw: bytes, *, prompt_len: int, parse: Callable[[bytes], WireResult]) -> WireResult:
    """``parse(raw)`` when the answer is whole; the rebuilt result when it is a migrated answer that can be rebuilt
    exactly (module docstring); ``PartialCompletionError`` otherwise.

    ``parse`` is the transport's parser; it also parses the rebuilt body (where the echo's ids and float32
    logprobs stand in ``engine_data``, so the usual rules check them against the routing table). A partial answer
    can fail ``parse``'s own rules first (its routing table covers more rows than the truncated ids); such an
    error is re-raised only when ``usage`` agrees with it.
    """
    try:
        result = parse(raw)
    except (RoutedExpertsError, LogprobMismatchError) as exc:
        usage = _usage(raw)
        if usage is None or usage.completion_tokens is None:
            raise
        return _rebuild(raw, prompt_len, usage, parse, exc)
    usage = _usage(raw)
    if usage is None or usage.completion_tokens is None or usage.completion_tokens == len(result.completion_ids):
        return result
    return _rebuild(raw, prompt_len, usage, parse, None)


def _refuse(message: str, usage: _Usage, n_engine: int, n_echo: int | None, field: str) -> PartialCompletionError:
    counts = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
    return PartialCompletionError(
        f"partial Dynamo answer (nvext.engine_data does not cover the whole completion, as after a migrated "
        f"request), not rebuilt: {message}",
        field=field,
        usage=counts,
        engine_data_ids=n_engine,
        echo_ids=n_echo,
    )


def _echo(choice: Any) -> list[tuple[int, float]] | None:
    logprobs = choice.get("logprobs") if isinstance(choice, Mapping) else None
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    if not isinstance(content, list):
        return None
    out = []
    for entry in content:
        tid = entry.get("token_id") if isinstance(entry, Mapping) else None
        lp = entry.get("logprob") if isinstance(entry, Mapping) else None
        if type(tid) is not int or not isinstance(lp, int | float) or isinstance(lp, bool):
            return None
        out.append((tid, float(lp)))
    return out


def _rebuild(
    raw: bytes,
    prompt_len: int,
    usage: _Usage,
    parse: Callable[[bytes], WireResult],
    cause: Exception | None,
) -> WireResult:
    doc = decode_full(raw)
    nvext = doc.get("nvext") if isinstance(doc, dict) else None
    engine = nvext.get("engine_data") if isinstance(nvext, dict) else None
    if not isinstance(engine, dict):
        engine = {}
    ids = engine.get("completion_token_ids")
    n_engine = len(ids) if isinstance(ids, list) else 0
    choices = doc.get("choices") if isinstance(doc, dict) else None
    echo = _echo(choices[0]) if isinstance(choices, list) and choices else None
    n_echo = len(echo) if echo is not None else None
    total = usage.completion_tokens

    def refuse(message: str, field: str) -> PartialCompletionError:
        return _refuse(message, usage, n_engine, n_echo, field)

    if cause is not None and (not isinstance(ids, list) or total == n_engine):
        raise cause  # no engine_data, or one that usage agrees with: the parser's own error
    if total is None:
        raise refuse("usage.completion_tokens is absent", "usage.completion_tokens") from cause
    if not isinstance(ids, list):
        raise refuse("nvext.engine_data.completion_token_ids is absent", "nvext.engine_data") from cause
    if echo is None:
        raise refuse(
            "the chat echo choices[0].logprobs.content is absent or lacks token_id/logprob",
            "choices[0].logprobs.content",
        ) from cause
    if len(echo) != total:
        raise refuse(
            f"usage counts {total} completion tokens, the chat echo has {len(echo)} and engine_data {n_engine}",
            "choices[0].logprobs.content",
        ) from cause
    if n_engine > total:
        raise refuse(f"engine_data has {n_engine} ids, more than usage's {total}", "usage.completion_tokens")
    before = total - n_engine
    echo_ids = [t for t, _ in echo]
    if echo_ids[before:] != ids:
        raise refuse(
            f"engine_data's {n_engine} completion ids are not the last {n_engine} ids of the chat echo",
            "nvext.engine_data.completion_token_ids",
        ) from cause
    if usage.prompt_tokens != prompt_len + before:
        raise refuse(
            f"usage.prompt_tokens is {usage.prompt_tokens}, not the prompt ({prompt_len}) + the {before} tokens "
            "generated before the last worker took over",
            "usage.prompt_tokens",
        ) from cause
    prompt_ids = engine.get("prompt_token_ids")
    if prompt_ids is not None and (
        not isinstance(prompt_ids, list)
        or len(prompt_ids) != prompt_len + before
        or prompt_ids[prompt_len:] != echo_ids[:before]
    ):
        raise refuse(
            "engine_data.prompt_token_ids is not the prompt followed by the tokens generated before",
            "nvext.engine_data.prompt_token_ids",
        ) from cause
    with np.errstate(over="ignore"):
        echo_lps = np.asarray([lp for _, lp in echo], dtype=np.float32)
    if not np.isfinite(echo_lps).all():
        raise refuse("a chat-echo logprob is beyond float32 range", "choices[0].logprobs.content") from cause
    engine_lps = engine.get("completion_logprobs")
    if engine_lps is not None:
        try:
            same = np.array_equal(np.asarray(engine_lps, dtype=np.float32), echo_lps[before:])
        except (TypeError, ValueError):
            same = False
        if not same:
            raise refuse(
                "engine_data.completion_logprobs differ from the chat echo's last logprobs",
                "nvext.engine_data.completion_logprobs",
            ) from cause
    engine["completion_token_ids"] = echo_ids
    engine["completion_logprobs"] = echo_lps.astype(np.float64).tolist()
    if isinstance(nvext, dict):
        nvext.pop("completion_token_ids", None)
        nvext["engine_data"] = engine
    try:
        return parse(orjson.dumps(doc))
    except RoutedExpertsError as exc:
        raise refuse(
            f"the routing table does not cover the whole sequence ({exc})", exc.field or "nvext.routed_experts"
        ) from exc
