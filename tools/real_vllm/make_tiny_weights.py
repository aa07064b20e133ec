"""Write a tiny random-weight Qwen3 model folder that vLLM (and Dynamo's vLLM worker) can serve.

Usage: ``python tools/real_vllm/make_tiny_weights.py OUT_DIR [--moe]``  (run it with the vLLM venv's python:
it needs ``torch`` and ``transformers``)

The tokenizer, chat template and config are those of ``mockservers/model_folder.py`` (the mock servers'
built-in tokenizer, vocab 2304, specials at 2301-2303; hidden 64, 2 layers, 4 heads, 2 KV heads, head_dim 32:
vLLM's CPU attention refuses head sizes below 32). The weights are transformers' own initialisation under
``torch.manual_seed(0)``, in float32, saved as safetensors (about 1.6 MB): the same bytes every run with the same
torch and transformers. ``--moe`` writes a Qwen3-MoE variant instead (4 experts, top-2).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mockservers.model_folder import write_json, write_model

SEED = 0


def write_weights(out: Path, *, moe: bool = False) -> None:
    import torch
    import transformers

    write_model(out)
    config_path = out / "config.json"
    cfg = json.loads(config_path.read_text(encoding="utf-8"))
    generation = json.loads((out / "generation_config.json").read_text(encoding="utf-8"))
    if moe:
        cfg.update(
            architectures=["Qwen3MoeForCausalLM"],
            model_type="qwen3_moe",
            num_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=64,
            decoder_sparse_step=1,
            norm_topk_prob=True,
            mlp_only_layers=[],
        )
        config_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    config = transformers.AutoConfig.from_pretrained(str(out))
    torch.manual_seed(SEED)
    model = transformers.AutoModelForCausalLM.from_config(config).to(torch.float32)
    model.save_pretrained(str(out), safe_serialization=True)
    # save_pretrained writes its own generation config; keep the one whose stop ids match the tokenizer.
    write_json(out / "generation_config.json", generation)


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-") or any(a not in ("--moe",) for a in argv[1:]):
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    write_weights(out, moe="--moe" in argv[1:])
    print(f"wrote {out}: {sorted(p.name for p in out.iterdir())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
