"""The context length a server reports for a model, wherever it keeps it.

No two servers say it the same way: vLLM puts ``max_model_len`` in each
``/v1/models`` entry and OpenRouter ``context_length``; LM Studio gives
``loaded_context_length`` at ``/api/v0/models/ID``; llama.cpp the running
``n_ctx`` at ``/props`` (and the training length as ``meta.n_ctx_train`` in
``/v1/models``); Ollama describes a model at ``POST /api/show``. Each look is
one small request with a short timeout; a server that answers none of them
simply reports nothing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx2

#: Fields of a ``/v1/models`` entry that hold the context length the server runs with.
LISTING_KEYS = ("max_model_len", "context_length", "loaded_context_length", "context_window",
                "max_context_length")


@dataclass(frozen=True)
class ContextLength:
    """``tokens`` as ``source`` says; ``note`` when that is the model's length, not
    necessarily what the server runs with."""

    tokens: int
    source: str
    note: str = ""


def _positive(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def from_listing(entry: dict[str, Any]) -> ContextLength | None:
    """The running context length in a ``/v1/models`` entry, if it names one."""
    for key in LISTING_KEYS:
        tokens = _positive(entry.get(key))
        if tokens:
            return ContextLength(tokens, f"/v1/models {key}")
    meta = entry.get("meta")
    tokens = _positive(meta.get("n_ctx")) if isinstance(meta, dict) else None
    return ContextLength(tokens, "/v1/models meta.n_ctx") if tokens else None


def trained_length(entry: dict[str, Any]) -> ContextLength | None:
    """llama.cpp's ``meta.n_ctx_train``: what the model was trained with, not what runs."""
    meta = entry.get("meta")
    tokens = _positive(meta.get("n_ctx_train")) if isinstance(meta, dict) else None
    if not tokens:
        return None
    return ContextLength(tokens, "/v1/models meta.n_ctx_train",
                         "the training length; the server may run with less")


def server_root(base_url: str) -> str:
    """``http://host:8080/v1`` -> ``http://host:8080`` (where /props and /api/show live)."""
    return re.sub(r"/v1/?$", "", base_url.rstrip("/"))


def from_server(client: httpx2.Client, base_url: str, api_key: str | None,
                model: str) -> ContextLength | None:
    """llama.cpp's ``/props``, then Ollama's ``/api/show``; None when neither says."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    root = server_root(base_url)
    props = _json(client, "GET", root + "/props", headers)
    found = _llama_props(props) if props is not None else None
    if found:
        return found
    studio = _json(client, "GET", f"{root}/api/v0/models/{quote(model, safe='')}", headers)
    found = from_listing(studio) if studio is not None else None
    if found:
        return ContextLength(found.tokens, found.source.replace("/v1/models", "LM Studio "
                                                                "/api/v0/models"))
    shown = _json(client, "POST", root + "/api/show", headers, {"model": model})
    return _ollama_show(shown) if shown is not None else None


def _json(client: httpx2.Client, method: str, url: str, headers: dict[str, str],
          body: dict[str, Any] | None = None) -> dict[str, Any] | None:
    try:
        response = client.request(method, url, json=body, headers=headers)
        if response.status_code != 200:
            return None
        data = response.json()
    except (httpx2.HTTPError, httpx2.InvalidURL, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _llama_props(props: dict[str, Any]) -> ContextLength | None:
    settings = props.get("default_generation_settings")
    tokens = _positive(settings.get("n_ctx")) if isinstance(settings, dict) else None
    tokens = tokens or _positive(props.get("n_ctx"))
    return ContextLength(tokens, "llama.cpp /props n_ctx") if tokens else None


def _ollama_show(shown: dict[str, Any]) -> ContextLength | None:
    params = shown.get("parameters")
    found = re.search(r"(?m)^\s*num_ctx\s+(\d+)", params) if isinstance(params, str) else None
    if found and int(found.group(1)) > 0:
        return ContextLength(int(found.group(1)), "Ollama /api/show num_ctx")
    info = shown.get("model_info")
    if not isinstance(info, dict):
        return None
    for key, value in info.items():
        tokens = _positive(value)
        if key.endswith(".context_length") and tokens:
            return ContextLength(tokens, f"Ollama /api/show {key}",
                                 "the model's length; Ollama runs with its own num_ctx "
                                 "(OLLAMA_CONTEXT_LENGTH), often less")
    return None
