"""NVIDIA Dynamo's OpenAI frontend: ``POST <root>/v1/chat/completions`` with the prompt ids in ``nvext``.

Priority direction (checked in Dynamo's public source, ai-dynamo/dynamo docs "Priority Scheduling" and the vLLM
backend reference guide, plus the router's ``extract_priority_jump``): ``nvext.agent_hints.priority`` is
*higher = more important*, and Dynamo converts it to vLLM's native polarity itself. vLLM's own ``priority`` is
*lower = runs first*. This API has one meaning, vLLM's, so this transport sends ``-priority``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from renderers.client.http import HTTPClient
from renderers.client.migration import check_dynamo_answer
from renderers.client.transports.base import Transport, WireRequest, encode_body, parse_completion
from renderers.client.wire import WireResult

__all__ = ["DynamoTransport", "servers_without_prompt_start"]

#: vLLM-only sampling keys that Dynamo rejects at the top level (400 "Unsupported parameter(s)").
DROP_KEYS: Final = frozenset(
    {"return_token_ids", "spaces_between_special_tokens", "priority", "routed_experts_prompt_start"}
)
# Keys handled explicitly (never copied verbatim).
_HANDLED: Final = frozenset({"nvext", "max_tokens", "cache_salt", "model", "messages", "stream"})
PLACEHOLDER_MESSAGES: Final = ({"role": "user", "content": ""},)
_PROMPT_START_REJECTED: Final = b"unknown field `routed_experts_prompt_start`"

# Root URLs of servers that answered 400 to ``nvext.routed_experts_prompt_start`` (Dynamo <= 1.6.1).
_no_prompt_start: set[str] = set()


def servers_without_prompt_start() -> set[str]:
    """The (mutable) set of server roots known not to accept ``nvext.routed_experts_prompt_start``."""
    return _no_prompt_start


class DynamoTransport(Transport):
    """Body ``{model, messages: [placeholder], stream: false, nvext, ...sampling}``.

    - ``nvext``: the caller's ``sampling_params["nvext"]`` (kept) plus ``token_data`` = prompt ids,
      ``extra_fields`` ∪ ``["engine_data"]``, ``cache_salt``, ``agent_hints.priority = -priority`` (see the module
      docstring) and ``routed_experts_prompt_start`` when requested and the server accepts it.
    - ``max_tokens`` -> ``max_completion_tokens``; ``logprobs`` N -> ``true`` (+ ``top_logprobs`` when N > 1);
      ``return_token_ids``, ``spaces_between_special_tokens``, ``priority`` and ``routed_experts_prompt_start``
      never reach the top level; ``None`` values and an empty ``stop`` list (Dynamo 400s on it) are dropped;
      everything else passes through.
    - Tools are never sent: the renderer already put them in ``token_data``.
    """

    name: ClassVar[str] = "dynamo"
    path: ClassVar[str] = "/v1/chat/completions"

    def build_body(self, request: WireRequest, *, send_prompt_start: bool = True) -> bytes:
        sp = request.sampling_params
        caller_nvext = sp.get("nvext")
        if caller_nvext is not None and not isinstance(caller_nvext, Mapping):
            raise ValueError(f"sampling_params['nvext'] must be a mapping, got {type(caller_nvext).__name__}")
        nvext: dict[str, Any] = dict(caller_nvext or {})
        nvext["token_data"] = request.prompt_ids_value()
        extra = nvext.get("extra_fields")
        if extra is not None and not isinstance(extra, (list, tuple)):
            raise ValueError(f"sampling_params['nvext']['extra_fields'] must be a list, got {type(extra).__name__}")
        extra_fields = list(extra or ())
        if "engine_data" not in extra_fields:
            extra_fields.append("engine_data")
        nvext["extra_fields"] = extra_fields
        salt = request.cache_salt if request.cache_salt is not None else sp.get("cache_salt")
        if salt is not None:
            nvext["cache_salt"] = salt
        priority = request.priority if request.priority is not None else sp.get("priority")
        if priority is not None:
            if type(priority) is not int:
                raise ValueError(f"priority must be an int, got {priority!r}")
            hints = nvext.get("agent_hints")
            if hints is not None and not isinstance(hints, Mapping):
                raise ValueError("sampling_params['nvext']['agent_hints'] must be a mapping")
            nvext["agent_hints"] = {**(hints or {}), "priority": -priority}
        if send_prompt_start and request.prompt_start is not None:
            nvext["routed_experts_prompt_start"] = request.prompt_start

        body: dict[str, Any] = {
            "model": request.model,
            "messages": list(PLACEHOLDER_MESSAGES),
            "stream": False,
            "nvext": nvext,
        }
        if sp.get("max_tokens") is not None:
            body["max_completion_tokens"] = sp["max_tokens"]
        for key, value in sp.items():
            if value is None or key in DROP_KEYS or key in _HANDLED or key in body:
                continue
            if key == "stop" and isinstance(value, (list, tuple)) and not value:
                continue  # no stop strings; Dynamo 1.6.1 rejects an empty list with 400 where vLLM takes it
            if key == "logprobs":
                body["logprobs"] = True
                if type(value) is int and value > 1:
                    body["top_logprobs"] = value
                continue
            body[key] = value
        return encode_body(body)

    def parse(self, raw: bytes, *, prompt_len: int, prompt_start: int | None = None) -> WireResult:
        """The shared rules; logprobs taken from the chat echo are rounded back to the engine's float32; then
        ``engine_data`` is cross-checked against ``usage`` and the chat echo (a migrated request's partial
        ``engine_data`` is rebuilt exactly or refused: ``renderers.client.migration``)."""

        def parse(body: bytes) -> WireResult:
            return parse_completion(body, prompt_len=prompt_len, prompt_start=prompt_start, chat_logprobs_float32=True)

        return check_dynamo_answer(raw, prompt_len=prompt_len, parse=parse)

    async def send(
        self,
        http: HTTPClient,
        request: WireRequest,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
        max_prompt_len: int | None = None,
    ) -> WireResult:
        """As the base, plus: a server that rejects ``nvext.routed_experts_prompt_start`` with exactly Dynamo
        1.6.1's 400 gets the request once more without it, and is remembered (per root URL) so later requests
        omit it; the client then trims the routing rows itself."""
        with_start = request.prompt_start is not None and http.root_url not in _no_prompt_start
        resp = await self._post(http, self.build_body(request, send_prompt_start=with_start), headers=headers,
                                timeout=timeout)  # fmt: skip
        if with_start and resp.status == 400 and _PROMPT_START_REJECTED in resp.body:
            _no_prompt_start.add(http.root_url)
            resp = await self._post(
                http, self.build_body(request, send_prompt_start=False), headers=headers, timeout=timeout
            )
        self._raise_for_status(resp, request, max_prompt_len)
        return self.parse(resp.body, prompt_len=len(request.prompt_ids), prompt_start=request.prompt_start)
