"""The mock Dynamo's serde_json string reader (``mockservers.dynamo.serde.Scanner.string``) against independent facts.

The exact texts and columns of its refusals come from the real 1.6.1 frontend (the recordings ``dyn_serde_escape_*``
and the ``escape`` group of ``tests/real/test_dynamo_validation_differential.py``); here, what holds for any input:
every string JSON can spell without a lone surrogate reads back as Python's own decoder reads it, whichever way its
characters are escaped, and a lone surrogate is always refused (serde_json reads into UTF-8 strings, which cannot
hold one), with one of serde's three surrogate or end-of-input errors.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockservers.dynamo.serde import Scanner, SerdeError

# Any character but a surrogate: astral ones are escaped as surrogate pairs by ``ensure_ascii``.
texts = st.text(st.characters(codec="utf-8"), max_size=40)
SURROGATE_ERRORS = (
    "lone leading surrogate in hex escape",
    "unexpected end of hex escape",
    "EOF while parsing a string",
)


def _read(raw: bytes) -> str:
    scanner = Scanner(raw)
    out = scanner.string()
    assert scanner.pos == len(raw), "the reader stops right after the closing quote"
    return out


@given(text=texts, ascii_only=st.booleans())
def test_a_string_reads_back_as_python_reads_it(text: str, ascii_only: bool) -> None:
    raw = json.dumps(text, ensure_ascii=ascii_only).encode()
    assert _read(raw) == json.loads(raw) == text


@given(text=texts, upper=st.booleans())
def test_every_character_as_an_escape_reads_back(text: str, upper: bool) -> None:
    escaped = json.dumps(text, ensure_ascii=True)[1:-1]
    # Escape the characters json.dumps leaves as they are too, with upper- or lower-case hex digits.
    spelled = "".join(
        part if part.startswith("\\") else "".join(f"\\u{ord(c):04X}" if upper else f"\\u{ord(c):04x}" for c in part)
        for part in _split_escapes(escaped)
    )
    assert _read(f'"{spelled}"'.encode()) == text


@given(
    before=texts,
    unit=st.integers(0xD800, 0xDFFF),
    after=st.sampled_from(["", "x", "\\n", "\\u0041", "\\uD800", '\\"', "\\\\"]),
    closed=st.booleans(),
)
def test_a_lone_surrogate_is_refused(before: str, unit: int, after: str, closed: bool) -> None:
    prefix = ('"' + json.dumps(before)[1:-1]).encode()
    raw = prefix + (f"\\u{unit:04x}" + after + ('"' if closed else "")).encode()
    with pytest.raises(SerdeError) as caught:
        _read(raw)
    assert caught.value.detail in SURROGATE_ERRORS
    assert len(prefix) + 6 <= caught.value.pos <= len(raw)  # after the escape's four digits, within the body


def _split_escapes(text: str) -> list[str]:
    """``text`` (the inside of an ASCII JSON string) as escapes and runs of plain characters."""
    parts: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\":
            size = 6 if text[i + 1] == "u" else 2
            parts.append(text[i : i + size])
            i += size
        else:
            j = text.find("\\", i)
            j = len(text) if j < 0 else j
            parts.append(text[i:j])
            i = j
    return parts
