"""Import budgets: the entry point loads typer only; the core loads no UI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from openai_server import Call, text, tool_calls

HTTP = ("httpx", "httpcore", "httpx2", "httpcore2", "agentcli.tools.http", "agentcli.tools.netguard")
REALTIME = ("websockets", "agentcli.providers.realtime", "openai.resources.realtime")
PAGES = ("lxml", "lxml_html_clean", "readability", "markdownify", "bs4", "chardet")
HEAVY = ("openai", "rich", "prompt_toolkit", "pydantic", "mcp", "agentcli.tools", *HTTP, *REALTIME,
         *PAGES)
UI_AND_SDK = ("openai", "rich", "prompt_toolkit", "mcp", "agentcli.tools", *HTTP, *PAGES)


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def roots(modules: set[str], names: tuple[str, ...]) -> set[str]:
    return {m for m in modules if any(m == n or m.startswith(n + ".") for n in names)}


def after_cli(*argv: str) -> set[str]:
    code = ("import sys\nfrom agentcli.cli import app\n"
            f"sys.argv = ['agentcli', *{list(argv)!r}]\n"
            "try:\n    app()\nexcept SystemExit:\n    pass")
    return loaded_after(code)


def command_modules(*argv: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the command piped (a fresh interpreter); its result without the last stderr
    line, and the modules it had loaded at exit (that line)."""
    code = ("import atexit, json, sys\n"
            "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
            "from agentcli.cli import main\nsys.argv[0] = 'agentcli'\nmain()")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    *lines, modules = done.stderr.splitlines()
    done.stderr = "".join(line + "\n" for line in lines)
    return done, set(json.loads(modules))


def test_version_and_help_import_nothing_heavy():
    for argv in (["--version"], ["--help"]):
        assert roots(after_cli(*argv), HEAVY) == set(), argv


def test_command_help_loads_no_sdk_and_no_ui():
    assert roots(after_cli("run", "--help"), HEAVY) == set()


def test_a_piped_run_loads_no_ui(home, server, run_args):
    # a script's run (stderr not a terminal, -y): the tool line is plain text, written
    # without rich; prompt_toolkit waits for a question; one HTTP stack
    server.enqueue(tool_calls(Call("calculator", {"expression": "17*23"})), text("391"))
    done, modules = command_modules("run", "-y", *run_args, "what is 17*23")
    assert done.stdout == "391\n" and done.stderr.startswith("✓ calculator {")
    assert roots(modules, ("rich", "prompt_toolkit", "httpcore", "httpx")) == set()
    # api = "chat" (the default): the realtime client and websockets stay unloaded
    assert roots(modules, REALTIME) == set()
    assert roots(modules, PAGES) == set()  # web_fetch offered, not called


def test_the_core_imports_no_ui():
    modules = loaded_after("import agentcli.agent, agentcli.config, agentcli.sessions")
    assert roots(modules, ("typer", "rich", "prompt_toolkit")) == set()


def test_plugin_api_is_importable_from_the_package():
    modules = loaded_after("from agentcli import tool\nassert callable(tool)")
    assert roots(modules, ("rich", "typer", "openai", "prompt_toolkit")) == set()


def test_an_http_tool_call_loads_one_http_stack():
    # the openai SDK runs on httpx2/httpcore2; the HTTP tools must not load a second stack
    tests = str(Path(__file__).parent)
    code = (f"import sys\nsys.path.insert(0, {tests!r})\nimport openai\n"
            "openai.OpenAI(api_key='x', base_url='http://127.0.0.1:9/v1')\n"
            "from http_server import LoopbackServer\n"
            "from agentcli.config import HttpSettings\n"
            "from agentcli.tools.http import http_tools\n"
            "with LoopbackServer() as srv:\n"
            "    config = HttpSettings(allow_hosts=[f'127.0.0.1:{srv.port}'])\n"
            "    get = {t.name: t for t in http_tools(config)}['http_get']\n"
            "    assert get(**get.validate({'url': srv.url('/text')})).startswith('HTTP 200')")
    modules = loaded_after(code)
    assert "httpcore2" in modules
    assert roots(modules, ("httpx", "httpcore")) == set()


def test_the_page_parsers_load_on_the_first_web_fetch_only():
    tests = str(Path(__file__).parent)
    code = (f"import sys, json\nsys.path.insert(0, {tests!r})\n"
            "from http_server import LoopbackServer\n"
            "from agentcli.config import HttpSettings\n"
            "from agentcli.tools.http import http_tools\n"
            "with LoopbackServer() as srv:\n"
            "    config = HttpSettings(allow_hosts=[f'127.0.0.1:{srv.port}'])\n"
            "    tools = {t.name: t for t in http_tools(config)}\n"
            "    get, fetch = tools['http_get'], tools['web_fetch']\n"
            "    assert get(**get.validate({'url': srv.url('/page?name=article.html')}))\n"
            "    print(json.dumps(sorted(sys.modules)))\n"
            "    url = srv.url('/page?name=article.html')\n"
            "    assert '# Why the Night' in fetch(**fetch.validate({'url': url}))")
    code += "\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, modules = (set(json.loads(line)) for line in out.stdout.splitlines())
    assert roots(before, PAGES) == set()
    assert {"lxml", "readability", "markdownify"} <= {m.split(".")[0] for m in modules}
    assert roots(modules, ("httpx", "httpcore")) == set()


def test_the_mcp_sdk_loads_only_when_a_server_is_configured(home):
    for argv in (["tools", "list"], ["mcp", "list"], ["mcp", "--help"], ["mcp", "serve", "--help"]):
        assert roots(after_cli(*argv), ("mcp", "agentcli.mcp")) == set(), argv
    config = home / "config" / "agentcli" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[mcp.servers.x]\ncommand = "no-such-mcp-command"\n')
    assert "mcp" in after_cli("tools", "list")


def parsed_run(*argv: str) -> tuple[dict[str, object], bool]:
    """``run``'s parameters as typer hands them over, and whether pydantic was loaded."""
    code = ("import json, sys\nfrom agentcli.cli import app\nimport typer.main\n"
            "command = typer.main.get_command(app).commands['run']\n"
            f"ctx = command.make_context('run', {list(argv)!r})\n"
            "print(json.dumps(ctx.params, default=str))\n"
            "print(json.dumps('pydantic' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    params, loaded = out.stdout.strip().splitlines()[-2:]
    return json.loads(params), json.loads(loaded)


def test_text_options_are_parsed_without_pydantic():
    # typer would build a pydantic adapter for each of run's parameters, given or not
    params, loaded = parsed_run("-m", "m", "--base-url", "http://x/v1", "what is 2+2")
    assert params["model"] == "m" and params["query"] == "what is 2+2"
    assert params["max_steps"] is None and params["config"] is None and params["yes"] is False
    assert params["tools_dir"] == []
    assert loaded is False
    params, _ = parsed_run("--max-steps", "3", "--tools-dir", "a", "--tools-dir", "b", "q")
    assert params["max_steps"] == 3 and params["tools_dir"] == ["a", "b"]


def test_the_batch_api_backend_loads_only_when_chosen():
    # the local batch backend never imports the Batch API driver
    modules = loaded_after("import agentcli.commands.batch")
    assert {"agentcli.batch_api", "agentcli.batch_state"} & modules == set()


def test_doctor_loads_no_ui_when_piped(home, server):
    # its help loads no SDK; piped, the report is plain text: no rich, no prompt_toolkit,
    # no MCP, and the openai SDK's HTTP stack only
    assert roots(after_cli("doctor", "--help"), UI_AND_SDK) == set()
    server.responder = lambda request: text("ok")
    done, modules = command_modules("doctor", "--base-url", server.base_url)
    assert done.returncode == 1 and "no usable tool call came back" in done.stdout
    assert roots(modules, ("rich", "prompt_toolkit", "mcp", "httpcore", "httpx")) == set()


def test_chat_shows_its_prompt_before_loading_the_sdk_tools_and_mcp(home, server):
    # what chat does before its prompt (trust, settings, the session, the prompt itself)
    # loads no SDK, tool, MCP, event, rich or pydantic module, even with an MCP server
    # configured (settings and the conversation are plain dataclasses):
    # they load in the background once the prompt is up (chat's console makes rich on
    # first use for anything but simple lines)
    config = home / "config" / "agentcli" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[mcp.servers.files]\ncommand = "no-such-mcp-server-command"\n')
    code = ("from agentcli import paths\n"
            "from agentcli.commands.chat import ChatOptions, ChatSession\n"
            "from agentcli.ui.console import stdout_console\n"
            "from agentcli.ui.repl import ChatCompleter, Prompt\n"
            f"opts = ChatOptions(base_url={server.base_url!r}, model='test-model')\n"
            "chat = ChatSession.open(opts, stdout_console())\n"
            "Prompt(paths.history_file(), ChatCompleter(chat.tool_names, chat.session_ids),"
            " chat.toolbar)\n"
            "assert 'test-model' in chat.toolbar() and chat.tool_names() == []\n")
    late = ("openai", "mcp", "rich", "pydantic", "agentcli.agent", "agentcli.events", "agentcli.tools",
            "agentcli.ui.approve", "agentcli.mcp", *HTTP, *REALTIME, *PAGES)
    assert roots(loaded_after(code), late) == set()


COLLECTOR_PLUGIN = '''import gc, json
from agentcli import tool

@tool(policy="auto")
def collector_state() -> str:
    """Whether the cycle collector runs, and how many objects start-up froze."""
    return json.dumps({"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()})
'''


def test_the_cycle_collector_is_paused_for_start_up_only(home, server, run_args):
    # start-up runs without the cycle collector (agentcli.collector); by the time the
    # model's first call runs, what start-up made is frozen and collection is back on
    tools = home / "config" / "agentcli" / "tools.d"
    tools.mkdir(parents=True)
    (tools / "collector_state.py").write_text(COLLECTOR_PLUGIN)
    server.enqueue(tool_calls(Call("collector_state", {})), text("done"))
    done, _ = command_modules("run", *run_args, "how is the collector?")
    assert done.returncode == 0, done.stderr
    state = json.loads(server.requests[1].body["messages"][-1]["content"])
    assert state["enabled"] is True
    assert state["frozen"] > 10_000  # the SDK's models and the rest of start-up


def test_the_conversation_loads_pydantic_only_to_read_a_saved_session(tmp_path):
    # the conversation's data is plain dataclasses; pydantic validates a session file
    # when one is read, and a corrupt one is still refused with a clear error
    assert "pydantic" not in loaded_after("import agentcli.conversation, agentcli.context")
    code = (f"from pathlib import Path\nfrom agentcli.conversation import Conversation\n"
            "from agentcli.errors import SessionError\nfrom agentcli.messages import Message\n"
            "from agentcli.sessions import SessionStore\nimport sys\n"
            f"store = SessionStore(Path({str(tmp_path)!r}))\n"
            "conv = Conversation(id='good')\nconv.add(Message(role='user', content='hi'))\n"
            "store.save(conv)\n"
            "print('pydantic' in sys.modules)\n"
            "assert store.load('good').messages == conv.messages\n"
            "print('pydantic' in sys.modules)\n"
            "Path(store.directory, 'bad.json').write_text('{\"messages\": [{\"role\": 5}]}')\n"
            "try:\n    store.load('bad')\nexcept SessionError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, error = out.stdout.splitlines()[:3]
    assert (before, after) == ("False", "True")
    assert "bad.json: the session file is corrupt" in error


def test_settings_are_loaded_and_validated_without_pydantic(home):
    # every kind of table is walked: tools and limits, hooks, MCP servers, profiles
    config = home / "config" / "agentcli" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('profile = "p"\n[profiles.p]\nmodel = "m"\ntemperature = 0.5\n'
                      '[tools]\ntimeout = 5\n[tools.limits.calculator]\nmax_calls_per_minute = 9\n'
                      '[[hooks.pre_tool]]\ncommand = ["true"]\n'
                      '[mcp.servers.x]\ncommand = "no-such-mcp-command"\n')
    code = ("import agentcli.config as c\nsettings = c.load().settings\n"
            "assert settings.model == 'm' and settings.tools.limits['calculator']"
            ".max_calls_per_minute == 9")
    assert "pydantic" not in loaded_after(code)


SHOWN = '''import json, sys
import agentcli.commands.chat as chat
start = chat.Startup.start

def shown(self):  # called once the prompt is on the screen
    with open({path!r}, "w") as out:
        json.dump(sorted(sys.modules), out)
    start(self)

chat.Startup.start = shown
sys.argv[0] = "agentcli"
from agentcli.cli import main
main()
'''


def test_the_real_chat_loads_nothing_heavy_before_its_prompt(home, server):
    # the whole command in a pseudo-terminal: the modules loaded when the prompt is drawn
    import pexpect

    dump = home / "at-prompt.json"
    config = home / "config" / "agentcli" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[mcp.servers.files]\ncommand = "no-such-mcp-server-command"\n')
    # as a user's shell starts it: no exported COLUMNS or colour settings, which would
    # hand even the banner to rich (other tests in this process may have set them)
    steering = ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
    env = {k: v for k, v in os.environ.items() if k not in steering}
    env.update(TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")
    child = pexpect.spawn(sys.executable, ["-c", SHOWN.format(path=str(dump)), "chat",
                                           "--base-url", server.base_url, "-m", "test-model"],
                          env=env, cwd=str(home / "work"), encoding="utf-8", timeout=20,
                          dimensions=(40, 100))
    child.expect("agentcli>")
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    at_prompt = set(json.loads(dump.read_text()))
    assert "prompt_toolkit" in at_prompt  # the dump is the prompt's moment
    assert roots(at_prompt, ("openai", "mcp", "rich", "pydantic", "agentcli.agent",
                             "agentcli.events", "agentcli.tools", "agentcli.ui.approve",
                             *HTTP, *REALTIME, *PAGES)) == set()
