"""serde_json as the Dynamo frontend runs it: the error texts and positions of a body its Rust types refuse.

The frontend reads a body with ``serde_json::from_slice`` into ``NvCreateChatCompletionRequest`` (axum's ``Json``
extractor; errors become ``Failed to deserialize the JSON body into the target type: <detail> at line L column C``).
What this module reproduces, from serde/serde_json's source:

* syntax errors (``EOF while parsing an object``, ``expected `,` or `}```, ``trailing comma``, ``invalid number``,
  ``expected ident``, ``key must be a string``, ``trailing characters`` ...) at the byte where serde_json stops;
* type errors: ``invalid type: <unexpected>, expected <what>`` and ``invalid value: integer `N`, expected u32``,
  where ``<unexpected>`` is serde's ``Unexpected`` display (``string "a"``, ``integer `5```, ``floating point `1.5```,
  ``boolean `true```, ``null``, ``sequence``, ``map``);
* where each error is reported: the request struct flattens its OpenAI part, so most fields are buffered and typed
  after the closing ``}`` (their errors point at the end of the object), while the named fields (``nvext``,
  ``chat_template_args`` ...) are typed while being read (their errors point into the value).

Only the slow path uses the scanner: a body orjson parses and the rules accept never goes through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

RECURSION_LIMIT = 128


class SerdeError(Exception):
    """A serde_json error: ``detail`` and the byte offset ``pos`` it is reported at."""

    def __init__(self, detail: str, pos: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.pos = pos


def location(raw: bytes, pos: int) -> str:
    """serde_json's ``at line L column C`` for byte offset ``pos`` (column: bytes read on that line)."""
    line = raw.count(b"\n", 0, pos) + 1
    start = raw.rfind(b"\n", 0, pos) + 1
    return f"at line {line} column {pos - start}"


# ---- Rust number and string display -------------------------------------------------------------------------
def rust_float(value: float) -> str:
    """Rust's ``Display`` of an f64: the shortest round-trip digits, never an exponent (``1e20`` is
    ``100000000000000000000``); ``inf``, ``-inf``, ``NaN``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "-0" if text == "0" and math.copysign(1.0, value) < 0 else text


def rust_debug_float(value: float) -> str:
    """serde's ``Unexpected::Float`` text (ryu's format): shortest digits; ``1.0`` for an integral value up to 16
    digits, ``0.000015`` down to 1e-5, otherwise an exponent with its sign (``1e+16``, ``1e-7``,
    ``9.999999999999999e-51``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    _, digit_tuple, exp = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    assert isinstance(exp, int)
    minus = "-" if math.copysign(1.0, value) < 0 else ""
    if digits == "0":
        return f"{minus}0.0"
    kk = len(digits) + exp  # where the decimal point goes
    if exp >= 0 and kk <= 16:
        text = digits + "0" * exp + ".0"
    elif 0 < kk <= 16:
        text = digits[:kk] + "." + digits[kk:]
    elif -5 < kk <= 0:
        text = "0." + "0" * -kk + digits
    else:
        mantissa = digits if len(digits) == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if kk - 1 >= 0 else '-'}{abs(kk - 1)}"
    return minus + text


_POW10 = tuple(float(f"1e{k}") for k in range(309))
"""serde_json's ``POW10``: the correctly rounded doubles of ``1e0`` .. ``1e308`` (its table of literals). Python's
``10.0 ** k`` is not always the nearest double (``10.0 ** 23`` is one ulp above ``1e23``)."""


def serde_f64(text: bytes) -> float:
    """serde_json's f64 of a JSON number (its default parser, not the correctly rounded one): up to 19 significant
    digits kept in a u64 (more are dropped, an integer's counted in the exponent), then multiplied or divided by a
    power of ten from a table of correctly rounded ``1e0`` .. ``1e308``."""
    negative = text.startswith(b"-")
    body = text[1:] if negative else text
    mantissa, _, exp_text = body.lower().partition(b"e")
    whole, _, fraction = mantissa.partition(b".")
    significand = 0
    exponent = 0
    limit = 2**64 - 1
    overflowed = False
    for d in whole:
        digit = d - 48
        if overflowed or significand > (limit - digit) // 10:
            overflowed = True
            exponent += 1
            continue
        significand = significand * 10 + digit
    for d in fraction:
        digit = d - 48
        if overflowed or significand > (limit - digit) // 10:
            overflowed = True
            continue
        significand = significand * 10 + digit
        exponent -= 1
    if exp_text:
        exponent += int(exp_text)
    value = float(significand)
    while True:
        if abs(exponent) <= 308:
            value = value * _POW10[exponent] if exponent >= 0 else value / _POW10[-exponent]
            break
        if value == 0.0:
            break
        if exponent > 0:
            return math.inf
        value /= 1e308
        exponent += 308
    return -value if negative else value


def rust_f32(value: float) -> str:
    """Rust's ``Display`` of the f32 nearest to ``value`` (how the ``Validation:`` range messages print it)."""
    with np.errstate(over="ignore"):
        f = np.float32(value)
    if not np.isfinite(f):
        return "inf" if f > 0 else "-inf"
    text = np.format_float_positional(f, unique=True, trim="-")
    return "-0" if text == "-0" else text


def to_f32(value: float) -> float:
    """The f32 serde stores for a JSON number (overflow becomes infinity), as a Python float."""
    with np.errstate(over="ignore"):
        return float(np.float32(value))


def rust_debug_str(text: str) -> str:
    """Rust's ``{:?}`` of a str: quoted, with ``\\"``, ``\\\\``, ``\\n``/``\\r``/``\\t`` and ``\\u{..}`` escapes."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        elif code < 0x20 or code == 0x7F or not ch.isprintable():
            out.append(f"\\u{{{code:x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def unexpected(value: Any) -> str:
    """serde's ``Unexpected`` display of a JSON value as serde_json hands it over."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        if -(2**63) <= value < 2**64:
            return f"integer `{value}`"
        value = float(value)  # serde_json reads an integer beyond 64 bits as an f64
    if isinstance(value, float):
        return f"floating point `{rust_debug_float(value)}`"
    if isinstance(value, str):
        return f"string {rust_debug_str(value)}"
    return "sequence" if isinstance(value, list) else "map"


def invalid_type(value: Any, expected: str) -> str:
    return f"invalid type: {unexpected(value)}, expected {expected}"


def one_of(names: tuple[str, ...]) -> str:
    """serde's list of expected names: ``there are no fields``, one name, ``a or b``, ``one of a, b, ...``
    (each name in backticks)."""
    quoted = [f"`{n}`" for n in names]
    if not quoted:
        return "there are no fields"
    if len(quoted) == 1:
        return quoted[0]
    if len(quoted) == 2:
        return f"{quoted[0]} or {quoted[1]}"
    return "one of " + ", ".join(quoted)


# ---- the scanner ----------------------------------------------------------------------------------------------
@dataclass
class Member:
    """One key of an object as read: its text, where the key ends (after its closing quote), its value and where
    the value starts and ends."""

    key: str
    key_end: int
    value: Any
    start: int
    end: int
    children: list[Member] | None = None
    """The members of an object value when they were read one by one (``rules`` reads ``nvext`` so)."""


_WS = b" \t\n\r"
_ESCAPES = {ord('"'): '"', ord("\\"): "\\", ord("/"): "/", ord("b"): "\b", ord("f"): "\f", ord("n"): "\n"}
_ESCAPES |= {ord("r"): "\r", ord("t"): "\t"}
_HEX_DIGITS = b"0123456789abcdefABCDEF"


class Scanner:
    """Reads JSON bytes the way serde_json does, raising ``SerdeError`` with its texts and positions."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.pos = 0
        self.depth = 0

    def eof(self, what: str) -> SerdeError:
        return SerdeError(f"EOF while parsing {what}", self.pos)

    def skip_ws(self) -> int | None:
        raw, n = self.raw, len(self.raw)
        while self.pos < n and raw[self.pos] in _WS:
            self.pos += 1
        return raw[self.pos] if self.pos < n else None

    def peek_error(self, detail: str) -> SerdeError:
        """An error at the byte just peeked (serde_json counts it as read)."""
        return SerdeError(detail, self.pos + 1)

    def value(self) -> Any:
        """Any JSON value (serde_json's ``deserialize_any``: what a buffered field or a ``Value`` reads)."""
        c = self.skip_ws()
        if c is None:
            raise self.eof("a value")
        if c == ord("{"):
            return {m.key: m.value for m in self.members()}
        if c == ord("["):
            return self.array()
        if c == ord('"'):
            return self.string()
        if c in b"tfn":
            return self.ident()
        if c == ord("-") or 48 <= c <= 57:
            return self.number()
        raise self.peek_error("expected value")

    def ident(self) -> Any:
        raw = self.raw
        word, result = {ord("t"): (b"true", True), ord("f"): (b"false", False), ord("n"): (b"null", None)}[
            raw[self.pos]
        ]
        self.pos += 1
        for expected in word[1:]:
            if self.pos >= len(raw):
                raise self.eof("a value")
            got = raw[self.pos]
            self.pos += 1
            if got != expected:
                raise SerdeError("expected ident", self.pos)
        return result

    def number(self) -> int | float:
        raw, n, start = self.raw, len(self.raw), self.pos
        if raw[self.pos] == ord("-"):
            self.pos += 1
        if self.pos >= n:
            raise self.eof("a value")
        first = raw[self.pos]
        if first == ord("0"):
            self.pos += 1
            if self.pos < n and 48 <= raw[self.pos] <= 57:
                raise self.peek_error("invalid number")
        elif 49 <= first <= 57:
            while self.pos < n and 48 <= raw[self.pos] <= 57:
                self.pos += 1
        else:
            raise self.peek_error("invalid number")
        is_float = False
        if self.pos < n and raw[self.pos] == ord("."):
            is_float = True
            self.pos += 1
            self.digits()
        if self.pos < n and raw[self.pos] in b"eE":
            is_float = True
            self.pos += 1
            if self.pos < n and raw[self.pos] in b"+-":
                self.pos += 1
            self.digits()
        text = raw[start : self.pos]
        if not is_float:
            value = int(text)
            if value == 0 and text.startswith(b"-"):
                return -0.0  # serde_json keeps the sign of a negative zero: it reads ``-0`` as the f64 -0.0
            if -(2**63) <= value < 2**64:
                return value
        number = serde_f64(text)
        if math.isinf(number):
            raise SerdeError("number out of range", self.pos)
        return number

    def digits(self) -> None:
        """At least one digit (a fraction or an exponent), then any more."""
        raw, n = self.raw, len(self.raw)
        if self.pos >= n:
            raise self.eof("a value")
        if not 48 <= raw[self.pos] <= 57:
            raise self.peek_error("invalid number")
        while self.pos < n and 48 <= raw[self.pos] <= 57:
            self.pos += 1

    def string(self) -> str:
        raw, n = self.raw, len(self.raw)
        self.pos += 1
        out: list[str] = []
        chunk = self.pos
        while True:
            if self.pos >= n:
                raise self.eof("a string")
            c = raw[self.pos]
            if c == ord('"'):
                out.append(raw[chunk : self.pos].decode("utf-8", errors="replace"))
                self.pos += 1
                return "".join(out)
            if c < 0x20:
                self.pos += 1
                raise SerdeError("control character (\\u0000-\\u001F) found while parsing a string", self.pos)
            if c != ord("\\"):
                self.pos += 1
                continue
            out.append(raw[chunk : self.pos].decode("utf-8", errors="replace"))
            self.pos += 1
            if self.pos >= n:
                raise self.eof("a string")
            esc = raw[self.pos]
            self.pos += 1
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
            elif esc == ord("u"):
                out.append(self.unicode_escape())
            else:
                raise SerdeError("invalid escape", self.pos)
            chunk = self.pos

    def unicode_escape(self) -> str:
        """The character of a ``\\u`` escape (the ``\\u`` already read), as serde_json's ``parse_unicode_escape``
        reads it into a string: a trailing surrogate alone is ``lone leading surrogate`` (sic); a leading one must be
        followed by ``\\u`` and a trailing one, each byte that is not counted as read before the error."""
        raw, n = self.raw, len(self.raw)
        code = self.hex4()
        if 0xDC00 <= code < 0xE000:
            raise SerdeError("lone leading surrogate in hex escape", self.pos)
        if not 0xD800 <= code < 0xDC00:
            return chr(code)
        for expected in b"\\u":
            if self.pos >= n:
                raise self.eof("a string")
            self.pos += 1
            if raw[self.pos - 1] != expected:
                raise SerdeError("unexpected end of hex escape", self.pos)
        low = self.hex4()
        if not 0xDC00 <= low < 0xE000:
            raise SerdeError("lone leading surrogate in hex escape", self.pos)
        return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00))

    def hex4(self) -> int:
        """Four hex digits: all four are read before they are checked (``decode_hex_escape``); fewer than four left
        is the end of the input."""
        digits = self.raw[self.pos : self.pos + 4]
        if len(digits) < 4:
            self.pos = len(self.raw)
            raise self.eof("a string")
        self.pos += 4
        if digits.strip(_HEX_DIGITS):
            raise SerdeError("invalid escape", self.pos)
        return int(digits, 16)

    def array(self, check: Callable[[Any, int], None] | None = None) -> list[Any]:
        """A sequence; ``check(item, start)`` sees each element as soon as it is read (typed reading)."""

        def element(start: int) -> Any:
            item = self.value()
            if check is not None:
                check(item, start)
            return item

        return self.sequence(element)

    def sequence(self, element: Callable[[int], Any]) -> list[Any]:
        """A sequence whose elements the caller reads: ``element(start)`` is called with ``pos`` on each one (so it
        can read a nested value its own way, and refuse an element before reading it)."""
        self.enter()
        self.pos += 1
        out: list[Any] = []
        c = self.skip_ws()
        if c is None:
            raise self.eof("a list")
        if c == ord("]"):
            self.leave()
            return out
        while True:
            out.append(element(self.pos))
            c = self.skip_ws()
            if c is None:
                raise self.eof("a list")
            if c == ord("]"):
                self.leave()
                return out
            if c != ord(","):
                raise self.peek_error("expected `,` or `]`")
            self.pos += 1
            if self.skip_ws() == ord("]"):
                raise self.peek_error("trailing comma")

    def map_values(self, check: Callable[[Any, int], None]) -> dict[str, Any]:
        """A map with string keys; ``check(value, start)`` sees each value as soon as it is read (typed reading;
        a repeated key keeps the last value, as a ``HashMap`` does)."""
        out: dict[str, Any] = {}
        for member in self.keys([]):
            start = self.pos
            value = self.value()
            check(value, start)
            out[member.key] = value
        return out

    def leave(self) -> None:
        """Past the closing bracket of a sequence or an object."""
        self.pos += 1
        self.depth -= 1

    def enter(self) -> None:
        self.depth += 1
        if self.depth >= RECURSION_LIMIT:
            raise self.peek_error("recursion limit exceeded")

    def members(self, out: list[Member] | None = None) -> list[Member]:
        """The members of the object at ``pos`` (every value read with ``value``), in order, duplicates kept.

        ``out`` receives them as they are read, so a caller still has the ones before a syntax error."""
        out = [] if out is None else out
        for member in self.keys(out):
            member.value = self.value()
            member.end = self.pos
        return out

    def keys(self, out: list[Member], on_key: Callable[[Member], None] | None = None) -> Any:
        """Walk the object at ``pos``. Each key is appended to ``out`` as a ``Member`` as soon as it is read, and
        handed to ``on_key`` (serde identifies a field before the colon, so an unknown key is reported even when
        the colon is missing); the member is then yielded with ``pos`` on its value, which the caller reads
        (setting ``value`` and ``end``). Syntax errors between members are raised here."""
        self.enter()
        self.pos += 1
        c = self.skip_ws()
        if c is None:
            raise self.eof("an object")
        if c == ord("}"):
            self.leave()
            return
        while True:
            if c != ord('"'):
                raise self.peek_error("key must be a string")
            key = self.string()
            c = self.skip_ws()
            member = Member(key, self.pos, None, self.pos, self.pos)
            out.append(member)
            if on_key is not None:
                on_key(member)
            if c is None:
                raise self.eof("an object")
            if c != ord(":"):
                raise self.peek_error("expected `:`")
            self.pos += 1
            self.skip_ws()
            member.start = member.end = self.pos
            yield member
            c = self.skip_ws()
            if c is None:
                raise self.eof("an object")
            if c == ord("}"):
                self.leave()
                return
            if c != ord(","):
                raise self.peek_error("expected `,` or `}`")
            self.pos += 1
            c = self.skip_ws()
            if c is None:
                raise self.eof("a value")
            if c == ord("}"):
                raise self.peek_error("trailing comma")

    def end(self) -> None:
        """After the top-level value: only whitespace may follow."""
        if self.skip_ws() is not None:
            raise self.peek_error("trailing characters")
