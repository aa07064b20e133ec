"""Write a tiny Qwen3-style model folder (tokenizer, chat template, config; no weights) for Dynamo's mocker.

Usage: ``python tools/real_dynamo/make_tiny_model.py OUT_DIR``

The Dynamo frontend reads only the tokenizer and the chat template; the mocker reads only ``config.json``
(to size its simulated KV cache). Nothing is downloaded. The output is deterministic: the training text comes
from a seeded generator and the BPE trainer is deterministic for a given input, so two runs write the same bytes.

Facts that shape it:

* the mocker emits random completion ids in ``[1000, 2000)``, so the vocabulary must be larger than 2000
  or the frontend cannot detokenize what the mocker sends;
* the special tokens sit at the END of the vocabulary (as in real Qwen tokenizers), so small ids are
  ordinary byte tokens and not an end-of-sequence.

Needs only the ``tokenizers`` package (both the Dynamo venv and the project's venv have it).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

VOCAB_SIZE = 2304
SEED = 20261126
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def training_text(seed: int = SEED) -> list[str]:
    """About 500 KB of pseudo-words: enough distinct merges to fill a 2304-token vocabulary."""
    rng = random.Random(seed)
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]
    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "a",
        "lazy",
        "dog",
        "hello",
        "world",
        "user",
        "assistant",
        "system",
        "token",
        "model",
    ]
    words += ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(6000)]
    return [" ".join(rng.choice(words) for _ in range(12)) + "." for _ in range(6000)]


def build_tokenizer() -> Any:
    """Train a byte-level BPE tokenizer of exactly ``VOCAB_SIZE`` ids, special tokens last."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(SPECIALS),
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_text(), trainer)
    tokenizer.add_special_tokens(list(SPECIALS))
    return tokenizer


def write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_model(out: Path) -> dict[str, int]:
    """Write the model folder; return the ids of the special tokens."""
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    vocab = tokenizer.get_vocab_size()
    if vocab != VOCAB_SIZE:
        raise SystemExit(f"tokenizer has {vocab} ids, wanted {VOCAB_SIZE}: the training text is too small")
    ids: dict[str, int] = {s: tokenizer.token_to_id(s) for s in SPECIALS}
    tokenizer.save(str(out / "tokenizer.json"))

    write_json(
        out / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": None,
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "unk_token": None,
            "model_max_length": 2048,
            "clean_up_tokenization_spaces": False,
            "added_tokens_decoder": {
                str(ids[s]): {
                    "content": s,
                    "lstrip": False,
                    "normalized": False,
                    "rstrip": False,
                    "single_word": False,
                    "special": True,
                }
                for s in SPECIALS
            },
            "chat_template": CHAT_TEMPLATE,
        },
    )
    write_json(out / "special_tokens_map.json", {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})
    write_json(
        out / "generation_config.json",
        {
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
            "pad_token_id": ids["<|endoftext|>"],
        },
    )
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
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
    )
    return ids


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    ids = write_model(Path(argv[0]))
    print(f"wrote {argv[0]}: vocab {VOCAB_SIZE}, specials {ids}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
