"""Build the tokenizer the mock servers ship with: ``mockservers/data/tiny-qwen3/``.

Same layout as the tiny model the real servers were recorded with: a byte-level BPE with 2304 ids, ordinary
tokens first and the three Qwen specials at the end (``<|endoftext|>`` 2301, ``<|im_start|>`` 2302,
``<|im_end|>`` 2303), plus a ``tokenizer_config.json`` carrying a Qwen-style chat template.

The corpus is generated from a fixed-seed PRNG, so running the script twice writes the same files byte for byte:

    python mockservers/data/build_tiny_tokenizer.py            # rewrite the shipped folder
    python mockservers/data/build_tiny_tokenizer.py OUT_DIR    # write elsewhere (used by a test)
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

VOCAB_SIZE = 2304
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
EOS = "<|im_end|>"
PAD = "<|endoftext|>"
MAX_LENGTH = 2048

# Qwen-style ChatML: system/user/assistant/tool turns, a generation prompt, and tool results wrapped the way
# Qwen wraps them. Kept deliberately small: the mock only needs to turn ``messages`` into ids deterministically.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'tool' %}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + (message['content'] or '') + '\\n</tool_response><|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_ONSETS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiou"
_COMMON = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "it",
    "you",
    "that",
    "he",
    "was",
    "for",
    "on",
    "are",
    "with",
    "as",
    "his",
    "they",
    "be",
    "at",
    "one",
    "have",
    "this",
    "from",
    "or",
    "had",
    "by",
    "hello",
    "world",
    "user",
    "assistant",
    "system",
    "tool",
    "model",
    "token",
    "request",
    "response",
    "server",
    "client",
    "chat",
    "completion",
    "answer",
    "question",
    "think",
    "step",
    "number",
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "yes",
    "no",
    "true",
    "false",
]


def _corpus(rng: random.Random) -> list[str]:
    syllables = [c + v for c in _ONSETS for v in _VOWELS]
    made_up = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(5000)]
    words = _COMMON * 20 + made_up
    lines = []
    for _ in range(5000):
        n = rng.randint(6, 16)
        line = " ".join(rng.choice(words) for _ in range(n))
        lines.append(line.capitalize() + rng.choice([".", "?", "!", ",", ":"]) + rng.choice(["", " 42", " (x)", "\n"]))
    return lines


def build(out: Path) -> None:
    rng = random.Random(20261126)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(SPECIALS),
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(rng), trainer)
    tok.add_special_tokens(list(SPECIALS))
    ids = {s: tok.token_to_id(s) for s in SPECIALS}
    if tok.get_vocab_size() != VOCAB_SIZE or ids != {s: VOCAB_SIZE - 3 + i for i, s in enumerate(SPECIALS)}:
        raise SystemExit(f"unexpected layout: vocab {tok.get_vocab_size()}, specials {ids}")
    out.mkdir(parents=True, exist_ok=True)
    # Compact JSON keeps the shipped file small (about 70 KB).
    data = json.loads(tok.to_str())
    (out / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": EOS,
        "pad_token": PAD,
        "unk_token": None,
        "model_max_length": MAX_LENGTH,
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
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).parent / "tiny-qwen3"
    build(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv)
