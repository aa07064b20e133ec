"""The README's first screen and its quick start are real: the commands exist and the example runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from mockservers.server import MockServer

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_first_screen_has_the_two_setup_commands() -> None:
    first_screen = "\n".join(README.splitlines()[:25])
    assert "python3 -m mockservers dynamo" in first_screen
    assert "nox -s lint typecheck tests" in first_screen
    ci = (Path(__file__).parents[2] / ".ci" / "run").read_text(encoding="utf-8")
    assert "nox -s lint typecheck tests" in ci  # CI runs the README's test command


def test_quick_start_runs_against_a_mock_dynamo(mock_dynamo: MockServer) -> None:
    (example,) = _blocks("python")
    assert "http://127.0.0.1:8000" in example
    code = example.replace("http://127.0.0.1:8000", mock_dynamo.url)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    ids_text = out.stdout.split("]")[0]
    assert re.fullmatch(r"\[\d+(, \d+)*", ids_text.strip()), out.stdout
    paths = [r["path"] for r in mock_dynamo.journal()]
    assert paths == ["/v1/models", "/v1/chat/completions"]  # context discovery once, then the generation
