"""Issue 14: ``src/renderers`` keeps no module-level mutable state. Every module's globals, and what tuples,
read-only mappings and the package's own frozen dataclasses (``Family``, ``Probe``) hold, are immutable; the
probe conversations are handed out as fresh copies."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Iterator
from types import MappingProxyType, ModuleType
from typing import Any

import pytest

import renderers
from renderers.families import FAMILIES
from renderers.families.registry import Family, Probe

_MUTABLE = (dict, list, set, bytearray)


def _modules() -> Iterator[ModuleType]:
    for info in pkgutil.walk_packages(renderers.__path__, "renderers."):
        try:
            yield importlib.import_module(info.name)
        except ImportError:  # a module behind an optional extra that is not installed
            continue


def _mutable_parts(value: Any, where: str, seen: set[int]) -> Iterator[str]:
    """Paths to the mutable containers reachable from ``value`` through immutable containers and the package's
    own dataclasses."""
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, _MUTABLE):
        yield f"{where}: {type(value).__name__}"
    elif isinstance(value, tuple | frozenset):
        for i, item in enumerate(value):
            yield from _mutable_parts(item, f"{where}[{i}]", seen)
    elif isinstance(value, MappingProxyType):
        for key, item in value.items():
            yield from _mutable_parts(item, f"{where}[{key!r}]", seen)
    elif (
        dataclasses.is_dataclass(value)
        and not isinstance(value, type)
        and type(value).__module__.startswith("renderers.")
    ):
        for f in dataclasses.fields(value):
            yield from _mutable_parts(getattr(value, f.name), f"{where}.{f.name}", seen)


def test_no_module_level_mutable_state() -> None:
    found = [
        part
        for module in _modules()
        for name, value in vars(module).items()
        if not name.startswith("__")
        for part in _mutable_parts(value, f"{module.__name__}.{name}", set())
    ]
    assert found == []


def test_the_scan_finds_a_mutable_table_inside_immutable_ones() -> None:
    table = (MappingProxyType({"a": ({"b": 1},)}),)
    assert list(_mutable_parts(table, "t", set())) == ["t[0]['a'][0]: dict"]


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_probe_conversations_are_read_only_and_copied_for_each_use(family: Family) -> None:
    for probe in family.probes:
        with pytest.raises(TypeError):
            probe.messages[0]["content"] = "changed"  # type: ignore[index]
        first = probe.conversation()
        first[0]["content"] = "changed"
        first.append({"role": "user", "content": "more"})
        assert probe.conversation() != first
        assert len(probe.conversation()) == len(probe.messages)


def test_probe_copies_are_plain_dicts_and_lists_equal_to_what_was_given() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "f"}}]},
    ]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"required": ["x"]}}}]
    probe = Probe(messages, tools=tools)
    messages[0]["content"] = "changed after"  # the probe kept its own copy
    assert probe.conversation() == [{"role": "user", "content": "Q"}, messages[1]]
    assert probe.tool_list() == tools
    assert type(probe.conversation()[1]["tool_calls"]) is list
    assert Probe([{"role": "user", "content": "Q"}]).tool_list() is None
