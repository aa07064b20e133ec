"""Group 1: parse a response body into a result plus the decoded routed-experts array, on both transports.

Three pipelines, each from the raw bytes to ``(completion ids, logprobs, uint8 array)``:

- **client**: ``Transport.parse`` (this project's shared strict parser) then ``RoutedExperts.to_numpy()``;
- **peer**: ``renderers==0.1.12``'s ``parse_generate_response`` + ``_parse_completion_logprobs``, then the stdlib
  ``base64.b64decode`` (vLLM shape only: 0.1.12 has no Dynamo parser);
- **floor**: locate the base64 string (``find`` + ``index`` of the closing quote), ``orjson.loads`` of the rest
  joined around it, ``pybase64.b64decode(memoryview, validate=True)``, ``np.frombuffer().reshape()``. No
  validation and no extraction of the lists: the cheapest way to have everything decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson
import pybase64

from benchmarks import bodies
from benchmarks.harness import Case, Section, Target, fmt_bytes, interleaved, profile_text, timing_table
from renderers.client._transports import TRANSPORTS

PREFIX: Final = b'"routed_experts":{"data":"'
Parsed = tuple[list[int], list[float], npt.NDArray[Any] | None]


def floor_parse(raw: bytes, shape: tuple[int, int, int] | None) -> tuple[Any, npt.NDArray[Any] | None]:
    """The floor: the decoded document (base64 cut out) and the routing array."""
    pos = raw.find(PREFIX)
    if pos < 0:
        return orjson.loads(raw), None
    begin = pos + len(PREFIX)
    end = raw.index(b'"', begin)
    mv = memoryview(raw)
    doc = orjson.loads(b"".join((mv[:begin], mv[end:])))
    arr = np.frombuffer(pybase64.b64decode(mv[begin:end], validate=True), dtype=np.uint8)
    return doc, arr.reshape(shape) if shape is not None else arr


def floor_lists(doc: Any, shape: str) -> tuple[list[int], list[float]]:
    """Ids and logprobs out of a floor document (for equality checks; not timed)."""
    if shape == "vllm":
        choice = doc["choices"][0]
        return choice["token_ids"], [e["logprob"] for e in choice["logprobs"]["content"]]
    engine = doc["nvext"]["engine_data"]
    return engine["completion_token_ids"], engine["completion_logprobs"]


_LOGPROB = itemgetter("logprob")
_TOKEN = itemgetter("token")
_MISSING = -9999.0


def bulk_validated(raw: bytes, shape_rc: tuple[int, int, int] | None, shape: str) -> Parsed:
    """A sketch of what the client's checks cost when done in bulk (C-level loops), not per element in Python.

    Same rules as the client (ids: ints >= 0; logprobs: numbers, finite, <= 0, not -9999; vLLM entries name the
    same token id); only the happy path is bulk, a real implementation would re-run the per-element checks to
    name the offending field when one fails. Not a pipeline anyone ships: it is the evidence for the issue note.
    """
    doc, arr = floor_parse(raw, shape_rc)
    if shape == "vllm":
        choice = doc["choices"][0]
        ids = choice["token_ids"]
        content = choice["logprobs"]["content"]
        lps = list(map(_LOGPROB, content))
        if list(map(_TOKEN, content)) != list(map("token_id:{}".format, ids)):
            raise ValueError("token ids differ")
    else:
        engine = doc["nvext"]["engine_data"]
        ids, lps = engine["completion_token_ids"], engine["completion_logprobs"]
    if ids and (set(map(type, ids)) != {int} or min(ids) < 0):
        raise ValueError("bad ids")
    if lps:
        if not set(map(type, lps)) <= {float, int}:
            raise ValueError("bad logprob type")
        total = sum(lps)  # all finite and <= 0 iff the sum is finite (NaN and +-inf propagate) and max <= 0
        if not (total > float("-inf") and max(lps) <= 0.0) or _MISSING in lps:
            raise ValueError("bad logprob value")
        if int in set(map(type, lps)):
            lps = [float(v) for v in lps]
    if len(ids) != len(lps):
        raise ValueError("count mismatch")
    return ids, lps, arr


def client_parse(shape: str, prompt_len: int) -> Callable[[bytes], Parsed]:
    parse = TRANSPORTS[shape].parse

    def run(raw: bytes) -> Parsed:
        res = parse(raw, prompt_len=prompt_len)
        arr = res.routed_experts.to_numpy() if res.routed_experts is not None else None
        return res.completion_ids, res.completion_logprobs, arr

    return run


@dataclass(frozen=True)
class Body:
    spec: bodies.Spec
    shape: str
    raw: bytes
    payload: bodies.Payload


def build_bodies(specs: tuple[bodies.Spec, ...] = bodies.SPECS) -> list[Body]:
    out = []
    for spec in specs:
        payload = bodies.make_payload(spec)
        for shape, make in bodies.SHAPES.items():
            out.append(Body(spec, shape, make(payload, spec.prompt_len), payload))
    return out


def check_equal(body: Body, peer: Callable[[bytes], Parsed] | None) -> None:
    """All pipelines agree with the generated payload (raises ``AssertionError`` otherwise)."""
    p = body.payload
    results: dict[str, Parsed] = {"client": client_parse(body.shape, body.spec.prompt_len)(body.raw)}
    doc, arr = floor_parse(body.raw, body.spec.routed)
    results["floor"] = (*floor_lists(doc, body.shape), arr)
    results["sketch"] = bulk_validated(body.raw, body.spec.routed, body.shape)
    if peer is not None and body.shape == "vllm":
        results["peer"] = peer(body.raw)
    for name, (ids, lps, table) in results.items():
        assert ids == p.ids, f"{name}: completion ids differ ({body.spec.name}/{body.shape})"
        assert lps == p.logprobs, f"{name}: logprobs differ ({body.spec.name}/{body.shape})"
        if p.routed is None:
            assert table is None, f"{name}: unexpected routing array"
        else:
            assert table is not None, f"{name}: no routing array"
            assert table.shape == p.routed.shape, f"{name}: routing shape"
            assert np.array_equal(table, p.routed), f"{name}: routing differs"


def run(*, rounds: int, quick: bool, peer: Callable[[bytes], Parsed] | None) -> Section:
    specs = bodies.SPECS if not quick else (bodies.Spec("a_4k", 4096), bodies.Spec("c_8k_routed", 8192, (8192, 48, 8)))
    sec = Section("1. Parsing a response into a result + the routed-experts array")
    sec.blocks.append(
        "Pipelines: **client** = `Transport.parse()` + `RoutedExperts.to_numpy()`; **peer** = renderers==0.1.12 "
        "`parse_generate_response` + `_parse_completion_logprobs` + stdlib `base64.b64decode` (vLLM shape only; "
        "0.1.12 has no Dynamo parser); **floor** = locate the base64 + `orjson.loads(rest)` + "
        "`pybase64.b64decode(memoryview, validate=True)` + `np.frombuffer().reshape()` (no validation, no list "
        "extraction). Every pipeline was checked to return the same ids, logprobs and array before timing."
    )
    panel: dict[str, float] = {}
    for body in build_bodies(specs):
        check_equal(body, peer)
        spec, shape = body.spec, body.shape
        cases = [
            Case("client", partial(client_parse(shape, spec.prompt_len), body.raw)),
            Case("floor", partial(floor_parse, body.raw, spec.routed)),
            Case("sketch: floor + bulk validation", partial(bulk_validated, body.raw, spec.routed, shape)),
        ]
        if peer is not None and shape == "vllm":
            cases.append(Case("peer 0.1.12 + base64", partial(peer, body.raw)))
        t = interleaved(cases, rounds=rounds)
        title = f"### {spec.name} / {shape} ({fmt_bytes(len(body.raw))}, {len(body.raw):,} bytes)"
        sec.blocks.append(f"{title}\n\n{timing_table(t, 'floor')}")
        ratio = t["client"].median / t["floor"].median
        label = f"{spec.name}/{shape}"
        panel[f"{label} client"] = t["client"].median * 1e3
        panel[f"{label} floor"] = t["floor"].median * 1e3
        limit = 1.5 if spec.routed is not None else 1.3
        target = Target("1", f"{label}: client / floor", ratio, limit, "le")
        sec.targets.append(target)
        if not target.holds:
            fn = client_parse(shape, spec.prompt_len)
            prof = profile_text(partial(fn, body.raw), calls=3)
            sec.blocks.append(
                f"Profile of the client on {label} (target missed; cProfile, top functions by own time; the "
                f"profiler inflates per-call Python overhead):\n\n{prof}"
            )
        if "peer 0.1.12 + base64" in t:
            peer_ratio = t["peer 0.1.12 + base64"].median / t["client"].median
            panel[f"{label} peer"] = t["peer 0.1.12 + base64"].median * 1e3
            if spec.routed is not None:
                sec.targets.append(Target("1", f"{label}: peer / client (speed-up)", peer_ratio, 5.0, "ge"))
            else:
                sec.blocks.append(f"peer / client on {label}: {peer_ratio:.2f}× (no target without routing)")
    sec.plot["parse (ms, median)"] = panel
    return sec
