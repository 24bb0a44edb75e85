"""MCP results as the model's text, from the SDK's own result objects."""

from __future__ import annotations

import pytest
from mcp.types import CallToolResult, TextContent

from agentcli.errors import AgentCLIError
from agentcli.mcp.results import result_text


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_structured_content_nested_without_end_is_one_clear_error():
    text = "[" * 100_000 + "]" * 100_000
    result = CallToolResult(content=[TextContent(type="text", text=text)],
                            structured_content=nested(5_000))
    with pytest.raises(AgentCLIError, match="could not be converted to text"):
        result_text(result)


def test_structured_content_that_repeats_the_text_is_sent_once():
    same = CallToolResult(content=[TextContent(type="text", text='{"n": 1}')],
                          structured_content={"n": 1})
    wrapped = CallToolResult(content=[TextContent(type="text", text="hello")],
                             structured_content={"result": "hello"})
    other = CallToolResult(content=[TextContent(type="text", text="see data")],
                           structured_content={"n": 2})
    assert result_text(same) == '{"n": 1}'
    assert result_text(wrapped) == "hello"
    assert result_text(other) == 'see data\n{"n": 2}'
