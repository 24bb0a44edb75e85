"""The exception tree of agentcli.

Every failure a user can meet is an ``AgentCLIError``; the CLI turns it into
one line on stderr and the exit code it carries. Nothing in this module
imports the UI.

    AgentCLIError                 exit 1 unless said otherwise
     ├── ConfigError              exit 2: bad TOML, unknown key, wrong type
     ├── UsageError               exit 2: bad flags or arguments
     ├── ModelError               the model server failed us
     │    ├── AuthError           401/403: the key is missing or wrong
     │    ├── RateLimited         429 after the retries ran out
     │    ├── ModelTimeout        no answer in time
     │    ├── ModelConnectionError server unreachable
     │    ├── StreamError         the stream stopped before it finished
     │    ├── MalformedReply      a chunk or reply of the wrong shape
     │    └── TruncatedReply      the reply hit the token limit inside a tool call
     ├── ToolError                a tool could not be run
     │    ├── ToolNotFound
     │    └── InvalidArguments
     ├── PluginLoadError          a tools.d file could not be loaded
     ├── SessionError             a saved session is missing or corrupt
     ├── ContextTooLarge          the request cannot be made to fit context_window
     ├── MaxStepsReached          exit 3: the loop ran out of steps
     ├── SchemaMismatch           exit 4: the answer did not match --schema
     └── Interrupted              exit 130: Ctrl-C
"""

from __future__ import annotations

from typing import Any


class AgentCLIError(Exception):
    """Base of every error agentcli reports to a user."""

    exit_code: int = 1


class ConfigError(AgentCLIError):
    """The configuration is invalid (file, key, type or TOML syntax)."""

    exit_code = 2


class UsageError(AgentCLIError):
    """The command line asks for something that cannot be done."""

    exit_code = 2


class ModelError(AgentCLIError):
    """The model server returned an error or could not be reached."""


class AuthError(ModelError):
    """The server refused the API key."""


class RateLimited(ModelError):
    """The server kept answering 429 after every retry."""


class ModelTimeout(ModelError):
    """The server did not answer in time."""


class ModelConnectionError(ModelError):
    """The server could not be reached."""


class StreamError(ModelError):
    """The stream ended before the server said it was done."""


class MalformedReply(ModelError):
    """The server sent a chunk or a reply whose shape is wrong (a number where
    text belongs, a string where a list belongs, not JSON at all)."""


class TruncatedReply(ModelError):
    """The reply was cut by the token limit in the middle of a tool call."""


class ToolError(AgentCLIError):
    """A tool call could not be carried out; the message goes to the model."""


class ToolNotFound(ToolError):
    """The model asked for a tool that does not exist."""


class InvalidArguments(ToolError):
    """The arguments do not parse or do not match the tool's schema."""


class PluginLoadError(AgentCLIError):
    """A plugin file could not be imported; carries ``path:line: message``."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")


class SessionError(AgentCLIError):
    """A saved session is missing, corrupt or cannot be written."""


class NoSuchSession(SessionError):
    """The session named on the command line does not exist: a usage error."""

    exit_code = 2


class ContextTooLarge(AgentCLIError):
    """Even shortened, the request would not fit the model's context window."""


class MaxStepsReached(AgentCLIError):
    """The model kept calling tools past ``max_steps``."""

    exit_code = 3
    result: Any  # the TurnResult so far, set where it is raised


class SchemaMismatch(AgentCLIError):
    """The answer did not match ``--schema``, even after the repair turn."""

    exit_code = 4
    result: Any  # the merged TurnResult, set where it is raised
    errors: list[str]


class Interrupted(AgentCLIError):
    """The user pressed Ctrl-C (or cancelled at the approval question)."""

    exit_code = 130
