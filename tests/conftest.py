"""Shared test settings: hypothesis profiles and the recordings of real servers."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

RECORDINGS = Path(__file__).parent / "conformance" / "recordings"

# dev: fast feedback. ci: derandomized, more examples, no deadline (the CI machine is shared and noisy).
settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# long: nox -s conformance. fuzz: nox -s fuzz (the fuzz properties of tests/fuzz; the parser's run twice this).
settings.register_profile(
    "long",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
