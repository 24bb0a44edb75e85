"""The @tool decorator: schemas from type hints and docstrings, validation."""

from __future__ import annotations

import json
import warnings
from typing import Literal

import pytest
from pydantic import BaseModel

from agentcli import tool
from agentcli.errors import InvalidArguments
from agentcli.tools.base import Tool


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius", days: int | None = None) -> dict:
    """Current weather for a city.

    Longer text the model need not see.

    Args:
        city: City name, e.g. "Beijing".
        unit: Temperature unit.
        days: How many days
            of forecast.
    """
    return {"city": city}


def test_schema_from_hints_and_docstring():
    schema = get_weather.schema()
    assert schema["type"] == "function"
    fn = schema["function"]
    assert fn["name"] == "get_weather"
    assert fn["description"] == "Current weather for a city."
    props = fn["parameters"]["properties"]
    assert props["city"] == {"type": "string", "description": 'City name, e.g. "Beijing".'}
    assert props["unit"]["enum"] == ["celsius", "fahrenheit"] and props["unit"]["default"] == "celsius"
    assert props["days"]["description"] == "How many days of forecast."
    assert fn["parameters"]["required"] == ["city"]
    assert "title" not in str(fn["parameters"]).lower().replace("'title'", "")


def test_validation_messages_are_for_the_model():
    with pytest.raises(InvalidArguments, match="unit: Input should be 'celsius' or 'fahrenheit'"):
        get_weather.validate({"city": "Paris", "unit": "kelvin"})
    with pytest.raises(InvalidArguments, match="city: Field required"):
        get_weather.validate({})
    assert get_weather.validate({"city": "Paris"}) == {"city": "Paris", "unit": "celsius", "days": None}


def test_decorated_function_still_callable_and_options():
    @tool(name="renamed", policy="auto", timeout=2)
    def f() -> str:
        return "x"
    assert isinstance(f, Tool) and f() == "x"
    assert (f.name, f.policy, f.timeout) == ("renamed", "auto", 2)
    assert "description" not in f.schema()["function"]
    assert f.schema()["function"]["parameters"] == {"properties": {}, "type": "object",
                                                     "additionalProperties": False}


class Point(BaseModel):
    x: int
    y: int


def test_pydantic_model_parameter():
    @tool
    def plot(point: Point) -> str:
        """Plot."""
        return f"{point.x},{point.y}"
    kwargs = plot.validate({"point": {"x": 1, "y": 2}})
    assert plot(**kwargs) == "1,2"


@pytest.mark.parametrize("name", ["has space", "", "x" * 65, "dot.name"])
def test_invalid_names_are_refused(name):
    with pytest.raises(ValueError, match="invalid tool name"):
        tool(name=name)(lambda: None)


# The schema of a plain signature is written without pydantic (tools/signature.py); it must
# be the one pydantic gives, and the model that validates the arguments is built on the
# first call only.

def _signatures():
    def text(city: str, days: int = 1) -> str: ...
    def numbers(a: int, b: float = 2.5, c: float = 3, flag: bool = False) -> str: ...
    def choices(unit: Literal["c", "f"] = "c", one: Literal["only"] = "only",
                level: Literal[1, 2, 3] = 2) -> str: ...
    def optional(note: str | None = None, count: int | None = 3,
                 tags: list[str] | None = None, *, sizes: list[int] = []) -> str: ...  # noqa: B006
    def nested(rows: list[list[float]], maybe: float | None) -> str: ...
    def nothing() -> str: ...
    return [text, numbers, choices, optional, nested, nothing]


@pytest.mark.parametrize("func", _signatures(), ids=lambda f: f.__name__)
def test_a_plain_signature_gets_pydantics_schema_without_a_model(func):
    from agentcli.tools.base import _args_model, clean_schema

    made = tool(func)
    assert made._model is None  # nothing built yet
    docs = {"city": "City name.", "a": "The first."}
    func.__doc__ = "A tool.\n\nArgs:\n    city: City name.\n    a: The first.\n"
    made = tool(func)
    expected = clean_schema(_args_model(func, func.__name__, docs).model_json_schema())
    assert made.parameters == expected
    assert json.dumps(made.parameters) == json.dumps(expected)  # the same order, too


@pytest.mark.parametrize("annotation", ["dict", "tuple[int, int]", "int | str", "Any",
                                        "list[dict]", "Literal[1, 'a']"])
def test_other_signatures_still_get_their_model_at_once(annotation):
    namespace: dict = {}
    exec(f"from typing import Any, Literal\ndef odd(x: {annotation}) -> str:\n    return ''\n",
         namespace)
    made = tool(namespace["odd"])
    assert made._model is not None and made.parameters["properties"]["x"] is not None


def test_the_model_is_built_at_the_first_call_and_validates_as_before():
    @tool
    def add(a: int, b: int = 1) -> int:
        """Add."""
        return a + b

    assert add._model is None
    assert add.validate({"a": 2}) == {"a": 2, "b": 1}
    assert add._model is not None
    with pytest.raises(InvalidArguments, match="b: Input should be a valid integer"):
        add.validate({"a": 1, "b": "x"})
    with pytest.raises(InvalidArguments, match="c: unexpected argument"):
        add.validate({"a": 1, "c": 2})


@pytest.mark.parametrize("name", ["_hidden", "model_name", "schema", "json"])
def test_names_pydantic_treats_specially_take_the_model_path(name):
    namespace: dict = {}
    exec(f"def odd({name}: str = 'x') -> str:\n    return ''\n", namespace)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydantic warns of names that shadow its own
            made = tool(namespace["odd"])
    except Exception:  # pydantic refuses some such names: reported when the plugin loads
        return
    assert made._model is not None
