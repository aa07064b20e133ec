"""create_renderer / load_tokenizer: Qwen3 detection, fallbacks, local-only loading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from renderers.chat_template import ChatTemplateRenderer
from renderers.factory import (
    NativeRendererUnavailable,
    create_renderer,
    create_renderer_pool,
    is_qwen3_tokenizer,
    load_tokenizer,
)
from renderers.families.qwen3 import Qwen3Renderer
from tests.helpers.qwen3_tokenizer import qwen3_tokenizer, qwen3_tokenizer_dir, upstream_qwen3_template


def _copy_with_template(tmp_path: Path, template: str | None) -> Path:
    src = qwen3_tokenizer_dir()
    shutil.copy(src / "tokenizer.json", tmp_path / "tokenizer.json")
    config = json.loads((src / "tokenizer_config.json").read_text(encoding="utf-8"))
    if template is None:
        config.pop("chat_template", None)
    else:
        config["chat_template"] = template
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return tmp_path


def test_load_tokenizer_missing_path_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        load_tokenizer(missing)


def test_qwen3_folder_gives_qwen3_renderer() -> None:
    r = create_renderer(qwen3_tokenizer_dir())
    assert isinstance(r, Qwen3Renderer)
    assert r.enable_thinking
    r2 = create_renderer(str(qwen3_tokenizer_dir()), enable_thinking=False)
    assert isinstance(r2, Qwen3Renderer)
    assert not r2.enable_thinking
    r3 = create_renderer(qwen3_tokenizer(), chat_template_kwargs={"enable_thinking": False})
    assert isinstance(r3, Qwen3Renderer)
    assert not r3.enable_thinking
    assert is_qwen3_tokenizer(qwen3_tokenizer())


def test_upstream_template_still_qwen3(tmp_path: Path) -> None:
    template = upstream_qwen3_template()
    if template is None:
        pytest.skip("trl not installed")
    assert isinstance(create_renderer(_copy_with_template(tmp_path, template)), Qwen3Renderer)


def test_other_template_on_qwen_vocab_falls_back(tmp_path: Path) -> None:
    # Same vocabulary, different layout (like QwQ / Qwen3-2507): the native renderer would be wrong.
    template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
    )
    with pytest.warns(NativeRendererUnavailable, match="qwen3: its chat template renders probe 0 differently"):
        r = create_renderer(_copy_with_template(tmp_path, template))
    assert isinstance(r, ChatTemplateRenderer)
    assert r.chat_template_kwargs == {"enable_thinking": True}


def test_extra_template_kwargs_use_chat_template_renderer() -> None:
    with pytest.warns(NativeRendererUnavailable, match=r"does not support \['custom'\]"):
        r = create_renderer(qwen3_tokenizer(), chat_template_kwargs={"custom": 1})
    assert isinstance(r, ChatTemplateRenderer)
    assert r.chat_template_kwargs == {"custom": 1, "enable_thinking": True}
    with pytest.raises(ValueError, match="custom"):
        create_renderer(qwen3_tokenizer(), renderer="qwen3", chat_template_kwargs={"custom": 1})
    with pytest.raises(ValueError, match="renderer"):
        create_renderer(qwen3_tokenizer(), renderer="nope")


def test_non_qwen_vocab_is_not_qwen3() -> None:
    class Fake:
        chat_template = "x"

        def convert_tokens_to_ids(self, tok: str) -> int:
            return 5

    assert not is_qwen3_tokenizer(Fake())
    assert not is_qwen3_tokenizer(object())


def test_no_template_qwen_vocab_uses_native(tmp_path: Path) -> None:
    assert isinstance(create_renderer(_copy_with_template(tmp_path, None)), Qwen3Renderer)
    with pytest.raises(ValueError, match="no chat template"):
        create_renderer(load_tokenizer(tmp_path), renderer="chat_template")


def test_create_renderer_pool_from_path() -> None:
    pool = create_renderer_pool(qwen3_tokenizer_dir(), size=2)
    assert pool.size == 2
    assert pool.renderer_cls is Qwen3Renderer
    msgs: list[Any] = [{"role": "user", "content": "hi"}]
    assert pool.render_ids(msgs) == Qwen3Renderer(qwen3_tokenizer()).render_ids(msgs)


def test_unknown_vocabulary_warns_and_uses_the_template() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "hi": 1}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend)  # type: ignore[no-untyped-call]
    tok.chat_template = "{% for m in messages %}{{ m.content }} {% endfor %}"
    with pytest.warns(NativeRendererUnavailable, match="no native family's special tokens are in its vocabulary"):
        r = create_renderer(tok)
    assert isinstance(r, ChatTemplateRenderer)
    assert r.render_ids([{"role": "user", "content": "hi"}]) == [1]
