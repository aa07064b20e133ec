"""Routed-experts payloads, serialised without ever putting the base64 text through the JSON encoder.

A response is built with a placeholder string where the base64 goes, encoded once with orjson, and the
pybase64 bytes are spliced in (``splice``). Objects keep ``data`` as their first key and the JSON compact, so a
client can find ``"routed_experts":{"data":"`` in the raw bytes and cut the payload out without parsing it.
"""

from __future__ import annotations

import io
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
    """orjson-encode ``obj`` and put ``payload`` (base64 bytes) wherever ``PLACEHOLDER`` was used."""
    body = orjson.dumps(obj)
    if payload is None:
        return body
    return body.replace(_PLACEHOLDER_JSON, b'"' + payload + b'"')
