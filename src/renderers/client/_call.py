"""One ``generate()`` call, settled once: the checked arguments (``GenerateCall``) and what a transport sends
(``WireRequest``).

``generate()`` builds one ``GenerateCall`` from its keyword arguments before any work. That is the only place
where ``cache_salt``, ``priority`` and ``routed_experts_prompt_start`` are read from either the keyword argument
or ``sampling_params`` (the keyword argument wins) and type-checked; they leave ``sampling_params`` there and
travel as fields from then on, so a transport never decides which one counts and never checks them again.
Once the prompt ids are known, ``GenerateCall.wire_request`` gives the ``WireRequest`` a transport turns into a
body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import numpy.typing as npt
import orjson

from renderers.types import Message, ToolSpecLike

__all__ = ["PRIORITY_BOUND", "SETTLED_KEYS", "GenerateCall", "PromptIds", "WireRequest", "checked_prompt_ids"]

#: The caller's prompt ids: a sequence of ints, or a 1-D integer numpy array (converted with ``tolist()``).
PromptIds: TypeAlias = Sequence[int] | npt.NDArray[Any]

#: ``priority`` must fit a signed 32-bit int once negated (Dynamo's ``agent_hints.priority`` is an i32), and the
#: same bound applies on every transport so one priority gives one outcome whichever carries it.
PRIORITY_BOUND: Final = 2**31 - 1

#: ``sampling_params`` keys that ``GenerateCall`` takes out and carries as fields.
SETTLED_KEYS: Final = frozenset({"cache_salt", "priority", "routed_experts_prompt_start"})


def _optional_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


_ID_BYTES: Final = b"0123456789,"


def _prompt_id_error(ids: list[Any]) -> ValueError | None:
    for i, tok in enumerate(ids):
        if type(tok) is not int or tok < 0:
            return ValueError(f"prompt_ids[{i}] must be a non-negative int, got {tok!r}")
    return None


def checked_prompt_ids(prompt_ids: PromptIds) -> tuple[list[int], bytes | None]:
    """The caller's ids as a ``list[int]`` (every id a non-negative int), and their JSON text when it came for free.

    The check runs at C speed: orjson encodes the list (anything but ints, bools and enums fails or prints a
    ``-``, ``.``, ``"``, letter...), and the text must hold only digits and commas. Only when that fails does a
    Python loop look for the offending index to name it. (``IntEnum`` members are the one thing this accepts
    that the loop did not: they are sent as their int value.) The JSON text goes into the request body as is
    (``orjson.Fragment``), so the ids are encoded once. ``None`` when the fast check could not be used (ints
    beyond 64 bits: the body encoder then reports them).
    """
    tolist = getattr(prompt_ids, "tolist", None)
    ids = tolist() if callable(tolist) else list(prompt_ids)
    try:
        text = orjson.dumps(ids, option=orjson.OPT_PASSTHROUGH_SUBCLASS)
    except orjson.JSONEncodeError:
        text = None
    if text is not None and text.translate(None, _ID_BYTES) != b"[]":
        text = None
    if text is None:
        err = _prompt_id_error(ids)
        if err is not None:
            raise err
    return ids, text


@dataclass(frozen=True, slots=True)
class WireRequest:
    """Everything a transport needs to build a body.

    ``sampling_params`` never holds the ``SETTLED_KEYS`` (a ``ValueError`` names one that does): they are the
    fields ``cache_salt``, ``priority`` (this API's single meaning, vLLM's: lower runs first) and
    ``prompt_start`` (the caller's ``routed_experts_prompt_start``, ``None`` when not requested). Built by
    ``GenerateCall.wire_request``, its ``sampling_params`` also carry the renderer's ``stop_token_ids``,
    ``logprobs=1`` and the ``skip_special_tokens`` default.
    """

    model: str
    prompt_ids: list[int]
    sampling_params: Mapping[str, Any]
    cache_salt: str | None = None
    priority: int | None = None
    prompt_start: int | None = None
    #: ``prompt_ids`` already encoded as a JSON array (``generate()`` gets it from its id check); when set, the
    #: body embeds it as is instead of encoding the ids a second time. It must be the encoding of ``prompt_ids``.
    prompt_ids_json: bytes | None = None

    def __post_init__(self) -> None:
        for key in SETTLED_KEYS.intersection(self.sampling_params):
            raise ValueError(
                f"sampling_params[{key!r}] reached a transport; GenerateCall settles it into a WireRequest field "
                f"(got {self.sampling_params[key]!r})"
            )

    def prompt_ids_value(self) -> Any:
        """What goes into the body for the prompt ids: the pre-encoded text, or the list."""
        return self.prompt_ids if self.prompt_ids_json is None else orjson.Fragment(self.prompt_ids_json)


@dataclass(frozen=True, slots=True)
class GenerateCall:
    """The arguments of one ``generate()`` call, checked, with ``cache_salt``/``priority``/``prompt_start``
    settled out of ``sampling_params`` (see the module docstring). Built once, by ``from_arguments``."""

    model: str
    messages: Sequence[Message]
    prompt_ids: PromptIds | None
    prompt_attribution: Any
    tools: Sequence[ToolSpecLike] | None
    #: The caller's sampling parameters without the ``SETTLED_KEYS``.
    sampling_params: Mapping[str, Any]
    cache_salt: str | None
    priority: int | None
    prompt_start: int | None
    headers: Mapping[str, str] | None
    max_prompt_len: int | None
    timeout: float | None

    @classmethod
    def from_arguments(
        cls,
        *,
        model: str,
        messages: Sequence[Message] = (),
        prompt_ids: PromptIds | None = None,
        prompt_attribution: Any = None,
        tools: Sequence[ToolSpecLike] | None = None,
        sampling_params: Mapping[str, Any] | None = None,
        cache_salt: str | None = None,
        priority: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_prompt_len: int | None = None,
        timeout: float | None = None,
    ) -> GenerateCall:
        """Check ``generate()``'s keyword arguments (``ValueError`` naming the argument and value) and settle them."""
        sp: dict[str, Any]
        if sampling_params is None:
            sp = {}
        elif isinstance(sampling_params, Mapping):
            sp = dict(sampling_params)
        else:
            raise ValueError(f"sampling_params must be a mapping, got {type(sampling_params).__name__}")
        sp_salt = sp.pop("cache_salt", None)
        sp_priority = sp.pop("priority", None)
        sp_start = sp.pop("routed_experts_prompt_start", None)
        if priority is None:
            priority = sp_priority
        checked_priority = _optional_int("priority", priority, minimum=-PRIORITY_BOUND, maximum=PRIORITY_BOUND)
        prompt_start = _optional_int("sampling_params['routed_experts_prompt_start']", sp_start, minimum=0)
        if cache_salt is None:
            cache_salt = sp_salt
        if cache_salt is not None and not isinstance(cache_salt, str):
            raise ValueError(f"cache_salt must be a string, got {cache_salt!r}")
        if max_prompt_len is not None:
            max_prompt_len = _optional_int("max_prompt_len", max_prompt_len, minimum=1)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        return cls(
            model=model,
            messages=messages,
            prompt_ids=prompt_ids,
            prompt_attribution=prompt_attribution,
            tools=tools,
            sampling_params=sp,
            cache_salt=cache_salt,
            priority=checked_priority,
            prompt_start=prompt_start,
            headers=extra_headers or None,
            max_prompt_len=max_prompt_len,
            timeout=timeout,
        )

    def wire_request(
        self, prompt_ids: list[int], prompt_ids_json: bytes | None, stop_token_ids: list[int]
    ) -> WireRequest:
        """The request for ``prompt_ids``: the renderer's ``stop_token_ids`` and ``logprobs=1`` always (a
        completion is only trainable with its logprobs), ``skip_special_tokens`` ``False`` unless the caller set it."""
        sp = dict(self.sampling_params)
        sp["stop_token_ids"] = stop_token_ids
        sp["logprobs"] = 1
        sp.setdefault("skip_special_tokens", False)
        return WireRequest(
            model=self.model,
            prompt_ids=prompt_ids,
            sampling_params=sp,
            cache_salt=self.cache_salt,
            priority=self.priority,
            prompt_start=self.prompt_start,
            prompt_ids_json=prompt_ids_json,
        )
