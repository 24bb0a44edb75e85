"""The example plugins shipped in ``tools.d/``: loaded through the real loader,
their schemas checked, and their safety measures exercised. Nothing here
reaches the internet: the weather tool talks to a server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from http_server import JsonApiHandler, serving
from openai_server import Call, text, tool_calls

from agentcli.errors import InvalidArguments, ToolError
from agentcli.tools.base import Tool
from agentcli.tools.loader import load_file

TOOLS_DIR = Path(__file__).parents[1] / "tools.d"


def load(filename: str) -> dict[str, Tool]:
    """Load one shipped plugin file the way agentcli does; it must print nothing."""
    tools, printed = load_file(TOOLS_DIR / filename)
    assert printed == ""
    return {t.name: t for t in tools}


def call(t: Tool, **arguments: Any) -> Any:
    """Validate like the agent does, then run."""
    return t(**t.validate(arguments))


def params_of(t: Tool) -> dict[str, Any]:
    schema = t.schema()
    assert schema["type"] == "function" and schema["function"]["name"] == t.name
    assert schema["function"]["description"]
    return schema["function"]["parameters"]


# --------------------------------------------------------------------- weather

BERLIN = {
    "results": [{
        "id": 2950159, "name": "Berlin", "latitude": 52.52437, "longitude": 13.41053,
        "elevation": 74.0, "feature_code": "PPLC", "country_code": "DE", "admin1_id": 2950157,
        "timezone": "Europe/Berlin", "population": 3426354, "country_id": 2921044,
        "country": "Germany", "admin1": "Land Berlin",
    }],
    "generationtime_ms": 0.93,
}


def forecast(unit: str) -> dict[str, Any]:
    fahrenheit = unit == "fahrenheit"
    return {
        "latitude": 52.52, "longitude": 13.419998, "generationtime_ms": 0.04,
        "utc_offset_seconds": 7200, "timezone": "Europe/Berlin", "timezone_abbreviation": "CEST",
        "elevation": 38.0,
        "current_units": {"time": "iso8601", "interval": "seconds",
                          "temperature_2m": "°F" if fahrenheit else "°C",
                          "wind_speed_10m": "km/h", "weather_code": "wmo code"},
        "current": {"time": "2024-06-01T14:15", "interval": 900,
                    "temperature_2m": 64.6 if fahrenheit else 18.1,
                    "wind_speed_10m": 11.5, "weather_code": 3},
    }


@dataclass
class WeatherServer:
    base: str
    seen: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    forecast_status: int = 200


@pytest.fixture
def weather(monkeypatch: pytest.MonkeyPatch) -> Iterator[WeatherServer]:
    """A fake Open-Meteo on 127.0.0.1, with the plugin's URLs pointed at it."""
    state: WeatherServer

    class Handler(JsonApiHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            state.seen.append((url.path, query))
            if url.path == "/v1/search":
                status, body = 200, BERLIN if query["name"] == ["Berlin"] else {"generationtime_ms": 0.4}
            elif url.path == "/v1/forecast" and state.forecast_status == 200:
                status, body = 200, forecast(query["temperature_unit"][0])
            else:
                status, body = state.forecast_status, {"error": True, "reason": "Internal failure"}
            self.send_json(status, body)

    with serving(Handler) as base:
        state = WeatherServer(base)
        monkeypatch.setenv("AGENTCLI_WEATHER_GEOCODE_URL", f"{state.base}/v1/search")
        monkeypatch.setenv("AGENTCLI_WEATHER_FORECAST_URL", f"{state.base}/v1/forecast")
        yield state


def test_weather_schema():
    get_weather = load("weather.py")["get_weather"]
    assert get_weather.policy is None  # the default: ask
    params = params_of(get_weather)
    assert params["required"] == ["city"]
    assert params["properties"]["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert params["properties"]["unit"]["default"] == "celsius"
    assert "City name" in params["properties"]["city"]["description"]
    with pytest.raises(InvalidArguments):
        get_weather.validate({"city": "Berlin", "unit": "kelvin"})


def test_weather_for_a_city(weather):
    get_weather = load("weather.py")["get_weather"]
    result = call(get_weather, city="Berlin")
    assert result == {"city": "Berlin", "country": "Germany", "region": "Land Berlin",
                      "temperature": "18.1 °C", "wind": "11.5 km/h", "conditions": "overcast",
                      "local_time": "2024-06-01T14:15"}
    (geo_path, geo), (fc_path, fc) = weather.seen
    assert geo_path == "/v1/search" and geo["name"] == ["Berlin"] and geo["count"] == ["1"]
    assert fc_path == "/v1/forecast"
    assert fc["latitude"] == ["52.52437"] and fc["longitude"] == ["13.41053"]
    assert fc["current"] == ["temperature_2m,wind_speed_10m,weather_code"]
    assert fc["temperature_unit"] == ["celsius"]


def test_weather_unit_is_forwarded(weather):
    get_weather = load("weather.py")["get_weather"]
    result = call(get_weather, city="Berlin", unit="fahrenheit")
    assert result["temperature"] == "64.6 °F"
    assert weather.seen[-1][1]["temperature_unit"] == ["fahrenheit"]


def test_weather_unknown_city(weather):
    get_weather = load("weather.py")["get_weather"]
    with pytest.raises(ToolError, match=r"unknown city.*Atlantis"):
        call(get_weather, city="Atlantis")
    assert len(weather.seen) == 1  # no forecast asked for


def test_weather_server_error_is_a_tool_error(weather):
    weather.forecast_status = 500
    get_weather = load("weather.py")["get_weather"]
    with pytest.raises(ToolError, match="HTTP 500: Internal failure"):
        call(get_weather, city="Berlin")


def test_weather_body_size_is_capped(weather, monkeypatch):
    get_weather = load("weather.py")["get_weather"]
    monkeypatch.setitem(get_weather.func.__globals__, "MAX_BODY", 100)
    with pytest.raises(ToolError, match="more than 100 bytes"):
        call(get_weather, city="Berlin")


def test_weather_unreachable_and_empty_city(monkeypatch):
    get_weather = load("weather.py")["get_weather"]
    with pytest.raises(ToolError, match="city is empty"):
        call(get_weather, city="  ")
    monkeypatch.setenv("AGENTCLI_WEATHER_GEOCODE_URL", f"http://127.0.0.1:{closed_port()}/v1/search")
    with pytest.raises(ToolError, match="cannot reach the weather service"):
        call(get_weather, city="Berlin")


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------- sqlite

@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data" / "shop.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER, photo BLOB);
        CREATE INDEX people_name ON people(name);
        CREATE TABLE numbers (n INTEGER);
        CREATE VIEW adults AS SELECT name FROM people WHERE age >= 18;
    """)
    conn.executemany("INSERT INTO people(name, age, photo) VALUES (?, ?, ?)",
                     [("Ada", 36, b"\x89PNG" + bytes(96)), ("Bob", 12, None), ("Cy", 51, None),
                      ("Long", 40, None)])
    conn.execute("UPDATE people SET name = ? WHERE name = 'Long'", ("x" * 5000,))
    conn.executemany("INSERT INTO numbers VALUES (?)", [(i,) for i in range(1500)])
    conn.commit()
    conn.close()
    monkeypatch.setenv("AGENTCLI_SQLITE_DB", str(path))
    return path


def test_sqlite_schemas():
    tools = load("sqlite_query.py")
    assert sorted(tools) == ["sqlite_query", "sqlite_schema"]
    assert tools["sqlite_schema"].policy == "auto" and tools["sqlite_query"].policy is None
    assert params_of(tools["sqlite_schema"])["properties"] == {}
    params = params_of(tools["sqlite_query"])
    assert params["required"] == ["sql"]
    assert params["properties"]["max_rows"]["maximum"] == 1000
    assert "AGENTCLI_SQLITE_DB" in tools["sqlite_query"].description
    with pytest.raises(InvalidArguments):
        tools["sqlite_query"].validate({"sql": "SELECT 1", "max_rows": 5000})


def test_sqlite_schema_lists_tables(db):
    schema = call(load("sqlite_query.py")["sqlite_schema"])
    assert "-- table people\nCREATE TABLE people (id INTEGER PRIMARY KEY" in schema
    assert "-- view adults" in schema and "-- index people_name" in schema


def test_sqlite_select_with_params(db):
    query = load("sqlite_query.py")["sqlite_query"]
    result = call(query, sql="SELECT name, age FROM people WHERE age > ? AND name LIKE ? ORDER BY id",
                  params=[20, "%a%"])
    assert result == {"columns": ["name", "age"], "rows": [["Ada", 36]], "truncated": False}
    cte = call(query, sql="WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3)"
                          " SELECT i, upper('a') FROM c")
    assert cte["rows"] == [[1, "A"], [2, "A"], [3, "A"]]
    assert call(query, sql="SELECT name FROM adults ORDER BY name")["rows"][0] == ["Ada"]


def test_sqlite_cells_and_row_cap(db):
    query = load("sqlite_query.py")["sqlite_query"]
    rows = call(query, sql="SELECT name, photo FROM people ORDER BY id")["rows"]
    assert rows[0] == ["Ada", "<blob 100 bytes>"]
    assert rows[3][0].startswith("x" * 1000) and rows[3][0].endswith("[4,000 more characters]")
    capped = call(query, sql="SELECT n FROM numbers ORDER BY n", max_rows=10)
    assert capped["rows"] == [[i] for i in range(10)] and capped["truncated"] is True
    default = call(query, sql="SELECT n FROM numbers")
    assert len(default["rows"]) == 100 and default["truncated"] is True
    exact = call(query, sql="SELECT n FROM numbers LIMIT 5", max_rows=5)
    assert len(exact["rows"]) == 5 and exact["truncated"] is False


WRITES = [
    "INSERT INTO people(name) VALUES ('Eve')",
    "UPDATE people SET age = 0",
    "DELETE FROM people",
    "DROP TABLE people",
    "CREATE TABLE evil (x)",
    "CREATE TEMP TABLE evil (x)",
    "ALTER TABLE people ADD COLUMN evil TEXT",
    "ATTACH DATABASE '{tmp}/evil.db' AS evil",
    "VACUUM INTO '{tmp}/evil.db'",
    "PRAGMA writable_schema=1",
    "PRAGMA query_only=0",
    "SELECT load_extension('x')",
    "SELECT 1; DROP TABLE people",
    "WITH x(name) AS (SELECT 'Eve') INSERT INTO people(name) SELECT name FROM x",
    "WITH x AS (SELECT 1) DELETE FROM people",
    "REINDEX",
    "BEGIN IMMEDIATE",
]


def test_sqlite_refuses_every_write(db, tmp_path):
    query = load("sqlite_query.py")["sqlite_query"]
    before = db.read_bytes()
    for sql in WRITES:
        with pytest.raises(ToolError, match="refused") as info:
            call(query, sql=sql.format(tmp=tmp_path))
        assert "read-only" in str(info.value) or "one SQL statement" in str(info.value), sql
    assert db.read_bytes() == before
    assert sorted(p.name for p in db.parent.iterdir()) == ["shop.db"]  # no journal, no WAL
    assert not (tmp_path / "evil.db").exists()
    assert call(query, sql="SELECT count(*) FROM people")["rows"] == [[4]]


def test_sqlite_read_only_open_holds_even_without_the_authorizer(db, monkeypatch):
    """Defence in depth: with every action allowed, mode=ro and query_only still refuse."""
    query = load("sqlite_query.py")["sqlite_query"]
    monkeypatch.setitem(query.func.__globals__, "_ALLOWED", frozenset(range(64)))
    before = db.read_bytes()
    for sql in ("INSERT INTO people(name) VALUES ('Eve')", "DROP TABLE people"):
        with pytest.raises(ToolError, match="readonly database"):
            call(query, sql=sql)
    assert db.read_bytes() == before


def test_sqlite_errors_are_tool_errors(db, monkeypatch):
    query = load("sqlite_query.py")["sqlite_query"]
    with pytest.raises(ToolError, match="sqlite error: no such table: nope"):
        call(query, sql="SELECT * FROM nope")
    with pytest.raises(ToolError, match=r"sqlite error: .*bindings"):
        call(query, sql="SELECT ?", params=[1, 2])
    with pytest.raises(ToolError, match="sql is empty"):
        call(query, sql="   ")
    monkeypatch.delenv("AGENTCLI_SQLITE_DB")
    with pytest.raises(ToolError, match="AGENTCLI_SQLITE_DB"):
        call(query, sql="SELECT 1")
    monkeypatch.setenv("AGENTCLI_SQLITE_DB", str(db.parent / "missing.db"))
    with pytest.raises(ToolError, match="does not exist"):
        call(query, sql="SELECT 1")
    assert not (db.parent / "missing.db").exists()


def test_sqlite_time_limit_stops_a_runaway_query(db, monkeypatch):
    query = load("sqlite_query.py")["sqlite_query"]
    monkeypatch.setitem(query.func.__globals__, "TIME_LIMIT", 0.3)
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"query stopped: it ran longer than 0\.3 s"):
        call(query, sql="WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c)"
                        " SELECT count(*) FROM c")
    assert time.monotonic() - started < 3


# ----------------------------------------------------------------------- files

@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A files root with text, binary, nested and hostile entries, and a secret outside it."""
    base = tmp_path / "root"
    (base / "docs").mkdir(parents=True)
    (base / "notes.txt").write_text("hello\nworld\n")
    (base / "docs" / "a.md").write_text("# A\n")
    (base / "docs" / "b.md").write_text("# B\n")
    (base / "docs" / "c.txt").write_text("c\n")
    (base / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    (base / "latin1.txt").write_bytes("café olé\n".encode("latin-1"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret\n")
    (tmp_path / "outside.txt").write_text("also secret\n")
    (base / "escape.txt").symlink_to(outside / "secret.txt")
    (base / "escape_dir").symlink_to(outside, target_is_directory=True)
    (base / "inner_link.txt").symlink_to(base / "notes.txt")
    monkeypatch.setenv("AGENTCLI_FILES_ROOT", str(base))
    return base


def test_files_schemas():
    tools = load("files.py")
    assert sorted(tools) == ["list_files", "read_file"]
    assert tools["list_files"].policy == "auto" and tools["read_file"].policy is None
    read = params_of(tools["read_file"])
    assert read["required"] == ["path"] and read["properties"]["offset"]["minimum"] == 0
    assert params_of(tools["list_files"])["properties"]["pattern"]["default"] == "*"


def test_read_file_inside_the_root(root):
    read_file = load("files.py")["read_file"]
    assert call(read_file, path="notes.txt") == "hello\nworld\n"
    assert call(read_file, path="docs/a.md") == "# A\n"
    assert call(read_file, path=str(root / "notes.txt")) == "hello\nworld\n"  # absolute, inside
    assert call(read_file, path="inner_link.txt") == "hello\nworld\n"  # symlink staying inside


def test_the_root_defaults_to_the_working_directory(root, monkeypatch):
    monkeypatch.delenv("AGENTCLI_FILES_ROOT")
    monkeypatch.chdir(root / "docs")
    assert call(load("files.py")["read_file"], path="c.txt") == "c\n"


@pytest.mark.timeout(5)
@pytest.mark.parametrize("path, message", [
    ("../outside.txt", "contains '..'"),
    ("docs/../../outside.txt", "contains '..'"),
    ("/etc/passwd", "outside the directory"),
    ("escape.txt", "outside the directory"),
    ("escape_dir/secret.txt", "outside the directory"),
    ("notes.txt\x00.png", "NUL byte"),
    ("fifo", "FIFO"),
    ("docs", "a directory"),
    ("missing.txt", "does not exist"),
])
def test_read_file_refusals(root, path, message):
    os.mkfifo(root / "fifo")
    tools = load("files.py")
    started = time.monotonic()
    with pytest.raises(ToolError, match=message):
        call(tools["read_file"], path=path)
    assert time.monotonic() - started < 2
    if message not in ("FIFO", "a directory", "does not exist"):
        with pytest.raises(ToolError, match=message):
            call(tools["list_files"], path=path)


@pytest.mark.timeout(5)
def test_a_symlink_swapped_in_after_the_check_is_not_followed(root, monkeypatch):
    """The open walks from the root with O_NOFOLLOW, so a race after realpath loses."""
    tools = load("files.py")
    glob = tools["read_file"].func.__globals__
    monkeypatch.setitem(glob, "_resolve", lambda path: (str(root), ["escape_dir", "secret.txt"]))
    with pytest.raises(ToolError, match="symbolic link"):
        call(tools["read_file"], path="anything")
    monkeypatch.setitem(glob, "_resolve", lambda path: (str(root), ["escape.txt"]))
    with pytest.raises(ToolError, match="symbolic link"):
        call(tools["read_file"], path="anything")


def test_binary_and_non_utf8_files(root):
    read_file = load("files.py")["read_file"]
    summary = call(read_file, path="image.png")
    assert summary.startswith("[image.png: binary file (PNG image), 216 bytes")
    assert "\x00" not in summary
    latin = call(read_file, path="latin1.txt")
    assert latin.startswith("[note: the file is not valid UTF-8")
    assert latin.endswith("caf\ufffd ol\ufffd\n")


def test_offset_limit_and_truncation_marker(root):
    (root / "big.txt").write_text("".join(f"line {i:04}\n" for i in range(3000)))  # 30,000 chars
    read_file = load("files.py")["read_file"]
    first = call(read_file, path="big.txt", limit=20)
    assert first.startswith("line 0000\nline 0001\n\n[... truncated at character 20;")
    assert "offset=20" in first
    second = call(read_file, path="big.txt", offset=20, limit=10)
    assert second.startswith("line 0002\n\n[... truncated at character 30")
    default = call(read_file, path="big.txt")
    assert default.count("\n") > 1000 and "offset=12000" in default
    tail = call(read_file, path="big.txt", offset=29990)
    assert tail == "line 2999\n"
    assert "past the end" in call(read_file, path="big.txt", offset=40000)


def test_list_files_pattern_and_cap(root, monkeypatch):
    list_files = load("files.py")["list_files"]
    assert call(list_files, path="docs", pattern="*.md") == [
        {"name": "a.md", "type": "file", "size": 4}, {"name": "b.md", "type": "file", "size": 4}]
    top = {e["name"]: e["type"] for e in call(list_files)}
    assert top["docs"] == "dir" and top["escape.txt"] == "symlink" and top["notes.txt"] == "file"
    for i in range(12):
        (root / "docs" / f"n{i:02}.log").write_text("")
    monkeypatch.setitem(list_files.func.__globals__, "MAX_ENTRIES", 5)
    capped = call(list_files, path="docs", pattern="*.log")
    assert [e["name"] for e in capped[:5]] == [f"n{i:02}.log" for i in range(5)]
    assert capped[5] == {"note": "7 more entries not shown; use a narrower pattern"}


# ------------------------------------------------------------------ end to end

def test_run_calls_sqlite_query_from_the_shipped_tools_dir(cli, server, run_args, db):
    server.enqueue(
        tool_calls(Call("sqlite_query", {"sql": "SELECT name, age FROM people WHERE age < ? ORDER BY age",
                                         "params": [40]}, id="q1")),
        text("Bob and Ada."))
    result = cli("run", *run_args, "-y", "--tools-dir", str(TOOLS_DIR), "who is under 40?",
                 env={"AGENTCLI_SQLITE_DB": str(db)})
    assert result.code == 0, result.stderr
    assert result.stdout == "Bob and Ada.\n"
    names = {t["function"]["name"] for t in server.requests[0].body["tools"]}
    assert {"sqlite_query", "sqlite_schema", "get_weather", "list_files", "read_file"} <= names
    message = server.requests[1].body["messages"][-1]
    assert message["role"] == "tool" and message["tool_call_id"] == "q1"
    assert json.loads(message["content"]) == {
        "columns": ["name", "age"], "rows": [["Bob", 12], ["Ada", 36]], "truncated": False}
