"""NVIDIA Dynamo's OpenAI frontend: ``POST <root>/v1/chat/completions`` with the prompt ids in ``nvext``.

Priority direction (checked in Dynamo's public source, ai-dynamo/dynamo docs "Priority Scheduling" and the vLLM
backend reference guide, plus the router's ``extract_priority_jump``): ``nvext.agent_hints.priority`` is
*higher = more important*, and Dynamo converts it to vLLM's native polarity itself. vLLM's own ``priority`` is
*lower = runs first*. This API has one meaning, vLLM's, so this transport sends ``-priority``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from renderers.client._call import WireRequest
from renderers.client._http import RawResponse
from renderers.client._migration import check_dynamo_answer
from renderers.client._parse import WireResult, parse_completion
from renderers.client._server_info import ServerInfo
from renderers.client._transports.base import Transport, encode_body

__all__ = ["DROP_KEYS", "PROMPT_START_FIELD", "DynamoTransport"]

#: vLLM-only sampling keys that Dynamo rejects at the top level (400 "Unsupported parameter(s)").
DROP_KEYS: Final = frozenset({"return_token_ids", "spaces_between_special_tokens"})
# Keys handled explicitly (never copied verbatim).
_HANDLED: Final = frozenset({"nvext", "max_tokens", "model", "messages", "stream"})
#: The optional request field Dynamo <= 1.6.1 rejects, as ``ServerInfo`` names it.
PROMPT_START_FIELD: Final = "nvext.routed_experts_prompt_start"
_PROMPT_START_REJECTED: Final = b"unknown field `routed_experts_prompt_start`"


class DynamoTransport(Transport):
    """Body ``{model, messages: [placeholder], stream: false, nvext, ...sampling}``.

    - ``nvext``: the caller's ``sampling_params["nvext"]`` (kept) plus ``token_data`` = prompt ids,
      ``extra_fields`` ∪ ``["engine_data"]``, ``cache_salt``, ``agent_hints.priority = -priority`` (see the module
      docstring) and ``routed_experts_prompt_start`` when requested and the server is not known to reject it.
    - ``max_tokens`` -> ``max_completion_tokens``; ``logprobs`` N -> ``true`` (+ ``top_logprobs`` when N > 1);
      ``return_token_ids`` and ``spaces_between_special_tokens`` never reach the top level; ``None`` values and an
      empty ``stop`` list (Dynamo 400s on it) are dropped; everything else passes through.
    - Tools are never sent: the renderer already put them in ``token_data``.
    - A server that rejects ``nvext.routed_experts_prompt_start`` with exactly Dynamo 1.6.1's 400 gets the request
      once more without it (``resend_body``) and is remembered in the client's ``ServerInfo``; the parser then
      trims the routing rows itself.
    """

    name: ClassVar[str] = "dynamo"
    path: ClassVar[str] = "/v1/chat/completions"

    def build_body(self, request: WireRequest, server: ServerInfo | None = None) -> bytes:
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
        if request.cache_salt is not None:
            nvext["cache_salt"] = request.cache_salt
        if request.priority is not None:
            hints = nvext.get("agent_hints")
            if hints is not None and not isinstance(hints, Mapping):
                raise ValueError(f"sampling_params['nvext']['agent_hints'] must be a mapping, got {hints!r}")
            nvext["agent_hints"] = {**(hints or {}), "priority": -request.priority}
        if request.prompt_start is not None and (server is None or server.accepts(PROMPT_START_FIELD)):
            nvext["routed_experts_prompt_start"] = request.prompt_start

        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": "user", "content": ""}],  # required by the route; nvext.token_data is the prompt
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

    def resend_body(self, request: WireRequest, resp: RawResponse, server: ServerInfo) -> bytes | None:
        """Dynamo <= 1.6.1's 400 to ``nvext.routed_experts_prompt_start``: remember it, send the body without it."""
        if (
            resp.status == 400
            and request.prompt_start is not None
            and server.accepts(PROMPT_START_FIELD)
            and _PROMPT_START_REJECTED in resp.body
        ):
            server.reject(PROMPT_START_FIELD)
            return self.build_body(request, server)
        return None

    def parse(self, raw: bytes, *, prompt_len: int, prompt_start: int | None = None) -> WireResult:
        """The shared rules; logprobs taken from the chat echo are rounded back to the engine's float32.

        Then the Dynamo-only check: ``nvext.engine_data`` against ``usage`` and the chat echo of the same body. A
        migrated request's partial ``engine_data`` is rebuilt exactly or refused with ``PartialCompletionError``
        (``renderers.client._migration``).
        """

        def parse(body: bytes) -> WireResult:
            return parse_completion(body, prompt_len=prompt_len, prompt_start=prompt_start, chat_logprobs_float32=True)

        return check_dynamo_answer(raw, prompt_len=prompt_len, parse=parse)
