"""The @tool decorator: schemas from type hints and docstrings, validation."""

from __future__ import annotations

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
