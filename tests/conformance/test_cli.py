"""``renderers-conformance`` in a subprocess against in-process mocks: a conforming pair passes, a pair that
disagrees fails with the property named; a missing hypothesis is reported with the extra to install."""

from __future__ import annotations

import subprocess
import sys

from mockservers.pytest_plugin import MockServerFactory
from renderers.testing.cli import main

from .conftest import EOS_ID, MODEL


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "renderers.testing.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def test_conforming_pair_passes(mock_server_factory: MockServerFactory) -> None:
    moe = {"moe_layers": 2, "moe_top_k": 2, "num_experts": 64}
    vllm = mock_server_factory("vllm", **moe)
    dynamo = mock_server_factory("dynamo", routed_experts_mode="full", **moe)
    proc = _cli("--vllm", vllm.url, "--dynamo", dynamo.url + "/v1", "--model", MODEL, "--examples", "20",
                "--multi-turn-examples", "5", "--eos-id", str(EOS_ID))  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for prop in ("outcome", "completion_ids", "completion_logprobs", "finish_reason", "routed_experts", "request_id",
                 "multi_turn_routing[vllm]", "multi_turn_routing[dynamo]", "multi_turn_equal"):  # fmt: skip
        line = next(ln for ln in out.splitlines() if ln.startswith(prop + " "))
        assert " PASS " in line, line
    assert out.rstrip().endswith("renderers-conformance: PASS")


def test_disagreeing_pair_fails_and_names_the_property(mock_server_factory: MockServerFactory) -> None:
    vllm = mock_server_factory("vllm", seed=1)
    dynamo = mock_server_factory("dynamo", seed=2)  # another sampler seed: another completion for seedless calls
    proc = _cli("--vllm", vllm.url, "--dynamo", dynamo.url, "--model", MODEL, "--examples", "20",
                "--multi-turn-examples", "0", "--no-moe")  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("completion_ids "))
    assert " FAIL " in line
    assert "prompt_ids=" in line  # the first failing example is shown
    assert proc.stdout.rstrip().endswith("renderers-conformance: FAIL")


def test_unreachable_server_is_a_usage_error(capsys: object) -> None:
    assert main(["--vllm", "http://127.0.0.1:9", "--dynamo", "http://127.0.0.1:9", "--model", "m"]) == 2


def test_missing_hypothesis_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "try:\n    import renderers.testing.strategies\nexcept ImportError as e:\n    print(e)\n"
        "from renderers.testing.cli import main\n"
        "sys.exit(main(['--vllm', 'http://x', '--dynamo', 'http://x', '--model', 'm']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert "pip install 'renderers[testing]'" in proc.stdout
    assert proc.returncode == 2
    assert "renderers[testing]" in proc.stderr
    # the equivalence check itself needs no hypothesis
    code = "import sys; sys.modules['hypothesis'] = None\nimport renderers.testing.equivalence"
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0


def _start_mock(kind: str) -> tuple[subprocess.Popen[str], str]:
    """``renderers-mock <kind>`` with no setting but a free port (the fixed default port may be taken here)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockservers", kind, "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert f"renderers-mock {kind} ready: " in line, line
    return proc, line.split()[3]


def test_first_run_two_default_mocks_one_command() -> None:
    """The obvious first run: both mocks with their defaults (MoE), then ``renderers-conformance`` with its
    defaults (MoE routing expected). It passes, routing included."""
    started = [_start_mock("vllm"), _start_mock("dynamo")]
    try:
        (_, vllm_url), (_, dynamo_url) = started
        proc = _cli("--vllm", vllm_url, "--dynamo", dynamo_url, "--model", "tiny-qwen3", "--examples", "15",
                    "--multi-turn-examples", "3")  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        routing = next(ln for ln in proc.stdout.splitlines() if ln.startswith("routed_experts "))
        assert " PASS " in routing, routing
        assert proc.stdout.rstrip().endswith("renderers-conformance: PASS")
    finally:
        for server, _ in started:
            server.terminate()
            server.wait(timeout=15)
