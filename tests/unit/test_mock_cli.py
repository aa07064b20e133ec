"""The console entry point starts, prints its URL, answers, and stops cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import argparse
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
        ["dynamo", "--routed-experts-mode", "trimmed", "--dynamo-backend", "mocker", "--lax-validation",
         "--faults", "status=503; fail_first=1; completion_ids=empty", "--ttft-s", "0.1", "--max-model-len", "64",
         "--no-choice-logprobs-f32"]
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
    assert not cfg.choice_logprobs_f32
    vllm = config_from_args(build_parser().parse_args(["vllm", "--vllm-profile", "vllm-0.32"]))
    assert vllm.vllm_profile == "vllm-0.32"


def test_every_setting_has_one_flag_named_after_it() -> None:
    """The flags are the MockConfig fields (per server), and a flag's value lands in the field of the same name."""
    import dataclasses

    from mockservers.config import MockConfig

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for kind in ("vllm", "dynamo"):
        flags = {a.dest for a in sub.choices[kind]._actions if a.dest != "help"}
        wanted = {f.name for f in dataclasses.fields(MockConfig) if f.metadata["server"] in (None, kind)}
        assert flags == wanted, kind
    assert "vllm_profile" not in {a.dest for a in sub.choices["dynamo"]._actions}
    cfg = config_from_args(parser.parse_args(["vllm", "--moe-layers", "0", "--seed", "7", "--admin"]))
    assert (cfg.moe_layers, cfg.seed, cfg.admin, cfg.port) == (0, 7, True, 8000)


def test_old_flag_names_are_gone() -> None:
    for old in (["vllm", "--profile", "vllm-0.32"], ["dynamo", "--backend", "mocker"], ["vllm", "--fault", "reset"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(old)


def test_a_bad_fault_flag_names_the_value() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mockservers", "vllm", "--faults", "logprobs=sometimes"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "logprobs must be one of match, mismatch, engine-only, chat-only, got 'sometimes'" in proc.stderr


def test_bad_settings_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mockservers", "vllm", "--moe-layers", "1", "--moe-top-k", "9", "--num-experts", "4"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "moe_top_k" in proc.stderr


def test_an_unknown_setting_name_lists_the_known_ones() -> None:
    from mockservers.server import MockServer

    with pytest.raises(ValueError, match=r"unknown MockConfig setting\(s\) 'moe_layer'; known: host, port"):
        MockServer("vllm", moe_layer=2)
