"""Choosing the server and model when the configuration leaves them open.

With no base URL and no API key, agentcli looks for a local OpenAI-compatible
server on the usual ports and uses the first that answers ``GET /v1/models``,
with its first model. With a base URL but no model, it asks that server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from .config import Settings
from .errors import ConfigError, ModelConnectionError, ModelError

#: Ollama, llama.cpp's llama-server, LM Studio, vLLM.
LOCAL_PORTS = (11434, 8080, 1234, 8000)
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


def list_models(base_url: str, api_key: str | None = None, *, timeout: float = 2.0) -> list[str]:
    """Model ids from ``GET {base_url}/models``.

    Raises ModelConnectionError when nothing answers there, and ModelError when
    the server answers but gives no list.
    """
    import httpx2  # only when a server is asked: chat's prompt does not wait for it

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx2.Client(timeout=timeout, trust_env=False) as client:
            response = client.get(base_url.rstrip("/") + "/models", headers=headers)
            response.raise_for_status()
            data = response.json().get("data") or []
    except (httpx2.TransportError, httpx2.InvalidURL) as exc:
        raise ModelConnectionError(
            f"cannot reach the model server at {base_url} ({type(exc).__name__}): check that "
            "it is running and that the URL and port are right") from None
    except (httpx2.HTTPError, ValueError, AttributeError) as exc:
        raise ModelError(f"cannot list models at {base_url}: {type(exc).__name__}") from None
    return [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]


def discover(ports: Sequence[int] = LOCAL_PORTS, host: str = "127.0.0.1",
             timeout: float = 0.3) -> tuple[str, list[str]] | None:
    """The first local server that lists its models, as (base_url, models)."""
    for port in ports:
        base_url = f"http://{host}:{port}/v1"
        try:
            return base_url, list_models(base_url, timeout=timeout)
        except ModelError:
            continue
    return None


def resolve(settings: Settings, api_key: str | None, notice: Callable[[str], None],
            ports: Sequence[int] = LOCAL_PORTS) -> Settings:
    """Fill in ``base_url`` and ``model`` when they are missing; explain when impossible."""
    if settings.base_url is None and api_key is None:
        found = discover(ports)
        if found is None:
            var = settings.api_key_env or "OPENAI_API_KEY"
            raise ConfigError(
                f"no model server configured: set {var} to use OpenAI, or pass --base-url "
                "(e.g. http://127.0.0.1:11434/v1 for Ollama); no local server answered on ports "
                + ", ".join(map(str, ports)))
        base_url, models = found
        settings = dataclasses.replace(settings, base_url=base_url)
        model = settings.model or (models[0] if models else None)
        notice(f"using the local server at {base_url} (model {model or 'unknown'})")
        return dataclasses.replace(settings, model=model or "default")
    if settings.model:
        return settings
    if settings.base_url is None:
        return dataclasses.replace(settings, model=DEFAULT_OPENAI_MODEL)
    try:
        models = list_models(settings.base_url, api_key)
    except ModelConnectionError:
        raise
    except ModelError:
        models = []
    if not models:
        raise ConfigError(f"no model given and {settings.base_url} lists none: pass -m/--model")
    return dataclasses.replace(settings, model=models[0])
