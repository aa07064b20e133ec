"""``renderers-mock dynamo-stack --workers 2``: prints its URL once the frontend lists both workers, serves the mock
engine over both routes, and stops every process on Ctrl-C (SIGINT) with exit status 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from mockservers.pytest_plugin import dynamo_python

pytestmark = pytest.mark.real_dynamo

ROOT = Path(__file__).resolve().parents[2]


def test_dynamo_stack_command_runs_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    python = dynamo_python()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [python, "-m", "mockservers", "dynamo-stack", "--workers", "2", "--python", python,
           "--workdir", str(tmp_path / "stack"), "--", "--moe-layers", "1", "--moe-top-k", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.match(r"ready after [0-9.]+s: (http://127\.0\.0\.1:\d+) model=tiny-qwen3 pids=(\{.*\})", line)
        assert match, line
        url, pids = match.group(1), match.group(2)
        for name in ("relay", "worker0", "worker1", "frontend"):
            assert name in pids
        health = httpx.get(f"{url}/health", timeout=10).json()
        assert len({i["instance_id"] for i in health["instances"] if i["endpoint"] == "generate"}) == 2
        body = {"model": "tiny-qwen3", "token_ids": [5, 6, 7], "sampling_params": {"max_tokens": 3, "logprobs": 1}}
        choice = httpx.post(f"{url}/inference/v1/generate", json=body, timeout=30).json()["choices"][0]
        assert len(choice["token_ids"]) == 3
        assert choice["routed_experts"]["shape"] == [5, 1, 2]
        assert (tmp_path / "stack" / "home" / ".cache" / "dynamo").is_dir()  # the model-card cache stays inside
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        assert proc.returncode == 0
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
