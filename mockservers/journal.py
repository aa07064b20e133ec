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


class Journal:
    """Ring buffer of request entries (dicts of JSON-ready values), oldest dropped first."""

    def __init__(self, size: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._seq = itertools.count(1)

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            entry["seq"] = next(self._seq)
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        """The entries, oldest first, with ``body`` decoded (entries keep the raw request bytes)."""
        with self._lock:
            entries = list(self._entries)
        return [{**e, "body": decode_body(e["body"])} if isinstance(e.get("body"), bytes) else e for e in entries]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
