"""Routed-experts payloads, serialised without ever putting the base64 text through the JSON encoder.

A response is built with a placeholder string where the base64 goes, encoded once with orjson, and the
pybase64 bytes are spliced in (``splice``). Objects keep ``data`` as their first key and the JSON compact, so a
client can find ``"routed_experts":{"data":"`` in the raw bytes and cut the payload out without parsing it.

A large piece can be ``Deferred``: its length is known up front (the ``Content-Length``), its bytes are made in
chunks of a few hundred kB while the body is written (``base64_stream``), so a 21.9 MB response never exists whole
in the server, and the next chunk is computed while the client reads the previous ones.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import orjson
import pybase64

# A JSON string value no real field can hold verbatim (a quote inside a JSON string is always escaped).
PLACEHOLDER = "\u2063mock-routed-experts\u2063"
_PLACEHOLDER_JSON = orjson.dumps(PLACEHOLDER)


class Shaped(Protocol):
    """An array, or anything that knows the shape and dtype of one (``engine.RoutePlan``)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype[Any]: ...


class Deferred:
    """A body piece whose length is known before its bytes: ``chunks()`` makes them when the body is written."""

    __slots__ = ("_make", "size")

    def __init__(self, size: int, make: Callable[[], Iterable[bytes]]) -> None:
        self.size = size
        self._make = make

    def __len__(self) -> int:
        return self.size

    def chunks(self) -> Iterator[bytes]:
        made = 0
        for chunk in self._make():
            made += len(chunk)
            yield chunk
        if made != self.size:  # the size went out as Content-Length: a mismatch is a bug, never a silent short body
            raise AssertionError(f"a deferred body piece announced {self.size} bytes and made {made}")

    def materialise(self) -> bytes:
        return b"".join(self.chunks())


Piece = bytes | memoryview | Deferred


def join(parts: Iterable[Piece]) -> bytes:
    """The whole body of ``splice_parts``' pieces (deferred ones made now)."""
    return b"".join(p.materialise() if isinstance(p, Deferred) else p for p in parts)


def base64_size(nbytes: int) -> int:
    return 4 * ((nbytes + 2) // 3)


def _base64_chunks(blocks: Iterable[bytes | npt.NDArray[Any]]) -> Iterator[bytes]:
    """Standard base64 of the concatenated blocks, one chunk per block (up to 2 bytes carried to the next one, so
    the chunks concatenate to the base64 of the whole)."""
    carry = np.empty(0, dtype=np.uint8)
    for block in blocks:
        data = (
            np.frombuffer(block, dtype=np.uint8)
            if isinstance(block, bytes)
            else np.ascontiguousarray(block).reshape(-1).view(np.uint8)
        )
        if len(carry):
            data = np.concatenate([carry, data])
        cut = len(data) - len(data) % 3
        if cut:
            encoded: bytes = pybase64.b64encode(data[:cut].data)
            yield encoded
        carry = data[cut:]
    if len(carry):
        last: bytes = pybase64.b64encode(carry.data)
        yield last


def _npy_header(shape: tuple[int, ...], dtype: np.dtype[Any]) -> bytes:
    """The header ``np.save`` writes for a C-ordered array of this shape and dtype (format 1.0)."""
    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def base64_stream(
    table: Shaped, nbytes: int, blocks: Callable[[], Iterable[npt.NDArray[Any]]], *, npy: bool
) -> Deferred:
    """``raw_base64`` (``npy``: ``npy_base64``) of a table given as consecutive C-ordered row blocks, deferred."""
    if npy:
        header = _npy_header(table.shape, table.dtype)
        return Deferred(base64_size(len(header) + nbytes), lambda: _base64_chunks([header, *blocks()]))
    return Deferred(base64_size(nbytes), lambda: _base64_chunks(blocks()))


def routed_object(arr: Shaped, start: int) -> dict[str, Any]:
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


def splice(obj: Any, replacements: Sequence[tuple[str, Sequence[Piece]]]) -> bytes:
    """orjson-encode ``obj``, then replace each placeholder string value by the raw JSON ``pieces`` given for it.

    One ``join`` builds the body: the pieces (a 17 MB base64 payload, pre-built logprob text) are copied once and
    never pass through the JSON encoder. A placeholder may occur any number of times (Dynamo puts the same routed
    object in ``nvext`` and in ``engine_data``), or not at all.
    """
    return join(splice_parts(obj, replacements))


def splice_parts(obj: Any, replacements: Sequence[tuple[str, Sequence[Piece]]]) -> list[Piece]:
    """``splice`` without the final join: the body as pieces in order (views of orjson's text and the given
    pieces, ``Deferred`` ones still unmade), for a server that writes them one by one instead of copying a large
    body into one buffer first."""
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
    out: list[Piece] = []
    last = 0
    for at, end, pieces in found:
        out.append(view[last:at])
        out.extend(pieces)
        last = end
    out.append(view[last:])
    return out
