"""Where a line of text for people may break, and how wide it is on a terminal: the one line breaker behind
argparse's help, every wrapped message and the documentation `gimport help` shows.

- Display widths come from wcwidth (East Asian wide and full-width characters take two columns, combining
  marks none, East Asian "ambiguous" characters one, as most terminals show them).
- Break opportunities come from Unicode's line-breaking algorithm (UAX #14, as wcwidth implements it): never
  inside a Latin word or a number, never before a closing bracket or a "、".
- Japanese has no spaces: between two Japanese characters a line breaks only between phrases (文節), where
  BudouX (Google's phrase segmenter, its model shipped with the package) puts a boundary, so that a particle
  stays with its word ("移行|します" is not cut, "受信トレイへ|移行します" may be).
- On top of both, JIS X 4051's prohibitions: no line starts with a closing bracket, Japanese punctuation,
  a middle dot, an iteration mark, the long-vowel mark ー or a small kana; no line ends with an opening
  bracket.

Only what is wider than a line is broken elsewhere: a phrase at any UAX #14 opportunity (between two kanji,
after a "/" or a "-"), a word longer than a line (a path, a URL) between two characters.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterator

import budoux
import wcwidth

# JIS X 4051 (and the W3C's "Requirements for Japanese Text Layout"): characters that may not start a line
# (closing brackets, Japanese punctuation and middle dots, iteration marks, the long-vowel mark, small kana,
# the wave dash) and that may not end one (opening brackets). ASCII punctuation is left to UAX #14, which
# already keeps "," ")" "." off a line's start after a word; after a space they start a name (".ci/run").
NO_LINE_START = frozenset(
    "、。，．）〕］｝〉》」』】〙〗〟’”｠»・：；！？‼⁇⁈⁉ー々〻ゝゞヽヾ゠〜～"
    "ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ"
)
NO_LINE_END = frozenset("（〔［｛〈《「『【〘〖〝‘“｟«")

PREFERRED, FALLBACK = 0, 1  # a break between words or phrases; one inside a phrase or a word with a "/"


def char_width(c: str) -> int:
    """Columns one character takes (a control character, never shown raw, counts one)."""
    w = wcwidth.wcwidth(c)
    return 1 if w < 0 else w


def display_width(s: str) -> int:
    """Columns `s` takes on a terminal: East Asian wide and full-width characters count two, ambiguous ones
    one."""
    w = wcwidth.wcswidth(s)
    return w if w >= 0 else sum(char_width(c) for c in s)


def _wide(c: str) -> bool:
    return char_width(c) == 2


def _closes(c: str) -> bool:
    return _wide(c) and unicodedata.category(c) in ("Po", "Pe")


def _opens(c: str) -> bool:
    return _wide(c) and unicodedata.category(c) == "Ps"


@functools.cache
def _phrases() -> budoux.Parser:
    return budoux.load_default_japanese_parser()


def _phrase_starts(text: str) -> set[int]:
    """The positions where a Japanese phrase starts (BudouX), empty for text with no wide character."""
    if not any(_wide(c) for c in text):
        return set()
    starts: set[int] = set()
    at = 0
    for phrase in _phrases().parse(text):
        at += len(phrase)
        starts.add(at)
    return starts


def breaks(text: str) -> dict[int, int]:
    """Where `text` may break: position -> PREFERRED (after a space between words, or between phrases) or
    FALLBACK (inside a phrase, after a "/" or "-"); JIS X 4051's prohibitions applied. A position is the
    index of the first character of the next line (the spaces before it end the previous line, dropped)."""
    phrases = _phrase_starts(text)
    out: dict[int, int] = {}
    # UAX #14 keeps "read /srv/mail" together (no break before "/", even after a space); between Latin words a
    # space is where a line breaks, unless what follows closes or punctuates
    spaces = {m.end() for m in re.finditer(r" +(?=[^ )\]},.;:!?]|\.\w)", text)}
    # and UAX #14 keeps ASCII quotes to their neighbours, even beside Japanese ('、"plain"（ポート'): JIS X
    # 4051 breaks after a Japanese comma, full stop or closing bracket and before an opening one
    brackets = {i for i in range(1, len(text)) if _closes(text[i - 1]) or _opens(text[i])}
    for i in sorted(spaces | brackets | {b.index for b in wcwidth.iter_line_breaks(text)}):
        if i >= len(text):
            continue
        before = text[:i].rstrip(" ")
        if not before or text[i] in NO_LINE_START or before[-1] in NO_LINE_END:
            continue
        japanese = _wide(before[-1]) or _wide(text[i])
        if japanese:  # a space beside Japanese ("1 通", "gimport は") is no break unless a phrase ends there
            out[i] = PREFERRED if i in phrases or len(before) in phrases else FALLBACK
        else:
            out[i] = PREFERRED if before != text[:i] else FALLBACK
    return out


def _graphemes(text: str) -> Iterator[str]:
    """The characters (grapheme clusters) of `text`, one that may not start a line glued to the one before,
    one that may not end a line to the one after: where a word is cut, "、" still does not start a line."""
    held = ""
    for g in wcwidth.iter_graphemes(text):
        if held and g[0] not in NO_LINE_START and held[-1] not in NO_LINE_END:
            yield held
            held = ""
        held += g
    if held:
        yield held


def _pieces(text: str, cuts: list[int]) -> list[str]:
    edges = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(edges) if b > a]


class _Lines:
    """Lines filled up to `width`; continuation lines start with `rest`."""

    def __init__(self, first: str, rest: str, width: int) -> None:
        self.done: list[str] = []
        self.current = first
        self.rest = rest
        self.width = width
        self.empty = True  # nothing but the indent on the current line

    def fits(self, piece: str) -> bool:
        return display_width(self.current + piece.rstrip(" ")) <= self.width

    def add(self, piece: str) -> None:
        self.current += piece
        self.empty = False

    def newline(self) -> None:
        self.done.append(self.current.rstrip(" "))
        self.current = self.rest
        self.empty = True

    def place(self, piece: str, finer: list[str] | None) -> None:
        """`piece` on this line or the next; wider than a line: piece by piece of `finer` (None: character by
        character)."""
        if self.fits(piece):
            self.add(piece)
            return
        if not self.empty:
            self.newline()
            if self.fits(piece):
                self.add(piece)
                return
        for part in finer if finer is not None else _graphemes(piece):
            if not self.fits(part) and not self.empty:
                self.newline()
            if self.fits(part) or finer is None:
                self.add(part)
            else:
                self.place(part, None)


def wrap_line(line: str, width: int, indent: str = "") -> list[str]:
    """One line of text broken into lines of at most `width` display columns (a character wider than the
    room is the only excess). Continuation lines start with `indent`, or with the line's own leading spaces
    when `indent` is empty."""
    if display_width(line) <= width:
        return [line]
    lead = line[: len(line) - len(line.lstrip(" "))]
    body = line[len(lead) :]
    rank = breaks(body)
    preferred = [i for i, r in rank.items() if r == PREFERRED]
    lines = _Lines(lead, indent or lead, width)
    start = 0
    for unit in _pieces(body, preferred):
        inside = [i - start for i in rank if start < i < start + len(unit)]
        lines.place(unit, _pieces(unit, sorted(inside)))
        start += len(unit)
    if not lines.empty:
        lines.newline()
    return lines.done


def wrap(text: str, width: int | None, *, indent: str = "") -> str:
    """`text` wrapped to `width` display columns, each of its lines separately (continuation lines get
    `indent`, or the line's own leading spaces). width None: unchanged."""
    if width is None:
        return text
    return "\n".join("\n".join(wrap_line(line, width, indent)) for line in text.split("\n"))


def _glued(a: str, b: str) -> bool:
    """No space between `a` and `b`: two Japanese characters, or Japanese punctuation ("、Gmail", "Gmail（")."""
    punctuation = (_wide(a) and unicodedata.category(a)[0] == "P") or (_wide(b) and unicodedata.category(b)[0] == "P")
    return (_wide(a) and _wide(b)) or punctuation


def join_lines(lines: list[str]) -> str:
    """Lines of one paragraph made one line: a space between them, except between two Japanese characters
    or beside Japanese punctuation (Japanese has no spaces: "移行\nします" is "移行します")."""
    out = ""
    for line in (x.strip() for x in lines):
        if not line:
            continue
        if out and not _glued(out[-1], line[0]):
            out += " "
        out += line
    return out


__all__ = [
    "NO_LINE_END",
    "NO_LINE_START",
    "breaks",
    "char_width",
    "display_width",
    "join_lines",
    "wrap",
    "wrap_line",
]
