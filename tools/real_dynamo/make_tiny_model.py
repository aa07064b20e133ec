"""Write the tiny model folder: ``python tools/real_dynamo/make_tiny_model.py OUT_DIR``.

The code is ``mockservers/model_folder.py`` (``renderers-mock dynamo-stack`` writes the same folder); this script
runs that file, so it still needs no third-party package and runs with any Python (the Dynamo runtime venv's).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    runpy.run_path(str(Path(__file__).resolve().parents[2] / "mockservers" / "model_folder.py"), run_name="__main__")
