"""Tokenizer access for the mocks: detokenize with ``tokenizers``, render chat messages with the folder's template.

``transformers`` is deliberately not imported (it takes seconds); the chat template is rendered with jinja2 the
way Hugging Face renders it (sandboxed, ``trim_blocks``/``lstrip_blocks``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from tokenizers import Tokenizer

DEFAULT_MAX_LENGTH = 2048


class TokenizerError(RuntimeError):
    """The tokenizer folder is unusable."""


class MockTokenizer:
    """A tokenizer folder (``tokenizer.json`` + optional ``tokenizer_config.json``)."""

    def __init__(self, folder: Path) -> None:
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise TokenizerError(f"{folder} has no tokenizer.json")
        self.folder = folder
        self._tok = Tokenizer.from_file(str(path))
        cfg_path = folder / "tokenizer_config.json"
        cfg: dict[str, Any] = orjson.loads(cfg_path.read_bytes()) if cfg_path.is_file() else {}
        self.vocab_size: int = self._tok.get_vocab_size(with_added_tokens=True)
        self.special_ids: frozenset[int] = frozenset(
            int(i) for i, spec in (cfg.get("added_tokens_decoder") or {}).items() if spec.get("special", True)
        ) | frozenset(
            tid for tid in (self._tok.token_to_id(t.content) for t in self._added_tokens()) if tid is not None
        )
        self.ordinary_ids: list[int] = [i for i in range(self.vocab_size) if i not in self.special_ids]
        self.eos_token: str | None = _token_text(cfg.get("eos_token"))
        eos_id = self._tok.token_to_id(self.eos_token) if self.eos_token else None
        if eos_id is None:
            for candidate in ("<|im_end|>", "<|endoftext|>", "</s>"):
                eos_id = self._tok.token_to_id(candidate)
                if eos_id is not None:
                    self.eos_token = candidate
                    break
        self.eos_id: int | None = eos_id
        self.bos_token: str | None = _token_text(cfg.get("bos_token"))
        max_len = cfg.get("model_max_length")
        self.model_max_length: int = (
            int(max_len) if isinstance(max_len, int) and 0 < max_len < 10_000_000 else DEFAULT_MAX_LENGTH
        )
        template = cfg.get("chat_template")
        if isinstance(template, list):  # named templates: take "default"
            template = next((t.get("template") for t in template if t.get("name") == "default"), None)
        self.chat_template: str | None = template if isinstance(template, str) else None
        self._piece_cache: dict[int, str] = {}
        self._lock = threading.Lock()

    def _added_tokens(self) -> list[Any]:
        try:
            return [t for t in self._tok.get_added_tokens_decoder().values() if t.special]
        except AttributeError:  # pragma: no cover - very old tokenizers
            return []

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        text: str = self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)
        return text

    def piece(self, token_id: int) -> str:
        """The text of one token on its own (``"\ufffd"`` for a partial UTF-8 byte sequence)."""
        cached = self._piece_cache.get(token_id)
        if cached is None:
            cached = self._tok.decode([token_id], skip_special_tokens=False)
            self._piece_cache[token_id] = cached
        return cached

    def encode(self, text: str) -> list[int]:
        ids: list[int] = self._tok.encode(text, add_special_tokens=False).ids
        return ids

    def render_chat(self, messages: list[dict[str, Any]], tools: Any = None, add_generation_prompt: bool = True) -> str:
        """The prompt text the folder's chat template makes of ``messages``."""
        if self.chat_template is None:
            raise TokenizerError("the tokenizer has no chat template")
        text: str = _compiled(self.chat_template).render(
            messages=messages,
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token or "",
            eos_token=self.eos_token or "",
        )
        return text


def _token_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


@functools.lru_cache(maxsize=8)
def _compiled(template: str) -> Any:
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    env.filters["tojson"] = lambda v, indent=None: orjson.dumps(v).decode()
    return env.from_string(template)


@functools.lru_cache(maxsize=8)
def load_tokenizer(folder: str) -> MockTokenizer:
    """Load (and cache per folder) a tokenizer."""
    return MockTokenizer(Path(folder))
