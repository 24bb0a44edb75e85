"""The ``Tool`` model and the ``@tool`` decorator.

A tool is a plain typed function. Its name comes from ``__name__``, its
description from the docstring's summary, its parameters from the type hints
(a pydantic model built over the signature; for a plain signature the schema
is written by ``signature.py`` and the model is built at the first call) with
each parameter's text taken from the docstring's ``Args:`` section. Built-in tools are declared with this
same decorator and go through the same registry as plugins.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, Literal, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ..errors import InvalidArguments, ToolError
from ..nesting import shape_problem
from .nulls import drop_optional_nulls
from .signature import simple_parameters

Policy = Literal["auto", "ask", "deny"]
NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(?:\(.*?\))?\s*:\s*(.*)$")


class Tool:
    """A function the model can call, with its JSON schema and guards."""

    def __init__(self, func: Callable[..., Any], *, name: str | None = None,
                 description: str | None = None, policy: Policy | None = None,
                 timeout: float | None = None, max_calls_per_minute: int | None = None,
                 parameters: dict[str, Any] | None = None, isolated: bool = False,
                 scope: Callable[[dict[str, Any]], str] | None = None,
                 side_effects: bool = False, untrusted_output: bool = False) -> None:
        self.func = func
        self.source = "builtin"
        self.name = name or func.__name__
        if not NAME_RE.match(self.name):
            raise ValueError(f"invalid tool name {self.name!r}: use 1-64 letters, digits, '_' or '-'")
        summary, arg_docs = parse_docstring(inspect.getdoc(func) or "")
        self.description = description if description is not None else summary
        if policy not in (None, "auto", "ask", "deny"):
            raise ValueError(f"tool {self.name}: policy must be 'auto', 'ask' or 'deny', not {policy!r}")
        self.policy = policy
        self.timeout = timeout
        self.max_calls_per_minute = max_calls_per_minute
        #: What "always" approves: a short string from the arguments (a host, a folder).
        self.scope = scope
        #: The tool changes things; it asks again once outside text is in the conversation.
        self.side_effects = side_effects
        #: Its results carry text from outside (a web page, a file) that may try to steer the model.
        self.untrusted_output = untrusted_output
        self.is_async = inspect.iscoroutinefunction(func)
        #: Run each call in a forked worker process, killed on cancel and on time-out.
        self.isolated = bool(isolated)
        #: Extra checks after the schema (raise InvalidArguments); run before approval.
        self.check: Callable[[dict[str, Any]], None] | None = None
        #: Extra rows for the approval panel, e.g. {"method": "GET", "host": ...}.
        self.preview: Callable[[dict[str, Any]], dict[str, str]] | None = None
        self._validator: Any = None
        self._model: type[BaseModel] | None = None
        self._arg_docs = arg_docs
        if parameters is not None:
            self._validator = schema_validator(self.name, parameters)
            self.parameters = parameters
        else:
            simple = simple_parameters(func, _hints(func, self.name), arg_docs, _reserved)
            if simple is not None:  # the model is built at the first call
                self.parameters = simple
            else:
                self._model = _args_model(func, self.name, arg_docs)
                self.parameters = clean_schema(self._model.model_json_schema())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    @property
    def args_model(self) -> type[BaseModel] | None:
        """The pydantic model of the arguments (None for a tool given ``parameters``);
        built on first use when the schema could be written without it."""
        if self._model is None and self._validator is None:
            self._model = _args_model(self.func, self.name, self._arg_docs)
        return self._model

    def __repr__(self) -> str:
        return f"<Tool {self.name} from {self.source}>"

    def schema(self, *, strict: bool = False) -> dict[str, Any]:
        """The function schema sent to the model (no nulls: no description, no key).

        With ``strict``, ``"strict": true`` is added when the schema meets the
        rules of strict mode (every property required, no extra properties).
        """
        function: dict[str, Any] = {"name": self.name}
        if self.description:
            function["description"] = self.description
        function["parameters"] = self.parameters
        if strict and allows_strict(self.parameters):
            function["strict"] = True
        return {"type": "function", "function": function}

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check arguments against the schema; return keyword arguments for the call.

        A null for a property the schema neither requires nor allows to be null
        means "not given" and is dropped first, at any depth.
        """
        arguments = drop_optional_nulls(arguments, self.parameters)
        if self._validator is not None:
            kwargs = self._validate_schema(arguments)
        else:
            assert self.args_model is not None  # set whenever there is no _validator
            try:
                parsed = self.args_model.model_validate(arguments)
            except ValidationError as exc:
                raise InvalidArguments(f"invalid arguments for {self.name}: "
                                       f"{format_validation(exc)}") from None
            kwargs = {field: getattr(parsed, field) for field in type(parsed).model_fields}
        if self.check is not None:
            self.check(kwargs)
        return kwargs

    def _validate_schema(self, arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            errors = sorted(self._validator.iter_errors(arguments), key=lambda e: list(e.path))
        except RecursionError:
            raise ToolError(f"the tool {self.name} cannot check its arguments: its parameters "
                            "schema refers to itself without end ($ref); this is a bug in the "
                            "plugin") from None
        if errors:
            parts = [f"{'.'.join(map(str, e.path)) or 'arguments'}: {e.message}" for e in errors]
            raise InvalidArguments(f"invalid arguments for {self.name}: {'; '.join(parts)}")
        return dict(arguments)


@overload
def tool(func: Callable[..., Any], *, name: str | None = None,
         description: str | None = None, policy: Policy | None = None,
         timeout: float | None = None, max_calls_per_minute: int | None = None,
         parameters: dict[str, Any] | None = None, isolated: bool = False,
         scope: Callable[[dict[str, Any]], str] | None = None, side_effects: bool = False,
         untrusted_output: bool = False) -> Tool: ...
@overload
def tool(func: None = None, *, name: str | None = None,
         description: str | None = None, policy: Policy | None = None,
         timeout: float | None = None, max_calls_per_minute: int | None = None,
         parameters: dict[str, Any] | None = None, isolated: bool = False,
         scope: Callable[[dict[str, Any]], str] | None = None, side_effects: bool = False,
         untrusted_output: bool = False) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(func: Callable[..., Any] | None = None, *, name: str | None = None,
         description: str | None = None, policy: Policy | None = None,
         timeout: float | None = None, max_calls_per_minute: int | None = None,
         parameters: dict[str, Any] | None = None, isolated: bool = False,
         scope: Callable[[dict[str, Any]], str] | None = None, side_effects: bool = False,
         untrusted_output: bool = False) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a typed function into a tool; use as ``@tool`` or ``@tool(name=...)``.

    Args:
        func: The function (when used bare, as ``@tool``).
        name: Tool name for the model; defaults to the function's name.
        description: Defaults to the docstring's first paragraph.
        policy: "auto", "ask" or "deny"; the config's ``[tools.policy]`` wins.
        timeout: Seconds the tool may run.
        max_calls_per_minute: A rate limit.
        parameters: A hand-written JSON schema instead of one built from the
            type hints; checked against the JSON Schema metaschema, and the
            arguments are validated with it and passed as keyword arguments.
        isolated: Run each call in its own forked worker process, which is
            killed when the user cancels the turn or the time limit passes.
            Costs a process start per call; the result travels back as text.
        scope: A function of the (validated) arguments returning a short string, such
            as a host or a folder; answering "always" then approves that scope only.
        side_effects: The tool changes things; once text from outside is in the
            conversation, its calls ask again even when "auto" or "always".
        untrusted_output: Its results bring text from outside (web pages, files).
    """
    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, description=description, policy=policy, timeout=timeout,
                    max_calls_per_minute=max_calls_per_minute, parameters=parameters,
                    isolated=isolated, scope=scope, side_effects=side_effects,
                    untrusted_output=untrusted_output)
    return wrap(func) if func is not None else wrap


def schema_validator(name: str, schema: Any) -> Any:
    """A jsonschema validator for a hand-written schema; ValueError if it is not valid.

    jsonschema is imported here, on first use, because most tools never need it.
    """
    import jsonschema

    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise ValueError(f"tool {name}: parameters must be a JSON schema of type 'object'")
    problem = shape_problem(schema)
    if problem is not None:
        raise ValueError(f"tool {name}: the parameters schema cannot be used ({problem})")
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(map(str, exc.path)) or "top level"
        raise ValueError(f"tool {name}: invalid JSON schema at {where}: {exc.message}") from None
    validator = cls(schema)
    try:
        validator.is_valid({})
    except RecursionError:
        raise ValueError(f"tool {name}: the parameters schema refers to itself without end "
                         "($ref); every $ref loop must pass through a property") from None
    return validator


def allows_strict(schema: Any) -> bool:
    """True if every object in ``schema`` closes its properties and requires them all."""
    if isinstance(schema, list):
        return all(allows_strict(item) for item in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False or set(schema.get("required", [])) != set(props):
            return False
    return all(allows_strict(v) for k, v in schema.items() if k not in ("enum", "const", "default"))


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its summary and ``Args:`` entries."""
    lines = doc.splitlines()
    summary: list[str] = []
    args: dict[str, str] = {}
    in_args, current = False, None
    for line in lines:
        if _ARGS_HEADER.match(line):
            in_args = True
            continue
        if in_args:
            match = _ARG_LINE.match(line)
            if match and (line.startswith(" ") or line.startswith("\t")) and _indent(line) <= 8:
                current = match.group(1).lstrip("*")
                args[current] = match.group(2).strip()
            elif line.strip() and current and _indent(line) > 4:
                args[current] += " " + line.strip()
            elif line.strip():
                in_args = False
        elif not args and (line.strip() or summary):
            summary.append(line)
    text = "\n".join(summary).strip()
    first_paragraph = text.split("\n\n")[0]
    return " ".join(first_paragraph.split()), args


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _hints(func: Callable[..., Any], name: str) -> dict[str, Any]:
    try:
        return get_type_hints(func, include_extras=True)
    except Exception as exc:  # an unresolvable annotation is a plugin bug; say which
        raise ValueError(f"tool {name}: cannot resolve its type hints ({exc})") from None


def _reserved(name: str) -> bool:
    """A parameter name pydantic treats specially (private, protected or a model attribute)."""
    return name.startswith(("_", "model_")) or hasattr(BaseModel, name)


def _args_model(func: Callable[..., Any], name: str, docs: dict[str, str]) -> type[BaseModel]:
    hints = _hints(func, name)
    fields: dict[str, Any] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ValueError(f"tool {name}: *args and **kwargs cannot be described to a model")
        annotation = hints.get(param.name, Any)
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, Field(default, description=docs.get(param.name)))
    config = ConfigDict(extra="forbid")
    return create_model(f"{name}_arguments", __config__=config, **fields)


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's titles and empty descriptions; keep everything else."""
    def strip(node: Any, parent_key: str = "") -> Any:
        if isinstance(node, dict):
            return {k: strip(v, k) for k, v in node.items()
                    if not (k == "title" and isinstance(v, str) and parent_key != "properties")}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node
    cleaned: dict[str, Any] = strip(schema)
    cleaned.setdefault("properties", {})
    return cleaned


def format_validation(exc: ValidationError) -> str:
    """Pydantic errors as one line a model can act on."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unexpected argument"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)
