"""Result tables that never cut a cell short.

Rich shrinks a table that is wider than the console by cutting cells with an ellipsis: at 80 columns the
methods table read ``384/3…`` and ``visio…``. :class:`Table` measures its cells when it is printed and, in
this order, (1) keeps its box when every cell fits whole, header words wrapping; (2) drops the lines
between columns (two spaces apart, then one); (3) lets header words break before any cell does; (4) where
even that is too wide, folds cells onto more lines instead of eliding them. Numbers and names are printed whole in every case.
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
        self._fit(console, options)
        yield from super().__rich_console__(console, options)

    def _fit(self, console, options) -> None:
        width, n = options.max_width, len(self.columns)
        cells = [max([0, *(Measurement.get(console, options, c).maximum for c in col._cells)])
                 for col in self.columns]
        words = [max(w, _min_header(col.header)) for w, col in zip(cells, self.columns)]
        boxed = self.box is not None and self.show_edge
        # (box, padding, width of everything but the cells): boxed "│ x │ y │", compact "x  y", tight "x y"
        layouts = ([("boxed", 3 * n + 1)] if boxed else []) + [("compact", 2 * (n - 1)), ("tight", n - 1)]
        for need in (words, cells):  # header words whole first; else headers may break inside a word
            for name, extra in layouts:
                if sum(need) + extra <= width:
                    self._layout(name)
                    for col, w in zip(self.columns, need):
                        col.min_width, col.overflow = w, "fold"  # the cell fits whole, a longer header wraps
                        if isinstance(col.header, str) and len(col.header) > w:
                            col.header = "\n".join(textwrap.wrap(col.header, w))  # inside a word if it must
                    return
        self._layout(layouts[-1][0])
        for col in self.columns:
            col.overflow = "fold"  # too narrow for whole cells: fold them onto more lines, never elide

    def _layout(self, name: str) -> None:
        if name == "boxed":
            return
        self.box, self.show_edge, self.pad_edge = box.SIMPLE_HEAD, False, False
        if name == "compact":
            self.collapse_padding = True
        else:
            self.padding = (0, 0)
