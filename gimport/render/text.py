"""Text for people, fitted to the terminal: sizes, durations, clock times, display widths (East Asian wide
characters take two columns), names elided in the middle and wrapped paragraphs (tables: gimport.render.table).

Pure functions; the one that looks at the environment is terminal_width(). A width of None means "do not
fit": full names and unwrapped lines, for logs and scripts.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
import unicodedata
from typing import TextIO

from gimport.render.wrap import char_width, display_width, wrap

ELLIPSIS = "..."  # ASCII: "…" is East Asian "ambiguous" width, one column or two depending on the terminal


# Bidirectional overrides and isolates: they reorder what the terminal shows.
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def safe(text: object) -> str:
    """`text` as it may reach a terminal: control characters (ESC, BEL, CR, LF, ...: a server's folder name
    could retitle the terminal or break a table) and bidi overrides are shown escaped (\\x1b, \\r)."""
    out = []
    for ch in str(text):
        if ch in _BIDI or unicodedata.category(ch) == "Cc":
            out.append(
                {"\r": "\\r", "\n": "\\n", "\t": "\\t"}.get(ch) or f"\\x{ord(ch):02x}"
                if ord(ch) < 256
                else f"\\u{ord(ch):04x}"
            )
        else:
            out.append(ch)
    return "".join(out)


def safe_lines(text: str) -> str:
    """Every line of `text` made safe, the line breaks kept."""
    return "\n".join(safe(line) for line in text.split("\n"))


def terminal_width(stream: TextIO | None = None) -> int | None:
    """The width to fit text into: COLUMNS when set (a number >= 20, terminal or not); else the terminal's
    width when `stream` is a terminal; else None (not a terminal: keep full names for logs and scripts)."""
    env = os.environ.get("COLUMNS", "").strip()
    if env.isdigit() and int(env) >= 20:
        return int(env)
    if stream is not None:
        try:
            if stream.isatty():
                return os.get_terminal_size(stream.fileno()).columns or shutil.get_terminal_size().columns
        except (OSError, ValueError, AttributeError):
            return None
    return None


def _cut(s: str, columns: int, *, from_end: bool = False) -> str:
    """The longest start (or end) of `s` that takes at most `columns` columns."""
    out: list[str] = []
    used = 0
    for c in reversed(s) if from_end else s:
        w = char_width(c)
        if used + w > columns:
            break
        out.append(c)
        used += w
    return "".join(reversed(out)) if from_end else "".join(out)


def elide(s: str, columns: int, *, at_end: bool = False) -> str:
    """`s` shortened to at most `columns` display columns by taking out its middle ("Archive/20...s/Old"),
    so that both the top folder and the last level stay readable; `at_end`: keep the start instead
    (prose: "skip: holds no mes..."). Unchanged when it fits."""
    if display_width(s) <= columns:
        return s
    if columns <= len(ELLIPSIS):
        return _cut(s, columns)
    if at_end:
        return _cut(s, columns - len(ELLIPSIS)) + ELLIPSIS
    room = columns - len(ELLIPSIS)
    head = _cut(s, (room + 1) // 2)
    tail = _cut(s, room - display_width(head), from_end=True)
    return head + ELLIPSIS + tail


def pad(s: str, columns: int, *, right: bool = False) -> str:
    gap = " " * max(0, columns - display_width(s))
    return gap + s if right else s + gap


def human_bytes(n: float) -> str:
    """A size in powers of 1,024, named so (IEC): 147,195 bytes is "143.7 KiB", not "KB" (1,000)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def human_duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def clock_time(epoch: float, now: float | None = None) -> str:
    """A local clock time for an estimate: "14:05", with the date when it is not today ("12-03 14:05")."""
    when = dt.datetime.fromtimestamp(epoch)
    today = dt.datetime.fromtimestamp(time.time() if now is None else now).date()
    return when.strftime("%H:%M") if when.date() == today else when.strftime("%m-%d %H:%M")


__all__ = [
    "ELLIPSIS",
    "char_width",
    "clock_time",
    "display_width",
    "elide",
    "human_bytes",
    "human_duration",
    "pad",
    "safe",
    "safe_lines",
    "terminal_width",
    "wrap",
]
