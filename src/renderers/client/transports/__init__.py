"""Transports: one small class per wire protocol behind the ``Transport`` ABC."""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

from renderers.client.transports.base import Transport, WireRequest, encode_body, parse_completion
from renderers.client.transports.dynamo import DynamoTransport
from renderers.client.transports.vllm import VllmTransport

__all__ = [
    "TRANSPORTS",
    "DynamoTransport",
    "RendererTransport",
    "Transport",
    "VllmTransport",
    "WireRequest",
    "encode_body",
    "get_transport",
    "parse_completion",
]

#: Transport names accepted by ``generate(transport=...)``. The seed's spellings are accepted aliases.
RendererTransport: TypeAlias = Literal["vllm", "dynamo", "vllm_generate", "dynamo_chat"]

_VLLM: Final = VllmTransport()
_DYNAMO: Final = DynamoTransport()
TRANSPORTS: Final[dict[str, Transport]] = {
    "vllm": _VLLM,
    "vllm_generate": _VLLM,
    "dynamo": _DYNAMO,
    "dynamo_chat": _DYNAMO,
}


def get_transport(name: str) -> Transport:
    """The transport for ``name``; ``ValueError`` for an unknown name."""
    try:
        return TRANSPORTS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown renderer transport: {name!r}; expected one of {sorted(TRANSPORTS)}") from None
