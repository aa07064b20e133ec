"""The console entry point starts, prints its URL, answers, and stops cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import pytest

from mockservers.cli import build_parser, config_from_args


@pytest.mark.parametrize(
    ("kind", "sig", "path"), [("dynamo", signal.SIGTERM, "/live"), ("vllm", signal.SIGINT, "/health")]
)
def test_cli_runs_in_a_subprocess(kind: str, sig: signal.Signals, path: str) -> None:
    cmd = [sys.executable, "-m", "mockservers", kind, "--port", "0", "--model", "m", "--moe-layers", "1", "--admin"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(f"renderers-mock {kind} ready: http://127.0.0.1:"), line
        url = line.split()[3]
        with urllib.request.urlopen(url + path, timeout=10) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(url + "/v1/models", timeout=10) as resp:
            assert json.loads(resp.read())["data"][0]["id"] == "m"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_flags_map_onto_the_config() -> None:
    args = build_parser().parse_args(
        ["dynamo", "--routed-experts-mode", "trimmed", "--backend", "mocker", "--lax-validation",
         "--fault", "status=503; fail_first=1", "--completion-ids", "empty", "--ttft-s", "0.1", "--max-model-len", "64"]
    )  # fmt: skip
    cfg = config_from_args(args)
    assert cfg.routed_experts_mode == "trimmed"
    assert cfg.dynamo_backend == "mocker"
    assert cfg.lax_validation
    assert cfg.faults.status == 503
    assert cfg.faults.fail_first == 1
    assert cfg.faults.completion_ids == "empty"
    assert cfg.ttft_s == 0.1
    assert cfg.max_model_len == 64
    assert config_from_args(build_parser().parse_args(["vllm", "--profile", "vllm-0.32"])).vllm_profile == "vllm-0.32"


def test_bad_settings_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mockservers", "vllm", "--moe-layers", "1", "--moe-top-k", "9", "--num-experts", "4"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "moe_top_k" in proc.stderr
