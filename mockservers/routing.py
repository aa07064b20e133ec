"""Routed-experts payloads, serialised without ever putting the base64 text through the JSON encoder.

A response is built with a placeholder string where the base64 goes, encoded once with orjson, and the
pybase64 bytes are spliced in (``splice``). Objects keep ``data`` as their first key and the JSON compact, so a
client can find ``"routed_experts":{"data":"`` in the raw bytes and cut the payload out without parsing it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pybase64

# A JSON string value no real field can hold verbatim (a quote inside a JSON string is always escaped).
PLACEHOLDER = "\u2063mock-routed-experts\u2063"
_PLACEHOLDER_JSON = orjson.dumps(PLACEHOLDER)


def routed_object(arr: npt.NDArray[Any], start: int) -> dict[str, Any]:
    """The prime-rl / Dynamo-worker object ``{data, shape, start, dtype}`` with ``data`` still a placeholder."""
    return {"data": PLACEHOLDER, "shape": list(arr.shape), "start": int(start), "dtype": str(arr.dtype)}


def raw_base64(arr: npt.NDArray[Any]) -> bytes:
    """Standard base64 of the C-contiguous bytes."""
    encoded: bytes = pybase64.b64encode(np.ascontiguousarray(arr).data)
    return encoded


def npy_base64(arr: npt.NDArray[Any]) -> bytes:
    """Standard base64 of a whole ``.npy`` file (vLLM 0.26+ upstream encoding)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    encoded: bytes = pybase64.b64encode(buf.getbuffer())
    return encoded


def dumps(obj: Any, payload: bytes | None = None) -> bytes:
    """orjson-encode ``obj`` and put ``payload`` (base64 bytes) where ``PLACEHOLDER`` was used."""
    if payload is None:
        return orjson.dumps(obj)
    return splice(obj, [(PLACEHOLDER, (b'"', payload, b'"'))])


def splice(obj: Any, replacements: Sequence[tuple[str, Sequence[bytes]]]) -> bytes:
    """orjson-encode ``obj``, then replace each placeholder string value by the raw JSON ``pieces`` given for it.

    One ``join`` builds the body: the pieces (a 17 MB base64 payload, pre-built logprob text) are copied once and
    never pass through the JSON encoder. A placeholder may occur any number of times (Dynamo puts the same routed
    object in ``nvext`` and in ``engine_data``), or not at all.
    """
    return b"".join(splice_parts(obj, replacements))


def splice_parts(obj: Any, replacements: Sequence[tuple[str, Sequence[bytes]]]) -> list[bytes | memoryview]:
    """``splice`` without the final join: the body as pieces in order (views of orjson's text and the given
    pieces), for a server that writes them one by one instead of copying a large body into one buffer first."""
    body = orjson.dumps(obj)
    found = []
    for marker, pieces in replacements:
        quoted = orjson.dumps(marker)
        at = body.find(quoted)
        while at >= 0:
            found.append((at, at + len(quoted), pieces))
            at = body.find(quoted, at + len(quoted))
    if not found:
        return [body]
    found.sort(key=lambda x: x[0])
    view = memoryview(body)
    out: list[bytes | memoryview] = []
    last = 0
    for at, end, pieces in found:
        out.append(view[last:at])
        out.extend(pieces)
        last = end
    out.append(view[last:])
    return out
