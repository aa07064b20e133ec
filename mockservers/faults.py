"""Fault specifications: what a mock server should do wrong, and for how many requests.

A fault is data (a ``FaultSpec``), set three ways: globally from the CLI/config, at runtime through
``POST /_mock/faults`` (or a handle's ``set_faults``), or per request with an ``x-mock-fault`` header. The header
takes either a JSON object or the short form ``key=value; key=value`` (a bare key means ``true``)::

    x-mock-fault: status=503; fail_first=2
    x-mock-fault: reset
    x-mock-fault: {"status": 429, "body": {"error": "slow down"}}
    x-mock-fault: completion_ids=missing; logprobs=engine-only
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

COMPLETION_IDS_MODES = ("present", "empty", "missing")
LOGPROBS_MODES = ("match", "mismatch", "engine-only", "chat-only")
ROUTING_MODES = ("as-asked", "full", "pre-trimmed")
FAULT_HEADER = "x-mock-fault"


class FaultError(ValueError):
    """A fault specification that cannot be understood."""


@dataclass(frozen=True)
class FaultSpec:
    """What to do wrong. Every field's default means "behave normally"."""

    completion_ids: str = "present"
    """Dynamo ``nvext`` completion ids (vLLM: ``choices[].token_ids``): present, empty (``[]``) or missing."""
    logprobs: str = "match"
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
    routing: str = "as-asked"
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
            raise FaultError(f"completion_ids must be one of {', '.join(COMPLETION_IDS_MODES)}")
        if self.logprobs not in LOGPROBS_MODES:
            raise FaultError(f"logprobs must be one of {', '.join(LOGPROBS_MODES)}")
        if self.routing not in ROUTING_MODES:
            raise FaultError(f"routing must be one of {', '.join(ROUTING_MODES)}")
        for name in ("crash_after", "migrated_after"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise FaultError(f"{name} must be >= 1, got {value}")
        if self.status is not None and not 100 <= self.status <= 599:
            raise FaultError("status must be an HTTP status code (100-599)")
        if self.delay_s < 0:
            raise FaultError("delay_s must be >= 0")
        if self.fail_first is not None and self.fail_first < 0:
            raise FaultError("fail_first must be >= 0")

    @property
    def is_noop(self) -> bool:
        return self == _NOOP

    @property
    def breaks_transport(self) -> bool:
        """Whether the fault replaces the response (as opposed to editing its content)."""
        return self.status is not None or self.hang or self.reset or self.invalid_json or self.truncate

    def to_dict(self) -> dict[str, Any]:
        """Only the fields that differ from normal behaviour."""
        default = FaultSpec()
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FaultSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        aliases = {"delay": "delay_s", "completion-ids": "completion_ids", "invalid-json": "invalid_json"}
        aliases |= {"fail-first": "fail_first", "crash-after": "crash_after", "migrated-after": "migrated_after"}
        kwargs: dict[str, Any] = {}
        for raw_key, value in data.items():
            key = aliases.get(raw_key, raw_key)
            if key not in names:
                raise FaultError(f"unknown fault {raw_key!r}; known: {', '.join(sorted(names))}")
            kwargs[key] = _coerce(key, value)
        try:
            return cls(**kwargs)
        except TypeError as exc:  # pragma: no cover - guarded by _coerce
            raise FaultError(str(exc)) from exc

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
                raise FaultError(f"fault JSON does not parse: {exc}") from exc
            if not isinstance(data, dict):
                raise FaultError("fault JSON must be an object")
            return cls.from_mapping(data)
        pairs: dict[str, Any] = {}
        for part in text.replace(",", ";").split(";"):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            pairs[key.strip()] = value.strip() if sep else True
        return cls.from_mapping(pairs)


def _coerce(key: str, value: Any) -> Any:
    try:
        if key in ("hang", "reset", "invalid_json", "truncate"):
            if isinstance(value, str):
                if value.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                    raise FaultError(f"{key} must be a boolean")
                return value.lower() in ("1", "true", "yes", "on")
            if not isinstance(value, bool):
                raise FaultError(f"{key} must be a boolean")
            return value
        if key in ("status", "fail_first", "crash_after", "migrated_after"):
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise FaultError(f"{key} must be an integer")
            return int(value)
        if key == "delay_s":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise FaultError("delay_s must be a number")
            return float(value)
        if key in ("completion_ids", "logprobs", "routing"):
            if not isinstance(value, str):
                raise FaultError(f"{key} must be a string")
            return value
        if key == "body" and isinstance(value, str) and value[:1] in ("{", "["):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                return value
    except ValueError as exc:
        if isinstance(exc, FaultError):
            raise
        raise FaultError(f"bad value for {key}: {value!r}") from exc
    return value


_NOOP = FaultSpec()
NO_FAULT = _NOOP
"""The spec of a request without a fault (shared: a ``FaultSpec`` is immutable)."""


@dataclass(frozen=True)
class Decision:
    """The fault chosen for one request, after ``fail_first`` counting."""

    spec: FaultSpec
    source: str  # "none" | "global" | "header"
    attempt: int  # 1-based count of requests seen under this spec

    @property
    def active(self) -> FaultSpec:
        """The spec to apply now: transport failures drop out once ``fail_first`` is used up."""
        if self.spec.fail_first is not None and self.attempt > self.spec.fail_first:
            return dataclasses.replace(
                self.spec,
                status=None,
                hang=False,
                reset=False,
                invalid_json=False,
                truncate=False,
                fail_first=None,
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
        if header is not None and header.strip():
            spec = FaultSpec.parse(header)
            source = "header"
        else:
            spec = self._global
            source = "global"
        if spec.is_noop:
            return _NO_DECISION if spec is _NOOP else Decision(spec, "none", 0)
        key = (source, orjson.dumps(spec.to_dict(), option=orjson.OPT_SORT_KEYS).decode())
        with self._lock:
            attempt = self._counters.get(key, 0) + 1
            self._counters[key] = attempt
        return Decision(spec, source, attempt)


_NO_DECISION = Decision(_NOOP, "none", 0)
