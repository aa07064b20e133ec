"""``python -m mockservers vllm|dynamo [options]``."""

import sys

from mockservers.cli import main

sys.exit(main())
