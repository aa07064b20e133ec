"""A stand-in for ``torchvision``, put on ``PYTHONPATH`` for Dynamo's ``dynamo.vllm`` worker only (text models).

Why: PyPI's torchvision is a CUDA build that cannot load beside the CPU torch (``operator torchvision::nms does
not exist``), so the engine venv has none, and ``dynamo.vllm`` imports transformers' Qwen2-VL image processor at
start-up, which imports ``torchvision.transforms.v2`` at module level. Nothing here is ever called for a text
model; every function raises. Modules: ``io``, ``transforms``, ``transforms.functional``, ``transforms.v2``,
``transforms.v2.functional``; any other attribute of them is a function that raises.
"""

from __future__ import annotations

from typing import Any, NoReturn

__version__ = "0.0.0+renderers.stub"


def unavailable(*args: Any, **kwargs: Any) -> NoReturn:
    raise NotImplementedError("torchvision is a stub in this venv (text models only)")


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return unavailable
