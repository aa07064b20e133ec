"""Faults: what a mock server should do wrong, for how many requests, and the code that does it.

A fault is data (a ``FaultSpec``), set three ways under the same field names: globally (``MockConfig.faults``,
``--faults`` on the command line), at runtime through ``POST /_mock/faults`` (or a handle's ``set_faults``), or per
request with an ``x-mock-fault`` header. The header and the flag take either a JSON object or the short form
``key=value; key=value`` (a bare key means ``true``)::

    x-mock-fault: status=503; fail_first=2
    x-mock-fault: reset
    x-mock-fault: {"status": 429, "body": {"error": "slow down"}}
    x-mock-fault: completion_ids=missing; logprobs=engine-only

Two kinds of fault, each applied in one place of this module:

* transport faults (``status``, ``delay_s``, ``hang``, ``reset``, ``invalid_json``, ``truncate``) replace or break the
  whole response: ``respond_with_fault`` runs the handler (or not) around them;
* content faults (``completion_ids``, ``logprobs``, ``migrated_after``) edit the token ids and logprob lists of a built
  response: ``apply_content_fault`` is the one function the mocks (and the Dynamo worker) call on each object that
  carries them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import orjson
from aiohttp import web

CompletionIdsMode = Literal["present", "empty", "missing"]
LogprobsMode = Literal["match", "mismatch", "engine-only", "chat-only"]
RoutingMode = Literal["as-asked", "full", "pre-trimmed"]
FaultSource = Literal["none", "global", "header"]
LogprobsSource = Literal["engine", "chat"]
COMPLETION_IDS_MODES: tuple[str, ...] = get_args(CompletionIdsMode)
LOGPROBS_MODES: tuple[str, ...] = get_args(LogprobsMode)
ROUTING_MODES: tuple[str, ...] = get_args(RoutingMode)
FAULT_HEADER = "x-mock-fault"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class FaultError(ValueError):
    """A fault specification that cannot be understood; the message names the field and the value."""


@dataclass(frozen=True)
class FaultSpec:
    """What to do wrong. Every field's default means "behave normally"."""

    completion_ids: CompletionIdsMode = "present"
    """Dynamo ``nvext`` completion ids (vLLM: ``choices[].token_ids``): present, empty (``[]``) or missing."""
    logprobs: LogprobsMode = "match"
    """match; mismatch (logprob lists one shorter than the ids); engine-only / chat-only (Dynamo: one source only)."""
    status: int | None = None
    """Answer with this HTTP status instead of the real response."""
    body: Any = None
    """Body for ``status`` (a str is sent as is, anything else as JSON); default: the server's error envelope."""
    delay_s: float = 0.0
    """Wait this long before answering (then answer normally, or with the other faults)."""
    hang: bool = False
    """Never answer: hold the connection until the client gives up (bounded by ``hang_max_s``)."""
    reset: bool = False
    """Close the connection with a TCP reset instead of answering."""
    invalid_json: bool = False
    """Answer 200 with a body that is not valid JSON."""
    truncate: bool = False
    """Announce the full Content-Length, send half of the body, close the connection."""
    routing: RoutingMode = "as-asked"
    """Dynamo worker (``renderers-mock dynamo-worker``): ``full`` ignores ``routed_experts_prompt_start`` (the whole
    table, start 0); ``pre-trimmed`` trims the rows at the start but labels the table ``start: 0``."""
    crash_after: int | None = None
    """Dynamo worker: the worker process exits after streaming this many tokens of the request (a crash
    mid-generation; the frontend answers 503, or migrates the request when migration is on)."""
    migrated_after: int | None = None
    """Mock Dynamo: answer as the 1.6.1 frontend does after migrating the request to a second worker once this
    many tokens were generated: ``usage`` and the chat echo count every token, ``nvext.engine_data`` holds only the
    second worker's part (its prompt is the original prompt plus those tokens)."""
    fail_first: int | None = None
    """Apply the failure (status, default 503, or hang/reset/invalid_json/truncate) only to the first N matching
    requests, then answer normally. Counted per fault spec."""

    def __post_init__(self) -> None:
        if self.completion_ids not in COMPLETION_IDS_MODES:
            raise FaultError(
                f"completion_ids must be one of {', '.join(COMPLETION_IDS_MODES)}, got {self.completion_ids!r}"
            )
        if self.logprobs not in LOGPROBS_MODES:
            raise FaultError(f"logprobs must be one of {', '.join(LOGPROBS_MODES)}, got {self.logprobs!r}")
        if self.routing not in ROUTING_MODES:
            raise FaultError(f"routing must be one of {', '.join(ROUTING_MODES)}, got {self.routing!r}")
        for name in ("crash_after", "migrated_after"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise FaultError(f"{name} must be >= 1, got {value!r}")
        if self.status is not None and not 100 <= self.status <= 599:
            raise FaultError(f"status must be an HTTP status code (100-599), got {self.status!r}")
        if self.delay_s < 0:
            raise FaultError(f"delay_s must be >= 0, got {self.delay_s!r}")
        if self.fail_first is not None and self.fail_first < 0:
            raise FaultError(f"fail_first must be >= 0, got {self.fail_first!r}")

    @property
    def is_noop(self) -> bool:
        return self == NO_FAULT

    @property
    def breaks_transport(self) -> bool:
        """Whether the fault replaces the response (as opposed to editing its content)."""
        return self.status is not None or self.hang or self.reset or self.invalid_json or self.truncate

    @property
    def edits_content(self) -> bool:
        """Whether ``apply_content_fault`` changes anything."""
        return self.completion_ids != "present" or self.logprobs != "match" or self.migrated_after is not None

    def to_dict(self) -> dict[str, Any]:
        """Only the fields that differ from normal behaviour."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(NO_FAULT, f.name)
        }

    def merged(self, changes: Mapping[str, Any]) -> FaultSpec:
        """A copy with some fields changed, coerced and checked like ``from_mapping``."""
        return FaultSpec.from_mapping({**self.to_dict(), **changes})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FaultSpec:
        """Build from field names (the ``/_mock/faults`` body, a parsed header); values may be strings."""
        names = [f.name for f in dataclasses.fields(cls)]
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                raise FaultError(f"unknown fault {key!r}; known: {', '.join(sorted(names))}")
            kwargs[key] = _coerce(key, value)
        return cls(**kwargs)

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse a header value or CLI argument (JSON object or ``key=value; ...``)."""
        text = text.strip()
        if not text:
            return cls()
        if text.startswith("{"):
            try:
                data = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise FaultError(f"fault JSON does not parse: {exc}: {text!r}") from exc
            if not isinstance(data, dict):  # pragma: no cover - a text starting with "{" is an object or invalid
                raise FaultError(f"fault JSON must be an object, got {text!r}")
            return cls.from_mapping(data)
        if text.startswith("["):
            raise FaultError(f"fault JSON must be an object, got {text!r}")
        pairs: dict[str, Any] = {}
        for part in text.replace(",", ";").split(";"):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            pairs[key.strip()] = value.strip() if sep else True
        return cls.from_mapping(pairs)


def _coerce(key: str, value: Any) -> Any:
    """A header/JSON value as the field's type; ``FaultError`` names the field and the value otherwise."""
    if key in ("hang", "reset", "invalid_json", "truncate"):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise FaultError(f"{key} must be a boolean, got {value!r}")
    if key in ("status", "fail_first", "crash_after", "migrated_after"):
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise FaultError(f"{key} must be an integer, got {value!r}")
    if key == "delay_s":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise FaultError(f"delay_s must be a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise FaultError(f"delay_s must be a number, got {value!r}") from None
    if key in ("completion_ids", "logprobs", "routing") and not isinstance(value, str):
        raise FaultError(f"{key} must be a string, got {value!r}")
    if key == "body" and isinstance(value, str) and value[:1] in ("{", "["):
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(value)
    return value


NO_FAULT = FaultSpec()
"""The spec of a request without a fault (shared: a ``FaultSpec`` is immutable)."""


# ---- content faults --------------------------------------------------------------------------------------------
def apply_content_fault(
    fault: FaultSpec,
    obj: dict[str, Any],
    *,
    ids_key: str | None = None,
    logprobs_key: str | None = None,
    source: LogprobsSource | None = None,
) -> None:
    """Edit one response object in place: the token ids at ``obj[ids_key]`` and the logprobs at ``obj[logprobs_key]``
    (a list, or an object whose ``content`` is the list).

    ``migrated_after`` (``source="engine"``, Dynamo's ``engine_data``): the ids and logprobs lose their first
    ``migrated_after`` entries, as the last worker of a migrated request reports only its continuation (the caller
    extends ``engine_data``'s prompt and ``usage``: ``migrated_cut``).
    ``completion_ids``: ``empty`` empties both (an empty completion has no logprobs either), ``missing`` removes the
    ids. ``logprobs``: ``mismatch`` drops the last logprob; ``engine-only`` / ``chat-only`` remove the logprobs of
    the other ``source`` (the chat's become ``null``, the engine's key goes away). ``source=None``: a server with one
    logprob source (vLLM), where only ``mismatch`` applies.
    """
    if source == "engine" and fault.migrated_after is not None:
        for cut_key in (ids_key, logprobs_key):
            if cut_key is not None and isinstance(obj.get(cut_key), list):
                obj[cut_key] = obj[cut_key][fault.migrated_after :]
    if ids_key is not None and ids_key in obj:
        if fault.completion_ids == "empty":
            obj[ids_key] = []
        elif fault.completion_ids == "missing":
            del obj[ids_key]
    if logprobs_key is None or obj.get(logprobs_key) is None:
        return
    if (source, fault.logprobs) in (("chat", "engine-only"), ("engine", "chat-only")):
        if source == "chat":
            obj[logprobs_key] = None
        else:
            del obj[logprobs_key]
        return
    holder: Any = obj[logprobs_key]
    key: Any = logprobs_key
    if isinstance(holder, dict):
        key = "content"
    else:
        holder = obj
    values = holder.get(key)
    if not isinstance(values, list) or not values:
        return
    if fault.completion_ids == "empty":
        holder[key] = []
    elif fault.logprobs == "mismatch":
        holder[key] = values[:-1]


def migrated_cut(fault: FaultSpec, n_tokens: int) -> int:
    """How many of a completion's ``n_tokens`` the first worker generated under ``migrated_after`` (0: none)."""
    return min(fault.migrated_after or 0, n_tokens)


# ---- choosing the fault of a request ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """The fault chosen for one request, after ``fail_first`` counting."""

    spec: FaultSpec
    source: FaultSource
    attempt: int
    """1-based count of requests seen under this spec."""

    @property
    def active(self) -> FaultSpec:
        """The spec to apply now: transport failures drop out once ``fail_first`` is used up."""
        if self.spec.fail_first is not None and self.attempt > self.spec.fail_first:
            return dataclasses.replace(
                self.spec, status=None, hang=False, reset=False, invalid_json=False, truncate=False, fail_first=None
            )
        if self.spec.fail_first is not None and not self.spec.breaks_transport:
            return dataclasses.replace(self.spec, status=503)
        return self.spec

    def to_journal(self) -> dict[str, Any] | None:
        if self.source == "none":
            return None
        return {"source": self.source, "spec": self.spec.to_dict(), "attempt": self.attempt, "applied": self.applied}

    @property
    def applied(self) -> bool:
        return not self.active.is_noop


_NO_DECISION = Decision(NO_FAULT, "none", 0)


class FaultState:
    """The global fault plus the ``fail_first`` counters; safe to use from any thread."""

    def __init__(self, spec: FaultSpec | None = None) -> None:
        self._lock = threading.Lock()
        self._global = spec or FaultSpec()
        self.quiet = self._global.is_noop
        """No global fault: a request without an ``x-mock-fault`` header gets no fault (the middleware's fast path)."""
        self._counters: dict[tuple[str, str], int] = {}

    @property
    def current(self) -> FaultSpec:
        return self._global

    def set(self, spec: FaultSpec) -> None:
        with self._lock:
            self._global = spec
            self.quiet = spec.is_noop
            self._counters = {k: v for k, v in self._counters.items() if k[0] != "global"}

    def clear(self) -> None:
        self.set(FaultSpec())

    def reset_counters(self) -> None:
        with self._lock:
            self._counters.clear()

    def decide(self, header: str | None) -> Decision:
        """Pick the fault for one request. Raises ``FaultError`` for an unparsable header."""
        source: FaultSource
        if header is not None and header.strip():
            spec, source = FaultSpec.parse(header), "header"
        else:
            spec, source = self._global, "global"
        if spec.is_noop:
            return _NO_DECISION if spec is NO_FAULT else Decision(spec, "none", 0)
        key = (source, orjson.dumps(spec.to_dict(), option=orjson.OPT_SORT_KEYS).decode())
        with self._lock:
            attempt = self._counters.get(key, 0) + 1
            self._counters[key] = attempt
        return Decision(spec, source, attempt)


# ---- transport faults ------------------------------------------------------------------------------------------
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorFactory = Callable[..., web.Response]


class Dropped(Exception):
    """The fault closed the connection: there is no response to send. ``outcome`` is what the journal records."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


def reset_connection(request: web.Request) -> None:
    """Close the client's connection with a TCP RST (SO_LINGER 0), no HTTP response."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _hang(request: web.Request, limit: float) -> None:
    deadline = time.monotonic() + limit
    while request.transport is not None and not request.transport.is_closing() and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the socket
        await asyncio.sleep(0.05)


def _status_response(spec: FaultSpec, error: ErrorFactory) -> web.Response:
    assert spec.status is not None
    if spec.body is None:
        return error(spec.status, f"mock fault: HTTP {spec.status}")
    if isinstance(spec.body, str | bytes):
        text = spec.body.encode() if isinstance(spec.body, str) else spec.body
        return web.Response(body=text, status=spec.status, content_type="application/json")
    return web.Response(body=orjson.dumps(spec.body), status=spec.status, content_type="application/json")


async def _truncated(request: web.Request, resp: web.Response) -> web.StreamResponse:
    body = resp.body if isinstance(resp.body, bytes) else b""
    out = web.StreamResponse(status=resp.status, headers={"Content-Type": resp.content_type})
    out.content_length = len(body)
    await out.prepare(request)
    await out.write(body[: len(body) // 2])
    reset_connection(request)
    raise Dropped("truncated")


async def respond_with_fault(
    request: web.Request, spec: FaultSpec, handler: Handler, error: ErrorFactory, hang_max_s: float
) -> web.StreamResponse:
    """The response to ``request`` under the transport faults of ``spec`` (content faults are the handler's).

    Raises ``Dropped`` when the fault closes the connection instead of answering.
    """
    if spec.delay_s:
        await asyncio.sleep(spec.delay_s)
    if spec.hang:
        await _hang(request, hang_max_s)
        reset_connection(request)
        raise Dropped("hang")
    if spec.reset:
        reset_connection(request)
        raise Dropped("reset")
    if spec.status is not None:
        return _status_response(spec, error)
    result = await handler(request)
    if isinstance(result, web.Response) and not result.prepared:
        if spec.invalid_json:
            body = result.body if isinstance(result.body, bytes) else b"{}"
            return web.Response(
                body=b'{"mock": "invalid json", ' + body[: max(len(body) // 2, 1)],
                status=200,
                content_type="application/json",
            )
        if spec.truncate:
            return await _truncated(request, result)
    return result
