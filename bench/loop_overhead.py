"""The agent loop's own cost per model round trip, against the raw openai SDK.

Both talk to the same loopback server answering at once with a short streamed
text reply; the difference is what agentcli adds (conversation, validation,
events, provider normalisation).
"""

from __future__ import annotations

import openai
from common import time_interleaved
from openai_server import OpenAIServer, text

from agentcli.agent import Agent, Limits
from agentcli.config import Settings
from agentcli.conversation import Conversation
from agentcli.events import Decision
from agentcli.providers import ChatProvider
from agentcli.tools.builtins import builtin_tools
from agentcli.tools.registry import ToolRegistry

RUNS = 200


def main() -> list[tuple[str, str]]:
    with OpenAIServer() as server:
        raw_client = openai.OpenAI(api_key="x", base_url=server.base_url, max_retries=0)
        registry = ToolRegistry()
        registry.extend(builtin_tools())
        tools = registry.schemas()

        def raw() -> None:
            server.enqueue(text("The answer is 42."))
            stream = raw_client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "q"}], tools=tools, stream=True,
                stream_options={"include_usage": True})
            "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

        settings = Settings(base_url=server.base_url, model="m")
        agent = Agent(ChatProvider(settings, "x"), registry, approve=lambda r: Decision(True),
                      limits=Limits())

        def loop() -> None:
            server.enqueue(text("The answer is 42."))
            agent.run_turn(Conversation(), "q")

        raw_t, loop_t = time_interleaved(raw, loop, RUNS)
    return [("raw openai SDK, one streamed round trip", f"{raw_t * 1000:.2f} ms"),
            ("agentcli Agent.run_turn, same exchange", f"{loop_t * 1000:.2f} ms = {loop_t / raw_t:.2f}x raw")]


if __name__ == "__main__":
    for name, value in main():
        print(f"{name}: {value}")
