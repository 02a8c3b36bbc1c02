"""The one table layout of every command (plan, run, status, verify, failed, the admin tables).

Without a width a table is as wide as its values: full names and full detail, for logs and scripts. A table
that fits its width is shown the same way. One that does not is made narrower the way `gh`, `kubectl get` and
`rclone` do, losing as little as possible, one step at a time until it fits:

1. headers wider than their values take two lines (at a space, a "/" or between two Japanese characters);
2. a cell equal to the cell it repeats (a label that is its folder's name) is left blank, with a line saying so;
3. count columns that are 0 in every row are left out, with a line naming them;
4. pairs of counts are shown together, "93/93";
5. text (labels, actions, reasons) takes more lines inside its column, only in the rows that need them;
6. only then are names (folders, addresses) wider than NAME_COLUMNS shortened in the middle, and as a last
   resort any name. Numbers and headers are never shortened.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections.abc import Iterable, Sequence

from gimport.i18n import _
from gimport.render.text import display_width, elide, pad, safe, wrap

NAME_COLUMNS = 24  # a folder name or an address up to this wide is never shortened
MIN_CELL = 8  # nor any name below this, whatever the width
MIN_TEXT = 6  # text is never narrower than this (nor than its header)
GAP = "  "
SAMPLE_ROWS = 300  # the widths of a longer table's text columns are chosen on this many of its rows

# Characters a line must not start with (JIS X 4051): a header or a cell is never broken before them.
_NO_START = frozenset("、。，．,.)]）」』】〕〉》ー～…・：；？！ゝゞヽヾぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ々")


@dataclasses.dataclass(frozen=True)
class Column:
    """One column: its header and how it may be made narrower.

    `right`: a count or a size, aligned right and never shortened. `name`: a folder or an address, whole up to
    NAME_COLUMNS wide. Any other column is text that takes more lines when it must. `zero`: may be left out
    when every cell is 0 (or empty). `same_as`: the index of a column whose cell this one often repeats (a
    label and its folder, a login and its address): left blank where equal (to an address: to its part
    before the @). `over`: the index of a count this one is shown over ("93/93"), that column then left out.
    `optional`: detail left out (said so) when the table cannot fit otherwise, before any name is shortened."""

    header: str
    right: bool = False
    name: bool = False
    zero: bool = False
    same_as: int | None = None
    over: int | None = None
    optional: bool = False


def breaks(text: str) -> list[int]:
    """Where `text` may be broken between lines: after a space, a "/" or a comma, and between two wide
    (Japanese) characters; never before a character that must not start a line."""
    out = []
    for i in range(1, len(text)):
        prev, ch = text[i - 1], text[i]
        if ch in _NO_START or ch == " ":
            continue
        if prev in " /," or (display_width(prev) == 2 and display_width(ch) == 2):
            out.append(i)
    return out


def break_lines(text: str, width: int) -> list[str]:
    """`text` on lines of at most `width` columns, broken where breaks() allows; a piece wider than a line is
    cut where the line ends (nothing is left out)."""
    if display_width(text) <= width:
        return [text]
    prefix = [0]
    for c in text:
        prefix.append(prefix[-1] + display_width(c))

    def columns(a: int, b: int) -> int:  # of text[a:b] without its trailing spaces
        while b > a and text[b - 1] == " ":
            b -= 1
        return prefix[b] - prefix[a]

    allowed = breaks(text)
    lines: list[str] = []
    start = 0
    while columns(start, len(text)) > width:
        end = start
        for b in allowed[bisect.bisect_right(allowed, start) :]:
            if columns(start, b) > width:
                break  # the pieces only get wider
            end = b
        if end == start:
            end = _longest_start(text, start, width)
        lines.append(text[start:end].rstrip())
        start = end
        while start < len(text) and text[start] == " ":
            start += 1
    if start < len(text):
        lines.append(text[start:])
    return lines


def _longest_start(text: str, start: int, width: int) -> int:
    """The end of the longest piece of `text` from `start` that takes at most `width` columns (one character
    at least)."""
    end, used = start, 0
    while end < len(text) and used + display_width(text[end]) <= width:
        used += display_width(text[end])
        end += 1
    return max(end, start + 1)


def header_lines(header: str, floor: int) -> list[str]:
    """A header on one line, or on two when that makes it narrower and no narrower than `floor` is needed:
    broken at a space or a "/" where it has one, else between two Japanese characters leaving at least two
    on each line ("今回/取込", never "件/数")."""
    if display_width(header) <= floor:
        return [header]
    at = [b for b in breaks(header) if header[b - 1] in " /"]
    at = at or [b for b in breaks(header) if 2 <= b <= len(header) - 2]
    best = [header]
    for b in at:
        split = [header[:b].rstrip(), header[b:].lstrip()]
        if max(map(display_width, split)) < max(map(display_width, best)):
            best = split
    return best


class _Table:
    """The columns and cells as they stand during fitting."""

    def __init__(self, columns: Sequence[Column], rows: list[list[str]]) -> None:
        self.cols = list(columns)
        self.rows = rows
        self.two_line_headers = False
        self.notes: list[str] = []
        self._natural: dict[int, int] = {}

    def changed(self) -> None:
        """The cells changed: measure them again."""
        self._natural.clear()

    def natural(self, i: int) -> int:
        if i not in self._natural:
            self._natural[i] = max((display_width(r[i]) for r in self.rows), default=0)
        return self._natural[i]

    def heads(self) -> list[list[str]]:
        if not self.two_line_headers:
            return [[c.header] for c in self.cols]
        return [header_lines(c.header, self.natural(i)) for i, c in enumerate(self.cols)]

    def head_width(self, i: int) -> int:
        return max(display_width(x) for x in self.heads()[i])

    def widths(self) -> list[int]:
        return [max(self.natural(i), self.head_width(i)) for i in range(len(self.cols))]

    def total(self, widths: Sequence[int] | None = None) -> int:
        w = self.widths() if widths is None else widths
        return sum(w) + len(GAP) * (len(w) - 1)

    def drop(self, gone: set[int]) -> None:
        """Leave out the columns `gone`; the other columns' same_as/over indices follow."""
        keep = [i for i in range(len(self.cols)) if i not in gone]
        index = {old: new for new, old in enumerate(keep)}

        def moved(i: int | None) -> int | None:
            return None if i is None else index.get(i)

        self.cols = [
            dataclasses.replace(self.cols[i], same_as=moved(self.cols[i].same_as), over=moved(self.cols[i].over))
            for i in keep
        ]
        self.rows = [[r[i] for i in keep] for r in self.rows]
        self.changed()


def _two_line_headers(t: _Table) -> None:
    t.two_line_headers = True


def _repeats(cell: str, other: str) -> bool:
    return bool(cell) and (cell == other or ("@" in other and cell == other.rsplit("@", 1)[0]))


def _blank_repeats(t: _Table) -> None:
    for i, c in enumerate(t.cols):
        j = c.same_as
        if j is None or not any(_repeats(r[i], r[j]) for r in t.rows):
            continue
        local = any(r[i] != r[j] and _repeats(r[i], r[j]) for r in t.rows)
        for r in t.rows:
            if _repeats(r[i], r[j]):
                r[i] = ""
        t.changed()
        note = (
            _("Blank in '{column}': the same as '{other}' (its part before the @).")
            if local
            else _("Blank in '{column}': the same as '{other}'.")
        )
        t.notes.append(note.format(column=c.header, other=t.cols[j].header))


def _drop_zeros(t: _Table) -> None:
    gone = {i for i, c in enumerate(t.cols) if c.zero and all(r[i] in ("", "0") for r in t.rows)}
    if gone:
        names = _(", ").join(t.cols[i].header for i in sorted(gone))  # "、" in Japanese
        t.notes.append(_("Not shown, 0 in every row: {columns}.").format(columns=names))
        t.drop(gone)


def _pair_counts(t: _Table) -> None:
    gone: set[int] = set()
    for i, c in enumerate(t.cols):
        j = c.over
        if j is None or j in gone or i in gone:
            continue
        for r in t.rows:
            r[i] = f"{r[i]}/{r[j]}" if r[i] and r[j] else r[i] or r[j]
        t.changed()
        t.cols[i] = dataclasses.replace(c, header=f"{c.header}/{t.cols[j].header}", over=None)
        gone.add(j)
    t.drop(gone)


def _drop_optional(t: _Table, width: int) -> None:
    """Leave out optional columns, the rightmost first, while even text at its narrowest would leave the names
    too little room."""

    def narrowest() -> int:
        widths = t.widths()
        floors = [
            w if c.name or c.right else _floor(t, i, last_resort=False)
            for i, (c, w) in enumerate(zip(t.cols, widths, strict=True))
        ]
        return t.total(floors)

    names = []
    for i in reversed(range(len(t.cols))):
        if narrowest() <= width:
            break
        if t.cols[i].optional:
            names.append(t.cols[i].header)
            t.drop({i})
    if names:
        t.notes.append(_("Not shown at this width: {columns}.").format(columns=_(", ").join(reversed(names))))


def _floor(t: _Table, i: int, *, last_resort: bool) -> int:
    """How narrow column i may get: numbers never, text to its header, names to NAME_COLUMNS (MIN_CELL)."""
    c = t.cols[i]
    natural = t.natural(i)
    head = t.head_width(i)
    if c.right:
        return max(natural, head)
    if c.name:
        return max(head, min(natural, MIN_CELL if last_resort else NAME_COLUMNS))
    return max(head, min(natural, MIN_TEXT))


def _squeeze(t: _Table, width: int) -> list[int]:
    """Column widths that fit `width` where possible: text takes more lines first (as few more as it can),
    then long names are shortened, then any name. Numbers and headers stay whole."""
    widths = t.widths()
    if t.total(widths) <= width:
        return widths
    text = [i for i, c in enumerate(t.cols) if not c.right and not c.name]
    floors = {i: _floor(t, i, last_resort=False) for i in text}
    room = width - t.total(widths) + sum(widths[i] for i in text)
    if room >= sum(floors.values()):
        for i, w in _share(t, floors, room).items():
            widths[i] = w
        return widths
    for i in text:
        widths[i] = floors[i]
    names = [i for i, c in enumerate(t.cols) if c.name]
    for last_resort in (False, True):
        floors = {i: _floor(t, i, last_resort=last_resort) for i in names}
        while t.total(widths) > width:
            over = [i for i in names if widths[i] > floors[i]]
            if not over:
                break
            i = max(over, key=lambda k: widths[k])  # the widest first: they come down together
            widths[i] -= 1
    return widths


def _share(t: _Table, floors: dict[int, int], room: int) -> dict[int, int]:
    """Widths for the text columns (`floors`: their minimum) within `room` columns in all, the table's rows
    taking as few lines as they can."""
    text = sorted(floors)
    natural = {i: max(t.natural(i), floors[i]) for i in text}
    heights: dict[tuple[str, int], int] = {}

    def lines(cell: str, w: int) -> int:
        """The lines `cell` takes at width w; a word cut in two is avoided whenever a wider column can spare it."""
        if (cell, w) not in heights:
            at = [0, *breaks(cell), len(cell)]
            cut = any(display_width(cell[x:y].rstrip()) > w for x, y in itertools.pairwise(at))
            heights[cell, w] = len(break_lines(cell, w)) + 1000 * cut
        return heights[cell, w]

    sample = t.rows[:: max(1, len(t.rows) // SAMPLE_ROWS)]  # a long table: judged by rows spread over it

    def cost(widths: dict[int, int]) -> int:
        return sum(max(lines(r[i], w) for i, w in widths.items()) for r in sample)

    if len(text) == 1:
        return {text[0]: min(natural[text[0]], room)}
    if len(text) == 2:
        a, b = text
        options = [
            {a: wa, b: min(natural[b], room - wa)} for wa in range(floors[a], min(natural[a], room - floors[b]) + 1)
        ]
        return min(options, key=lambda o: (cost(o), abs(o[a] - o[b])))
    widths = dict(natural)  # more columns of text: the widest gives a column first, until they fit
    while sum(widths.values()) > room:
        i = max((k for k in text if widths[k] > floors[k]), key=lambda k: widths[k])
        widths[i] -= 1
    return widths


def _cell(text: str, width: int, column: Column) -> list[str]:
    if column.right:
        return [pad(text, width, right=True)]
    if column.name:
        return [pad(elide(text, width), width)]
    return [pad(line, width) for line in break_lines(text, width)]


def _render(t: _Table, widths: Sequence[int]) -> list[str]:
    heads = t.heads()
    depth = max((len(h) for h in heads), default=1)
    lines = []
    for k in range(depth):  # a two-line header's lines sit at the bottom, next to the dashes
        cells = [h[k - depth + len(h)] if k >= depth - len(h) else "" for h in heads]
        lines.append(GAP.join(pad(x, w, right=c.right) for x, w, c in zip(cells, widths, t.cols, strict=True)))
    lines.append(GAP.join("-" * w for w in widths))
    for r in t.rows:
        stacks = [_cell(x, w, c) for x, w, c in zip(r, widths, t.cols, strict=True)]
        for k in range(max(len(x) for x in stacks)):
            lines.append(GAP.join(x[k] if k < len(x) else " " * w for x, w in zip(stacks, widths, strict=True)))
    return [line.rstrip() for line in lines]


def format_table(columns: Sequence[Column], rows: Iterable[Sequence[str]], *, width: int | None = None) -> str:
    """`rows` under `columns`, separated by two spaces, a dashed line under the headers. With `width`, a
    table wider than that is made narrower step by step (see the module's docstring), each step that leaves
    something out saying so on a line under the table. Cells are made safe first (control characters
    escaped: a folder name from the server is untrusted)."""
    t = _Table(columns, [[safe(cell) for cell in r] for r in rows])
    if width is not None:
        for step in (_two_line_headers, _blank_repeats, _drop_zeros, _pair_counts):
            if t.total() <= width:
                break
            step(t)
        _drop_optional(t, width)
        t.two_line_headers = False  # back on one line if what the steps left out made room for that
        t.two_line_headers = t.total() > width
    widths = t.widths() if width is None else _squeeze(t, width)
    lines = _render(t, widths)
    lines += [wrap(note, width) for note in t.notes]
    return "\n".join(lines)


__all__ = ["NAME_COLUMNS", "Column", "break_lines", "format_table"]
