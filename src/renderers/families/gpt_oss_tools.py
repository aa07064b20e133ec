"""gpt-oss's tool namespace: the TypeScript-like text its chat template writes for ``tools=`` in the developer message.

A mirror of the upstream template's ``render_tool_namespace`` and ``render_typescript_type`` macros, quirks
included, because the model was trained on exactly this text:

- ``oneOf`` variants are joined with ``" | \\n"``; a variant's description follows its type as ``// text`` with
  no space, and its default as 20 spaces then ``// default: <json>``. The template's check for object variants
  never takes effect (a Jinja ``set`` inside a loop does not leak out), so object unions are spelled out too.
- An object type with properties writes each property's type after ``": \\n"`` and 16 spaces.
- An array whose item type renders longer than 50 characters (or as ``object | object``) becomes ``any[]``.
- A parameter's default is written as ``, // default: <json>``; with an ``enum`` the default is written raw
  (it must be a string), with ``oneOf`` as ``// default: <raw>`` without the comma.

Where the template would fail (a tool without a string description, a non-string description, a non-string
default beside ``enum``/``oneOf``), :func:`render_tool_namespace` raises a ``ValueError`` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from renderers.families.pieces import tojson
from renderers.types import ToolSpecLike, normalize_tool_spec

__all__ = ["render_tool_namespace"]


def _text(value: Any) -> str:
    """What Jinja prints for a value (``str()``: ``None`` -> ``"None"``, ``True`` -> ``"True"``)."""
    return value if isinstance(value, str) else str(value)


def _concat(where: str, value: Any) -> str:
    """A value the template joins with ``+`` to a string: it must be a string (Jinja raises a TypeError otherwise)."""
    if not isinstance(value, str):
        raise ValueError(f"{where}: gpt-oss's chat template needs a string here, got {type(value).__name__} {value!r}")
    return value


def _spec(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a JSON schema object, got {type(value).__name__} {value!r}")
    return value


def _ts_type(where: str, spec: Mapping[str, Any]) -> str:
    kind = spec.get("type")
    if kind == "array":
        items = spec.get("items")
        if items:
            item_spec = _spec(f"{where}.items", items)
            item_kind = item_spec.get("type")
            if item_kind == "string":
                out = "string[]"
            elif item_kind in ("number", "integer"):
                out = "number[]"
            elif item_kind == "boolean":
                out = "boolean[]"
            else:
                inner = _ts_type(f"{where}.items", item_spec)
                out = "any[]" if inner == "object | object" or len(inner) > 50 else inner + "[]"
        else:
            out = "any[]"
        return out + " | null" if spec.get("nullable") else out
    if isinstance(kind, list | tuple) and kind:
        return " | ".join(_text(k) for k in kind) if len(kind) > 1 else _text(kind[0])
    one_of = spec.get("oneOf")
    if one_of:
        if not isinstance(one_of, list | tuple):
            raise ValueError(f"{where}.oneOf: expected a list of schemas, got {type(one_of).__name__}")
        parts: list[str] = []
        for v, raw in enumerate(one_of):
            here = f"{where}.oneOf[{v}]"
            variant = _spec(here, raw)
            text = _ts_type(here, variant)
            if variant.get("description"):
                text += "// " + _concat(f"{here}.description", variant["description"])
            if "default" in variant:
                text += " " * 20 + "// default: " + tojson(variant["default"])
            parts.append(text)
        return " | \n".join(parts)
    if kind == "string":
        enum = spec.get("enum")
        if enum:
            return '"' + '" | "'.join(_text(e) for e in enum) + '"'
        return "string | null" if spec.get("nullable") else "string"
    if kind in ("number", "integer"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "object":
        props = spec.get("properties")
        if not props:
            return "object"
        required = spec.get("required") or []
        fields: list[str] = []
        for name, raw in _spec(f"{where}.properties", props).items():
            here = f"{where}.properties.{name}"
            optional = "" if name in required else "?"
            fields.append(f"{name}{optional}: \n" + " " * 16 + _ts_type(here, _spec(here, raw)))
        return "{\n" + ", ".join(fields) + "}"
    return "any"


def _tool_text(where: str, tool: Mapping[str, Any]) -> str:
    out = "// " + _concat(f"{where}.description", tool.get("description")) + "\n"
    out += f"type {tool['name']} = "
    params = tool.get("parameters")
    props = _spec(f"{where}.parameters", params).get("properties") if params else None
    if not props:
        return out + "() => any;\n\n"
    assert params is not None
    required = params.get("required") or []
    out += "(_: {\n"
    for name, raw in _spec(f"{where}.parameters.properties", props).items():
        here = f"{where}.parameters.properties.{name}"
        spec = _spec(here, raw)
        if spec.get("description"):
            out += "// " + _concat(f"{here}.description", spec["description"]) + "\n"
        out += f"{name}{'' if name in required else '?'}: {_ts_type(here, spec)}"
        if "default" in spec:
            if spec.get("enum"):
                out += ", // default: " + _concat(f"{here}.default", spec["default"])
            elif spec.get("oneOf"):
                out += "// default: " + _concat(f"{here}.default", spec["default"])
            else:
                out += ", // default: " + tojson(spec["default"])
        out += ",\n"
    return out + "}) => any;\n\n"


def render_tool_namespace(tools: Sequence[ToolSpecLike]) -> str:
    """The ``## functions`` namespace the template writes after ``# Tools\\n\\n`` in the developer message."""
    body = "".join(_tool_text(f"tools[{t}]", normalize_tool_spec(tool, t)) for t, tool in enumerate(tools))
    return "## functions\n\nnamespace functions {\n\n" + body + "} // namespace functions"
