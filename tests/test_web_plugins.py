"""The web_search and geocode example plugins in ``tools.d/``, loaded through the
real loader and run against one loopback server that answers as SearXNG, the
Brave Search API and Nominatim do (response bodies written after each API's
documented shape). Nothing here reaches the internet."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from http_server import JsonApiHandler, serving
from openai_server import Call, text, tool_calls
from test_example_plugins import TOOLS_DIR, call, closed_port, load, params_of

from agentcli.errors import InvalidArguments, ToolError

BRAVE_KEY = "BSA-test-key-0123456789"

SEARXNG_ANSWER = {
    "query": "night trains europe",
    "number_of_results": 0,
    "results": [
        {"url": f"https://trains.example/{n}", "title": f"Night train guide {n}",
         "content": f"Sleeper routes &amp; fares, part {n}. <b>Updated</b> weekly.",
         "publishedDate": None, "thumbnail": "", "engine": "duckduckgo",
         "template": "default.html", "parsed_url": ["https", "trains.example", f"/{n}", "", "", ""],
         "img_src": "", "priority": "", "engines": ["duckduckgo", "brave"], "positions": [n, n + 1],
         "score": 4.0 / n, "category": "general"}
        for n in range(1, 7)
    ] + [{"title": "an item without a url", "content": "skipped", "engine": "wikipedia"}],
    "answers": [], "corrections": [], "infoboxes": [],
    "suggestions": ["night trains europe map"],
    "unresponsive_engines": [["google", "timeout"]],
}


def brave_answer(query: str, count: int) -> dict[str, Any]:
    return {
        "query": {"original": query, "show_strict_warning": False, "is_navigational": False,
                  "is_news_breaking": False, "spellcheck_off": True, "country": "us",
                  "bad_results": False, "should_fallback": False, "postal_code": "", "city": "",
                  "header_country": "", "more_results_available": True, "state": ""},
        "mixed": {"type": "mixed", "main": [{"type": "web", "index": i, "all": False}
                                            for i in range(count)], "top": [], "side": []},
        "type": "search",
        "web": {"type": "search", "family_friendly": True, "results": [
            {"title": f"Sleeper train {i}", "url": f"https://rail.example/sleeper-{i}",
             "is_source_local": False, "is_source_both": False,
             "description": f"The <strong>night train</strong> from Vienna &amp; Munich, stop {i}.",
             "page_age": "2025-03-03T10:00:00", "profile": {
                 "name": "Rail Example", "url": f"https://rail.example/sleeper-{i}",
                 "long_name": "rail.example", "img": "https://imgs.example/icon.png"},
             "language": "en", "family_friendly": True, "type": "search_result",
             "subtype": "generic", "is_live": False,
             "meta_url": {"scheme": "https", "netloc": "rail.example", "hostname": "rail.example",
                          "favicon": "https://imgs.example/favicon.png", "path": f"\u203a sleeper-{i}"},
             "age": "March 3, 2025"}
            for i in range(1, count + 1)]},
    }


BRAVE_BAD_TOKEN = {"type": "ErrorResponse", "time": 1767000000, "error": {
    "id": "7d3c2f0e-0c55-4a4e-9f5b-1b0d1c6e9a11", "status": 422,
    "code": "SUBSCRIPTION_TOKEN_INVALID", "detail": "The provided subscription token is invalid.",
    "meta": {"component": "authentication"}}}

LICENCE = "Data © OpenStreetMap contributors, ODbL 1.0. http://osm.org/copyright"
EIFFEL = {
    "place_id": 88066702, "licence": LICENCE, "osm_type": "way", "osm_id": 5013364,
    "lat": "48.8582599", "lon": "2.2945006358633115", "category": "man_made", "type": "tower",
    "place_rank": 30, "importance": 0.6205937724353116, "addresstype": "man_made",
    "name": "Eiffel Tower",
    "display_name": "Eiffel Tower, 5, Avenue Anatole France, Quartier du Gros-Caillou, "
                    "Paris 7e Arrondissement, Paris, Île-de-France, France métropolitaine, "
                    "75007, France",
    "boundingbox": ["48.8574753", "48.8590453", "2.2933119", "2.2956897"],
}
EIFFEL_ADDRESS = {
    "man_made": "Eiffel Tower", "house_number": "5", "road": "Avenue Anatole France",
    "city_block": "Quartier du Gros-Caillou", "suburb": "Paris 7e Arrondissement",
    "city_district": "Paris", "city": "Paris", "ISO3166-2-lvl6": "FR-75C",
    "state": "Île-de-France", "ISO3166-2-lvl4": "FR-IDF", "region": "France métropolitaine",
    "postcode": "75007", "country": "France", "country_code": "fr",
}


@dataclass
class Seen:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    at: float


@dataclass
class Drip:
    """An answer that sends a space every ``interval`` seconds, ``count`` times."""

    interval: float
    count: int


@dataclass
class Apis:
    base: str
    seen: list[Seen] = field(default_factory=list)
    #: path -> (status, body) answered instead of the normal answer
    override: dict[str, tuple[int, Any]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def api_server() -> Iterator[Apis]:
    state: Apis

    class Handler(JsonApiHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            state.seen.append(Seen(url.path, query, {k.lower(): v for k, v in self.headers.items()},
                                   time.monotonic()))
            status, body = state.override.get(url.path) or answer(url.path, query,
                                                                  self.headers)
            if isinstance(body, Drip):  # headers at once, then a byte at a time
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                for _ in range(body.count):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(body.interval)
                return
            self.send_json(status, body)

    with serving(Handler) as base:
        state = Apis(base)
        yield state


def answer(path: str, query: dict[str, list[str]], headers: Any) -> tuple[int, Any]:
    if path == "/searx/search":
        return (200, SEARXNG_ANSWER) if query.get("format") == ["json"] else (403, None)
    if path == "/brave/res/v1/web/search":
        if headers.get("X-Subscription-Token") != BRAVE_KEY:
            return 422, BRAVE_BAD_TOKEN
        return 200, brave_answer(query["q"][0], int(query.get("count", ["20"])[0]))
    if path == "/nominatim/search":
        return 200, [EIFFEL] if "eiffel" in query["q"][0].lower() else []
    if path == "/nominatim/reverse":
        if float(query["lat"][0]) < 0:
            return 200, {"error": "Unable to geocode"}
        return 200, {**EIFFEL, "address": EIFFEL_ADDRESS}
    return 404, {"error": "no such route"}


@pytest.fixture
def apis(api_server: Apis, monkeypatch: pytest.MonkeyPatch) -> Iterator[Apis]:
    """The plugins pointed at the loopback server; no service chosen yet."""
    for name in ("AGENTCLI_SEARXNG_URL", "BRAVE_API_KEY", "AGENTCLI_NOMINATIM_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGENTCLI_BRAVE_SEARCH_URL", f"{api_server.base}/brave/res/v1/web/search")
    monkeypatch.setenv("AGENTCLI_NOMINATIM_URL", f"{api_server.base}/nominatim/")
    api_server.seen.clear()
    api_server.override.clear()
    yield api_server
    api_server.override.clear()


# ------------------------------------------------------------------- web_search

def test_web_search_without_a_service_says_what_to_set(apis):
    web_search = load("web_search.py")["web_search"]
    with pytest.raises(ToolError, match=r"set AGENTCLI_SEARXNG_URL .* or BRAVE_API_KEY"):
        call(web_search, query="night trains")
    assert apis.seen == []


def test_web_search_schema_bounds_count(apis):
    web_search = load("web_search.py")["web_search"]
    params = params_of(web_search)
    assert params["required"] == ["query"] and params["properties"]["count"]["default"] == 5
    with pytest.raises(InvalidArguments):
        web_search.validate({"query": "x", "count": 0})
    with pytest.raises(InvalidArguments):
        web_search.validate({"query": "x", "count": 21})


def test_web_search_through_searxng(apis, monkeypatch):
    monkeypatch.setenv("AGENTCLI_SEARXNG_URL", f"{apis.base}/searx/")
    monkeypatch.setenv("BRAVE_API_KEY", BRAVE_KEY)  # SearXNG comes first when both are set
    result = call(load("web_search.py")["web_search"], query="  night   trains europe ", count=3)
    assert result == {"query": "night trains europe", "source": "SearXNG", "results": [
        {"title": f"Night train guide {n}", "url": f"https://trains.example/{n}",
         "snippet": f"Sleeper routes & fares, part {n}. Updated weekly."} for n in (1, 2, 3)]}
    (seen,) = apis.seen
    assert seen.path == "/searx/search"
    assert seen.query == {"q": ["night trains europe"], "format": ["json"]}
    assert "x-subscription-token" not in seen.headers


def test_web_search_explains_a_searxng_without_json(apis, monkeypatch):
    monkeypatch.setenv("AGENTCLI_SEARXNG_URL", f"{apis.base}/searx")
    apis.override["/searx/search"] = (403, None)
    with pytest.raises(ToolError, match=r"HTTP 403.*formats: \[html, json\].*settings.yml"):
        call(load("web_search.py")["web_search"], query="trains")


def test_web_search_through_brave(apis, monkeypatch):
    monkeypatch.setenv("BRAVE_API_KEY", BRAVE_KEY)
    result = call(load("web_search.py")["web_search"], query="night train vienna", count=2)
    assert result == {"query": "night train vienna", "source": "Brave Search", "results": [
        {"title": f"Sleeper train {i}", "url": f"https://rail.example/sleeper-{i}",
         "snippet": f"The night train from Vienna & Munich, stop {i}."} for i in (1, 2)]}
    (seen,) = apis.seen
    assert seen.query == {"q": ["night train vienna"], "count": ["2"]}
    assert seen.headers["x-subscription-token"] == BRAVE_KEY
    assert seen.headers["accept"] == "application/json"
    assert seen.headers["user-agent"].startswith("agentcli/")


def test_web_search_brave_errors_are_clear_and_never_show_the_key(apis, monkeypatch):
    web_search = load("web_search.py")["web_search"]
    monkeypatch.setenv("BRAVE_API_KEY", "BSA-wrong-key-987654321")
    with pytest.raises(ToolError, match=r"refused the API key.*check BRAVE_API_KEY") as info:
        call(web_search, query="trains")
    assert "BSA-wrong" not in str(info.value)
    monkeypatch.setenv("BRAVE_API_KEY", BRAVE_KEY)
    apis.override["/brave/res/v1/web/search"] = (429, {"type": "ErrorResponse", "error": {
        "status": 429, "code": "RATE_LIMITED", "detail": "Request rate limit exceeded."}})
    with pytest.raises(ToolError, match=r"HTTP 429.*try again later"):
        call(web_search, query="trains")
    monkeypatch.setenv("AGENTCLI_BRAVE_SEARCH_URL", f"http://127.0.0.1:{closed_port()}/x")
    with pytest.raises(ToolError, match="cannot reach Brave Search") as info:
        call(web_search, query="trains")
    assert BRAVE_KEY not in str(info.value)


# ---------------------------------------------------------------------- geocode

def test_geocode_finds_a_place_with_the_policy_user_agent(apis, monkeypatch):
    monkeypatch.setenv("AGENTCLI_NOMINATIM_EMAIL", "ops@example.org")
    result = call(load("geocode.py")["geocode"], place=" Eiffel   Tower ")
    assert result == {"query": "Eiffel Tower", "licence": LICENCE, "matches": [{
        "name": EIFFEL["display_name"], "lat": 48.8582599, "lon": 2.2945006358633115,
        "kind": "man_made/tower", "osm": "way/5013364"}]}
    (seen,) = apis.seen
    assert seen.path == "/nominatim/search"
    assert seen.query == {"q": ["Eiffel Tower"], "format": ["jsonv2"], "limit": ["3"],
                          "email": ["ops@example.org"]}
    agent = seen.headers["user-agent"]
    assert agent.startswith("agentcli/") and "geocode" in agent


def test_geocode_unknown_place_and_empty_place(apis):
    geocode = load("geocode.py")["geocode"]
    with pytest.raises(ToolError, match="no place called 'Atlantis' was found"):
        call(geocode, place="Atlantis")
    with pytest.raises(ToolError, match="place is empty"):
        call(geocode, place="   ")
    assert len(apis.seen) == 1


def test_reverse_geocode_gives_the_address(apis):
    reverse = load("geocode.py")["reverse_geocode"]
    result = call(reverse, lat=48.8584, lon=2.2945)
    assert result["name"] == EIFFEL["display_name"]
    assert result["address"]["postcode"] == "75007" and result["address"]["city"] == "Paris"
    assert result["licence"] == LICENCE and result["osm"] == "way/5013364"
    (seen,) = apis.seen
    assert seen.path == "/nominatim/reverse"
    assert seen.query == {"lat": ["48.8584"], "lon": ["2.2945"], "format": ["jsonv2"]}


def test_reverse_geocode_at_sea_and_out_of_range(apis):
    reverse = load("geocode.py")["reverse_geocode"]
    with pytest.raises(ToolError, match=r"no address found at -40.0, -30.0"):
        call(reverse, lat=-40.0, lon=-30.0)
    for bad in ({"lat": 91, "lon": 0}, {"lat": 0, "lon": -180.5}):
        with pytest.raises(InvalidArguments):
            reverse.validate(bad)
    assert len(apis.seen) == 1


def test_nominatim_refusal_names_the_usage_policy(apis):
    apis.override["/nominatim/search"] = (429, {"error": "Too many requests"})
    with pytest.raises(ToolError, match=r"HTTP 429\): its usage policy allows one request per "
                                        r"second.*AGENTCLI_NOMINATIM_URL"):
        call(load("geocode.py")["geocode"], place="Eiffel Tower")


def test_at_most_one_nominatim_request_per_second(apis):
    tools = load("geocode.py")  # one module: one process-wide pace for both tools
    geocode, reverse = tools["geocode"], tools["reverse_geocode"]
    with ThreadPoolExecutor(3) as pool:
        jobs = [pool.submit(call, geocode, place="Eiffel Tower"),
                pool.submit(call, reverse, lat=48.8584, lon=2.2945),
                pool.submit(call, reverse, lat=48.8584, lon=2.2945)]
        assert all(job.result(timeout=10) for job in jobs)
    arrivals = sorted(seen.at for seen in apis.seen)
    assert len(arrivals) == 3
    assert all(later - earlier >= 0.99 for earlier, later in itertools.pairwise(arrivals))


# ------------------------------------------------------------------- end to end

def test_run_geocodes_with_the_shipped_tools_dir(cli, server, run_args, apis):
    server.enqueue(tool_calls(Call("geocode", {"place": "Eiffel Tower"}, id="g1")),
                   text("It is at 48.858, 2.295."))
    result = cli("run", *run_args, "-y", "--tools-dir", str(TOOLS_DIR), "where is it?",
                 env={"AGENTCLI_NOMINATIM_URL": f"{apis.base}/nominatim"})
    assert result.code == 0, result.stderr
    assert result.stdout == "It is at 48.858, 2.295.\n"
    names = {t["function"]["name"] for t in server.requests[0].body["tools"]}
    assert {"web_search", "geocode", "reverse_geocode", "web_fetch"} <= names
    message = server.requests[1].body["messages"][-1]
    assert message["role"] == "tool" and message["tool_call_id"] == "g1"
    assert json.loads(message["content"])["matches"][0]["lat"] == 48.8582599


# ------------------------------------------------------------------- hostile answers

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(("body", "error"), [
    (b"<html>Bad gateway</html>", "not JSON"),
    (DEEP, "not JSON"),
    (b"", "not JSON"),
    ({"results": "none"}, "without a results list"),
])
def test_web_search_malformed_answers_are_one_clear_error(apis, monkeypatch, body, error):
    monkeypatch.setenv("AGENTCLI_SEARXNG_URL", f"{apis.base}/searx/")
    apis.override["/searx/search"] = (200, body)
    with pytest.raises(ToolError, match=error):
        call(load("web_search.py")["web_search"], query="anything")


def test_web_search_keeps_only_followable_links_and_cuts_long_fields(apis, monkeypatch):
    monkeypatch.setenv("AGENTCLI_SEARXNG_URL", f"{apis.base}/searx/")
    apis.override["/searx/search"] = (200, {"results": [
        {"url": "javascript:alert(1)", "title": "script", "content": "x"},
        {"url": "https://e.example/" + "a" * 100_000, "title": "huge url", "content": "x"},
        {"url": {"href": "https://e.example/"}, "title": "url of the wrong kind"},
        {"url": "https://e.example/ok", "title": "t" * 100_000, "content": ["not", "text"]},
        "not an object", None, 42]})
    result = call(load("web_search.py")["web_search"], query="anything")
    assert [r["url"] for r in result["results"]] == ["https://e.example/ok"]
    (only,) = result["results"]
    assert len(only["title"]) == 503 and only["snippet"] == ""


def test_geocode_skips_places_without_a_real_position(apis):
    places = [{**EIFFEL, "lat": lat, "lon": "2.29"} for lat in
              ("nan", "inf", "-1e999", "700", None, [], "north")]
    apis.override["/nominatim/search"] = (200, places)
    geocode = load("geocode.py")["geocode"]
    with pytest.raises(ToolError, match="no place called"):
        call(geocode, place="Eiffel Tower")
    apis.override["/nominatim/search"] = (200, [*places, {**EIFFEL, "display_name": {"x": 1}}])
    (match,) = call(geocode, place="Eiffel Tower")["matches"]
    assert match["name"] == "" and json.dumps(match, allow_nan=False)
    apis.override["/nominatim/reverse"] = (200, {**EIFFEL, "lat": "NaN"})
    with pytest.raises(ToolError, match="unexpected answer"):
        call(load("geocode.py")["reverse_geocode"], lat=1.0, lon=2.0)


def test_a_server_that_drips_its_answer_is_cut_by_an_overall_deadline(apis, monkeypatch):
    monkeypatch.setenv("AGENTCLI_SEARXNG_URL", f"{apis.base}/searx/")
    apis.override["/searx/search"] = (200, Drip(0.1, 100))
    apis.override["/nominatim/search"] = (200, Drip(0.1, 100))
    for filename, name, arguments in (("web_search.py", "web_search", {"query": "x"}),
                                      ("geocode.py", "geocode", {"place": "x"})):
        tool = load(filename)[name]
        monkeypatch.setitem(tool.func.__globals__, "TIMEOUT", 0.5)
        started = time.monotonic()
        with pytest.raises(ToolError, match=r"did not answer within 0\.5 s"):
            call(tool, **arguments)
        assert time.monotonic() - started < 3  # each read came in time: 10 s without the cut


def test_search_and_map_results_mark_the_conversation_as_holding_outside_text():
    loaded = {**load("web_search.py"), **load("geocode.py")}
    assert {name: t.untrusted_output for name, t in loaded.items()} == {
        "web_search": True, "geocode": True, "reverse_geocode": True}
