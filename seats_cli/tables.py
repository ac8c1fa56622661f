"""Result tables that never cut a cell short.

Rich shrinks a table that is wider than the console by cutting cells with an ellipsis: at 80 columns the
methods table read ``384/3…`` and ``visio…``. :class:`Table` measures its cells when it is printed and, in
this order, (1) keeps its box when every cell fits on one line, header words wrapping; (2) drops the lines
between columns (two spaces apart, then one); (3) lets header words break, so that each row stays on one line;
(4) wraps cells at their spaces; (5) where even that is too wide, folds words onto more lines instead of
eliding them. Numbers and names are printed whole in every case.
"""

from __future__ import annotations

import textwrap

from rich import box
from rich.measure import Measurement
from rich.table import Table as _RichTable
from rich.text import Text


def _min_header(header) -> int:
    words = (header.plain if isinstance(header, Text) else str(header)).split()
    return max((len(w) for w in words), default=0)


class Table(_RichTable):
    """``rich.table.Table`` whose cells are printed whole at any console width (module docstring)."""

    def __rich_console__(self, console, options):
        self._as_built()  # each print fits from the table as built, not from an earlier print's fitting
        self._fit(console, options)
        yield from super().__rich_console__(console, options)

    def _as_built(self) -> None:
        saved = getattr(self, "_built", None)
        if saved is None:
            self._built = ((self.box, self.show_edge, self.pad_edge, self.collapse_padding, self.padding),
                           [(c.header, c.width, c.min_width, c.overflow) for c in self.columns])
            return
        (self.box, self.show_edge, self.pad_edge, self.collapse_padding, self.padding), columns = saved
        for col, state in zip(self.columns, columns):
            col.header, col.width, col.min_width, col.overflow = state

    def _fit(self, console, options) -> None:
        width, n = options.max_width, len(self.columns)
        sizes = [[Measurement.get(console, options, c) for c in col._cells] for col in self.columns]
        whole = [max([0, *(m.maximum for m in col)]) for col in sizes]  # every cell on one line
        words = [max([0, *(m.minimum for m in col)]) for col in sizes]  # cells wrapped at their spaces
        heads = [_min_header(col.header) for col in self.columns]  # header words whole
        boxed = self.box is not None and self.show_edge
        # (layout, width of everything but the cells): boxed "│ x │ y │", compact "x  y", tight "x y"
        layouts = ([("boxed", 3 * n + 1)] if boxed else []) + [("compact", 2 * (n - 1)), ("tight", n - 1)]
        # rows on one line first (header words whole, then headers broken), then cells wrapped at their spaces
        for need in ([max(c, h) for c, h in zip(whole, heads)], whole, [max(c, h) for c, h in zip(words, heads)],
                     words):
            need = [max(1, w) for w in need]  # an empty column still takes one cell
            for name, extra in layouts:
                if sum(need) + extra <= width:
                    self._layout(name)
                    # the room left makes the cells that wrap whole, the least wanting first; the widths are then
                    # fixed, as rich's own shrinking ignores a column's minimum and can run past the console
                    spare, fixed = width - sum(need) - extra, list(need)
                    for i in sorted(range(n), key=lambda i: whole[i] - need[i]):
                        grow = min(spare, max(0, max(whole[i], heads[i]) - fixed[i]))
                        fixed[i] += grow
                        spare -= grow
                    for col, w in zip(self.columns, fixed):
                        col.width, col.overflow = w, "fold"  # longer text wraps at spaces, a longer word folds
                        if isinstance(col.header, str) and _min_header(col.header) > w:
                            col.header = "\n".join(textwrap.wrap(col.header, w))  # inside a word: it must
                    return
        self._layout(layouts[-1][0])
        for col in self.columns:
            col.overflow = "fold"  # too narrow for whole words: fold them onto more lines, never elide

    def _layout(self, name: str) -> None:
        if name == "boxed":
            return
        self.box, self.show_edge, self.pad_edge = box.SIMPLE_HEAD, False, False
        if name == "compact":
            self.collapse_padding = True
        else:
            self.padding = (0, 0)
