"""MoE routing replay: the ``routed_experts`` payload, its wire forms, validation and row trim (the zero-copy cut of
its base64 text out of a response body is the parser's, ``_parse.split_body``).

Both transports use this module, so one response content gives one outcome whichever transport carried it.

Wire forms understood:

- prime-rl / Dynamo object form ``{"data": <std base64 of raw C-contiguous bytes>, "shape": [rows, layers, top_k],
  "start": int, "dtype": "uint8" | "uint16" | "int16" | "int32"}`` (``start`` defaults to 0, ``dtype`` to uint8);
- upstream vLLM's string form: base64 of a whole ``.npy`` file (shape and dtype come from the ``.npy`` header).

Row ``i`` of the table is sequence position ``start + i``; a complete table has
``prompt_len + completion_len - 1 - start`` rows (the last sampled token is never forwarded).
"""

from __future__ import annotations

import binascii
import io
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pybase64

from renderers.errors import RoutedExpertsError

__all__ = ["DTYPE_ITEMSIZE", "RoutedExperts", "routed_experts_from_wire"]

#: dtype name -> bytes per element. Anything else is rejected.
DTYPE_ITEMSIZE: Final[Mapping[str, int]] = MappingProxyType({"uint8": 1, "uint16": 2, "int16": 2, "int32": 4})
# Explicit little-endian numpy dtypes (the producers serialize native little-endian arrays).
_NP_DTYPE: Final[Mapping[str, str]] = MappingProxyType({"uint8": "u1", "uint16": "<u2", "int16": "<i2", "int32": "<i4"})


def _b64_len(n_bytes: int) -> int:
    return 4 * ((n_bytes + 2) // 3)


class RoutedExperts:
    """Per-position expert routing returned by an MoE engine.

    - ``data``: the standard (padded) base64 text of the raw table, as a read-only ``memoryview``. When it came
      from the response body, it is a zero-copy view into the response bytes.
    - ``shape``: ``(rows, layers, top_k)``; ``start``: sequence position of row 0; ``dtype``: element type name.

    Construction validates dtype, shape and the base64 length against ``shape`` × itemsize, raising
    ``RoutedExpertsError`` naming the field. ``to_numpy()`` decodes lazily (once) with pybase64.
    """

    __slots__ = ("_decoded", "data", "dtype", "field", "shape", "start")

    data: memoryview
    shape: tuple[int, int, int]
    start: int
    dtype: str
    field: str

    def __init__(
        self,
        data: memoryview | bytes | str,
        shape: tuple[int, int, int],
        start: int = 0,
        dtype: str = "uint8",
        *,
        field: str = "routed_experts",
        _decoded: bytes | None = None,
    ) -> None:
        if isinstance(data, str):
            try:
                data = data.encode("ascii")
            except UnicodeEncodeError:
                raise RoutedExpertsError(
                    f"{field}.data is not base64 text (non-ASCII characters)", field=f"{field}.data"
                ) from None
        mv = memoryview(data)
        if mv.ndim != 1 or mv.itemsize != 1:
            mv = mv.cast("B")
        if dtype not in DTYPE_ITEMSIZE:
            raise RoutedExpertsError(
                f"unknown {field}.dtype {dtype!r}; expected one of {sorted(DTYPE_ITEMSIZE)}",
                field=f"{field}.dtype",
                value=dtype,
            )
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise RoutedExpertsError(
                f"{field}.start must be a non-negative integer, got {start!r}", field=f"{field}.start", value=start
            )
        if (
            not isinstance(shape, tuple)
            or len(shape) != 3
            or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape)
        ):
            raise RoutedExpertsError(
                f"{field}.shape must be 3 non-negative integers [rows, layers, top_k], got {shape!r}",
                field=f"{field}.shape",
                value=shape,
            )
        n_bytes = shape[0] * shape[1] * shape[2] * DTYPE_ITEMSIZE[dtype]
        expected = _b64_len(n_bytes)
        if len(mv) != expected:
            raise RoutedExpertsError(
                f"{field}.data has {len(mv)} base64 characters but shape {list(shape)} x {dtype} "
                f"({n_bytes} bytes) needs {expected}",
                field=f"{field}.data",
                value=len(mv),
            )
        self.data = mv.toreadonly()
        self.shape = shape
        self.start = start
        self.dtype = dtype
        self.field = field
        self._decoded = _decoded

    @property
    def rows(self) -> int:
        return self.shape[0]

    def decoded(self) -> bytes:
        """The raw table bytes (decoded once, then cached)."""
        if self._decoded is None:
            try:
                self._decoded = pybase64.b64decode(self.data, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise RoutedExpertsError(
                    f"{self.field}.data is not valid base64: {exc}", field=f"{self.field}.data"
                ) from None
        return self._decoded

    def to_numpy(self) -> npt.NDArray[Any]:
        """A read-only ``(rows, layers, top_k)`` array over the decoded bytes (no copy beyond the base64 decode)."""
        return np.frombuffer(self.decoded(), dtype=np.dtype(_NP_DTYPE[self.dtype])).reshape(self.shape)

    def trimmed(self, prompt_start: int) -> RoutedExperts:
        """Drop the first ``prompt_start - start`` rows so row 0 is sequence position ``prompt_start``.

        Only a full-sequence table (``start == 0``) is trimmed; a table the worker already trimmed is returned as
        is (never trims twice). ``prompt_start`` is clamped to the number of rows.
        """
        if self.start != 0 or prompt_start <= 0:
            return self
        drop = min(prompt_start, self.shape[0])
        if drop == 0:
            return self
        row_bytes = self.shape[1] * self.shape[2] * DTYPE_ITEMSIZE[self.dtype]
        cut = drop * row_bytes
        new_shape = (self.shape[0] - drop, self.shape[1], self.shape[2])
        if cut % 3 == 0:
            # base64 groups of 4 characters encode 3 bytes: a cut on a 3-byte boundary is a slice of the text.
            rest = None if self._decoded is None else self._decoded[cut:]
            return RoutedExperts(
                self.data[cut // 3 * 4 :], new_shape, prompt_start, self.dtype, field=self.field, _decoded=rest
            )
        raw = self.decoded()[cut:]
        return RoutedExperts(
            pybase64.b64encode(raw), new_shape, prompt_start, self.dtype, field=self.field, _decoded=raw
        )

    def to_payload(self) -> dict[str, Any]:
        """The prime-rl ``{data, shape, start, dtype}`` dict (``data`` as ``str``)."""
        return {"data": self.data.tobytes().decode("ascii"), "shape": list(self.shape), "start": self.start,
                "dtype": self.dtype}  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RoutedExperts):
            return NotImplemented
        return (
            self.shape == other.shape
            and self.start == other.start
            and self.dtype == other.dtype
            and self.data == other.data
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"RoutedExperts(shape={self.shape}, start={self.start}, dtype={self.dtype!r}, "
            f"data=<{len(self.data)} base64 chars>)"
        )


def _from_npy(
    text: Any, field: str, blob: memoryview | None, blob_decoded: bytes | None = None
) -> tuple[RoutedExperts, bool]:
    """Upstream vLLM form: base64 of a ``.npy`` file. Returns the payload and ``False`` (no explicit start)."""
    src: Any = blob if blob is not None else text
    try:
        raw = blob_decoded if blob is not None and blob_decoded is not None else pybase64.b64decode(src, validate=True)
        arr = np.load(io.BytesIO(raw), allow_pickle=False)
    except Exception as exc:  # binascii.Error, ValueError, OSError from np.load
        raise RoutedExpertsError(f"{field} is not a base64 .npy array: {exc}", field=field) from None
    if arr.ndim != 3:
        raise RoutedExpertsError(f"{field} must be 3-D [rows, layers, top_k], got shape {arr.shape}", field=field)
    name = arr.dtype.name
    if name not in DTYPE_ITEMSIZE:
        raise RoutedExpertsError(
            f"unknown {field} dtype {name!r}; expected one of {sorted(DTYPE_ITEMSIZE)}", field=f"{field}.dtype"
        )
    body = np.ascontiguousarray(arr, dtype=np.dtype(_NP_DTYPE[name])).tobytes()
    shape = (int(arr.shape[0]), int(arr.shape[1]), int(arr.shape[2]))
    return RoutedExperts(pybase64.b64encode(body), shape, 0, name, field=field, _decoded=body), False


def routed_experts_from_wire(
    payload: Any, *, field: str, blob: memoryview | None = None, blob_decoded: bytes | None = None
) -> tuple[RoutedExperts | None, bool]:
    """Normalize a wire ``routed_experts`` value.

    Returns ``(payload, has_explicit_start)``; ``None`` stays ``None``. ``blob`` is the zero-copy base64 text cut
    out of the body by ``decode_body``; it replaces ``data`` when the parsed ``data`` is the empty placeholder.
    ``blob_decoded`` is ``blob`` already base64-decoded (the parser validates the text that way); it is kept as
    the decoded table so ``to_numpy()`` does not decode again.
    """
    if payload is None:
        return None, False
    if isinstance(payload, str):
        return _from_npy(payload, field, blob if payload == "" else None, blob_decoded if payload == "" else None)
    if not isinstance(payload, Mapping):
        raise RoutedExpertsError(
            f"{field} must be an object {{data, shape, start, dtype}} or a base64 .npy string, "
            f"got {type(payload).__name__}",
            field=field,
        )
    data = payload.get("data")
    decoded = None
    if data == "" and blob is not None:
        data, decoded = blob, blob_decoded
    if not isinstance(data, (str, bytes, memoryview)):
        raise RoutedExpertsError(
            f"{field}.data must be a base64 string, got {type(data).__name__}", field=f"{field}.data"
        )
    shape = payload.get("shape")
    if not isinstance(shape, (list, tuple)) or len(shape) != 3:
        raise RoutedExpertsError(
            f"{field}.shape must be 3-D [rows, layers, top_k], got {shape!r}", field=f"{field}.shape", value=shape
        )
    start = payload.get("start", 0)
    if start is None:
        start = 0
    dtype = payload.get("dtype", "uint8")
    if dtype is None:
        dtype = "uint8"
    if not isinstance(dtype, str):
        raise RoutedExpertsError(f"unknown {field}.dtype {dtype!r}", field=f"{field}.dtype", value=dtype)
    return RoutedExperts(data, tuple(shape), start, dtype, field=field, _decoded=decoded), "start" in payload
