"""Answers that must match a JSON Schema (``--schema``), for ``run`` and ``batch``.

The schema is loaded and checked once, before any request. The provider asks
the server for an answer in that shape (``response_format`` / ``text.format``)
where the server accepts it; the answer is always validated here as well,
because many servers accept the field and ignore it. One repair turn quotes
the validation errors; an answer still invalid raises ``SchemaMismatch``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .conversation import Conversation
from .errors import SchemaMismatch, UsageError
from .events import TurnResult
from .nesting import shape_problem

#: Validation errors quoted in the repair turn and on stderr.
MAX_ERRORS = 5
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*)\n```\s*$", re.DOTALL)


@dataclass
class AnswerSchema:
    """A checked JSON Schema and its validator."""

    schema: dict[str, Any]
    validator: Any

    def problems(self, text: str) -> tuple[Any, list[str]]:
        """The answer parsed, and why it does not match (empty list: it matches)."""
        try:
            data = parse_answer(text)
        except ValueError as exc:
            return None, [str(exc)]
        return data, self.errors(data)

    def errors(self, data: Any) -> list[str]:
        """Validation errors for ``data``, at most ``MAX_ERRORS``, each with its place."""
        problem = shape_problem(data)
        if problem is not None:
            return [f"the answer cannot be checked: it {problem}"]
        try:
            found = sorted(self.validator.iter_errors(data), key=lambda e: list(map(str, e.path)))
        except RecursionError:
            return ["the answer cannot be checked: the schema refers to itself without end"]
        except Exception as exc:  # a reference that cannot be resolved, for one
            return [f"the answer cannot be checked against the schema ({type(exc).__name__}: "
                    f"{str(exc)[:200]})"]
        return [_describe(error) for error in found[:MAX_ERRORS]]


def _describe(error: Any) -> str:
    where = "/".join(map(str, error.absolute_path))
    text = error.message if len(error.message) <= 300 else error.message[:300] + "…"
    return f"at /{where}: {text}" if where else f"at the top level: {text}"


def parse_answer(text: str) -> Any:
    """The JSON in an answer; a single ```json fence around it is allowed.

    Raises:
        ValueError: the answer is not JSON (the message says where it fails).
    """
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if not body:
        raise ValueError("the answer is empty, not JSON")
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the answer is not valid JSON ({exc.msg} at line {exc.lineno} "
                         f"column {exc.colno})") from None
    except RecursionError:
        raise ValueError("the answer is JSON nested too deeply to read") from None
    except ValueError as exc:  # e.g. an integer too long to convert
        raise ValueError(f"the answer cannot be read as JSON ({exc})") from None


def load_schema(value: str) -> AnswerSchema:
    """``--schema``: inline JSON (starting with ``{``) or the path of a JSON file.

    Raises:
        UsageError: the file cannot be read, is not JSON, or is not a valid schema.
    """
    text, origin = _schema_text(value)
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--schema: {origin} is not valid JSON ({exc.msg} at line "
                         f"{exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise UsageError(f"--schema: {origin} is nested too deeply to read") from None
    except ValueError as exc:
        raise UsageError(f"--schema: {origin} cannot be read as JSON ({exc})") from None
    return AnswerSchema(schema, _validator(schema, origin))


def _schema_text(value: str) -> tuple[str, str]:
    if value.lstrip().startswith("{"):
        return value, "the inline schema"
    path = Path(value).expanduser()
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"--schema: cannot read {path} ({reason}); pass a JSON Schema file "
                         "or inline JSON such as '{\"type\": \"object\"}'") from None


def _validator(schema: Any, origin: str) -> Any:
    import jsonschema

    if not isinstance(schema, dict):
        raise UsageError(f"--schema: {origin} must be a JSON object (a JSON Schema)")
    problem = shape_problem(schema)
    if problem is not None:
        raise UsageError(f"--schema: {origin} cannot be used: it {problem}")
    outside = _outside_ref(schema)
    if outside is not None:
        raise UsageError(f"--schema: {origin} refers to {outside!r}; only references inside "
                         "the schema itself (\"#/...\") can be used")
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
        validator = cls(schema)
        validator.is_valid({})
    except jsonschema.SchemaError as exc:
        where = "/".join(map(str, exc.path)) or "the top level"
        raise UsageError(f"--schema: {origin} is not a valid JSON Schema: at {where}: "
                         f"{exc.message}") from None
    except RecursionError:
        raise UsageError(f"--schema: {origin} refers to itself without end ($ref)") from None
    except jsonschema.exceptions.RefResolutionError as exc:  # pragma: no cover - old jsonschema
        raise UsageError(f"--schema: {origin}: {exc}") from None
    return validator


def _outside_ref(schema: Any) -> str | None:
    """The first ``$ref`` that points outside the schema (a file or URL), or None."""
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                return ref
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def repair_prompt(errors: list[str]) -> str:
    """The user message of the repair turn, quoting what was wrong."""
    listed = "\n".join(f"- {e}" for e in errors)
    return ("Your answer does not match the required JSON Schema:\n"
            f"{listed}\n"
            "Reply again with only the corrected JSON, no other text.")


def answer(agent: Any, conv: Conversation, query: str | None, schema: AnswerSchema, *,
           tool_choice: Any = None) -> tuple[TurnResult, Any]:
    """Run the turn, then check the answer; one repair turn if it does not match.

    Returns:
        The turn (both turns' calls, steps and usage when repaired) and the parsed data.

    Raises:
        SchemaMismatch: still invalid after the repair turn; ``.result`` holds the turn.
    """
    result = agent.run_turn(conv, query, tool_choice=tool_choice)
    data, errors = schema.problems(result.answer)
    if not errors:
        return result, data
    repair = agent.run_turn(conv, repair_prompt(errors))
    merged = _merge(result, repair)
    data, errors = schema.problems(repair.answer)
    if not errors:
        return merged, data
    error = SchemaMismatch("the answer does not match --schema, even after one repair turn: "
                           + "; ".join(errors))
    error.result, error.errors = merged, errors
    raise error


def _merge(first: TurnResult, second: TurnResult) -> TurnResult:
    first.usage.add(second.usage)
    return TurnResult(answer=second.answer, model=second.model or first.model,
                      steps=first.steps + second.steps,
                      tool_calls=first.tool_calls + second.tool_calls, usage=first.usage,
                      finish_reason=second.finish_reason)


def request_format(schema: AnswerSchema) -> dict[str, Any]:
    """The ``json_schema`` format object both wire protocols carry."""
    return {"name": "answer", "schema": schema.schema}

