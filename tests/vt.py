"""A small terminal emulator for tests: what the user would see, scrollback included.

It interprets the output of a pseudo-terminal (text, CR, LF, backspace, CSI
cursor moves and erases; colours and modes are ignored) on a grid with
automatic wrapping, and can be resized two ways:

* ``reflow=True``, as most modern terminals (VTE, kitty, iTerm2, Windows
  Terminal, WezTerm, foot, tmux): lines that wrapped on their own are joined
  again and every line is wrapped anew at the new width; the cursor stays on
  the character it was on;
* ``reflow=False``, as xterm: each row keeps its place and is cut at the new
  width.

With ``scroll_on_clear``, erasing the screen from its top-left corner first
pushes it into the scrollback, as tmux does by default.

Either way the cursor stays on the screen, and rows pushed off the top go to
the scrollback. Wide characters are not modelled (tests use ASCII).
"""

from __future__ import annotations

import re

_CSI = re.compile(r"\x1b\[([?>=]?)([0-9;]*)([ -/]*)([@-~])")
_OSC = re.compile(r"\x1b\][^\x07\x1b]*(\x07|\x1b\\)")


class Row:
    """One row of cells; ``wrapped`` when the text went on to the next row by itself."""

    def __init__(self, cells: list[str] | None = None, wrapped: bool = False) -> None:
        self.cells = cells or []
        self.wrapped = wrapped

    def text(self) -> str:
        return "".join(self.cells).rstrip()

    def put(self, x: int, char: str) -> None:
        if len(self.cells) <= x:
            self.cells.extend(" " * (x + 1 - len(self.cells)))
        self.cells[x] = char


class Terminal:
    """A grid of ``lines`` x ``columns`` cells under its scrollback."""

    def __init__(self, lines: int, columns: int, *, scroll_on_clear: bool = False) -> None:
        self.lines, self.columns = lines, columns
        self.scroll_on_clear = scroll_on_clear  # tmux: erasing the whole screen keeps it
        self.rows = [Row() for _ in range(lines)]
        self.top = 0                  # index in rows of the screen's first row
        self.cy, self.cx = 0, 0       # cursor: absolute row, column
        self.pending = False          # a character was written in the last column
        self.autowrap = True          # DECAWM: off, text stops at the last column
        self._rest = ""

    # ---- output

    def feed(self, data: str) -> None:
        data = self._rest + data
        self._rest = ""
        i = 0
        while i < len(data):
            char = data[i]
            if char == "\x1b":
                if i + 1 >= len(data):
                    self._rest = data[i:]
                    return
                match = _CSI.match(data, i) or _OSC.match(data, i)
                if match is None and data[i + 1] in "[]":
                    self._rest = data[i:]  # an unfinished sequence: wait for the rest
                    return
                if match is not None:
                    if match.re is _CSI:
                        self._csi(match.group(1), match.group(2), match.group(4))
                    i = match.end()
                else:
                    i += 2  # ESC and one character (charset, keypad...): no effect here
                continue
            if char == "\r":
                self.cx, self.pending = 0, False
            elif char == "\n":
                self._line_feed()
            elif char == "\b":
                self.cx, self.pending = max(0, self.cx - 1), False
            elif char >= " " and char != "\x7f":
                self._print(char)
            i += 1

    def _print(self, char: str) -> None:
        if self.pending and not self.autowrap:
            self.rows[self.cy].put(self.cx, char)  # overwrites the last column
            return
        if self.pending:
            self.rows[self.cy].wrapped = True
            self.cx = 0
            self._line_feed()
        self.rows[self.cy].put(self.cx, char)
        if self.cx == self.columns - 1:
            self.pending = True
        else:
            self.cx += 1

    def _line_feed(self) -> None:
        self.pending = False
        if self.cy == self.top + self.lines - 1:
            self.rows.append(Row())
            self.top += 1
        self.cy += 1

    def _csi(self, private: str, params: str, final: str) -> None:
        if private:
            if private == "?" and params == "7":
                self.autowrap = final == "h"
            return  # other modes (cursor visibility, bracketed paste...)
        args = [int(p) if p else 0 for p in params.split(";")] if params else []
        n = max(1, args[0]) if args else 1
        first = args[0] if args else 0
        row = self.rows[self.cy]
        self.pending = False if final in "ABCDGHfJK" else self.pending
        if final == "A":
            self.cy = max(self.top, self.cy - n)
        elif final == "B":
            self.cy = min(self.top + self.lines - 1, self.cy + n)
        elif final == "C":
            self.cx = min(self.columns - 1, self.cx + n)
        elif final == "D":
            self.cx = max(0, self.cx - n)
        elif final == "G":
            self.cx = min(self.columns - 1, n - 1)
        elif final in "Hf":
            line = args[0] if args else 1
            col = args[1] if len(args) > 1 else 1
            self.cy = self.top + min(self.lines, max(1, line)) - 1
            self.cx = min(self.columns, max(1, col)) - 1
        elif final == "K":
            if first == 0:
                del row.cells[self.cx:]
                row.wrapped = False
            elif first == 1:
                row.cells[:self.cx + 1] = " " * min(len(row.cells), self.cx + 1)
            else:
                row.cells, row.wrapped = [], False
        elif final == "J":
            if self.scroll_on_clear and first in (0, 2) and (self.cy, self.cx) == (self.top, 0):
                self.rows.extend(Row() for _ in range(self.lines))  # the screen goes to the
                self.top += self.lines                              # scrollback, as tmux does
                self.cy = self.top
            elif first == 0:
                del row.cells[self.cx:]
                row.wrapped = False
                for below in self.rows[self.cy + 1:]:
                    below.cells, below.wrapped = [], False
            elif first == 1:
                for above in self.rows[self.top:self.cy]:
                    above.cells, above.wrapped = [], False
                row.cells[:self.cx + 1] = " " * min(len(row.cells), self.cx + 1)
            elif first in (2, 3):
                for each in self.rows[self.top:]:
                    each.cells, each.wrapped = [], False

    # ---- resizing

    def resize(self, lines: int, columns: int, *, reflow: bool) -> None:
        """Change the size as a terminal of either kind would."""
        if reflow and columns != self.columns:
            self._reflow(columns)
        else:
            for row in self.rows:
                if len(row.cells) > columns:
                    del row.cells[columns:]
                    row.wrapped = False
            self.cx = min(self.cx, columns - 1)
        self.columns = columns
        self._fit(lines)

    def _reflow(self, columns: int) -> None:
        logical: list[list[str]] = [[]]
        cursor = (0, 0)
        for index, row in enumerate(self.rows):
            if index == self.cy:
                cursor = (len(logical) - 1, len(logical[-1]) + self.cx)
            cells = row.cells + [" "] * (self.columns - len(row.cells)) if row.wrapped else row.cells
            logical[-1].extend(cells)
            if not row.wrapped:
                logical.append([])
        logical.pop()
        rows: list[Row] = []
        for number, cells in enumerate(logical):
            start = len(rows)
            pieces = [cells[i:i + columns] for i in range(0, len(cells), columns)] or [[]]
            rows.extend(Row(list(piece), wrapped=True) for piece in pieces)
            rows[-1].wrapped = False
            if number == cursor[0]:
                offset = cursor[1]
                self.cy, self.cx = start + offset // columns, offset % columns
                while self.cy >= len(rows):
                    rows.append(Row())
                if self.cy > start and rows[self.cy - 1].wrapped is False:
                    rows[self.cy - 1].wrapped = True
        self.pending = False
        # blank rows below the cursor do not count as content: the screen's
        # bottom follows the last row with text, or the cursor
        while len(rows) > self.cy + 1 and not rows[-1].cells:
            rows.pop()
        self.rows = rows
        self.top = min(self.cy, max(0, len(rows) - self.lines))  # the cursor stays visible

    def _fit(self, lines: int) -> None:
        if self.cy - self.top >= lines:
            self.top = self.cy - lines + 1
        self.lines = lines
        del self.rows[self.top + lines:]
        while len(self.rows) < self.top + lines:
            self.rows.append(Row())

    # ---- reading

    def screen(self) -> list[str]:
        """The visible rows."""
        return [row.text() for row in self.rows[self.top:self.top + self.lines]]

    def history(self) -> str:
        """Scrollback and screen, rows that wrapped on their own joined back into
        their line; trailing blank lines left out."""
        out: list[str] = []
        line = ""
        for row in self.rows:
            cells = "".join(row.cells)
            line += cells.ljust(self.columns) if row.wrapped else cells
            if not row.wrapped:
                out.append(line.rstrip())
                line = ""
        if line:
            out.append(line.rstrip())
        while out and not out[-1]:
            out.pop()
        return "\n".join(out)
