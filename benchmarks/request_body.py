"""Group 2: build the request body for 8k prompt ids: this client vs stdlib ``json`` vs the ``orjson`` floor.

**client (generate path)** is what ``generate(prompt_ids=...)`` does to a caller's ids before posting: the id check
(``checked_prompt_ids``: every id an ``int`` >= 0, checked by encoding the list once with orjson; that text goes into
the body as an ``orjson.Fragment``) and ``Transport.build_body``. **client (build_body only)** skips
the id check. The stdlib and orjson rows encode the very document the transport builds (checked equal).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import orjson

from benchmarks import bodies
from benchmarks.harness import Case, Section, Target, interleaved, profile_text, timing_table
from renderers.client._call import WireRequest, checked_prompt_ids
from renderers.client._transports import TRANSPORTS

N_IDS = 8192


def wire_request(ids: list[int], ids_json: bytes | None = None) -> WireRequest:
    return WireRequest(
        model=bodies.MODEL, prompt_ids=ids, sampling_params=bodies.sampling_params(), prompt_ids_json=ids_json
    )


def transport_document(shape: str, ids: list[int]) -> Any:
    """The document ``shape``'s transport builds for ``ids`` (decoded back from its bytes)."""
    return orjson.loads(TRANSPORTS[shape].build_body(wire_request(ids)))


def client_generate_path(shape: str, ids: list[int]) -> bytes:
    checked, ids_json = checked_prompt_ids(ids)
    return TRANSPORTS[shape].build_body(wire_request(checked, ids_json))


def stdlib_encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def run(*, rounds: int, quick: bool) -> Section:
    n = 1024 if quick else N_IDS
    ids = bodies.prompt_ids(n)
    sec = Section(f"2. Building the request body for {n:,} prompt ids")
    sec.blocks.append(__doc__.split("\n\n", 1)[1].strip() if __doc__ else "")
    panel: dict[str, float] = {}
    for shape in ("vllm", "dynamo"):
        doc = transport_document(shape, ids)
        transport = TRANSPORTS[shape]
        req = wire_request(ids)
        assert orjson.loads(client_generate_path(shape, ids)) == doc
        assert orjson.loads(stdlib_encode(doc)) == doc
        cases = [
            Case("client (generate path: id check + build_body)", partial(client_generate_path, shape, ids)),
            Case("client (build_body only)", partial(transport.build_body, req)),
            Case("stdlib json.dumps(doc).encode()", partial(stdlib_encode, doc)),
            Case("orjson.dumps(doc) (floor)", partial(orjson.dumps, doc)),
        ]
        t = interleaved(cases, rounds=rounds)
        size = len(orjson.dumps(doc))
        sec.blocks.append(f"### {shape} body ({size:,} bytes)\n\n{timing_table(t, 'orjson.dumps(doc) (floor)')}")
        floor = t["orjson.dumps(doc) (floor)"].median
        full = t["client (generate path: id check + build_body)"].median
        only = t["client (build_body only)"].median
        for name, timing in t.items():
            panel[f"{shape}: {name}"] = timing.median * 1e6
        target = Target("2", f"{shape}: client generate path / orjson floor", full / floor, 2.0, "le")
        sec.targets.append(target)
        sec.targets.append(Target("2", f"{shape}: client build_body only / orjson floor", only / floor, 2.0, "le"))
        if not target.holds:
            sec.blocks.append(
                f"Profile of the client generate path ({shape}; target missed):\n\n"
                + profile_text(partial(client_generate_path, shape, ids), calls=200, top=6)
            )
    sec.plot["request body (µs, median)"] = panel
    return sec
