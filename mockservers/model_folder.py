"""Write a tiny Qwen3-style model folder (tokenizer, chat template, config; no weights) for the real Dynamo
frontend and its workers (Dynamo's mocker, ``renderers-mock dynamo-worker``).

Usage: ``python mockservers/model_folder.py OUT_DIR``

The tokenizer is the mock servers' built-in one (``mockservers/data/tiny-qwen3``: byte-level BPE, 2304 ids,
``<|endoftext|>``/``<|im_start|>``/``<|im_end|>`` at 2301-2303), copied as is, so the real Dynamo frontend and
the mock Dynamo detokenize and template with the very same files. The Dynamo frontend reads only the tokenizer
and the chat template; the mocker reads only ``config.json`` (to size its simulated KV cache). Nothing is
downloaded, nothing is trained: the folder is the same bytes every time.

Facts that shape it: the mocker emits random completion ids in ``[1000, 2000)``, so the vocabulary must be larger
than 2000 or the frontend cannot detokenize what the mocker sends.

Runs with any Python (no third-party imports), so the Dynamo runtime venv can run it.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

BUILTIN_TOKENIZER = Path(__file__).resolve().parent / "data" / "tiny-qwen3"
MIN_VOCAB = 2001  # the mocker's ids reach 1999


def write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def special_ids(tokenizer_json: Path) -> tuple[int, dict[str, int]]:
    """The vocabulary size and the ids of the added special tokens."""
    doc = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    added = {t["content"]: int(t["id"]) for t in doc.get("added_tokens", [])}
    vocab = max([*doc["model"]["vocab"].values(), *added.values()]) + 1
    return vocab, added


def write_model(out: Path, source: Path = BUILTIN_TOKENIZER) -> dict[str, int]:
    """Write the model folder; return the ids of the special tokens."""
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if not (source / name).is_file():
            raise SystemExit(f"{source / name} is missing: the built-in mock tokenizer is not where expected")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "tokenizer.json", out / "tokenizer.json")
    shutil.copyfile(source / "tokenizer_config.json", out / "tokenizer_config.json")
    vocab, ids = special_ids(out / "tokenizer.json")
    if vocab < MIN_VOCAB:
        raise SystemExit(f"tokenizer has {vocab} ids; the mocker needs at least {MIN_VOCAB}")
    eos, pad = ids["<|im_end|>"], ids["<|endoftext|>"]
    write_json(out / "special_tokens_map.json", {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})
    write_json(out / "generation_config.json", {"bos_token_id": pad, "eos_token_id": [eos, pad], "pad_token_id": pad})
    # head_dim 32: the smallest head size vLLM's CPU attention takes, should the same folder get weights later.
    write_json(
        out / "config.json",
        {
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            "vocab_size": vocab,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 32,
            "max_position_embeddings": 2048,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "tie_word_embeddings": False,
            "attention_bias": False,
            "hidden_act": "silu",
            "torch_dtype": "float32",
            "bos_token_id": pad,
            "eos_token_id": eos,
            "pad_token_id": pad,
        },
    )
    return ids


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    ids = write_model(Path(argv[0]))
    print(f"wrote {argv[0]} from {BUILTIN_TOKENIZER}: specials {ids}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
