"""Example plugin: search the web through SearXNG or the Brave Search API.

Which service is used is decided at each call, from the environment:

* ``AGENTCLI_SEARXNG_URL``: the base URL of a SearXNG instance, e.g.
  ``http://localhost:8888`` (your own, usually). The tool asks
  ``/search?q=...&format=json``; the instance must allow the JSON format
  (``search: formats: [html, json]`` in its settings.yml).
* otherwise ``BRAVE_API_KEY``: a Brave Search API key, sent in the
  ``X-Subscription-Token`` header to https://api.search.brave.com/res/v1/web/search
  (``AGENTCLI_BRAVE_SEARCH_URL`` replaces that URL, for tests).

Neither set is a clear error saying what to set. Requests go through httpx2
with ``trust_env=False``, a 15-second timeout, no redirects and a cap on the
body size. The API key is never part of a result or an error message.

Policy: left at the default ("ask"): the query goes to a third party.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
from typing import Annotated, Any

import httpx2
from pydantic import Field

from agentcli import __version__, tool
from agentcli.errors import ToolError

SEARXNG_ENV = "AGENTCLI_SEARXNG_URL"
BRAVE_KEY_ENV = "BRAVE_API_KEY"
BRAVE_URL_ENV = "AGENTCLI_BRAVE_SEARCH_URL"
BRAVE_URL = "https://api.search.brave.com/res/v1/web/search"
TIMEOUT = 15.0
MAX_BODY = 2 * 1024 * 1024  # bytes
MAX_QUERY = 400  # Brave refuses queries over 400 characters
MAX_SNIPPET = 500  # characters of a title or snippet
MAX_URL = 2_000
_TAG = re.compile(r"<[^>]{0,200}>")


@tool(untrusted_output=True)
def web_search(query: str, count: Annotated[int, Field(ge=1, le=20)] = 5) -> dict[str, Any]:
    """Search the web; returns the title, URL and a snippet of each result.

    Args:
        query: What to search for, e.g. "night train Vienna Amsterdam timetable".
        count: How many results to return (1 to 20).
    """
    words = " ".join(query.split())
    if not words:
        raise ToolError('query is empty: give words to search for, e.g. "python 3.13 release"')
    if len(words) > MAX_QUERY:
        raise ToolError(f"query too long ({len(words)} characters, at most {MAX_QUERY})")
    searxng = os.environ.get(SEARXNG_ENV, "").strip()
    key = os.environ.get(BRAVE_KEY_ENV, "").strip()
    if searxng:
        source, results = "SearXNG", _searxng(searxng, words)
    elif key:
        source, results = "Brave Search", _brave(key, words, count)
    else:
        raise ToolError(f"web_search is not set up: set {SEARXNG_ENV} to the URL of a SearXNG "
                        f"instance (e.g. http://localhost:8888) or {BRAVE_KEY_ENV} to a Brave "
                        "Search API key, then start agentcli again")
    return {"query": words, "source": source, "results": results[:count]}


def _searxng(base: str, query: str) -> list[dict[str, str]]:
    url = base.rstrip("/") + "/search"
    status, data = _get_json("SearXNG", url, {"q": query, "format": "json"}, {})
    if status == 403:
        raise ToolError("the SearXNG instance refused to answer in JSON (HTTP 403): allow it "
                        "with `formats: [html, json]` under `search:` in its settings.yml")
    _check_status("SearXNG", status, data)
    items = data.get("results") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ToolError("SearXNG sent an answer without a results list; is "
                        f"{SEARXNG_ENV} the address of a SearXNG instance?")
    return _results(items, "content")


def _brave(key: str, query: str, count: int) -> list[dict[str, str]]:
    url = os.environ.get(BRAVE_URL_ENV) or BRAVE_URL
    headers = {"X-Subscription-Token": key, "Accept": "application/json"}
    status, data = _get_json("Brave Search", url, {"q": query, "count": count}, headers)
    error = data.get("error") if isinstance(data, dict) else None
    code = str(error.get("code", "")) if isinstance(error, dict) else ""
    if status in (401, 403) or "TOKEN" in code:  # 422 SUBSCRIPTION_TOKEN_INVALID
        raise ToolError(f"Brave Search refused the API key (HTTP {status}): check "
                        f"{BRAVE_KEY_ENV}")
    if status == 429:
        raise ToolError("Brave Search says the rate limit or quota of this API key is used "
                        "up (HTTP 429); try again later")
    _check_status("Brave Search", status, data)
    web = data.get("web") if isinstance(data, dict) else None
    items = web.get("results", []) if isinstance(web, dict) else []
    return _results(items if isinstance(items, list) else [], "description")


def _results(items: list[Any], snippet_key: str) -> list[dict[str, str]]:
    """Title, URL and snippet of each well-formed result (tags and entities removed)."""
    results = []
    for item in items:
        url = item.get("url") if isinstance(item, dict) else None
        if not isinstance(url, str) or len(url) > MAX_URL or \
                not url.lower().startswith(("http://", "https://")):
            continue  # no result, or a link no one should follow (javascript:, data:)
        results.append({"title": _cut(_text(item.get("title"))), "url": url,
                        "snippet": _cut(_text(item.get(snippet_key)))})
    return results


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SNIPPET else text[:MAX_SNIPPET] + "..."


def _text(value: Any) -> str:
    """Plain text from a snippet that may hold <strong> tags and HTML entities."""
    if not isinstance(value, str):
        return ""
    return " ".join(html.unescape(_TAG.sub("", value)).split())


def _check_status(service: str, status: int, data: Any) -> None:
    if status == 200:
        return
    detail = ""
    if isinstance(data, dict):
        error = data.get("error")
        message = error.get("detail") if isinstance(error, dict) else error
        detail = f": {str(message)[:200]}" if message else ""
    raise ToolError(f"{service} answered HTTP {status}{detail}")


def _get_json(service: str, url: str, params: dict[str, Any],
              headers: dict[str, str]) -> tuple[int, Any]:
    """GET ``url``; the status and the parsed JSON body (None if it is not JSON)."""
    headers = {"User-Agent": f"agentcli/{__version__} (web_search example plugin)", **headers}
    try:
        deadline = time.monotonic() + TIMEOUT  # httpx2's timeout is per read: a drip
        with httpx2.Client(trust_env=False, timeout=TIMEOUT, follow_redirects=False) as client, \
                client.stream("GET", url, params=params, headers=headers) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    raise ToolError(f"{service} sent more than {MAX_BODY:,} bytes; gave up")
                if time.monotonic() > deadline:
                    raise httpx2.ReadTimeout("the answer came too slowly")
            status = response.status_code
    except httpx2.TimeoutException:
        raise ToolError(f"{service} did not answer within {TIMEOUT:g} s") from None
    except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
        raise ToolError(f"cannot reach {service} at {url}: {type(exc).__name__}: "
                        f"{str(exc)[:200]}") from None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to read
        data = None
    if status == 200 and data is None:
        raise ToolError(f"{service} sent a body that is not JSON (or JSON nested too deeply)")
    return status, data
