"""Example plugin: read-only SQL against one SQLite database chosen by the user.

The database file comes from the environment variable ``AGENTCLI_SQLITE_DB``,
never from the model: the model writes queries, the user decides which file
they run against.

Writes are impossible by construction, not by inspecting the SQL text. Three
independent layers:

1. The file is opened through a URI with ``mode=ro``: SQLite itself holds it
   read-only.
2. ``PRAGMA query_only = ON`` is set before the model's SQL is seen.
3. An authorizer (``set_authorizer``) allows only reading tables, SELECT,
   recursive CTEs and ordinary SQL functions, and denies every other action
   (INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, ATTACH, PRAGMA, transactions,
   ``load_extension``...). A denied statement fails while it is prepared, so
   nothing of it runs. This layer is the one that matters most: ``mode=ro``
   and ``query_only`` protect the database file, but not other files
   (``ATTACH`` of a new file, ``VACUUM INTO``).

Also: one statement per call (``Connection.execute`` refuses more), a time
limit enforced from a progress handler, SQLite limits on value and SQL size
and on attached databases, a cap on rows (``max_rows`` up to 1000) and on the
size of each cell (long text cut; blobs shown as ``<blob N bytes>``).
Table-valued functions (``json_each``, ``pragma_table_info``) are refused by
the authorizer too: SQLite asks it for an UPDATE of ``sqlite_master`` when it
sets one up.

Policy: ``sqlite_schema`` is "auto" (it only shows the table definitions of a
file the user picked). ``sqlite_query`` stays at the default "ask": rows can
hold personal data, and they go to the model provider, so the user sees each
query first.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import Field

from agentcli import tool
from agentcli.errors import ToolError

DB_ENV = "AGENTCLI_SQLITE_DB"
TIME_LIMIT = 5.0  # seconds per query
MAX_ROWS = 1000
MAX_CELL = 1000  # characters of text per cell
MAX_VALUE_BYTES = 10_000_000  # SQLITE_LIMIT_LENGTH: largest string or blob
MAX_SQL = 100_000

_ALLOWED = frozenset({sqlite3.SQLITE_READ, sqlite3.SQLITE_SELECT,
                      sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE})
_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer"})
_ACTIONS = ("ALTER_TABLE ANALYZE ATTACH CREATE_INDEX CREATE_TABLE CREATE_TEMP_INDEX "
            "CREATE_TEMP_TABLE CREATE_TEMP_TRIGGER CREATE_TEMP_VIEW CREATE_TRIGGER CREATE_VIEW "
            "CREATE_VTABLE DELETE DETACH DROP_INDEX DROP_TABLE DROP_TEMP_INDEX DROP_TEMP_TABLE "
            "DROP_TEMP_TRIGGER DROP_TEMP_VIEW DROP_TRIGGER DROP_VIEW DROP_VTABLE INSERT PRAGMA "
            "REINDEX SAVEPOINT TRANSACTION UPDATE").split()
_ACTION_NAMES = {getattr(sqlite3, f"SQLITE_{a}"): a.replace("_", " ")
                 for a in _ACTIONS if hasattr(sqlite3, f"SQLITE_{a}")}
_SCHEMA_SQL = """
    SELECT type, name, sql FROM sqlite_master
    WHERE sql IS NOT NULL
    ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'view' THEN 1 ELSE 2 END, name
"""


class _Guard:
    """The authorizer and progress handler of one connection."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.deadline = time.monotonic() + limit
        self.denied: str | None = None
        self.timed_out = False

    def authorize(self, action: int, arg1: str | None, arg2: str | None,
                  db_name: str | None, trigger: str | None) -> int:
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
            return self._deny(f"the function {arg2}()")
        if action in _ALLOWED:
            return sqlite3.SQLITE_OK
        what = _ACTION_NAMES.get(action, f"action {action}")
        return self._deny(f"{what} {arg1}" if arg1 else what)

    def _deny(self, what: str) -> int:
        self.denied = self.denied or what
        return sqlite3.SQLITE_DENY

    def progress(self) -> int:
        if time.monotonic() > self.deadline:
            self.timed_out = True
            return 1  # non-zero: SQLite interrupts the statement
        return 0

    def error(self, exc: Exception) -> ToolError:
        """A message the model can act on, for an error raised under this guard."""
        if self.timed_out:
            return ToolError(f"query stopped: it ran longer than {self.limit:g} s; "
                             "add a LIMIT or a narrower WHERE clause")
        if self.denied:
            return ToolError(f"refused: {self.denied} is not allowed; this database is read-only "
                             "(one SELECT or WITH ... SELECT statement per call)")
        if "one statement at a time" in str(exc):
            return ToolError("refused: only one SQL statement per call")
        return ToolError(f"sqlite error: {exc}")


@contextmanager
def _connect() -> Iterator[tuple[sqlite3.Connection, _Guard]]:
    """A read-only, guarded connection to the database named by AGENTCLI_SQLITE_DB."""
    configured = os.environ.get(DB_ENV, "").strip()
    if not configured:
        raise ToolError(f"no database is configured: the user must set {DB_ENV} "
                        "to the path of a SQLite file")
    path = os.path.abspath(os.path.expanduser(configured))
    if not os.path.isfile(path):
        raise ToolError(f"the configured database {configured} does not exist or is not a file")
    try:
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise ToolError(f"cannot open the database: {exc}") from None
    try:
        guard = _Guard(TIME_LIMIT)
        conn.execute("PRAGMA query_only = ON")
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL)
        conn.text_factory = lambda raw: raw.decode("utf-8", errors="replace")
        conn.set_authorizer(guard.authorize)
        conn.set_progress_handler(guard.progress, 1000)
        yield conn, guard
    finally:
        conn.close()


def _cell(value: Any) -> Any:
    """One value as the model sees it: blobs summarised, long text cut."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<blob {len(bytes(value))} bytes>"
    if isinstance(value, str) and len(value) > MAX_CELL:
        return value[:MAX_CELL] + f"... [{len(value) - MAX_CELL:,} more characters]"
    return value


@tool
def sqlite_query(sql: str, params: list[str | int | float | None] | None = None,
                 max_rows: Annotated[int, Field(ge=1, le=MAX_ROWS)] = 100) -> dict:
    """Run one read-only SQL query (SELECT or WITH ... SELECT) on the user's SQLite database.
    The user chose the database file (environment variable AGENTCLI_SQLITE_DB); you cannot
    pick, open or attach another file. Writes, PRAGMA, ATTACH and extensions are refused.
    Call sqlite_schema first to see the tables. Queries are stopped after 5 seconds; long
    text is cut and blobs are shown as "<blob N bytes>".

    Args:
        sql: One SQLite SELECT statement; put values in ? placeholders rather than in the text.
        params: Values for the ? placeholders, in order.
        max_rows: Most rows to return (1-1000); "truncated" is true when there were more.
    """
    if not sql.strip():
        raise ToolError("sql is empty: give one SELECT statement")
    if len(sql) > MAX_SQL:
        raise ToolError(f"sql is too long ({len(sql):,} characters, at most {MAX_SQL:,})")
    with _connect() as (conn, guard):
        try:
            cursor = conn.execute(sql, params or [])
            rows = cursor.fetchmany(max_rows + 1) if cursor.description else []
        except (sqlite3.Error, sqlite3.Warning) as exc:
            raise guard.error(exc) from None
        columns = [d[0] for d in cursor.description or []]
    return {
        "columns": columns,
        "rows": [[_cell(v) for v in row] for row in rows[:max_rows]],
        "truncated": len(rows) > max_rows,
    }


@tool(policy="auto")
def sqlite_schema() -> str:
    """List the tables, views and indexes of the user's SQLite database with their CREATE statements.

    Use it before writing queries for sqlite_query.
    """
    with _connect() as (conn, guard):
        try:
            entries = conn.execute(_SCHEMA_SQL).fetchall()
        except sqlite3.Error as exc:
            raise guard.error(exc) from None
    if not entries:
        return "The database has no tables."
    return "\n\n".join(f"-- {kind} {name}\n{sql.strip()};" for kind, name, sql in entries)
