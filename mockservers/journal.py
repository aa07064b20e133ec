"""A bounded, thread-safe record of the requests a mock server received."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

import orjson

# Headers worth asserting on; everything else (cookies, auth) stays out of the journal.
JOURNAL_HEADERS = (
    "content-type",
    "content-length",
    "user-agent",
    "x-request-id",
    "x-session-id",
    "x-mock-fault",
    "x-data-parallel-rank",
    "x-tenant-id",
    "x-dynamo-request-id",
    "x-dynamo-worker-instance-id",
    "x-dynamo-dp-rank",
    "x-dynamo-request-priority",
)


def decode_body(raw: bytes) -> Any:
    """A journalled body: the parsed JSON, or ``{_raw, _length}`` when it does not parse."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"_raw": raw[:2048].decode("utf-8", errors="replace"), "_length": len(raw)}


def select_headers(headers: Mapping[str, str]) -> dict[str, str]:
    lowered = {k.lower(): v for k, v in headers.items()}
    return {name: lowered[name] for name in JOURNAL_HEADERS if name in lowered}


Record = tuple[float, str, str, str, Mapping[str, str], Any, Any, Any, int]
"""What a busy server keeps per request: ``(time, method, path, query, headers, fault, status, body, seq)`` with the
request's own (immutable) header mapping and raw body bytes; ``entries()`` turns it into the journal dict."""


def _entry(record: Record) -> dict[str, Any]:
    time, method, path, query, headers, fault, status, body, seq = record
    return {
        "time": time,
        "method": method,
        "path": path,
        "query": query,
        "headers": select_headers(headers),
        "fault": fault,
        "status": status,
        "body": decode_body(body) if isinstance(body, bytes) else body,
        "seq": seq,
    }


class Journal:
    """Ring buffer of request records, oldest dropped first; read as dicts of JSON-ready values.

    ``add`` stores a flat tuple (no dicts, no parsed body: nothing per request for the cyclic GC to walk, and
    nothing selected or decoded until someone reads the journal).
    """

    def __init__(self, size: int) -> None:
        self._entries: deque[Record] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._seq = itertools.count(1)

    def add(
        self,
        time: float,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        fault: Any,
        status: Any,
        body: Any,
    ) -> None:
        with self._lock:
            self._entries.append((time, method, path, query, headers, fault, status, body, next(self._seq)))

    def entries(self) -> list[dict[str, Any]]:
        """The entries, oldest first, with ``headers`` selected and ``body`` decoded."""
        with self._lock:
            records = list(self._entries)
        return [_entry(r) for r in records]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
