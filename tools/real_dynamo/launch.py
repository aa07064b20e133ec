"""Start a real NVIDIA Dynamo stack on loopback (ZMQ relay, workers, frontend) and always stop it.

The launcher is ``mockservers/dynamo_stack.py`` (``renderers-mock dynamo-stack`` runs it from an installed
package); this module keeps the name the noxfile and ``tools/record.py`` import, and its command line defaults to
Dynamo's mocker worker::

    python tools/real_dynamo/launch.py --python .nox/dynamo-runtime/bin/python --model-dir /tmp/tiny
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``mockservers`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mockservers.dynamo_stack import DEFAULT_MODEL_NAME, DynamoStack, StackError, dynamo_stack, main
from mockservers.processes import free_loopback_ports

__all__ = ["DEFAULT_MODEL_NAME", "DynamoStack", "StackError", "dynamo_stack", "free_loopback_ports"]

if __name__ == "__main__":
    raise SystemExit(main(["--worker", "mocker", *sys.argv[1:]]))
