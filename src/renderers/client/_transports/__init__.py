"""Transports: one small class per wire protocol behind the ``Transport`` ABC, and the registry of their names."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal, TypeAlias

from renderers.client._transports.base import Transport, encode_body
from renderers.client._transports.dynamo import DynamoTransport
from renderers.client._transports.vllm import VllmTransport

__all__ = [
    "TRANSPORTS",
    "DynamoTransport",
    "RendererTransport",
    "Transport",
    "VllmTransport",
    "encode_body",
    "get_transport",
]

#: Transport names accepted by ``generate(transport=...)``. The seed's spellings are accepted aliases.
RendererTransport: TypeAlias = Literal["vllm", "dynamo", "vllm_generate", "dynamo_chat"]

_VLLM: Final = VllmTransport()
_DYNAMO: Final = DynamoTransport()
#: Name -> transport (read-only; transports are stateless, so one instance serves every client).
TRANSPORTS: Final[Mapping[str, Transport]] = MappingProxyType(
    {"vllm": _VLLM, "vllm_generate": _VLLM, "dynamo": _DYNAMO, "dynamo_chat": _DYNAMO}
)


def get_transport(name: str) -> Transport:
    """The transport for ``name``; ``ValueError`` for an unknown name."""
    try:
        return TRANSPORTS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown renderer transport: {name!r}; expected one of {sorted(TRANSPORTS)}") from None
