"""The transport ABC: how a ``WireRequest`` becomes a body, the one exchange every transport shares (``send``), and
the two places a transport adds its own behaviour to it (``resend_body``, ``parse``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from renderers.client._call import WireRequest
from renderers.client._http import HTTPClient, RawResponse
from renderers.client._http_errors import raise_for_status
from renderers.client._parse import WireResult, parse_completion
from renderers.client._server_info import ServerInfo

__all__ = ["Transport", "encode_body"]


def encode_body(body: Mapping[str, Any]) -> bytes:
    """orjson-encode a request body; unserializable caller values are a ``ValueError``."""
    try:
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"request body is not JSON-serializable: {exc}") from None


class Transport(ABC):
    """One wire protocol: how a ``WireRequest`` becomes a body, and how a response becomes a ``WireResult``.

    ``build_body`` and ``parse`` are pure (property-testable without I/O); ``send`` does the exchange, the same
    for every transport: build, POST, (once) ``resend_body`` after a refusal, map a non-2xx status to an error,
    ``parse``. Stateless: what the client knows about the server is ``http.server_info``.
    """

    name: ClassVar[str]
    path: ClassVar[str]

    @abstractmethod
    def build_body(self, request: WireRequest, server: ServerInfo | None = None) -> bytes:
        """The request body bytes. ``server``: what the client knows about the server, for the optional fields it
        is known to reject (``None``: nothing known, every requested field is sent)."""

    def resend_body(self, request: WireRequest, resp: RawResponse, server: ServerInfo) -> bytes | None:
        """Hook for "resend without X": after the non-2xx answer ``resp``, the body to send once more when the
        server refused an optional field this transport can do without (it also marks the field rejected on
        ``server``, so later calls leave it out), or ``None`` (the default): ``resp`` becomes the error."""
        return None

    def parse(self, raw: bytes, *, prompt_len: int, prompt_start: int | None = None) -> WireResult:
        """Hook for the response side: parse a 2xx body with the shared parser (``_parse``). A transport that reads
        its bodies with other options, or checks more of them, overrides this."""
        return parse_completion(raw, prompt_len=prompt_len, prompt_start=prompt_start)

    async def send(
        self,
        http: HTTPClient,
        request: WireRequest,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
        max_prompt_len: int | None = None,
    ) -> WireResult:
        """POST the request, resend it once if ``resend_body`` says so, map a non-2xx status to an error, parse."""
        server = http.server_info
        resp = await http.request("POST", self.path, body=self.build_body(request, server), headers=headers,
                                  timeout=timeout)  # fmt: skip
        if not 200 <= resp.status < 300:
            body = self.resend_body(request, resp, server)
            if body is not None:
                resp = await http.request("POST", self.path, body=body, headers=headers, timeout=timeout)
        raise_for_status(resp, prompt_len=len(request.prompt_ids), max_prompt_len=max_prompt_len)
        return self.parse(resp.body, prompt_len=len(request.prompt_ids), prompt_start=request.prompt_start)
