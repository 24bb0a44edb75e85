"""Nulls for optional parameters, read as "not given".

Models often send ``null`` for a parameter they mean to leave out. Before
validation, such a null is dropped wherever the schema does not require the
property and does not itself allow null, at any depth (nested objects with
their own ``required``, array items, local ``$ref``). A null for a required
property stays, and is refused by validation as before.
"""

from __future__ import annotations

from typing import Any

from ..nesting import MAX_DEPTH

#: Most ``$ref`` hops followed to find one schema (a loop stops here).
MAX_REF_HOPS = 32


def drop_optional_nulls(arguments: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``arguments`` without the nulls that mean "not given"."""
    cleaned = _clean(arguments, schema, schema, 0)
    return cleaned if isinstance(cleaned, dict) else arguments


def _clean(value: Any, schema: Any, root: dict[str, Any], depth: int) -> Any:
    if depth > MAX_DEPTH:
        return value
    if isinstance(value, dict):
        found = _branch(schema, root, "properties")
        return value if found is None else _clean_object(value, found, root, depth)
    if isinstance(value, list):
        found = _branch(schema, root, "items")
        items = found.get("items") if found is not None else None
        if isinstance(items, (dict, bool)):
            return [_clean(item, items, root, depth + 1) for item in value]
    return value


def _clean_object(value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any],
                  depth: int) -> dict[str, Any]:
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    required = schema.get("required")
    required = set(required) if isinstance(required, list) else set()
    out: dict[str, Any] = {}
    for key, item in value.items():
        sub = props.get(key)
        if sub is None:
            out[key] = item
        elif item is None and key not in required and not accepts_null(sub, root):
            continue
        else:
            out[key] = _clean(item, sub, root, depth + 1)
    return out


def _branch(schema: Any, root: dict[str, Any], keyword: str) -> dict[str, Any] | None:
    """The schema that says ``keyword`` for this value: itself, or its one
    ``anyOf``/``oneOf``/``allOf`` branch that does (as for ``Optional[Model]``)."""
    resolved = resolve(schema, root)
    if resolved is None or keyword in resolved:
        return resolved
    branches = [resolve(b, root) for key in ("anyOf", "oneOf", "allOf")
                for b in _list(resolved.get(key))]
    fitting = [b for b in branches if b is not None and keyword in b]
    return fitting[0] if len(fitting) == 1 else None


def accepts_null(schema: Any, root: dict[str, Any], depth: int = 0) -> bool:
    """True if ``schema`` lets null through (explicitly, or by saying nothing of type)."""
    if depth > MAX_DEPTH:
        return True
    resolved = resolve(schema, root)
    if resolved is None:
        return schema is not False
    kind = resolved.get("type")
    if kind is not None:
        return kind == "null" or (isinstance(kind, list) and "null" in kind)
    if "const" in resolved:
        return resolved["const"] is None
    if "enum" in resolved:
        return None in _list(resolved["enum"])
    if "anyOf" in resolved or "oneOf" in resolved:
        branches = _list(resolved.get("anyOf")) + _list(resolved.get("oneOf"))
        return any(accepts_null(b, root, depth + 1) for b in branches)
    if "allOf" in resolved:
        return all(accepts_null(b, root, depth + 1) for b in _list(resolved["allOf"]))
    return True


def resolve(schema: Any, root: dict[str, Any]) -> dict[str, Any] | None:
    """Follow local ``$ref`` pointers (``#/$defs/X``); None if it is not a dict schema."""
    for _ in range(MAX_REF_HOPS):
        if not isinstance(schema, dict):
            return None
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#"):
            return schema
        schema = _pointer(root, ref[1:])
    return None


def _pointer(root: dict[str, Any], pointer: str) -> Any:
    node: Any = root
    for part in [p for p in pointer.split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
