"""MCP tool names: SERVER__TOOL, fitted to ^[a-zA-Z0-9_-]{1,64}$ with a stable hash."""

from __future__ import annotations

import re

from agentcli.mcp.naming import tool_name

RULE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def test_a_valid_name_is_kept_as_it_is():
    assert tool_name("files", "read_file") == "files__read_file"


def test_long_names_are_cut_with_a_hash_and_stay_distinct():
    a = tool_name("server", "x" * 80 + "a")
    b = tool_name("server", "x" * 80 + "b")
    assert RULE.match(a) and RULE.match(b) and a != b
    assert a == tool_name("server", "x" * 80 + "a")  # stable from run to run
    assert a.startswith("server__xxx")


def test_characters_outside_the_rule_are_replaced_and_hashed():
    dotted, underscored = tool_name("s", "find.docs"), tool_name("s", "find_docs")
    assert RULE.match(dotted) and dotted.startswith("s__find_docs_") and dotted != underscored
    assert RULE.match(tool_name("s", "résumé/ü 🙂"))
    assert RULE.match(tool_name("s", ""))
