"""Stub: see ``torchvision/__init__.py``."""

from __future__ import annotations

import enum
from typing import Any

from torchvision import unavailable

decode_image = unavailable


class ImageReadMode(enum.Enum):
    UNCHANGED = 0
    GRAY = 1
    GRAY_ALPHA = 2
    RGB = 3
    RGB_ALPHA = 4


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return unavailable
