"""vLLM's tokens-in/tokens-out route: ``POST <root>/inference/v1/generate``."""

from __future__ import annotations

from typing import Any, ClassVar, Final

from renderers.client.transports.base import Transport, WireRequest, encode_body

__all__ = ["VllmTransport"]

# Not vLLM ``SamplingParams`` fields: they ride at the top level of the body (vLLM would silently drop them
# inside ``sampling_params``).
_LIFTED: Final = frozenset({"cache_salt", "priority"})


class VllmTransport(Transport):
    """Body ``{model, token_ids, sampling_params, cache_salt?, priority?}``.

    ``priority`` is sent as is: vLLM's convention (lower runs first) is this API's convention.
    ``cache_salt``/``priority`` given as keyword arguments win over the same keys in ``sampling_params``; either
    way they are sent top-level and never inside ``sampling_params``. ``routed_experts_prompt_start`` stays in
    ``sampling_params`` (vLLM 0.26+ trims server-side; older servers ignore it and the client trims).
    """

    name: ClassVar[str] = "vllm"
    path: ClassVar[str] = "/inference/v1/generate"

    def build_body(self, request: WireRequest) -> bytes:
        sp = request.sampling_params
        salt = request.cache_salt if request.cache_salt is not None else sp.get("cache_salt")
        priority = request.priority if request.priority is not None else sp.get("priority")
        if any(k in sp for k in _LIFTED):
            sp = {k: v for k, v in sp.items() if k not in _LIFTED}
        body: dict[str, Any] = {"model": request.model, "token_ids": request.prompt_ids_value(), "sampling_params": sp}
        if salt is not None:
            body["cache_salt"] = salt
        if priority is not None:
            body["priority"] = priority
        return encode_body(body)
