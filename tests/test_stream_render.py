"""The streaming Markdown renderer: same output as rendering at once, linear cost, safe text."""

from __future__ import annotations

import io
import random

import pytest
from rich.console import Console
from rich.markdown import Markdown

import agentcli.ui.stream as stream
from agentcli.events import ReplyDone, TextDelta, ToolFinished, ToolRecord
from agentcli.messages import ToolCall
from agentcli.ui.safe_text import visible
from agentcli.ui.stream import BlockSplitter, MarkdownStream, TurnView, chunks, markdown


def console(height: int = 25) -> Console:
    return Console(file=io.StringIO(), width=60, force_terminal=False, height=height)


def at_once(text: str) -> str:
    out = console()
    out.print(markdown(visible(text, keep_newlines=True)))
    return out.file.getvalue()


def streamed(text: str, size: int) -> str:
    out = console()
    renderer = MarkdownStream(out, live=False)
    for piece in chunks(text, size):
        renderer.feed(piece)
    renderer.close()
    return out.file.getvalue()


DOCUMENTS = [
    "Hello **world**.\n\nSecond paragraph with `code`.\n",
    "# Title\n\nIntro.\n\n## Sub\n\n- a\n- b\n\n- c\n\n1. one\n\n2. two\n\n10. ten\n\nAfter.\n",
    "Text\n\n```python\ndef f():\n\n    return 1\n\n\nx = f()\n```\n\nAfter code.\n",
    "para\n\n---\n\npara2\n\n***\n\n> quote\n> more\n\n> second quote\n",
    "| a | b |\n|---|---|\n| 1 | 2 |\n\ntext after the table",
    "- item\n\n  continued in the item\n\n- item 2\n\n      indented code in the item\n\nend",
    "````\n```\ninner\n```\n\nstill code\n````\n\nout",
    "~~~\ncode\n\n```\nnot a closing fence\n~~~\n\ndone",
    "Setext\n======\n\ntext\n\n    indented code\n\n    more code\n\nend",
    "no trailing newline at all",
    "1) a\n2) b\n\n3) c\n\nThen a list:\n\n* x\n\n* y\n",
    "hard  \nbreak\n\n\n\n\nmany blank lines\n",
    "- a\n- b\nlazy continuation\n\n- c\n",
    "```\nunclosed fence\n\nstill code\n",
]


@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize("size", [1, 3, 7, 10_000])
def test_streamed_output_equals_rendering_at_once(document, size):
    assert streamed(document, size) == at_once(document)


PIECES = ["para **b** text", "# H1", "## H2 *x*", "- a\n- b", "1. x\n2. y", "* s", "10. ten",
          "```\ncode\n\nmore\n```", "~~~py\nx=1\n~~~", "---", "> q\n> r",
          "| a | b |\n|---|---|\n| 1 | 2 |", "    indented", "  - indented item", "text\n===",
          "<b>html</b>", "`inline` end", "- item\n\n  cont", "> quote\n\n> q2", "1) p", "***", "a  \nb"]


def test_random_documents_in_random_pieces_match_rendering_at_once():
    rng = random.Random(7)
    for _ in range(400):
        document = "".join(rng.choice(PIECES) + "\n" * rng.randint(1, 3)
                           for _ in range(rng.randint(1, 6)))
        size = rng.choice([1, 2, 5, 17])
        assert streamed(document, size) == at_once(document), (document, size)


def test_the_documented_difference_link_definitions_apply_within_their_block():
    document = "see [the docs][d]\n\n[d]: http://example.com\n"
    assert "example.com" in at_once(document)
    assert "[the docs][d]" in streamed(document, 3)


def test_a_code_fence_split_over_many_tokens_renders_as_code():
    code = "```python\nfor i in range(3):\n\n    print(i)\n```\n\nafter"
    out = streamed(code, 1)
    assert "for i in range(3):" in out and "print(i)" in out and "```" not in out
    assert out == at_once(code)


def test_model_text_is_never_markup_and_controls_are_escaped():
    hostile = "[link=http://evil]click[/link] an unbalanced [/bold] \x1b]0;title\x07 \u202eevil\r\n"
    out = streamed(hostile, 2)
    assert "[link=http://evil]click[/link]" in out and "[/bold]" in out
    assert "\x1b" not in out and "\u202e" not in out and "\r" not in out
    assert "\\u001b]0;title\\u0007" in out and "\\u202e" in out


def test_links_show_their_address():
    assert "(http://example.com)" in streamed("[harmless](http://example.com)", 4)


class Counting(Markdown):
    """Markdown that counts the characters it is asked to render."""

    total = 0

    def __init__(self, text: str, **options: object) -> None:
        Counting.total += len(text)
        super().__init__(text, **options)  # type: ignore[arg-type]


UNIT = ("## Part\n\nSome *text* with `code` and a [link](http://x). " * 3
        + "\n\n- one\n- two\n\n```python\nfor i in range(3):\n    print(i)\n```\n\n")


def rendered_characters(length: int, *, preview_every_token: bool, text: str = UNIT) -> int:
    document = (text * (length // len(text) + 1))[:length]
    out = console(height=30)
    renderer = MarkdownStream(out, live=False)
    Counting.total = 0
    for number, piece in enumerate(chunks(document, 4)):
        renderer.feed(piece)
        if preview_every_token and number % 5 == 0:  # a live refresh, far more often than 8/s
            out.render_lines(renderer, out.options)
    renderer.close()
    return Counting.total


@pytest.mark.parametrize("preview_every_token", [False, True])
@pytest.mark.parametrize("text", [UNIT, "```\n" + "x = 1  # one long code block\n" * 10_000])
def test_rendering_cost_grows_linearly(monkeypatch, preview_every_token, text):
    monkeypatch.setattr(stream, "Markdown", Counting)
    small = rendered_characters(5_000, preview_every_token=preview_every_token, text=text)
    large = rendered_characters(20_000, preview_every_token=preview_every_token, text=text)
    assert 3.5 < large / small < 4.5, (small, large)


def test_without_previews_every_character_is_rendered_once(monkeypatch):
    monkeypatch.setattr(stream, "Markdown", Counting)
    assert rendered_characters(20_000, preview_every_token=False) <= 20_000


def test_the_live_preview_shows_only_the_tail_of_a_long_block():
    splitter = BlockSplitter()
    splitter.feed("```\n" + "".join(f"line {i}\n" for i in range(1000)))
    tail = splitter.tail(10)
    assert tail.startswith("```\n") and "line 999" in tail and "line 900" not in tail
    assert len(splitter.tail(10, max_chars=50)) < 60


def test_the_preview_keeps_a_finished_paragraph_apart_from_the_next_one():
    out = console()
    renderer = MarkdownStream(out, live=False)
    renderer.feed("The first paragraph.\n\nThe second one is still comi")  # first not printed yet
    preview = ["".join(s.text for s in line).rstrip() for line in out.render_lines(renderer)]
    assert preview == ["The first paragraph.", "", "The second one is still comi"]


def test_the_preview_starts_where_the_block_will_be_printed():
    out = console()
    renderer = MarkdownStream(out, live=False)
    renderer.feed("The first paragraph.\n\nThe second\none is still comi")  # the first printed
    preview = ["".join(s.text for s in line).rstrip() for line in out.render_lines(renderer)]
    assert preview == ["", "The second one is still comi"]  # after the blank line to come
    renderer.close()
    assert [line.rstrip() for line in out.file.getvalue().splitlines()[1:]] == preview


def test_turn_view_prints_answers_and_tool_lines():
    out = console()
    view = TurnView(out, live=False)
    view.start()
    view(TextDelta("Hello *there*"))
    view(ReplyDone("Hello *there*", [ToolCall(id="c1", name="calculator", arguments="{}")], "tool_calls"))
    record = ToolRecord("c1", "calculator", {"expression": "1+1"}, result="2")
    record.output = "printed by the plugin\x1b[2J"
    view(ToolFinished(record))
    view(TextDelta("Done."))
    view.close()
    text = out.file.getvalue()
    assert "Hello there" in text and "calculator" in text and "→ 2" in text and "Done." in text
    assert "plugin output" in text and "printed by the plugin\\u001b[2J" in text
    assert text.index("Hello") < text.index("calculator") < text.index("Done.")
