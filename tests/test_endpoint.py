"""Finding a server and a model when the configuration leaves them open."""

from __future__ import annotations

import pytest
from conftest import free_port

from agentcli.config import Settings
from agentcli.endpoint import discover, resolve
from agentcli.errors import ConfigError


def test_discovery_uses_the_first_server_that_answers(server):
    server.models = ["llama-3", "other"]
    notes: list[str] = []
    settings = resolve(Settings(), None, notes.append, ports=[free_port(), server.port])
    assert settings.base_url == server.base_url
    assert settings.model == "llama-3"
    assert notes == [f"using the local server at {server.base_url} (model llama-3)"]


def test_no_key_and_no_server_explains_what_to_do():
    with pytest.raises(ConfigError) as info:
        resolve(Settings(), None, print, ports=[free_port()])
    text = str(info.value)
    assert "OPENAI_API_KEY" in text and "--base-url" in text


def test_base_url_without_model_asks_the_server(server):
    server.models = ["served-model"]
    settings = resolve(Settings(base_url=server.base_url), None, print)
    assert settings.model == "served-model"


def test_openai_with_a_key_gets_a_default_model():
    assert resolve(Settings(), "sk-x", print).model == "gpt-4o-mini"


def test_cli_without_any_server_exits_2(cli):
    if discover() is not None:
        pytest.skip("a local model server is running on one of the usual ports")
    result = cli("run", "hello")
    assert result.code == 2
    assert "no model server configured" in result.stderr and "Traceback" not in result.stderr


def test_cli_uses_a_discovered_server(cli, server, monkeypatch):
    # a --base-url without -m: the model comes from /v1/models
    from openai_server import text
    server.models = ["only-model"]
    server.enqueue(text("hi"))
    result = cli("run", "--base-url", server.base_url, "x")
    assert result.code == 0, result.stderr
    assert server.requests[0].body["model"] == "only-model"
