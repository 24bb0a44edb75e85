"""The command line: typer parses flags and hands over to ``agentcli.commands``.

This module imports typer only. Everything else (openai, rich, pydantic,
prompt_toolkit, plugins) is imported by the command that needs it, so that
``agentcli --version`` and ``--help`` start fast.
"""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from . import __version__, collector

if TYPE_CHECKING:
    from .commands.common import CommonOptions


def _skip_needless_coercion() -> None:
    """Let typer skip building a pydantic TypeAdapter where it would not use one.

    typer builds one adapter per parameter of the invoked command before it
    looks at the value, even for an option that was not given (its value is
    None, which it then returns as is) or a ``str`` option given a string.
    That costs several milliseconds per parameter at every start. Both cases
    are answered here exactly as typer would answer them; every other value
    goes through typer's own coercion.
    """
    core = getattr(typer, "core", None)
    parameter = getattr(core, "_TyperParameter", None)
    original = getattr(parameter, "process_value", None)
    if parameter is None or original is None or getattr(original, "_agentcli_fast", False):
        return

    def process_value(self: Any, ctx: Any, value: Any) -> Any:
        annotation = getattr(getattr(self, "type_descriptor", None), "annotation", None)
        if value is None:
            value = () if (self.multiple or self.nargs == -1) else None
        elif not (annotation is str and type(value) is str):
            return original(self, ctx, value)
        if self.required and self.value_is_missing(value):
            return original(self, ctx, value)  # typer's own error for a missing value
        if self.callback is not None:
            value = self.callback(ctx, self, value)
        return value

    process_value._agentcli_fast = True  # type: ignore[attr-defined]
    parameter.process_value = process_value


_skip_needless_coercion()

app = typer.Typer(name="agentcli", no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="A terminal agent shell for tool-calling models (any OpenAI-compatible server).")
config_app = typer.Typer(no_args_is_help=True, help="Show or create the configuration.")
app.add_typer(config_app, name="config")

Model = Annotated[str | None, typer.Option("-m", "--model", metavar="NAME", help="Model name.")]
BaseUrl = Annotated[str | None, typer.Option("--base-url", metavar="URL", help="OpenAI-compatible API base URL.")]
Profile = Annotated[str | None, typer.Option("--profile", metavar="NAME", help="Profile from the config file.")]
ConfigFile = Annotated[Path | None, typer.Option("--config", metavar="FILE", help="Config file (also $AGENTCLI_CONFIG).")]
ToolsDir = Annotated[list[Path] | None, typer.Option("--tools-dir", metavar="DIR", help="Extra plugin directory (repeatable).")]
NoTools = Annotated[bool, typer.Option("--no-tools", help="Offer no tools to the model.")]
Yes = Annotated[bool, typer.Option("-y", "--yes", help="Approve every call that would ask.")]
ToolChoice = Annotated[str | None, typer.Option("--tool-choice", metavar="CHOICE", help="auto, none, required, or a tool name.")]
MaxSteps = Annotated[int | None, typer.Option("--max-steps", metavar="N", min=1, help="Model round trips per turn (default 10).")]
System = Annotated[str | None, typer.Option("--system", metavar="TEXT", help="System prompt.")]
Verbose = Annotated[bool, typer.Option("-v", "--verbose", help="Show details and tracebacks.")]
PolicyFile = Annotated[Path | None, typer.Option("--policy", metavar="FILE", help="Rules file ([[tools.rules]]); a call no rule allows is denied, --yes or not.")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Only the answer and errors.")]
Schema = Annotated[str | None, typer.Option("--schema", metavar="SCHEMA", help="The answer must be JSON matching this JSON Schema (a file, or inline JSON); exit 4 if it does not.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"agentcli {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False) -> None:
    """A terminal agent shell for tool-calling models."""


@app.command()
def run(query: Annotated[str | None, typer.Argument(metavar="QUERY", help="The task; '-' or piped stdin supplies or extends it.")] = None,
        model: Model = None, base_url: BaseUrl = None, profile: Profile = None,
        config: ConfigFile = None, tools_dir: ToolsDir = None, no_tools: NoTools = False,
        yes: Yes = False, tool_choice: ToolChoice = None, max_steps: MaxSteps = None,
        system: System = None, verbose: Verbose = False, quiet: Quiet = False,
        json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object (with an \"error\" field when the run fails).")] = False,
        no_stream: Annotated[bool, typer.Option("--no-stream", help="Ask for the whole reply at once.")] = False,
        session: Annotated[str | None, typer.Option("--session", metavar="ID", help="Continue a saved session.")] = None,
        save: Annotated[bool, typer.Option("--save", help="Save the conversation.")] = False,
        schema: Schema = None, policy: PolicyFile = None) -> None:
    """Run one task and print the answer (stdout carries only the answer)."""
    from .commands.run import RunOptions, run_command

    opts = RunOptions(model=model, base_url=base_url, profile=profile, config=config,
                      tools_dirs=tools_dir or [], no_tools=no_tools, yes=yes,
                      tool_choice=tool_choice, max_steps=max_steps, system=system,
                      verbose=verbose, quiet=quiet, query=query, json=json_out,
                      no_stream=no_stream, session=session, save=save, schema=schema,
                      policy=policy)
    raise typer.Exit(run_command(opts))


@app.command()
def batch(input_file: Annotated[Path, typer.Argument(metavar="INPUT.jsonl", help="One task per line: a JSON string, or {\"id\", \"query\", \"system\", \"model\", \"vars\"}.")],
          output: Annotated[Path | None, typer.Option("-o", "--output", metavar="OUT.jsonl", help="Append results here (default: stdout); ids already in it are skipped.")] = None,
          prompt: Annotated[str | None, typer.Option("--prompt", metavar="TEMPLATE", help="Query template; {name} is filled from each line's vars.")] = None,
          parallel: Annotated[int, typer.Option("--parallel", metavar="N", min=1, help="Tasks run at once (default 4).")] = 4,
          schema: Schema = None,
          backend: Annotated[str, typer.Option("--backend", metavar="NAME", help="local (default): run the tasks here; openai-batch: send each step of all tasks as one OpenAI Batch API job (needs -o).")] = "local",
          model: Model = None, base_url: BaseUrl = None, profile: Profile = None,
          config: ConfigFile = None, tools_dir: ToolsDir = None, no_tools: NoTools = False,
          yes: Yes = False, tool_choice: ToolChoice = None, max_steps: MaxSteps = None,
          system: System = None, verbose: Verbose = False, quiet: Quiet = False,
          policy: PolicyFile = None) -> None:
    """Run one task per line of a JSONL file, several at once; a rerun resumes."""
    from .commands.batch import BatchOptions, batch_command

    opts = BatchOptions(model=model, base_url=base_url, profile=profile, config=config,
                        tools_dirs=tools_dir or [], no_tools=no_tools, yes=yes,
                        tool_choice=tool_choice, max_steps=max_steps, system=system,
                        verbose=verbose, quiet=quiet, input=input_file, output=output,
                        prompt=prompt, parallel=parallel, schema=schema, policy=policy,
                        backend=backend)
    raise typer.Exit(batch_command(opts))


@config_app.command("show")
def config_show(config: ConfigFile = None, profile: Profile = None) -> None:
    """The effective configuration and where each value comes from (secrets redacted)."""
    from .commands.config_cmd import show

    raise typer.Exit(show(config, profile))


@config_app.command("path")
def config_path() -> None:
    """Where the configuration files are looked for."""
    from .commands.config_cmd import show_paths

    raise typer.Exit(show_paths())


@config_app.command("init")
def config_init(force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False) -> None:
    """Write a starter config file to the user's config directory."""
    from .commands.config_cmd import init

    raise typer.Exit(init(force))


tools_app = typer.Typer(no_args_is_help=True, help="List, inspect, call and check tools.")
app.add_typer(tools_app, name="tools")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _tool_opts(config: Path | None, profile: str | None, tools_dir: list[Path] | None,
               no_tools: bool, yes: bool = False, verbose: bool = False,
               policy: Path | None = None) -> "CommonOptions":
    from .commands.common import CommonOptions

    return CommonOptions(config=config, profile=profile, tools_dirs=tools_dir or [],
                         no_tools=no_tools, yes=yes, verbose=verbose, policy=policy)


@tools_app.command("list")
def tools_list(as_json: JsonFlag = False, config: ConfigFile = None, profile: Profile = None,
               tools_dir: ToolsDir = None, no_tools: NoTools = False) -> None:
    """Every tool: name, policy, one-line description and source."""
    from .commands.tools_cmd import list_tools

    raise typer.Exit(list_tools(_tool_opts(config, profile, tools_dir, no_tools), as_json))


@tools_app.command("show")
def tools_show(name: Annotated[str, typer.Argument(metavar="NAME")], config: ConfigFile = None,
               profile: Profile = None, tools_dir: ToolsDir = None,
               no_tools: NoTools = False) -> None:
    """The exact JSON schema sent to the model, and its size in tokens."""
    from .commands.tools_cmd import show_tool

    raise typer.Exit(show_tool(_tool_opts(config, profile, tools_dir, no_tools), name))


@tools_app.command("call")
def tools_call(name: Annotated[str, typer.Argument(metavar="NAME")],
               arguments: Annotated[list[str] | None, typer.Argument(
                   metavar="[JSON | KEY=VALUE ...]", help="One JSON object or key=value pairs.")] = None,
               yes: Yes = False, config: ConfigFile = None, profile: Profile = None,
               tools_dir: ToolsDir = None, no_tools: NoTools = False,
               verbose: Verbose = False, policy: PolicyFile = None) -> None:
    """Run one tool without a model, through the same validation, approval and limits."""
    from .commands.tools_cmd import call_tool

    opts = _tool_opts(config, profile, tools_dir, no_tools, yes=yes, verbose=verbose,
                      policy=policy)
    raise typer.Exit(call_tool(opts, name, arguments or []))


@tools_app.command("check")
def tools_check(directory: Annotated[Path | None, typer.Argument(metavar="[DIR]")] = None,
                config: ConfigFile = None, profile: Profile = None,
                tools_dir: ToolsDir = None, no_tools: NoTools = False,
                policy: PolicyFile = None) -> None:
    """Load every plugin file and report each problem with file:line (exit 1 if any);
    check the rules of the config and of --policy FILE (a bad rule: exit 2)."""
    from .commands.tools_cmd import check_tools

    opts = _tool_opts(config, profile, tools_dir, no_tools, policy=policy)
    raise typer.Exit(check_tools(opts, directory))


@tools_app.command("stats")
def tools_stats(as_json: JsonFlag = False) -> None:
    """Per tool, from the audit log: calls, failures, failure rate, mean and p95 duration."""
    from .commands.tools_cmd import tool_stats

    raise typer.Exit(tool_stats(as_json))


@app.command("trust")
def trust_cmd(directory: Annotated[Path | None, typer.Argument(help="Directory (default: current).")] = None,
              list_: Annotated[bool, typer.Option("--list", help="List trusted directories.")] = False,
              revoke: Annotated[Path | None, typer.Option("--revoke", help="Stop trusting DIR.")] = None) -> None:
    """Trust a directory's own tools.d and agentcli.toml (they are code and config)."""
    from .commands.config_cmd import trust_command

    raise typer.Exit(trust_command(directory, list_, revoke))


@app.command()
def chat(session_id: Annotated[str | None, typer.Argument(metavar="ID", help="The session to continue with --resume (default: the latest).")] = None,
         resume: Annotated[bool, typer.Option("--resume", help="Continue a saved session: the latest, or ID.")] = False,
         model: Model = None, base_url: BaseUrl = None, profile: Profile = None,
         config: ConfigFile = None, tools_dir: ToolsDir = None, no_tools: NoTools = False,
         yes: Yes = False, tool_choice: ToolChoice = None, max_steps: MaxSteps = None,
         system: System = None, verbose: Verbose = False, quiet: Quiet = False,
         policy: PolicyFile = None) -> None:
    """Talk with the model in an interactive REPL (/help inside for commands)."""
    from .commands.chat import ChatOptions, chat_command

    opts = ChatOptions(model=model, base_url=base_url, profile=profile, config=config,
                       tools_dirs=tools_dir or [], no_tools=no_tools, yes=yes,
                       tool_choice=tool_choice, max_steps=max_steps, system=system,
                       verbose=verbose, quiet=quiet, resume=resume, session_id=session_id,
                       policy=policy)
    raise typer.Exit(chat_command(opts))


@app.command()
def doctor(model: Model = None, base_url: BaseUrl = None, profile: Profile = None,
           config: ConfigFile = None, verbose: Verbose = False, quiet: Quiet = False,
           json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
           timeout: Annotated[float, typer.Option("--timeout", metavar="SECONDS", min=0.1, max=600, show_default=False, help="Limit for each probe request (default 20).")] = 20.0) -> None:
    """Probe a server with a few small requests: what it supports, how it deviates, and what
    agentcli does about it. Exit 0 when tool calls work, 1 otherwise."""
    from .commands.doctor import DoctorOptions, doctor_command

    opts = DoctorOptions(model=model, base_url=base_url, profile=profile, config=config,
                         verbose=verbose, quiet=quiet, json=json_out, timeout=timeout)
    raise typer.Exit(doctor_command(opts))


mcp_app = typer.Typer(no_args_is_help=True, help="MCP servers whose tools agentcli offers.")
app.add_typer(mcp_app, name="mcp")


@mcp_app.command("list")
def mcp_list(as_json: JsonFlag = False, config: ConfigFile = None, profile: Profile = None,
             verbose: Verbose = False) -> None:
    """Each configured MCP server: transport, status, tool count, start time and log path."""
    from .commands.common import CommonOptions
    from .commands.mcp_cmd import list_servers

    raise typer.Exit(list_servers(CommonOptions(config=config, profile=profile, verbose=verbose),
                                  as_json))


@mcp_app.command("serve")
def mcp_serve(allow: Annotated[list[str] | None, typer.Option("--allow", metavar="NAME", help="Serve this tool although it asks for approval and the client cannot be asked; its calls run without asking (repeatable).")] = None,
              config: ConfigFile = None, profile: Profile = None, tools_dir: ToolsDir = None,
              no_tools: NoTools = False, policy: PolicyFile = None,
              verbose: Verbose = False, quiet: Quiet = False) -> None:
    """Serve agentcli's built-in and plugin tools to an MCP client over stdio."""
    from .commands.common import CommonOptions
    from .commands.mcp_cmd import serve_tools

    opts = CommonOptions(config=config, profile=profile, tools_dirs=tools_dir or [],
                         no_tools=no_tools, policy=policy, verbose=verbose, quiet=quiet)
    raise typer.Exit(serve_tools(opts, allow or []))


sessions_app = typer.Typer(no_args_is_help=True, help="List, show, remove and export saved sessions.")
app.add_typer(sessions_app, name="sessions")
SessionId = Annotated[str, typer.Argument(metavar="ID", help="Session id (see: agentcli sessions list).")]


@sessions_app.command("list")
def sessions_list() -> None:
    """Saved sessions, newest first: id, last update, messages, first question."""
    from .commands.sessions_cmd import list_sessions

    raise typer.Exit(list_sessions())


@sessions_app.command("show")
def sessions_show(session_id: SessionId) -> None:
    """Print a saved conversation, tool calls and results included."""
    from .commands.sessions_cmd import show_session

    raise typer.Exit(show_session(session_id))


@sessions_app.command("rm")
def sessions_rm(session_id: SessionId) -> None:
    """Delete a saved session."""
    from .commands.sessions_cmd import remove_session

    raise typer.Exit(remove_session(session_id))


@sessions_app.command("export")
def sessions_export(session_id: SessionId,
                    fmt: Annotated[str, typer.Option("--format", metavar="md|json", help="Markdown transcript or the raw session JSON.")] = "md") -> None:
    """Print a session as a Markdown transcript or as JSON."""
    from .commands.sessions_cmd import export_session

    raise typer.Exit(export_session(session_id, fmt))


def main() -> None:
    collector.pause()  # until the command is set up (see agentcli.collector)
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("\nagentcli: interrupted\n")
        sys.exit(130)
