"""The JSON schema of a plain signature, written without building a pydantic model.

``@tool`` needs every tool's parameters schema when the tool is made (to list
it, and to send it with the first request), but the pydantic model that
validates its arguments only once the tool is called. Building the model and
asking it for the schema cost about 1.7 ms a tool, which 200 plugin files
pay at every start. For the signatures tools almost always have (text,
numbers, booleans, a fixed set of choices, lists of these, each optional)
the schema is written here exactly as pydantic writes it, and the model is
built on the first call. Anything else returns None, and the model is built
at once, as before (so a signature pydantic refuses is still reported when
the plugin loads). tests/test_tool_base.py compares both on many signatures.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_DEFAULTS = (str, int, float, bool, type(None))


def simple_parameters(func: Callable[..., Any], hints: dict[str, Any],
                      docs: dict[str, str], reserved: Callable[[str], bool]) -> dict[str, Any] | None:
    """The parameters schema of ``func`` as pydantic gives it (titles left out), or None
    when the signature is not one written here. ``reserved(name)``: a parameter name
    pydantic treats specially (such a signature is left to pydantic)."""
    properties: dict[str, Any] = {}
    required = []
    for param in inspect.signature(func).parameters.values():
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            return None
        if reserved(param.name):
            return None
        schema = _schema(hints.get(param.name, Any))
        if schema is None:
            return None
        if param.default is param.empty:
            required.append(param.name)
        elif _plain_default(param.default):
            default = param.default
            schema["default"] = list(default) if type(default) is list else default
        else:
            return None
        if docs.get(param.name):
            schema["description"] = docs[param.name]
        properties[param.name] = dict(sorted(schema.items()))
    out: dict[str, Any] = {"additionalProperties": False, "properties": properties}
    if required:
        out["required"] = required
    out["type"] = "object"
    return out


def _plain_default(value: Any) -> bool:
    """A default pydantic writes as is: None, text, a finite number, a boolean, or a
    list of these."""
    if type(value) is list:
        return all(type(item) in _DEFAULTS and _plain_default(item) for item in value)
    if type(value) is float:
        return math.isfinite(value)
    return type(value) in _DEFAULTS


def _schema(hint: Any) -> dict[str, Any] | None:
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            return None
        inner = _schema(rest[0])
        return None if inner is None else {"anyOf": [inner, {"type": "null"}]}
    if origin is list and len(args) == 1:
        items = _schema(args[0])
        return None if items is None else {"items": items, "type": "array"}
    if origin is Literal and args:
        kinds = {type(arg) for arg in args}
        if len(kinds) != 1 or kinds.pop() not in (str, int):
            return None
        kind = _SCALARS[type(args[0])]
        if len(args) == 1:
            return {"const": args[0], "type": kind}
        return {"enum": list(args), "type": kind}
    return None
