"""Report how many generated examples the fuzz/reliability tests ran (``nox -s fuzz`` quotes this line)."""

from __future__ import annotations

import time

import pytest

from tests.fuzz.counter import EXAMPLES, STARTED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not EXAMPLES:
        return
    terminalreporter.section("generated examples")
    for name, n in sorted(EXAMPLES.items()):
        terminalreporter.write_line(f"{n:>9,}  {name}")
    total = sum(EXAMPLES.values())
    terminalreporter.write_line(f"{total:>9,}  TOTAL in {time.monotonic() - STARTED:.1f} s")
