"""Moved to ``mockservers.processes`` (``renderers-mock dynamo-stack`` needs it in the installed package); this
name stays for the launchers under ``tools/``."""

from mockservers.processes import *  # noqa: F403
from mockservers.processes import __all__ as __all__
