"""The published ``renderers==0.1.12`` beside this project: agreement counts printed after the run."""

from __future__ import annotations

from collections import Counter

import pytest

# (family, what) -> Counter of outcomes ("agree", "peer differs", "peer raised", ...); filled by the tests.
AGREEMENT: dict[tuple[str, str], Counter[str]] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not AGREEMENT:
        return
    terminalreporter.section("agreement with renderers==0.1.12 (the real template decides)")
    for (family, what), counts in sorted(AGREEMENT.items()):
        total = sum(counts.values())
        parts = ", ".join(f"{k} {v}" for k, v in counts.most_common())
        terminalreporter.write_line(f"{family:>14} {what:<8} {total:>5} cases: {parts}")
