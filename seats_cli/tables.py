"""Result tables that never cut a cell short.

Rich shrinks a table that is wider than the console by cutting cells with an ellipsis: at 80 columns the
methods table read ``384/3…`` and ``visio…``. :class:`Table` measures its cells when it is printed and, in
this order, (1) keeps its box when every cell fits on one line, header words wrapping; (2) drops the lines
between columns (two spaces apart, then one); (3) wraps cells at their spaces; (4) breaks a long header
word; (5) where even that is too wide, prints each row as a block of ``header: value`` lines. No cell's word,
and so no number, is ever broken.
"""

from __future__ import annotations

import textwrap

from rich import box
from rich.measure import Measurement
from rich.table import Table as _RichTable
from rich.text import Text


MAX_HEADER_LINES = 4


def _plain(x) -> str:
    return " ".join((x.plain if isinstance(x, Text) else str(x)).split())


def _min_header(header) -> int:
    words = (header.plain if isinstance(header, Text) else str(header)).split()
    return max((len(w) for w in words), default=0)


class Table(_RichTable):
    """``rich.table.Table`` whose cells are printed whole at any console width (module docstring)."""

    def __rich_console__(self, console, options):
        self._as_built()  # each print fits from the table as built, not from an earlier print's fitting
        if self._fit(console, options):
            yield from super().__rich_console__(console, options)
        else:
            yield from self._records(console)

    def _as_built(self) -> None:
        saved = getattr(self, "_built", None)
        if saved is None:
            self._built = ((self.box, self.show_edge, self.pad_edge, self.collapse_padding, self.padding),
                           [(c.header, c.width, c.min_width, c.overflow) for c in self.columns])
            return
        (self.box, self.show_edge, self.pad_edge, self.collapse_padding, self.padding), columns = saved
        for col, state in zip(self.columns, columns):
            col.header, col.width, col.min_width, col.overflow = state

    def _fit(self, console, options) -> bool:
        """Lay the table out to fit ``options.max_width`` with every word whole; False where no layout does."""
        width, n = options.max_width, len(self.columns)
        sizes = [[Measurement.get(console, options, c) for c in col._cells] for col in self.columns]
        whole = [max([1, *(m.maximum for m in col)]) for col in sizes]  # every cell on one line
        words = [max([1, *(m.minimum for m in col)]) for col in sizes]  # cells wrapped at their spaces
        heads = [_min_header(col.header) for col in self.columns]  # header words whole
        boxed = self.box is not None and self.show_edge
        # (layout, width of everything but the cells): boxed "│ x │ y │", compact "x  y", tight "x y"
        layouts = ([("boxed", 3 * n + 1)] if boxed else []) + [("compact", 2 * (n - 1)), ("tight", n - 1)]
        # rows on one line first, then cells wrapped at their spaces; header words whole before a header breaks
        # inside a word (a long name such as colour_while_tone); a cell's word (a number) is never broken
        for need in ([max(c, h) for c, h in zip(whole, heads)], [max(c, h) for c, h in zip(words, heads)],
                     whole, words):
            for name, extra in layouts:
                if sum(need) + extra <= width:
                    # the room left makes the cells that wrap whole, the least wanting first; the widths are then
                    # fixed, as rich's own shrinking ignores a column's minimum and can run past the console
                    spare, fixed = width - sum(need) - extra, list(need)
                    full = [max(whole[i], len(_plain(col.header))) for i, col in enumerate(self.columns)]
                    # cells whole first, then header words whole, then headers on one line
                    for target in (whole, [max(w, h) for w, h in zip(whole, heads)], full):
                        for i in sorted(range(n), key=lambda i: target[i] - fixed[i]):
                            grow = min(spare, max(0, target[i] - fixed[i]))
                            fixed[i] += grow
                            spare -= grow
                    if any(len(textwrap.wrap(_plain(col.header), w)) > MAX_HEADER_LINES
                           for col, w in zip(self.columns, fixed)):
                        continue  # a header in slivers reads worse than the blocks of the last resort
                    self._layout(name)
                    for col, w in zip(self.columns, fixed):
                        col.width = w
                        if isinstance(col.header, str) and _min_header(col.header) > w:
                            col.header = "\n".join(textwrap.wrap(col.header, w))  # inside a word: it must
                    return True
        return False

    def _records(self, console):
        """Too narrow for columns: each row as its own block, one ``header: value`` line per cell, the first cell
        heading the block; long lines wrap at spaces, so numbers stay whole. Strings are read as rich reads a
        table's (markup)."""
        def text(x):
            return _plain(console.render_str(x) if isinstance(x, str) else x)

        if self.title:
            yield Text(text(self.title))
        for cells in zip(*(col._cells for col in self.columns)):
            head, *rest = [(text(col.header), text(cell)) for col, cell in zip(self.columns, cells)]
            yield Text(f"{head[0]} {head[1]}" if head[0] else head[1], style="bold")
            for h, v in rest:
                yield Text(f"  {h}: {v}" if h else f"  {v}")

    def _layout(self, name: str) -> None:
        if name == "boxed":
            return
        self.box, self.show_edge, self.pad_edge = box.SIMPLE_HEAD, False, False
        if name == "compact":
            self.collapse_padding = True
        else:
            self.padding = (0, 0)
