"""Counts the examples the fuzz and reliability tests really ran (reported at the end of the pytest run)."""

from __future__ import annotations

import time
from collections import Counter

EXAMPLES: Counter[str] = Counter()
STARTED = time.monotonic()


def count(name: str, n: int = 1) -> None:
    EXAMPLES[name] += n
