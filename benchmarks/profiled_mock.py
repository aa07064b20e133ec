"""``python -m benchmarks.profiled_mock <out.prof> vllm|dynamo [mock options]``: the mock CLI under cProfile.

Imports happen before the profiler starts, so the profile shows serving, not start-up.
"""

from __future__ import annotations

import cProfile
import sys

# Imported before profiling starts (the CLI would import them lazily, inside the profile).
import mockservers.cli
import mockservers.server
import mockservers.vllm.app


def main() -> int:
    out, argv = sys.argv[1], sys.argv[2:]
    prof = cProfile.Profile()
    prof.enable()
    try:
        code = mockservers.cli.main(argv)
    finally:
        prof.disable()
        prof.dump_stats(out)
    return code


if __name__ == "__main__":
    sys.exit(main())
