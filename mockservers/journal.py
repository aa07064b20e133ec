"""A bounded, thread-safe record of the requests a mock server received."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

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
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
