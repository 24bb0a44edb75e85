"""Streaming a long Markdown answer: time grows linearly with its length.

Renders answers of about 5,000 and 20,000 tokens (4 characters each) token by
token into a fixed-width console, with a live preview refresh every 25
tokens, and compares with re-rendering the whole answer at every refresh.
"""

from __future__ import annotations

import io
import time

from rich.console import Console
from rich.markdown import Markdown

from agentcli.ui.stream import MarkdownStream, chunks

UNIT = ("## Part\n\nSome *text* with `code` and a [link](http://x). " * 3
        + "\n\n- one\n- two\n\n```python\nfor i in range(3):\n    print(i)\n```\n\n")


def document(tokens: int) -> str:
    length = tokens * 4
    return (UNIT * (length // len(UNIT) + 1))[:length]


def console() -> Console:
    return Console(file=io.StringIO(), width=100, height=40, force_terminal=True)


def streamed(tokens: int) -> float:
    out = console()
    started = time.perf_counter()
    renderer = MarkdownStream(out, live=False)
    for number, piece in enumerate(chunks(document(tokens), 4)):
        renderer.feed(piece)
        if number % 25 == 0:
            out.render_lines(renderer, out.options)
    renderer.close()
    return time.perf_counter() - started


def naive(tokens: int) -> float:
    """Re-render everything received so far at every refresh."""
    out = console()
    text = document(tokens)
    started = time.perf_counter()
    for end in range(100, len(text) + 1, 100):
        out.render_lines(Markdown(text[:end]), out.options)
    return time.perf_counter() - started


def main() -> list[tuple[str, str]]:
    small, large = streamed(5_000), streamed(20_000)
    naive_small, naive_large = naive(500), naive(2_000)
    return [("agentcli, 5,000-token answer", f"{small:.2f} s"),
            ("agentcli, 20,000-token answer", f"{large:.2f} s = {large / small:.1f}x for 4x the text"),
            ("re-render everything, 500 tokens", f"{naive_small:.2f} s"),
            ("re-render everything, 2,000 tokens",
             f"{naive_large:.2f} s = {naive_large / naive_small:.1f}x for 4x the text")]


if __name__ == "__main__":
    for name, value in main():
        print(f"{name}: {value}")
