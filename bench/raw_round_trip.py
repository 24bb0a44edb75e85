"""The peer of ``agentcli run -y "what is 17*23"``: the same exchange written
with the openai SDK alone (one streamed tool call, the tool run, the answer).

Usage: python bench/raw_round_trip.py BASE_URL [--no-collector]

``--no-collector`` pauses the cycle collector before importing the SDK, as
agentcli does during its start-up: the same script with the same trick.
"""

import gc
import sys

if "--no-collector" in sys.argv:
    gc.disable()

import json

import openai

TOOLS = [{"type": "function", "function": {
    "name": "calculator", "description": "Evaluate an arithmetic expression.",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                   "required": ["expression"]}}}]


def ask(client: openai.OpenAI, messages: list) -> tuple[str, list]:
    text, calls = "", {}
    stream = client.chat.completions.create(model="m", messages=messages, tools=TOOLS,
                                            stream=True)
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for call in delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"id": call.id, "name": "", "arguments": ""})
            entry["name"] += call.function.name or ""
            entry["arguments"] += call.function.arguments or ""
    return text, list(calls.values())


def main() -> None:
    client = openai.OpenAI(api_key="x", base_url=sys.argv[1])
    messages = [{"role": "user", "content": "what is 17*23"}]
    while True:
        text, calls = ask(client, messages)
        if not calls:
            print(text)
            return
        messages.append({"role": "assistant", "content": text or None, "tool_calls": [
            {"id": c["id"], "type": "function",
             "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]})
        for call in calls:
            left, right = json.loads(call["arguments"])["expression"].split("*")
            messages.append({"role": "tool", "tool_call_id": call["id"],
                             "content": str(int(left) * int(right))})


if __name__ == "__main__":
    main()
