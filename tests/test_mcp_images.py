"""An MCP tool's image reaches the model as an ``input_image`` on the Responses API,
and stays one summary line on Chat Completions (whose tool messages are text only)."""

from __future__ import annotations

import base64

from mcp_fixtures import mcp_http, write_config  # noqa: F401  (fixture)
from openai_server import Call, raw_sse, text, tool_calls
from test_responses import call_stream, text_stream

from agentcli.providers.responses import to_input

SUMMARY = "the chart\n[image: image/png, 12,345 bytes]"


def test_an_mcp_image_is_an_input_image_on_the_responses_api(cli, home, server, run_args,
                                                             mcp_http, tmp_path):
    write_config(home, f'[mcp.servers.media]\nurl = "{mcp_http["media"]}"\n')
    responses = tmp_path / "responses.toml"
    responses.write_text('api = "responses"\n')
    server.enqueue(raw_sse(call_stream("media__snapshot", "{}", call_id="call_img")),
                   raw_sse(text_stream("a chart")))
    result = cli("run", *run_args, "--config", str(responses), "-y", "what is it?")
    assert (result.code, result.stdout) == (0, "a chart\n"), result.stderr
    sent = server.requests[1].body["input"]
    output = sent.index({"type": "function_call_output", "call_id": "call_img",
                         "output": SUMMARY})
    image_message = sent[output + 1]
    assert image_message["role"] == "user"
    label, image = image_message["content"]
    assert label == {"type": "input_text",
                     "text": "The image returned by the tool call call_img:"}
    assert image["type"] == "input_image"
    prefix = "data:image/png;base64,"
    assert image["image_url"].startswith(prefix)
    png = base64.b64decode(image["image_url"][len(prefix):])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) == 12_345


def test_chat_completions_gets_the_summary_line_only(cli, home, server, run_args, mcp_http):
    write_config(home, f'[mcp.servers.media]\nurl = "{mcp_http["media"]}"\n')
    server.enqueue(tool_calls(Call("media__snapshot", {}, id="img")), text("a chart"))
    assert cli("run", *run_args, "-y", "what is it?").code == 0
    messages = server.requests[1].body["messages"]
    assert messages[-1] == {"role": "tool", "tool_call_id": "img", "content": SUMMARY}
    assert "base64" not in str(server.requests[1].body)


def test_images_follow_every_output_of_their_reply():
    png = {"mime_type": "image/png", "data": "iVBORw0KGgo="}
    messages = [
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "m__shot", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "calc", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "[image]", "images": [png, png]},
        {"role": "tool", "tool_call_id": "b", "content": "2"},
        {"role": "assistant", "content": "done"},
    ]
    items = to_input(messages)
    kinds = [item.get("type") or item["role"] for item in items]
    assert kinds == ["user", "function_call", "function_call", "function_call_output",
                     "function_call_output", "user", "assistant"]
    parts = items[5]["content"]
    assert parts[0]["text"] == "The 2 images returned by the tool call a:"
    assert [p["image_url"] for p in parts[1:]] == ["data:image/png;base64,iVBORw0KGgo="] * 2
