"""Discovery of the model's context length from ``GET /v1/models``, once per (server root, model).

vLLM cards carry ``max_model_len``, Dynamo cards ``context_window``. Any failure (connection, non-2xx, bad JSON,
no card for the model, no usable number) is cached as ``None`` ("asked, unknown": no pre-flight cap), so a
server is asked at most once per model. Concurrent first requests share one GET (an asyncio lock per key).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from typing import Any, Final

import orjson

from renderers.client.http import HTTPClient

__all__ = ["clear_max_prompt_len_cache", "discover_max_prompt_len", "max_prompt_len_cache"]

logger = logging.getLogger(__name__)

_MODELS_PATH: Final = "/v1/models"
_DISCOVERY_TIMEOUT: Final = 30.0
_cache: dict[tuple[str, str], int | None] = {}
# asyncio locks are bound to one event loop: keep one set of locks per loop.
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def max_prompt_len_cache() -> dict[tuple[str, str], int | None]:
    """The (mutable) discovery cache, keyed by ``(server root URL, model)``."""
    return _cache


def clear_max_prompt_len_cache() -> None:
    _cache.clear()


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


async def discover_max_prompt_len(http: HTTPClient, model: str) -> int | None:
    """The model's context length as the server reports it, or ``None`` when unknown (cached either way)."""
    key = (http.root_url, model)
    if key in _cache:
        return _cache[key]
    loop = asyncio.get_running_loop()
    lock = _locks.setdefault(loop, {}).setdefault(key, asyncio.Lock())
    async with lock:
        if key in _cache:
            return _cache[key]
        value: int | None = None
        try:
            resp = await http.request("GET", _MODELS_PATH, timeout=_DISCOVERY_TIMEOUT)
            if 200 <= resp.status < 300:
                value = _context_len_from_models(resp.body, model)
            else:
                logger.debug("GET %s%s answered %s; no pre-flight cap", http.root_url, _MODELS_PATH, resp.status)
        except Exception as exc:  # any failure means "unknown", never a failed rollout
            logger.debug("max prompt length discovery failed for %s: %r", key, exc)
        _cache[key] = value
        return value
