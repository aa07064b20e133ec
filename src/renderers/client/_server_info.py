"""``ServerInfo``: what one HTTP client has learnt about its server, asked or answered once, reused by every call.

Held by the ``HTTPClient`` (``http.server_info``), so it lives exactly as long as the client and is never shared
with another client in the process (no module-level state):

- the model's context length, from ``GET /v1/models`` once per model: vLLM cards carry ``max_model_len``, Dynamo
  cards ``context_window``. Any failure (connection, non-2xx, bad JSON, no card for the model, no usable number)
  is kept as ``None`` ("asked, unknown": no pre-flight cap), so a server is asked at most once per model, and
  concurrent first requests share one GET;
- whether the server accepts optional request fields (today ``nvext.routed_experts_prompt_start``, which Dynamo
  <= 1.6.1 rejects): a transport marks one rejected after the server said so, and leaves it out from then on.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson

if TYPE_CHECKING:
    from renderers.client._http import HTTPClient

__all__ = ["MODELS_PATH", "ServerInfo"]

logger = logging.getLogger(__name__)

MODELS_PATH: Final = "/v1/models"
_DISCOVERY_TIMEOUT: Final = 30.0


def _positive_int(value: Any) -> int | None:
    return value if type(value) is int and value > 0 else None


def _context_len_from_models(body: bytes, model: str) -> int | None:
    doc = orjson.loads(body)
    cards = doc.get("data") if isinstance(doc, Mapping) else None
    if not isinstance(cards, list):
        return None
    for card in cards:
        if isinstance(card, Mapping) and card.get("id") == model:
            return _positive_int(card.get("max_model_len")) or _positive_int(card.get("context_window"))
    return None


class ServerInfo:
    """What a client knows about the server at ``root_url``."""

    __slots__ = ("_context_lens", "_lock_loop", "_locks", "_rejected_fields", "root_url")

    def __init__(self, root_url: str) -> None:
        self.root_url = root_url
        self._context_lens: dict[str, int | None] = {}
        self._rejected_fields: set[str] = set()
        # asyncio locks bind to one event loop: the locks are replaced when the client is used from another loop.
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def __repr__(self) -> str:
        return (
            f"ServerInfo({self.root_url!r}, context_lens={self._context_lens!r}, "
            f"rejected_fields={sorted(self._rejected_fields)!r})"
        )

    # ------------------------------------------------------------------------------------------ optional fields

    def accepts(self, field: str) -> bool:
        """Whether ``field`` may be sent: ``True`` until the server rejected it (``reject``)."""
        return field not in self._rejected_fields

    def reject(self, field: str) -> None:
        """Remember that the server rejects the request field ``field`` (leave it out from now on)."""
        self._rejected_fields.add(field)

    # ------------------------------------------------------------------------------------------ context length

    @property
    def context_lens(self) -> Mapping[str, int | None]:
        """The context lengths asked so far, per model (``None``: asked, unknown). A read-only copy."""
        return dict(self._context_lens)

    def _lock(self, model: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock_loop is None or self._lock_loop() is not loop:
            self._locks = {}
            self._lock_loop = weakref.ref(loop)
        lock = self._locks.get(model)
        if lock is None:
            lock = self._locks[model] = asyncio.Lock()
        return lock

    async def context_len(self, http: HTTPClient, model: str) -> int | None:
        """The model's context length as the server reports it, or ``None`` when unknown (asked once either way)."""
        if model in self._context_lens:
            return self._context_lens[model]
        async with self._lock(model):
            if model in self._context_lens:
                return self._context_lens[model]
            value: int | None = None
            try:
                resp = await http.request("GET", MODELS_PATH, timeout=_DISCOVERY_TIMEOUT)
                if 200 <= resp.status < 300:
                    value = _context_len_from_models(resp.body, model)
                else:
                    logger.debug("GET %s%s answered %s; no pre-flight cap", self.root_url, MODELS_PATH, resp.status)
            except Exception as exc:  # any failure means "unknown", never a failed rollout
                logger.debug("max prompt length discovery failed for %s %r: %r", self.root_url, model, exc)
            self._context_lens[model] = value
            return value
