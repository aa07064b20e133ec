"""vLLM's tokens-in/tokens-out route: ``POST <root>/inference/v1/generate``."""

from __future__ import annotations

from typing import Any, ClassVar

from renderers.client._call import WireRequest
from renderers.client._server_info import ServerInfo
from renderers.client._transports.base import Transport, encode_body

__all__ = ["VllmTransport"]


class VllmTransport(Transport):
    """Body ``{model, token_ids, sampling_params, cache_salt?, priority?}``.

    ``priority`` is sent as is: vLLM's convention (lower runs first) is this API's convention. ``cache_salt`` and
    ``priority`` are not vLLM ``SamplingParams`` fields (vLLM would silently drop them inside ``sampling_params``):
    they ride at the top level. ``routed_experts_prompt_start`` goes into ``sampling_params`` (vLLM 0.26+ trims
    server-side; older servers ignore it and the client trims).
    """

    name: ClassVar[str] = "vllm"
    path: ClassVar[str] = "/inference/v1/generate"

    def build_body(self, request: WireRequest, server: ServerInfo | None = None) -> bytes:
        sp = request.sampling_params
        if request.prompt_start is not None:
            sp = {**sp, "routed_experts_prompt_start": request.prompt_start}
        body: dict[str, Any] = {"model": request.model, "token_ids": request.prompt_ids_value(), "sampling_params": sp}
        if request.cache_salt is not None:
            body["cache_salt"] = request.cache_salt
        if request.priority is not None:
            body["priority"] = request.priority
        return encode_body(body)
