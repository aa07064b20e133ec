"""Native renderers, one module per model family, and the list ``create_renderer`` recognises them from.

Each family module holds its renderer (a :class:`~renderers.families.pieces.PieceRenderer`), its completion
parser rules and a ``FAMILY`` entry (:class:`~renderers.families.registry.Family`) with the special tokens and
probe conversations that identify it. ``FAMILIES`` is tried in order; the first family whose tokens are in the
vocabulary and whose probes render like the tokenizer's own template wins.
"""

from __future__ import annotations

from renderers.families import deepseek, glm, gpt_oss, llama3, minimax_m2, qwen3, qwen3_5
from renderers.families.deepseek import DeepSeekRenderer
from renderers.families.glm import Glm45Renderer, Glm47Renderer, Glm51Renderer, Glm52Renderer
from renderers.families.gpt_oss import GptOssRenderer
from renderers.families.llama3 import Llama3Renderer
from renderers.families.minimax_m2 import MiniMaxM2Renderer
from renderers.families.qwen3 import Qwen3Renderer
from renderers.families.qwen3_5 import Qwen35Renderer, Qwen36Renderer
from renderers.families.registry import Family, Probe, Verdict

__all__ = [
    "FAMILIES",
    "DeepSeekRenderer",
    "Family",
    "Glm45Renderer",
    "Glm47Renderer",
    "Glm51Renderer",
    "Glm52Renderer",
    "GptOssRenderer",
    "Llama3Renderer",
    "MiniMaxM2Renderer",
    "Probe",
    "Qwen3Renderer",
    "Qwen35Renderer",
    "Qwen36Renderer",
    "Verdict",
    "family_named",
]

# Order matters only where vocabularies overlap: the more specific template first.
FAMILIES: tuple[Family, ...] = (
    qwen3.FAMILY,
    qwen3_5.FAMILY,
    qwen3_5.FAMILY_3_6,
    *deepseek.FAMILIES,
    minimax_m2.FAMILY,
    llama3.FAMILY_3_1,
    llama3.FAMILY_3_2,
    gpt_oss.FAMILY,
    *glm.FAMILIES,  # GLM-4.5, GLM-4.7/5, GLM-5.1, GLM-5.2: one vocabulary, told apart by their probes
)


def family_named(name: str) -> Family:
    """The family called ``name``; a ``ValueError`` listing the known names otherwise."""
    for fam in FAMILIES:
        if fam.name == name:
            return fam
    known = ", ".join(repr(f.name) for f in FAMILIES)
    raise ValueError(f"renderer: unknown renderer {name!r} (expected 'auto', 'chat_template' or one of {known})")
